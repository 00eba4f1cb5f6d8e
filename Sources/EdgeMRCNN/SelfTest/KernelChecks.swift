// Self-test checks of the kernel area (see SelfTest.swift): every dispatched float kernel against
// its plain C reference on every ISA this CPU runs, on small odd shapes (fast under emulation),
// with NaN sentinels and threads 1 vs 3, plus hand-computed values of the small ops.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

extension SelfTest {
    static var kernelChecks: [SelfCheck] {
        [
            SelfCheck("kernels: ISA detection and selection") { try KernelCheck.isaSelection() },
            SelfCheck("kernels: sgemm vs reference, all ISAs") { try KernelCheck.sgemm() },
            SelfCheck("kernels: conv2d vs reference, all ISAs") { try KernelCheck.conv() },
            SelfCheck("kernels: deconv2x2s2 and linear vs reference, all ISAs") { try KernelCheck.deconvLinear() },
            SelfCheck("kernels: small ops hand-computed") { try KernelCheck.smallOps() },
        ]
    }
}

enum KernelCheck {
    struct Rng {
        var s: UInt64
        init(_ seed: UInt64) { s = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 40) - (1 << 23)) / Float(1 << 23)
        }
        mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    }

    /// Runs body for every supported ISA, restoring the ISA and the thread count afterwards.
    static func forEachISA(_ body: (String) throws -> Void) throws {
        let saved = em_isa_current(), threads = em_num_threads()
        defer {
            _ = em_isa_set(saved)
            em_set_num_threads(threads)
        }
        for isa in 0..<Int32(EM_ISA_COUNT.rawValue) where em_isa_supported(isa) != 0 {
            try SelfTest.expect(em_isa_set(isa) == 0, "em_isa_set(\(isa)) refused a supported ISA")
            try body(String(cString: em_isa_name(isa)))
        }
    }

    /// The reference accumulates in double, the fast paths in float in another order: allow
    /// 1e-5 * sqrt(K) relative to (1 + |ref|) (>10x the expected rounding; a wrong term is ~0.1..1).
    static func close(_ got: [Float], _ ref: [Float], k: Int, _ what: String) throws {
        let tol = 1e-5 * Float(max(k, 1)).squareRoot()
        for i in 0..<ref.count {
            let a = got[i], b = ref[i]
            try SelfTest.expect(!a.isNaN && abs(a - b) <= tol * (1 + abs(b)), "\(what): element \(i) is \(a), reference \(b)")
        }
        for i in ref.count..<got.count {
            try SelfTest.expect(got[i].isNaN, "\(what): element \(i) past the output was written")
        }
    }

    static func same(_ a: [Float], _ b: [Float], _ what: String) throws {
        try SelfTest.expect(a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern },
                            "\(what): threads 1 and 3 give different results")
    }

    /// fn(threads) for threads 1 and 3; both results must agree bitwise. Returns the first.
    static func run13(_ what: String, _ fn: () -> [Float]) throws -> [Float] {
        em_set_num_threads(1)
        let a = fn()
        em_set_num_threads(3)
        let b = fn()
        em_set_num_threads(1)
        try same(a, b, what)
        return a
    }

    static func isaSelection() throws {
        let best = em_isa_best()
        try SelfTest.expect(em_isa_supported(best) == 1, "best ISA \(best) not supported")
        for i in 0..<Int32(EM_ISA_COUNT.rawValue) {
            try SelfTest.expect(em_isa_from_name(em_isa_name(i)) == i, "ISA name round trip \(i)")
        }
        let cur = em_isa_current()
        #if arch(arm64)
        try SelfTest.expect(em_isa_supported(Int32(EM_ISA_NEON.rawValue)) == 1, "NEON must be supported on aarch64")
        try SelfTest.expect(em_isa_set(Int32(EM_ISA_AVX2.rawValue)) == -1, "AVX2 accepted on aarch64")
        #else
        try SelfTest.expect(em_isa_set(Int32(EM_ISA_NEON.rawValue)) == -1, "NEON accepted on x86")
        #endif
        try SelfTest.expect(em_isa_current() == cur, "a refused em_isa_set changed the ISA")
    }

    static func sgemm() throws {
        var rng = Rng(11)
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 33, 1), (13, 45, 70), (29, 9, 300), (3, 70, 17)]
        try forEachISA { isa in
            for (M, N, K) in shapes {
                let lda = K + 1, ldb = N + 2, ldc = N + 3
                let A = rng.array(M * lda), B = rng.array(K * ldb), bias = rng.array(M)
                for acc in [Int32(0), 1] {
                    var C0 = [Float](repeating: .nan, count: M * ldc)
                    if acc != 0 { for m in 0..<M { for n in 0..<N { C0[m * ldc + n] = rng.next() } } }
                    var ref = C0
                    em_sgemm_ref(Int32(M), Int32(N), Int32(K), A, Int32(lda), B, Int32(ldb), &ref, Int32(ldc), bias, acc, 1)
                    let what = "sgemm \(isa) \(M)x\(N)x\(K) acc \(acc)"
                    let got = try run13(what) {
                        var C = C0
                        em_sgemm(Int32(M), Int32(N), Int32(K), A, Int32(lda), B, Int32(ldb), &C, Int32(ldc), bias, acc, 1)
                        return C
                    }
                    // Compare row by row: padding columns must stay NaN.
                    for m in 0..<M {
                        try close(Array(got[(m * ldc)..<(m * ldc + ldc)]), Array(ref[(m * ldc)..<(m * ldc + N)]), k: K, what)
                    }
                }
            }
        }
    }

    static func conv() throws {
        var rng = Rng(12)
        // (cin, h, w, cout, k, stride, pad)
        let shapes: [(Int, Int, Int, Int, Int, Int, Int)] = [
            (1, 1, 1, 1, 1, 1, 0), (16, 6, 7, 19, 1, 1, 0), (5, 9, 8, 7, 1, 2, 0), (3, 11, 13, 5, 3, 1, 1),
            (4, 9, 10, 17, 3, 2, 1), (3, 12, 11, 4, 7, 2, 3), (24, 7, 9, 30, 3, 1, 1),
        ]
        try forEachISA { isa in
            for (cin, h, w, cout, k, s, p) in shapes {
                let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1, n = cout * oh * ow
                let x = rng.array(cin * h * w), wt = rng.array(cout * cin * k * k), b = rng.array(cout), res = rng.array(n)
                let bytes = em_conv2d_f32_scratch_bytes(Int32(cin), Int32(h), Int32(w), Int32(cout), Int32(k), Int32(k), Int32(s), Int32(p))
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
                defer { scratch.deallocate() }
                for variant in 0..<3 {
                    let r: [Float]? = variant == 2 ? res : nil
                    let relu: Int32 = variant >= 1 ? 1 : 0
                    var ref = [Float](repeating: .nan, count: n)
                    em_conv2d_f32_ref(x, Int32(cin), Int32(h), Int32(w), wt, b, Int32(cout), Int32(k), Int32(k), Int32(s), Int32(p), r, relu, &ref)
                    let what = "conv \(isa) cin \(cin) \(h)x\(w) cout \(cout) k\(k) s\(s) p\(p) variant \(variant)"
                    let got = try run13(what) {
                        var out = [Float](repeating: .nan, count: n + 4)
                        em_conv2d_f32(x, Int32(cin), Int32(h), Int32(w), wt, b, Int32(cout), Int32(k), Int32(k), Int32(s), Int32(p), r, relu, &out, scratch)
                        return out
                    }
                    try close(got, ref, k: cin * k * k, what)
                }
            }
        }
    }

    static func deconvLinear() throws {
        var rng = Rng(13)
        try forEachISA { isa in
            for (cin, h, w, cout) in [(1, 1, 1, 1), (19, 5, 7, 6), (8, 14, 14, 9)] {
                let n = cout * 4 * h * w
                let x = rng.array(cin * h * w), wt = rng.array(cin * cout * 4), b = rng.array(cout)
                let bytes = em_deconv2x2s2_f32_scratch_bytes(Int32(cin), Int32(h), Int32(w), Int32(cout))
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
                defer { scratch.deallocate() }
                var ref = [Float](repeating: .nan, count: n)
                em_deconv2x2s2_f32_ref(x, Int32(cin), Int32(h), Int32(w), wt, b, Int32(cout), 1, &ref)
                let what = "deconv \(isa) \(cin),\(h),\(w),\(cout)"
                let got = try run13(what) {
                    var out = [Float](repeating: .nan, count: n + 4)
                    em_deconv2x2s2_f32(x, Int32(cin), Int32(h), Int32(w), wt, b, Int32(cout), 1, &out, scratch)
                    return out
                }
                try close(got, ref, k: cin, what)
            }
            for (N, K, M) in [(1, 1, 1), (13, 77, 35), (30, 129, 17)] {
                let x = rng.array(N * K), wt = rng.array(M * K), b = rng.array(M)
                var ref = [Float](repeating: .nan, count: N * M)
                em_linear_f32_ref(x, Int32(N), Int32(K), wt, b, Int32(M), 1, &ref)
                let what = "linear \(isa) \(N)x\(K)x\(M)"
                let got = try run13(what) {
                    var out = [Float](repeating: .nan, count: N * M + 4)
                    em_linear_f32(x, Int32(N), Int32(K), wt, b, Int32(M), 1, &out)
                    return out
                }
                try close(got, ref, k: K, what)
            }
        }
    }

    static func smallOps() throws {
        // Bilinear 2x2 -> 4x4 of v = x + 2y: sample coordinates 0, .25, .75, 1 on each axis.
        let img: [Float] = [0, 1, 2, 3]
        var up = [Float](repeating: .nan, count: 16)
        em_resize_bilinear_f32(img, 1, 2, 2, &up, 4, 4)
        let c: [Float] = [0, 0.25, 0.75, 1]
        for y in 0..<4 { for x in 0..<4 {
            try SelfTest.expect(abs(up[y * 4 + x] - (c[x] + 2 * c[y])) < 1e-6, "resize (\(y),\(x)) = \(up[y * 4 + x])")
        } }
        // Nearest 3 -> 7 rows: floor(y * 3/7) = 0,0,0,1,1,2,2.
        var acc = [Float](repeating: 0, count: 7)
        em_upsample_nearest_add_f32([0, 1, 2], 1, 3, 1, &acc, 7, 1)
        try SelfTest.expect(acc == [0, 0, 0, 1, 1, 2, 2], "nearest upsample indices \(acc)")
        // Max pool k3 s2 p1 on 4x4 = 0..15 -> 5, 7, 13, 15.
        var mp = [Float](repeating: .nan, count: 4)
        em_maxpool2d_f32((0..<16).map { Float($0) }, 1, 4, 4, 3, 2, 1, &mp)
        try SelfTest.expect(mp == [5, 7, 13, 15], "maxpool \(mp)")
        // RoIAlign of f = 10y + x (reproduced exactly by bilinear sampling): roi (1,1,3,3), 2x2 bins.
        var feat = [Float](repeating: 0, count: 20)
        for y in 0..<4 { for x in 0..<5 { feat[y * 5 + x] = Float(10 * y + x) } }
        var ra = [Float](repeating: .nan, count: 4)
        em_roi_align_f32(feat, 1, 4, 5, 1, 2, 0, [1, 1, 3, 3], 1, nil, 2, 2, &ra)
        let want: [Float] = [16.5, 17.5, 26.5, 27.5]
        for i in 0..<4 { try SelfTest.expect(abs(ra[i] - want[i]) < 1e-5, "roi_align \(i) = \(ra[i])") }
        // Paste an all-ones 2x2 mask with box (2,2,6,6): expanded to (0,0,8,8), 9x9 region.
        var x0: Int32 = 0, y0: Int32 = 0, w: Int32 = 0, h: Int32 = 0
        em_paste_mask_region([2, 2, 6, 6], 2, 10, 10, &x0, &y0, &w, &h)
        try SelfTest.expect(x0 == 0 && y0 == 0 && w == 9 && h == 9, "paste region \(x0),\(y0),\(w),\(h)")
        var region = [UInt8](repeating: 7, count: 81)
        em_paste_mask_f32([1, 1, 1, 1], 2, [2, 2, 6, 6], 10, 10, 0.5, &region)
        let inside: (Int) -> Bool = { $0 >= 2 && $0 <= 6 }
        let edge: (Int) -> Bool = { $0 == 2 || $0 == 6 }
        for y in 0..<9 { for x in 0..<9 {
            let on: UInt8 = inside(y) && inside(x) && !(edge(y) && edge(x)) ? 1 : 0
            try SelfTest.expect(region[y * 9 + x] == on, "paste (\(y),\(x)) = \(region[y * 9 + x])")
        } }
    }
}
