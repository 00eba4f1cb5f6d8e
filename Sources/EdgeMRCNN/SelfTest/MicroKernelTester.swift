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
