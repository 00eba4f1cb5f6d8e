// The direct micro-kernel tester (as XNNPACK's GemmMicrokernelTester): on every ISA this CPU runs,
// the int8 micro-kernel (em_qukr_call) and the float one (em_ukr_call) are called on their own,
// without the driver, over k edge cases (one k step, an odd number of steps for the unrolled
// loops, long K), all channel slices of the 8-channel block, accumulate on and off, and extreme
// data (255 x +-127 at large K), against a plain computation here. `selftest` runs it (on aarch64
// under qemu: neon, neondot, neoi8mm) and XCTest calls the same function (MicroKernelTests).
#if canImport(Glibc)
import Glibc
#endif
import CShim

extension SelfTest {
    static var microKernelChecks: [SelfCheck] {
        [
            SelfCheck("micro-kernels: int8 em_qukr_* vs exact sums, k edge cases, all ISAs") {
                try MicroKernelTester.int8AllISAs()
            },
            SelfCheck("micro-kernels: int8 requantising em_qukr_rq_* vs em_q_finish of exact sums, all ISAs") {
                try MicroKernelTester.int8RequantAllISAs()
            },
            SelfCheck("micro-kernels: float em_ukr_* vs float sums, k edge cases, all ISAs") {
                try MicroKernelTester.floatAllISAs()
            },
        ]
    }
}

public enum MicroKernelTester {
    /// K values: 1, below/at/above one and two k steps of 4 and 8, odd step counts, long K.
    public static let int8Ks = [1, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 20, 24, 28, 36, 60, 64, 68, 124, 260, 516, 1028, 2308]
    public static let floatKs = [0, 1, 2, 3, 4, 7, 8, 9, 16, 17, 31, 64, 100, 257]

    static func forEachISA(_ body: (String) throws -> Void) throws {
        let saved = em_isa_current()
        defer { _ = em_isa_set(saved) }
        for isa in 0..<Int32(EM_ISA_COUNT.rawValue) where em_isa_supported(isa) != 0 {
            try SelfTest.expect(em_isa_set(isa) == 0, "em_isa_set(\(isa)) refused a supported ISA")
            try body(String(cString: em_isa_name(isa)))
        }
    }

    public static func int8AllISAs() throws { try forEachISA { try int8($0) } }
    public static func int8RequantAllISAs() throws { try forEachISA { try int8Requant($0) } }
    public static func floatAllISAs() throws { try forEachISA { try float($0) } }

