import XCTest
import CShim
@testable import EdgeMRCNN

/// Dispatched kernels against their plain C references for every ISA this CPU runs, plus
/// hand-computed semantics of the small ops (resize, nearest upsample, RoIAlign, paste, ...).
final class KernelTests: XCTestCase {
    // MARK: helpers

    /// Deterministic uniform values in [-1, 1).
    struct Rng {
        var s: UInt64
        init(_ seed: UInt64) { s = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 40) - (1 << 23)) / Float(1 << 23)
        }
        mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    }

    /// Every ISA the CPU and build support; the ISA in use is restored afterwards.
    func forEachISA(_ body: (Int32) throws -> Void) rethrows {
        let saved = em_isa_current()
        let savedThreads = em_num_threads()
        defer {
            em_isa_set(saved)
            em_set_num_threads(savedThreads)
        }
        var ran = 0
        for isa in 0..<Int32(EM_ISA_COUNT.rawValue) where em_isa_supported(isa) != 0 {
            XCTAssertEqual(em_isa_set(isa), 0)
            XCTAssertEqual(em_isa_current(), isa)
            try body(isa)
            ran += 1
        }
        XCTAssertGreaterThan(ran, 0)
    }

    /// Tolerance: the reference sums in double, the fast paths in float with a different order
    /// (blocked over K, FMA). The rounding error of a float dot product of K terms grows like
    /// sqrt(K) times eps times the magnitude of the partial sums, which for inputs in [-1, 1] is
    /// of the order of the result itself; 1e-5 * sqrt(K) * (1 + |ref|) leaves more than 10x
    /// headroom over that, while one wrong, missing or doubled term (of size ~0.1..1) is caught.
    func assertClose(_ got: [Float], _ ref: [Float], k: Int, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, ref.count, what, file: file, line: line)
        let scale = 1e-5 * Float(max(k, 1)).squareRoot()
        for i in 0..<min(got.count, ref.count) {
            let a = got[i], b = ref[i]
            if a.isNaN != b.isNaN || (!b.isNaN && !(abs(a - b) <= scale * (1 + abs(b)))) {
                XCTFail("\(what): element \(i): got \(a), reference \(b)", file: file, line: line)
                return
            }
        }
    }

    /// Elements of `a` at `indices` must still be NaN (untouched sentinel).
    func assertUntouched(_ a: [Float], _ indices: [Int], _ what: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        for i in indices where !a[i].isNaN {
            XCTFail("\(what): element \(i) outside the output was written", file: file, line: line)
            return
        }
    }

    func bitwiseEqual(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    // MARK: dispatch

    /// The ISAs forEachISA covers on this machine, printed; EDGE_MRCNN_REQUIRE_ISAS (set by .ci/run
    /// to the ISAs the README says are tested) makes a missing one a failure instead of less testing.
    func testISAsCovered() {
        var names: [String] = []
        forEachISA { names.append(String(cString: em_isa_name($0))) }
        print("KernelTests ISAs tested: \(names.joined(separator: " "))"
            + (SelfTest.requiredISAs.isEmpty ? "" : " (required: \(SelfTest.requiredISAs.joined(separator: " ")))"))
        XCTAssertEqual(SelfTest.missingRequiredISAs, [], "required by EDGE_MRCNN_REQUIRE_ISAS but not supported by this CPU")
    }

    func testISASelection() {
        let best = em_isa_best()
        XCTAssertEqual(em_isa_supported(best), 1)
        XCTAssertEqual(em_isa_supported(Int32(EM_ISA_SCALAR.rawValue)), 1)
        for i in 0..<Int32(EM_ISA_COUNT.rawValue) {
            XCTAssertEqual(em_isa_from_name(em_isa_name(i)), i)
        }
        XCTAssertEqual(em_isa_from_name("bogus"), -1)
        XCTAssertEqual(em_isa_supported(-1), 0)
        XCTAssertEqual(em_isa_supported(99), 0)
        let cur = em_isa_current()
        #if arch(x86_64)
        XCTAssertEqual(em_isa_supported(Int32(EM_ISA_NEON.rawValue)), 0)
        XCTAssertEqual(em_isa_set(Int32(EM_ISA_NEON.rawValue)), -1)
        #elseif arch(arm64)
        XCTAssertEqual(em_isa_supported(Int32(EM_ISA_NEON.rawValue)), 1)
        XCTAssertEqual(em_isa_set(Int32(EM_ISA_AVX2.rawValue)), -1)
        #endif
        XCTAssertEqual(em_isa_current(), cur, "a refused em_isa_set must not change the ISA")
        let t = em_num_threads()
        em_set_num_threads(0)
        XCTAssertEqual(em_num_threads(), 1)
        em_set_num_threads(t)
    }

    // MARK: GEMM-shaped kernels

    func testSgemmAllISAs() {
        // (M, N, K): ones, tile-odd sizes, K = 1, N = 1, and one bigger than the cache blocks.
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 37, 5), (37, 1, 9), (7, 33, 1), (13, 45, 70),
                                         (29, 70, 300), (64, 17, 257), (100, 3, 9), (15, 100, 513),
                                         (130, 300, 40)]
        var rng = Rng(1)
        forEachISA { isa in
            let name = String(cString: em_isa_name(isa))
            for (M, N, K) in shapes {
                let lda = K + 3, ldb = N + 2, ldc = N + 5
                let A = rng.array(M * lda), B = rng.array(K * ldb), bias = rng.array(M)
                for accumulate in [Int32(0), 1] {
                    for withBias in [false, true] {
                        for relu in [Int32(0), 1] {
                            // Padding columns of C hold NaN and must stay NaN.
                            var C0 = [Float](repeating: .nan, count: M * ldc)
                            if accumulate != 0 {
                                for m in 0..<M { for n in 0..<N { C0[m * ldc + n] = rng.next() } }
                            }
                            var Cr = C0
                            var results: [[Float]] = []
                            for threads in [Int32(1), 3] {
                                em_set_num_threads(threads)
                                var C = C0
                                A.withUnsafeBufferPointer { a in B.withUnsafeBufferPointer { b in
                                    bias.withUnsafeBufferPointer { bb in
                                        em_sgemm(Int32(M), Int32(N), Int32(K), a.baseAddress, Int32(lda),
                                                 b.baseAddress, Int32(ldb), &C, Int32(ldc),
                                                 withBias ? bb.baseAddress : nil, accumulate, relu)
                                    } } }
                                results.append(C)
                            }
                            A.withUnsafeBufferPointer { a in B.withUnsafeBufferPointer { b in
                                bias.withUnsafeBufferPointer { bb in
                                    em_sgemm_ref(Int32(M), Int32(N), Int32(K), a.baseAddress, Int32(lda),
                                                 b.baseAddress, Int32(ldb), &Cr, Int32(ldc),
                                                 withBias ? bb.baseAddress : nil, accumulate, relu)
                                } } }
                            let what = "sgemm \(name) M\(M) N\(N) K\(K) acc\(accumulate) bias\(withBias) relu\(relu)"
                            assertClose(results[0], Cr, k: K, what)
                            XCTAssertTrue(bitwiseEqual(results[0], results[1]), what + ": threads 1 vs 3 differ")
                            let pad = (0..<M).flatMap { m in (N..<ldc).map { m * ldc + $0 } }
                            assertUntouched(results[0], pad, what)
                        }
                    }
                }
            }
        }
    }

    struct ConvShape { let cin, h, w, cout, k, stride, pad: Int }

    func testConv2dAllISAs() {
        let shapes = [
            ConvShape(cin: 1, h: 1, w: 1, cout: 1, k: 1, stride: 1, pad: 0),    // K = 1, N = 1
            ConvShape(cin: 1, h: 9, w: 7, cout: 3, k: 1, stride: 1, pad: 0),    // K = 1
            ConvShape(cin: 16, h: 8, w: 8, cout: 33, k: 1, stride: 1, pad: 0),  // 1x1 -> plain GEMM
            ConvShape(cin: 6, h: 10, w: 9, cout: 35, k: 1, stride: 2, pad: 0),  // 1x1 stride 2
            ConvShape(cin: 3, h: 13, w: 17, cout: 5, k: 3, stride: 1, pad: 1),
            ConvShape(cin: 4, h: 9, w: 11, cout: 7, k: 3, stride: 2, pad: 1),
            ConvShape(cin: 3, h: 20, w: 21, cout: 9, k: 7, stride: 2, pad: 3),  // conv1-like
            ConvShape(cin: 32, h: 15, w: 15, cout: 40, k: 3, stride: 1, pad: 1),
            ConvShape(cin: 2, h: 3, w: 2, cout: 4, k: 3, stride: 1, pad: 2),    // pad > image
            ConvShape(cin: 40, h: 30, w: 37, cout: 17, k: 3, stride: 1, pad: 1), // K*N > one block
        ]
        var rng = Rng(2)
        forEachISA { isa in
            let name = String(cString: em_isa_name(isa))
            for s in shapes {
                let oh = (s.h + 2 * s.pad - s.k) / s.stride + 1, ow = (s.w + 2 * s.pad - s.k) / s.stride + 1
                let n = s.cout * oh * ow, extra = 7
                let input = rng.array(s.cin * s.h * s.w), weight = rng.array(s.cout * s.cin * s.k * s.k)
                let bias = rng.array(s.cout), residual = rng.array(n)
                let scratchBytes = em_conv2d_f32_scratch_bytes(Int32(s.cin), Int32(s.h), Int32(s.w), Int32(s.cout),
                                                               Int32(s.k), Int32(s.k), Int32(s.stride), Int32(s.pad))
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(scratchBytes, 1), alignment: 64)
                defer { scratch.deallocate() }
                for variant in 0..<4 {
                    let withBias = variant != 0, withRes = variant >= 2, relu: Int32 = variant == 3 ? 1 : 0
                    var ref = [Float](repeating: .nan, count: n)
                    var outs: [[Float]] = []
                    for threads in [Int32(1), 3] {
                        em_set_num_threads(threads)
                        var out = [Float](repeating: .nan, count: n + extra) // NaN sentinel beyond the end
                        input.withUnsafeBufferPointer { i in weight.withUnsafeBufferPointer { w in
                            bias.withUnsafeBufferPointer { b in residual.withUnsafeBufferPointer { r in
                                em_conv2d_f32(i.baseAddress, Int32(s.cin), Int32(s.h), Int32(s.w), w.baseAddress,
                                              withBias ? b.baseAddress : nil, Int32(s.cout), Int32(s.k), Int32(s.k),
                                              Int32(s.stride), Int32(s.pad), withRes ? r.baseAddress : nil, relu,
                                              &out, scratch)
                            } } } }
                        outs.append(out)
                    }
                    input.withUnsafeBufferPointer { i in weight.withUnsafeBufferPointer { w in
                        bias.withUnsafeBufferPointer { b in residual.withUnsafeBufferPointer { r in
                            em_conv2d_f32_ref(i.baseAddress, Int32(s.cin), Int32(s.h), Int32(s.w), w.baseAddress,
                                              withBias ? b.baseAddress : nil, Int32(s.cout), Int32(s.k), Int32(s.k),
                                              Int32(s.stride), Int32(s.pad), withRes ? r.baseAddress : nil, relu,
                                              &ref)
                        } } } }
                    let what = "conv \(name) \(s) variant \(variant)"
                    assertClose(Array(outs[0][0..<n]), ref, k: s.cin * s.k * s.k, what)
                    assertUntouched(outs[0], Array(n..<(n + extra)), what)
                    XCTAssertTrue(bitwiseEqual(outs[0], outs[1]), what + ": threads 1 vs 3 differ")
                }
            }
        }
    }

    func testConv2dResidualInPlace() {
        // residual == out (the caller adds into the identity buffer): same result as separate buffers.
        var rng = Rng(3)
        let cin = 8, h = 6, w = 7, cout = 5
        let input = rng.array(cin * h * w), weight = rng.array(cout * cin * 9), bias = rng.array(cout)
        let residual = rng.array(cout * h * w)
        forEachISA { isa in
            var ref = [Float](repeating: 0, count: cout * h * w)
            em_conv2d_f32_ref(input, Int32(cin), Int32(h), Int32(w), weight, bias, Int32(cout), 3, 3, 1, 1,
                              residual, 1, &ref)
            var out = residual
            out.withUnsafeMutableBufferPointer { o in
                em_conv2d_f32(input, Int32(cin), Int32(h), Int32(w), weight, bias, Int32(cout), 3, 3, 1, 1,
                              o.baseAddress, 1, o.baseAddress, nil)
            }
            assertClose(out, ref, k: cin * 9, "in-place residual \(String(cString: em_isa_name(isa)))")
        }
    }

    func testDeconvAllISAs() {
        let shapes: [(Int, Int, Int, Int)] = [(1, 1, 1, 1), (19, 5, 7, 6), (3, 14, 14, 17), (64, 9, 9, 33)]
        var rng = Rng(4)
        forEachISA { isa in
            for (cin, h, w, cout) in shapes {
                let n = cout * 4 * h * w, extra = 5
                let input = rng.array(cin * h * w), weight = rng.array(cin * cout * 4), bias = rng.array(cout)
                let bytes = em_deconv2x2s2_f32_scratch_bytes(Int32(cin), Int32(h), Int32(w), Int32(cout))
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
                defer { scratch.deallocate() }
                for relu in [Int32(0), 1] {
                    for withBias in [false, true] {
                        var outs: [[Float]] = []
                        for threads in [Int32(1), 3] {
                            em_set_num_threads(threads)
                            var out = [Float](repeating: .nan, count: n + extra)
                            bias.withUnsafeBufferPointer { b in
                                em_deconv2x2s2_f32(input, Int32(cin), Int32(h), Int32(w), weight,
                                                   withBias ? b.baseAddress : nil, Int32(cout), relu, &out, scratch)
                            }
                            outs.append(out)
                        }
                        var ref = [Float](repeating: .nan, count: n)
                        bias.withUnsafeBufferPointer { b in
                            em_deconv2x2s2_f32_ref(input, Int32(cin), Int32(h), Int32(w), weight,
                                                   withBias ? b.baseAddress : nil, Int32(cout), relu, &ref)
                        }
                        let what = "deconv \(String(cString: em_isa_name(isa))) \(cin),\(h),\(w),\(cout) relu\(relu)"
                        assertClose(Array(outs[0][0..<n]), ref, k: cin, what)
                        assertUntouched(outs[0], Array(n..<(n + extra)), what)
                        XCTAssertTrue(bitwiseEqual(outs[0], outs[1]), what + ": threads 1 vs 3 differ")
                    }
                }
            }
        }
    }

    func testLinearAllISAs() {
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 50, 7), (13, 77, 35), (40, 300, 1), (100, 129, 65)]
        var rng = Rng(5)
        forEachISA { isa in
            for (N, K, M) in shapes {
                let x = rng.array(N * K), w = rng.array(M * K), b = rng.array(M)
                for relu in [Int32(0), 1] {
                    for withBias in [false, true] {
                        var outs: [[Float]] = []
                        for threads in [Int32(1), 3] {
                            em_set_num_threads(threads)
                            var out = [Float](repeating: .nan, count: N * M + 3)
                            b.withUnsafeBufferPointer { bb in
                                em_linear_f32(x, Int32(N), Int32(K), w, withBias ? bb.baseAddress : nil, Int32(M),
                                              relu, &out)
                            }
                            outs.append(out)
                        }
                        var ref = [Float](repeating: .nan, count: N * M)
                        b.withUnsafeBufferPointer { bb in
                            em_linear_f32_ref(x, Int32(N), Int32(K), w, withBias ? bb.baseAddress : nil, Int32(M),
                                              relu, &ref)
                        }
                        let what = "linear \(String(cString: em_isa_name(isa))) N\(N) K\(K) M\(M) relu\(relu)"
                        assertClose(Array(outs[0][0..<(N * M)]), ref, k: K, what)
                        assertUntouched(outs[0], Array((N * M)..<(N * M + 3)), what)
                        XCTAssertTrue(bitwiseEqual(outs[0], outs[1]), what + ": threads 1 vs 3 differ")
                    }
                }
            }
        }
    }

    func testReluKeepsNaNOnEveryISA() {
        // A NaN in the input must come out as NaN (not 0) through ReLU, as in the reference:
        // every ISA must agree on what bad input looks like.
        var rng = Rng(6)
        let M = 19, N = 45, K = 7
        var A = rng.array(M * K)
        A[3 * K + 2] = .nan // row 3 of C is all NaN
        let B = rng.array(K * N)
        forEachISA { isa in
            var C = [Float](repeating: 0, count: M * N)
            em_sgemm(Int32(M), Int32(N), Int32(K), A, Int32(K), B, Int32(N), &C, Int32(N), nil, 0, 1)
            for n in 0..<N { XCTAssertTrue(C[3 * N + n].isNaN, "\(String(cString: em_isa_name(isa))) col \(n)") }
            XCTAssertFalse(C[4 * N].isNaN)
        }
    }

    // MARK: small ops, hand-computed

    func testResizeBilinearFrom2x2() {
        // in/out = 0.5: src = max(0.5 (d + 0.5) - 0.5, 0) = 0, 0.25, 0.75, 1.25 -> i0 clamped to 1:
        // sample coordinates 0, 0.25, 0.75, 1 on each axis; the input is v = x + 2 y, so the
        // bilinear output is exactly cx + 2 cy.
        let input: [Float] = [0, 1, 2, 3]
        var out = [Float](repeating: .nan, count: 16)
        em_resize_bilinear_f32(input, 1, 2, 2, &out, 4, 4)
        let c: [Float] = [0, 0.25, 0.75, 1]
        for y in 0..<4 { for x in 0..<4 { XCTAssertEqual(out[y * 4 + x], c[x] + 2 * c[y], accuracy: 1e-6) } }
        // 2x2 -> 3x3 (scale 2/3): src = 0 (clamped from -1/6), 0.5, 1.1667 -> i0 = 1: coords 0, 0.5, 1.
        var out3 = [Float](repeating: .nan, count: 9)
        em_resize_bilinear_f32(input, 1, 2, 2, &out3, 3, 3)
        let c3: [Float] = [0, 0.5, 1]
        for y in 0..<3 { for x in 0..<3 { XCTAssertEqual(out3[y * 3 + x], c3[x] + 2 * c3[y], accuracy: 1e-6) } }
        // Downscale 4 -> 2 along x (scale 2): src = 0.5, 2.5 -> average of neighbours; 2 channels.
        let row: [Float] = [0, 1, 2, 3, 10, 11, 12, 13]
        var down = [Float](repeating: .nan, count: 4)
        em_resize_bilinear_f32(row, 2, 1, 4, &down, 1, 2)
        XCTAssertEqual(down, [0.5, 2.5, 10.5, 12.5])
    }

    func testUpsampleNearestAddIndices() {
        // TH = 3 -> H = 7: sy = floor(y * 3/7) = 0,0,0,1,1,2,2; TW = 2 -> W = 4 (exact 2x): 0,0,1,1.
        let top: [Float] = (0..<6).map { Float($0) } // value = 2 * sy + sx
        var acc = [Float](repeating: 100, count: 28)
        em_upsample_nearest_add_f32(top, 1, 3, 2, &acc, 7, 4)
        let sy = [0, 0, 0, 1, 1, 2, 2], sx = [0, 0, 1, 1]
        for y in 0..<7 { for x in 0..<4 { XCTAssertEqual(acc[y * 4 + x], 100 + Float(2 * sy[y] + sx[x])) } }
        // Upscale 25 -> 50 and 34 -> 68 style (exact 2x) and an identity channel pair.
        let t2: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]   // 2 channels of 2x2
        var o2 = [Float](repeating: 0, count: 8)
        em_upsample_nearest_add_f32(t2, 2, 2, 2, &o2, 2, 2)
        XCTAssertEqual(o2, t2)
    }

    func testNormalizeAndMaxPool() {
        let rgb: [UInt8] = [255, 0, 51, 0, 255, 102] // 1 x 2 pixels
        let mean: [Float] = [0.5, 0.5, 0.2], std: [Float] = [0.25, 0.5, 0.2]
        var out = [Float](repeating: .nan, count: 6)
        em_normalize_rgb8_f32(rgb, 1, 2, mean, std, &out)
        XCTAssertEqual(out[0], 2, accuracy: 1e-6)   // R of pixel 0
        XCTAssertEqual(out[1], -2, accuracy: 1e-6)  // R of pixel 1
        XCTAssertEqual(out[2], -1, accuracy: 1e-6)  // G
        XCTAssertEqual(out[3], 1, accuracy: 1e-6)
        XCTAssertEqual(out[4], 0, accuracy: 1e-6)   // B: 51/255 = 0.2
        XCTAssertEqual(out[5], 1, accuracy: 1e-6)   // 102/255 = 0.4

        // k3 s2 p1 on 4x4 = 0..15 -> 2x2 window maxima 5, 7, 13, 15.
        let img: [Float] = (0..<16).map { Float($0) }
        var p = [Float](repeating: .nan, count: 4)
        em_maxpool2d_f32(img, 1, 4, 4, 3, 2, 1, &p)
        XCTAssertEqual(p, [5, 7, 13, 15])
        // FPN 'pool': k1 s2 p0 on 5x5 picks (2y, 2x); negative values must not be padded with 0.
        let neg: [Float] = (0..<25).map { -Float($0) }
        var q = [Float](repeating: .nan, count: 9)
        em_maxpool2d_f32(neg, 1, 5, 5, 1, 2, 0, &q)
        XCTAssertEqual(q, [0, -2, -4, -10, -12, -14, -20, -22, -24])
        // k3 s2 p1 on 5x5 of all-negative values: padding is -inf, never 0. Windows start at rows
        // and columns 0, 1, 3 (clipped), where the maximum -(5y + x) - 1 sits.
        var r = [Float](repeating: .nan, count: 9)
        em_maxpool2d_f32(neg.map { $0 - 1 }, 1, 5, 5, 3, 2, 1, &r)
        XCTAssertEqual(r, [-1, -2, -4, -6, -7, -9, -16, -17, -19])
    }

    func testRoIAlignHandComputed() {
        // f(y, x) = 10 y + x on a 4 x 5 map: bilinear sampling reproduces the linear function, so
        // each output bin is 10 * mean(sample y) + mean(sample x).
        let H = 4, W = 5
        var feat = [Float](repeating: 0, count: H * W)
        for y in 0..<H { for x in 0..<W { feat[y * W + x] = Float(10 * y + x) } }
        // roi (1,1,3,3): bin 1, samples at 1.25/1.75 and 2.25/2.75 -> means 1.5 and 2.5.
        // roi (3,2,5,4): x samples 3.25, 3.75 | 4.25 -> 4 (clamped at W-1), 4.75 -> 4;
        //                y samples 2.25, 2.75 | 3.25 -> 3, 3.75 -> 3.
        // roi (10,1,12,3): every sample has x > W -> contributes 0, divisor stays 4 -> 0.
        let rois: [Float] = [1, 1, 3, 3, 3, 2, 5, 4, 10, 1, 12, 3]
        var out = [Float](repeating: .nan, count: 12)
        em_roi_align_f32(feat, 1, Int32(H), Int32(W), 1, 2, 0, rois, 3, nil, 2, 2, &out)
        let expect: [Float] = [16.5, 17.5, 26.5, 27.5, 28.5, 29, 33.5, 34, 0, 0, 0, 0]
        for i in 0..<12 { XCTAssertEqual(out[i], expect[i], accuracy: 1e-5, "roi_align \(i)") }
        // spatial_scale 0.5 with doubled coordinates and out_index slots reversed; 2 channels.
        var feat2 = feat
        feat2 += feat.map { $0 * 2 }
        let rois2: [Float] = [2, 2, 6, 6, 6, 4, 10, 8]
        var out2 = [Float](repeating: .nan, count: 16)
        let slots: [Int32] = [1, 0]
        em_roi_align_f32(feat2, 2, Int32(H), Int32(W), 0.5, 2, 0, rois2, 2, slots, 2, 2, &out2)
        for i in 0..<4 {
            XCTAssertEqual(out2[8 + i], expect[i], accuracy: 1e-5)       // roi 0 -> slot 1, channel 0
            XCTAssertEqual(out2[12 + i], 2 * expect[i], accuracy: 1e-5)  // channel 1
            XCTAssertEqual(out2[i], expect[4 + i], accuracy: 1e-5)       // roi 1 -> slot 0
        }
        // A roi smaller than one pixel is widened to 1 (aligned = 0): roi (1,1,1.2,1.2), 1x1 output
        // with 2x2 samples at 1.25 / 1.75 -> 10 * 1.5 + 1.5.
        var o3: Float = .nan
        let tiny: [Float] = [1, 1, 1.2, 1.2]
        em_roi_align_f32(feat, 1, Int32(H), Int32(W), 1, 2, 0, tiny, 1, nil, 1, 1, &o3)
        XCTAssertEqual(o3, 16.5, accuracy: 1e-5)
    }

    func testPasteMaskHandComputed() {
        // M = 2 all-ones mask, box (2,2,6,6): scale (2+2)/2 = 2 -> box (0,0,8,8), 9 x 9 pixels.
        // Padded map [0,1,1,0] per axis resized 4 -> 9: profile 0, .167, .611, 1, 1, 1, .611, .167, 0.
        // The map is the outer product of the profiles; > 0.5 needs both >= .611 and not both .611.
        let mask: [Float] = [1, 1, 1, 1]
        let box: [Float] = [2, 2, 6, 6]
        var x0: Int32 = -1, y0: Int32 = -1, w: Int32 = -1, h: Int32 = -1
        em_paste_mask_region(box, 2, 10, 10, &x0, &y0, &w, &h)
        XCTAssertEqual([x0, y0, w, h], [0, 0, 9, 9])
        var region = [UInt8](repeating: 7, count: 81)
        em_paste_mask_f32(mask, 2, box, 10, 10, 0.5, &region)
        let profile: [Float] = [0, 1.0 / 6, 11.0 / 18, 1, 1, 1, 11.0 / 18, 1.0 / 6, 0]
        for y in 0..<9 {
            for x in 0..<9 {
                XCTAssertEqual(region[y * 9 + x], profile[y] * profile[x] > 0.5 ? 1 : 0, "(\(y),\(x))")
            }
        }
        XCTAssertEqual(region[3 * 9 + 2], 1)
        XCTAssertEqual(region[2 * 9 + 2], 0) // .611^2 < .5
        // Clipped at the top-left corner: box (-2,-2,2,2) -> (-4,-4,4,4); region (0,0,5,5) reads
        // the profile from offset 4: 1, 1, .611, .167, 0.
        let box2: [Float] = [-2, -2, 2, 2]
        em_paste_mask_region(box2, 2, 10, 10, &x0, &y0, &w, &h)
        XCTAssertEqual([x0, y0, w, h], [0, 0, 5, 5])
        var r2 = [UInt8](repeating: 7, count: 25)
        em_paste_mask_f32(mask, 2, box2, 10, 10, 0.5, &r2)
        for y in 0..<5 {
            for x in 0..<5 {
                XCTAssertEqual(r2[y * 5 + x], profile[4 + y] * profile[4 + x] > 0.5 ? 1 : 0, "clip (\(y),\(x))")
            }
        }
        // Entirely outside the image: empty region.
        let box3: [Float] = [20, 20, 30, 30]
        em_paste_mask_region(box3, 2, 10, 10, &x0, &y0, &w, &h)
        XCTAssertTrue(w == 0 || h == 0)
        // M = 28: box expansion by 30/28 and truncation toward zero: box (10.5, 20.2, 38.5, 48.2),
        // half 14 * 30/28 = 15 about centre (24.5, 34.2) -> (9.5, 19.2, 39.5, 49.2) -> (9, 19, 39, 49).
        let box4: [Float] = [10.5, 20.2, 38.5, 48.2]
        em_paste_mask_region(box4, 28, 100, 100, &x0, &y0, &w, &h)
        XCTAssertEqual([x0, y0, w, h], [9, 19, 31, 31])
    }

    // MARK: the built-in self-test of this area (what `edge-mrcnn selftest` runs on the board)

    func testSelfTestKernelChecks() {
        XCTAssertFalse(SelfTest.kernelChecks.isEmpty)
        for check in SelfTest.kernelChecks {
            XCTAssertNoThrow(try check.run(), check.name)
        }
    }
}