    /// The current ISA's int8 micro-kernel. Data modes: 0 random, 1 all 255 x +127, 2 all 255 x
    /// -127, 3 alternating +-127 with 0/255 inputs.
    public static func int8(_ isa: String) throws {
        var mr: Int32 = 0, nr: Int32 = 0, ks: Int32 = 0
        em_qukr_info(&mr, &nr, &ks)
        let n = Int(nr)
        var rng = QKernelCheck.Rng(0x5EED)
        for k in int8Ks {
            for mode in 0..<4 where mode == 0 || k >= 64 {
                let w: [Int8] = (0..<(8 * k)).map { i in
                    switch mode {
                    case 1: return 127
                    case 2: return -127
                    case 3: return i & 1 == 0 ? 127 : -127
                    default: return Int8(rng.below(255) - 127)
                    }
                }
                let x: [UInt8] = (0..<(k * n)).map { i in
                    switch mode {
                    case 1, 2: return 255
                    case 3: return (i / n) & 1 == 0 ? 255 : 0
                    default: return UInt8(truncatingIfNeeded: rng.next())
                    }
                }
                for accumulate: Int32 in [0, 1] {
                    let start: [Int32] = (0..<(8 * n)).map { _ in Int32(rng.below(2001)) - 1000 }
                    var acc = start
                    let rc = em_qukr_call(Int32(k), w, x, &acc, accumulate)
                    try SelfTest.expect(rc == 0, "\(isa): em_qukr_call refused K \(k)")
                    for m in 0..<8 {
                        for p in 0..<n {
                            var s = accumulate != 0 ? Int64(start[m * n + p]) : 0
                            for kk in 0..<k { s += Int64(w[m * k + kk]) * Int64(x[kk * n + p]) }
                            if Int64(acc[m * n + p]) != s {
                                throw EdgeError("check failed: \(isa) int8 micro-kernel (\(mr)x\(nr), k step \(ks)): K \(k) mode \(mode) accumulate \(accumulate): acc[\(m), \(p)] = \(acc[m * n + p]), exact \(s)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// K values of the requantising micro-kernel: one to a few k steps, K around one slice of 512
    /// (the kernel alone; x86 runs K up to 640 in one slice, and up to 2304 when the layer's last
    /// slice is requantised by this kernel: the same kernel alone on a longer K), and two or three
    /// slices (the earlier slices' tile added in it: x86 layers with K over 2304).
    public static let rqKs = [4, 8, 12, 60, 64, 68, 508, 512, 516, 640, 644, 1024, 1100]

    /// The current ISA's requantising micro-kernel (em_qukr_rq_call; ISAs without one are skipped)
    /// against the scalar requantisation (em_qrow_ref_call: em_q_finish) of the exact sums plus
    /// the term: every row count 1...8, nv from 1 to nr (masked partial vectors), with and
    /// without residual, ordinary and extreme multipliers and zero points (x86: a NaN one too), wide ones
    /// (v well past 0...255 and the int16 range on both sides, lo 0 or z_out: the avx512vnni
    /// pack path without the float clamp) and nothing written outside rows x nv. Data modes: 0
    /// random, 1 all 255 x +-127 (the largest sums).
    public static func int8Requant(_ isa: String) throws {
        var mr: Int32 = 0, nr: Int32 = 0, ks: Int32 = 0
        em_qukr_info(&mr, &nr, &ks)
        let n = Int(nr)
        do { // does this ISA have one?
            let w = [Int8](repeating: 1, count: 8 * 4), x = [UInt8](repeating: 1, count: 4 * n)
            var d = [UInt8](repeating: 0, count: n)
            let rc = em_qukr_rq_call(4, w, x, 1, 1, [0], [1], 0, 0, nil, 0, 0, 0, &d, Int(n))
            if rc == 1 { return }
            try SelfTest.expect(rc == 0, "\(isa): em_qukr_rq_call failed (\(rc))")
        }
        var rng = QKernelCheck.Rng(0x2E9)
        let nvs = Array(Set([1, 2, 7, 15, 16, 17, 31, 32, 33, 47, n - 1, n].filter { $0 >= 1 && $0 <= n })).sorted()
        var extremeMults: [Float] = [0, 1e-30, 6e-8, -3e-4, 1, 255, 1e30, 3e38, -3e38]
        #if arch(x86_64)
        // a NaN multiplier goes to lo (the contract's clampf), checked where the SIMD clamps'
        // operand order decides it (x86: vmaxps / vminps return their second operand for a NaN)
        extremeMults.append(.nan)
        #endif
        for k in rqKs {
            for mode in 0..<2 where mode == 0 || k >= 500 {
                let w: [Int8] = (0..<(8 * k)).map { i in
                    mode == 1 ? (i / k) & 1 == 0 ? 127 : -127 : Int8(rng.below(255) - 127)
                }
                let x: [UInt8] = (0..<(k * n)).map { _ in mode == 1 ? 255 : UInt8(truncatingIfNeeded: rng.next()) }
                var sums = [Int64](repeating: 0, count: 8 * n)
                for m in 0..<8 {
                    for kk in 0..<k {
                        let wv = Int64(w[m * k + kk])
                        for p in 0..<n { sums[m * n + p] += wv * Int64(x[kk * n + p]) }
                    }
                }
                for (ci, nv) in nvs.enumerated() {
                    for variant in 0..<8 {
                        let rows = (ci * 6 + variant + mode) % 8 + 1
                        // wide (6: ReLU, residual; 7: lo 0): v spread over about +-3e5 (int16
                        // saturation and both clamps), the layer's bound still provable
                        let wide = variant >= 6
                        let withRes = wide ? variant == 6 : variant & 1 == 1 || variant == 4
                        let extreme = variant == 2 || variant == 3
                        // coarse: v near 2^17 (float spacing 1/64), where a contracted multiply-add
                        // (FMA) or another operation order would round differently; the 2^17 from
                        // the term (variant 4) or from the residual (variant 5)
                        let coarse = variant == 4 || variant == 5, coarseRes = variant == 5
                        let std = 10_800 * Float(k).squareRoot() // the spread of random sums
                        let mults: [Float] = (0..<rows).map { i in
                            extreme ? extremeMults[(i + ci) % extremeMults.count]
                                : wide ? 6e5 * (rng.unit() - 1) / std : (coarse ? 64 : 300) * rng.unit() / std
                        }
                        let terms: [Int32] = (0..<rows).map { i in
                            coarse && !coarseRes ? Int32(131_200 / mults[i]) : Int32(rng.below(400_001)) - 200_000
                        }
                        // (wide, lo 0: every other nv with z_out 0, the ReLU layers' outputs)
                        let zOut: Int32 = coarse ? -131_072 : extreme ? [0, 255, -300, 400][(ci + variant) % 4]
                            : variant == 7 && ci % 2 == 0 ? 0 : Int32(rng.below(256))
                        let lo: Int32 = extreme ? [0, 255, 17][ci % 3]
                            : wide ? (variant == 6 ? zOut : 0) : (variant == 0 || coarse ? 0 : Int32(rng.below(256)))
                        let zRes = coarseRes ? Int32(rng.below(4)) : Int32(rng.below(256))
                        let resMult: Float = coarseRes ? 131_200 / 250 * (1 + rng.unit() / 1000)
                            : extreme ? [1e-6, 3.5, 1e4][ci % 3] : wide ? 2000 * (rng.unit() - 1) : rng.unit()
                        let resLd = nv + ci % 5, dstLd = n + 3
                        let res: [UInt8] = (0..<(8 * resLd)).map { _ in coarseRes ? UInt8(250 + rng.below(6)) : UInt8(truncatingIfNeeded: rng.next()) }
                        var dst = [UInt8](repeating: 0xA5, count: 8 * dstLd)
                        let rc = res.withUnsafeBufferPointer { rb in
                            em_qukr_rq_call(Int32(k), w, x, Int32(rows), Int32(nv), terms, mults, zOut, lo,
                                            withRes ? rb.baseAddress : nil, resLd, zRes, resMult, &dst, dstLd)
                        }
                        try SelfTest.expect(rc == 0, "\(isa): em_qukr_rq_call refused K \(k) rows \(rows) nv \(nv)")
                        for i in 0..<8 {
                            var want = [UInt8](repeating: 0xA5, count: dstLd)
                            if i < rows {
                                let a: [Int32] = (0..<nv).map { p in Int32(truncatingIfNeeded: sums[i * n + p] + Int64(terms[i])) }
                                res.withUnsafeBufferPointer { rb in
                                    em_qrow_ref_call(a, Int32(nv), mults[i], zOut, lo, withRes ? rb.baseAddress! + i * resLd : nil,
                                                     zRes, resMult, &want)
                                }
                            }
                            for p in 0..<dstLd where dst[i * dstLd + p] != want[p] {
                                throw EdgeError("check failed: \(isa) requantising micro-kernel (\(mr)x\(nr)): K \(k) mode \(mode) rows \(rows) nv \(nv) residual \(withRes) mult \(i < rows ? mults[i] : 0) z_out \(zOut) lo \(lo): dst[\(i), \(p)] = \(dst[i * dstLd + p]), expected \(want[p])\(i < rows && p < nv ? "" : " (outside the tile)")")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The current ISA's float micro-kernel with its fused epilogue (bias per row, ReLU), against
    /// a float sum in k order; FMA and the kernel's order change the rounding, so the tolerance is
    /// relative to the sum of |terms|.
    public static func float(_ isa: String) throws {
        var mr: Int32 = 0, nr: Int32 = 0
        em_ukr_info(&mr, &nr)
        let m = Int(mr), n = Int(nr)
        var rng = QKernelCheck.Rng(0xF10A7)
        func f() -> Float { Float(Int(rng.next() % 2001) - 1000) / 1000 }
        for k in floatKs {
            let a = (0..<(m * k)).map { _ in f() }, b = (0..<(k * n)).map { _ in f() }
            let bias = (0..<m).map { _ in f() }
            for (loadC, useBias, relu) in [(Int32(0), false, Int32(0)), (1, false, 0), (0, true, 1), (1, true, 1)] {
                let ldc = n + 3
                let start = (0..<(m * ldc)).map { _ in f() }
                var c = start
                let rc = bias.withUnsafeBufferPointer { bp in
                    em_ukr_call(Int32(k), a, b, &c, ldc, loadC, useBias ? bp.baseAddress : nil, relu)
                }
                try SelfTest.expect(rc == 0, "\(isa): em_ukr_call refused K \(k)")
                for i in 0..<m {
                    for j in 0..<ldc {
                        let got = c[i * ldc + j]
                        if j >= n {
                            try SelfTest.expect(got == start[i * ldc + j], "\(isa) float micro-kernel wrote C[\(i), \(j)] outside its tile")
                            continue
                        }
                        var s: Float = loadC != 0 ? start[i * ldc + j] : 0, mag = abs(s)
                        for kk in 0..<k { s += a[i * k + kk] * b[kk * n + j]; mag += abs(a[i * k + kk] * b[kk * n + j]) }
                        if useBias { s += bias[i]; mag += abs(bias[i]) }
                        if relu != 0 { s = max(s, 0) }
                        if abs(got - s) > 1e-5 * max(mag, 1) {
                            throw EdgeError("check failed: \(isa) float micro-kernel (\(m)x\(n)): K \(k) load_c \(loadC) bias \(useBias) relu \(relu): C[\(i), \(j)] = \(got), expected \(s)")
                        }
                    }
                }
            }
        }
    }
}
