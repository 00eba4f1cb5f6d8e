// Self-test checks of the int8 kernels (em_qkernels.h; see SelfTest.swift): on every ISA this CPU
// runs and with threads 1 and 3, every dispatched kernel must equal its C reference byte for byte
// (outputs pre-filled with a sentinel, the bytes after the output must stay untouched), and the
// references must equal a direct int64 computation followed by the documented float formula.
// Small odd shapes plus saturating extremes (all 255 inputs with all +-127 weights at large K).
// The XCTest QKernelTests runs the same cases plus larger ones.
#if canImport(Glibc)
import Glibc
#endif
import CShim

extension SelfTest {
    static var qkernelChecks: [SelfCheck] {
        [
            SelfCheck("qkernels: packed weight layout") { try QKernelCheck.packing() },
            SelfCheck("qkernels: conv2d u8 vs reference and int64, all ISAs") {
                for c in QKernelCheck.smallConvCases { try QKernelCheck.conv(c) }
            },
            SelfCheck("qkernels: linear and deconv u8 vs reference and int64, all ISAs") {
                for c in QKernelCheck.smallLinearCases { try QKernelCheck.linear(c) }
                for c in QKernelCheck.smallDeconvCases { try QKernelCheck.deconv(c) }
            },
            SelfCheck("qkernels: keypoint deconv 4x4/2 pad 1 (float output) vs reference and int64, all ISAs") {
                for c in QKernelCheck.deconv4Cases { try QKernelCheck.deconv4(c) }
            },
            SelfCheck("qkernels: element-wise ops vs formula, all ISAs") { try QKernelCheck.elementwise() },
            SelfCheck("qkernels: float-output conv vs reference and int64, all ISAs") {
                for c in QKernelCheck.floatConvCases { try QKernelCheck.floatConv(c) }
                try QKernelCheck.blockWindow()
                try QKernelCheck.rowsWindows()
                try QKernelCheck.packConcat()
                for c in QKernelCheck.convHeadCases { try QKernelCheck.convHead(c) }
            },
            SelfCheck("qkernels: conv2d u8 on tiles (side-by-side RoIs) vs the reference per tile, all ISAs") {
                for c in QKernelCheck.tileCases { try QKernelCheck.tiles(c) }
            },
            SelfCheck("qkernels: uint8 RoIAlign vs the float round trip, CHW->HWC, all ISAs") {
                try QKernelCheck.transpose()
                for c in QKernelCheck.roiCases { try QKernelCheck.roiAlign(c) }
            },
        ]
    }
}

enum QKernelCheck {
    // MARK: helpers

    struct Rng {
        var s: UInt64
        init(_ seed: UInt64) { s = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
        mutating func next() -> UInt32 {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return UInt32(truncatingIfNeeded: s >> 33)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt32(n)) }
        mutating func unit() -> Float { Float(next() % 1000 + 500) / 1000 } // [0.5, 1.5)
    }

    /// Data modes: 0 random; 1 all-255 inputs x all +127 weights; 2 all-255 x all -127;
    /// 3 all-255 x alternating +-127.
    static func inputs(_ n: Int, _ mode: Int, _ r: inout Rng) -> [UInt8] {
        mode == 0 ? (0..<n).map { _ in UInt8(truncatingIfNeeded: r.next()) } : [UInt8](repeating: 255, count: n)
    }
    static func weights(_ n: Int, _ mode: Int, _ r: inout Rng) -> [Int8] {
        (0..<n).map { i in
            switch mode {
            case 1: return 127
            case 2: return -127
            case 3: return i & 1 == 1 ? 127 : -127
            default: return Int8(r.below(255) - 127)
            }
        }
    }
    /// Requantisation multipliers that keep random outputs mostly inside 0..255 and extreme
    /// accumulators (+-32385 K) at about +-100.
    static func mults(_ m: Int, k: Int, mode: Int, _ r: inout Rng) -> [Float] {
        (0..<m).map { _ in mode == 0 ? r.unit() * 0.012 / Float(k).squareRoot() : r.unit() * 100 / (32385 * Float(k)) }
    }

    /// The documented scalar formula: clampf, round half even, + z_out, clamp to [lo, 255].
    static func finish(_ v: Float, _ z: Int32, _ lo: Int32) -> UInt8 {
        var v = v
        if !(v >= -16_777_216) { v = -16_777_216 }
        if v > 16_777_216 { v = 16_777_216 }
        let y = Int64(z) + Int64(v.rounded(.toNearestOrEven))
        return UInt8(max(Int64(lo), min(255, y)))
    }

    static func pack(_ w: [Int8], m: Int, k: Int, zIn: Int32, bias: [Int32]) throws -> [UInt8] {
        var p = [UInt8](repeating: 0, count: em_qpack_weights_bytes(Int32(m), Int32(k)))
        let rc = p.withUnsafeMutableBytes { em_qpack_weights(w, Int32(m), Int32(k), zIn, bias, $0.baseAddress) }
        try SelfTest.expect(rc == 0, "em_qpack_weights refused M \(m) K \(k)")
        return p
    }

    static let sentinel: UInt8 = 0xA5
    static let tail = 37

    /// Runs body(ISA name, threads) for every supported ISA and threads 1 and 3.
    static func forEachISA(_ body: (String, Int32) throws -> Void) throws {
        let saved = em_isa_current(), threads = em_num_threads()
        defer {
            _ = em_isa_set(saved)
            em_set_num_threads(threads)
        }
        for isa in 0..<Int32(EM_ISA_COUNT.rawValue) where em_isa_supported(isa) != 0 {
            try SelfTest.expect(em_isa_set(isa) == 0, "em_isa_set(\(isa)) refused a supported ISA")
            for t: Int32 in [1, 3] {
                em_set_num_threads(t)
                try body(String(cString: em_isa_name(isa)), t)
            }
        }
    }

    /// got has `ref.count + tail` bytes: the output, then sentinels.
    static func same(_ got: [UInt8], _ ref: [UInt8], _ what: String) throws {
        for i in 0..<ref.count where got[i] != ref[i] {
            throw EdgeError("check failed: \(what): byte \(i) is \(got[i]), reference \(ref[i])")
        }
        for i in ref.count..<got.count where got[i] != sentinel {
            throw EdgeError("check failed: \(what): byte \(i) past the output was written")
        }
    }

    // MARK: packing

    static func packing() throws {
        // M 10, K 6: Kp 8, Mp 16. w[m, k] = m * 10 + k - 50 (m 9, k 5: 45).
        let m = 10, k = 6
        var w = (0..<(m * k)).map { Int8($0 / k * 10 + $0 % k - 50) }
        w[0] = -128 // clamped to -127
        let p = try pack(w, m: m, k: k, zIn: 3, bias: (0..<m).map { Int32($0) })
        try SelfTest.expect(p.count == 64 + 8 * 16 + 16 * 8, "packed size \(p.count)")
        func i32(_ off: Int) -> Int32 {
            Int32(bitPattern: UInt32(p[off]) | UInt32(p[off + 1]) << 8 | UInt32(p[off + 2]) << 16 | UInt32(p[off + 3]) << 24)
        }
        try SelfTest.expect(i32(0) == 0x5751_4D45 && i32(4) == 1 && i32(8) == 10 && i32(12) == 6 &&
                            i32(16) == 8 && i32(20) == 16 && i32(24) == 3, "packed header")
        let wbase = 64 + 8 * 16
        for mm in 0..<16 {
            var s: Int32 = 0
            for kk in 0..<8 {
                let v = mm < m && kk < k ? Int32(w[mm * k + kk] == -128 ? -127 : w[mm * k + kk]) : 0
                s += v
                let off = wbase + ((mm / 8) * 2 + kk / 4) * 32 + (mm % 8) * 4 + kk % 4
                try SelfTest.expect(Int8(bitPattern: p[off]) == Int8(v), "packed w[\(mm), \(kk)]")
            }
            try SelfTest.expect(i32(64 + 4 * 16 + 4 * mm) == s, "rowsum[\(mm)]")
            try SelfTest.expect(i32(64 + 4 * mm) == (mm < m ? Int32(mm) - 3 * s : 0), "term[\(mm)]")
        }
        var mm: Int32 = 0, kk: Int32 = 0, z: Int32 = 0
        let ok = p.withUnsafeBytes { em_qpacked_info($0.baseAddress, p.count, &mm, &kk, &z) }
        try SelfTest.expect(ok == 0 && mm == 10 && kk == 6 && z == 3, "em_qpacked_info")
        let bad = p.withUnsafeBytes { em_qpacked_info($0.baseAddress, p.count - 1, nil, nil, nil) }
        try SelfTest.expect(bad == -1, "em_qpacked_info accepted a truncated blob")
    }

    // MARK: convolution

    struct Conv {
        var cin, h, w, cout, kh, kw, stride, pad: Int
        var mode = 0, residual = false, relu = false
    }

    static var smallConvCases: [Conv] {
        var cs: [Conv] = []
        for mode in 0...3 {
            cs.append(Conv(cin: 3, h: 9, w: 7, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1, mode: mode))
            cs.append(Conv(cin: 7, h: 5, w: 6, cout: 11, kh: 1, kw: 1, stride: 1, pad: 0, mode: mode, residual: true, relu: true))
            cs.append(Conv(cin: 5, h: 9, w: 8, cout: 9, kh: 3, kw: 3, stride: 2, pad: 1, mode: mode, relu: true))
        }
        cs.append(Conv(cin: 6, h: 8, w: 7, cout: 9, kh: 1, kw: 1, stride: 2, pad: 0, residual: true))
        cs.append(Conv(cin: 3, h: 11, w: 10, cout: 8, kh: 7, kw: 7, stride: 2, pad: 3, relu: true))
        cs.append(Conv(cin: 1, h: 1, w: 1, cout: 1, kh: 1, kw: 1, stride: 1, pad: 0))
        cs.append(Conv(cin: 257, h: 3, w: 2, cout: 9, kh: 3, kw: 3, stride: 1, pad: 1, mode: 1)) // K 2313
        cs.append(Conv(cin: 257, h: 3, w: 2, cout: 9, kh: 3, kw: 3, stride: 1, pad: 1, mode: 3, residual: true, relu: true))
        // stride-1 maps wider than 32 columns (not re-padded) and a re-padded one with 16-column
        // output rows: the aarch64 8-k panels straight from the input (edge lanes, row wrap, k tail)
        cs.append(Conv(cin: 3, h: 5, w: 37, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1, relu: true))
        cs.append(Conv(cin: 16, h: 4, w: 40, cout: 9, kh: 3, kw: 3, stride: 1, pad: 1, mode: 1))
        cs.append(Conv(cin: 2, h: 6, w: 34, cout: 3, kh: 5, kw: 5, stride: 1, pad: 2, mode: 2))
        cs.append(Conv(cin: 8, h: 6, w: 16, cout: 4, kh: 3, kw: 3, stride: 1, pad: 1, mode: 3))
        cs.append(Conv(cin: 3, h: 7, w: 40, cout: 6, kh: 3, kw: 3, stride: 2, pad: 1, mode: 1, relu: true))
        cs.append(Conv(cin: 3, h: 9, w: 36, cout: 4, kh: 7, kw: 7, stride: 2, pad: 3))
        cs.append(Conv(cin: 8, h: 4, w: 34, cout: 5, kh: 1, kw: 1, stride: 2, pad: 0, mode: 2, residual: true))
        // the x86 48-pixel panels built from the input by masked loads (avx512vnni): 3x3 pad 1
        // with W not a multiple of 48 and with W < 48 (a panel over several output rows, K not a
        // multiple of 4), stride 2 with odd sizes (output rows of 12 and of 51 pixels), 1x1 stride 2
        cs.append(Conv(cin: 3, h: 5, w: 50, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1, relu: true))
        cs.append(Conv(cin: 5, h: 7, w: 20, cout: 6, kh: 3, kw: 3, stride: 1, pad: 1, mode: 2))
        cs.append(Conv(cin: 4, h: 11, w: 23, cout: 7, kh: 3, kw: 3, stride: 2, pad: 1, relu: true))
        cs.append(Conv(cin: 3, h: 5, w: 101, cout: 4, kh: 3, kw: 3, stride: 2, pad: 1, mode: 3))
        cs.append(Conv(cin: 9, h: 9, w: 21, cout: 5, kh: 1, kw: 1, stride: 2, pad: 0, residual: true))
        cs.append(Conv(cin: 5, h: 5, w: 99, cout: 3, kh: 1, kw: 1, stride: 2, pad: 0, mode: 1))
        return cs
    }

    static func conv(_ c: Conv) throws {
        var r = Rng(UInt64(c.cin * 1_000_003 + c.h * 1009 + c.cout * 17 + c.mode))
        let k = c.cin * c.kh * c.kw
        let oh = (c.h + 2 * c.pad - c.kh) / c.stride + 1, ow = (c.w + 2 * c.pad - c.kw) / c.stride + 1
        let nOut = c.cout * oh * ow
        let x = inputs(c.cin * c.h * c.w, c.mode, &r)
        let w = weights(c.cout * k, c.mode, &r)
        let zIn = Int32(c.mode == 0 ? r.below(256) : 0), zOut = Int32(c.mode == 0 ? r.below(256) : 128)
        let zRes = Int32(r.below(256)), resMult = r.unit()
        let bias = (0..<c.cout).map { _ in Int32(r.below(20001) - 10000) }
        let mult = mults(c.cout, k: k, mode: c.mode, &r)
        let res: [UInt8]? = c.residual ? (0..<nOut).map { _ in UInt8(truncatingIfNeeded: r.next()) } : nil
        let p = try pack(w, m: c.cout, k: k, zIn: zIn, bias: bias)
        let what = "conv \(c.cin)x\(c.h)x\(c.w)->\(c.cout) k\(c.kh)x\(c.kw) s\(c.stride) p\(c.pad) mode \(c.mode) res \(c.residual) relu \(c.relu)"
        let lo: Int32 = c.relu ? zOut : 0

        // Direct int64 + formula.
        var direct = [UInt8](repeating: 0, count: nOut)
        for m in 0..<c.cout {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var acc = Int64(bias[m])
                    for ci in 0..<c.cin {
                        for ky in 0..<c.kh {
                            for kx in 0..<c.kw {
                                let iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx
                                let v = (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) ? Int64(zIn) : Int64(x[(ci * c.h + iy) * c.w + ix])
                                acc += Int64(w[((m * c.cin + ci) * c.kh + ky) * c.kw + kx]) * (v - Int64(zIn))
                            }
                        }
                    }
                    let o = (m * oh + oy) * ow + ox
                    var v = Float(Int32(acc)) * mult[m]
                    if let res = res {
                        let b = Float(Int32(res[o]) - zRes) * resMult
                        v = v + b
                    }
                    direct[o] = finish(v, zOut, lo)
                }
            }
        }

        var ref = [UInt8](repeating: sentinel, count: nOut)
        let rc = p.withUnsafeBytes { pk in
            em_qconv2d_u8_ref(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout),
                              Int32(c.kh), Int32(c.kw), Int32(c.stride), Int32(c.pad), mult, zOut, res,
                              zRes, resMult, c.relu ? 1 : 0, &ref)
        }
        try SelfTest.expect(rc == 0, "\(what): reference refused")
        try SelfTest.expect(ref == direct, "\(what): reference differs from int64 + formula")

        try forEachISA { isa, threads in
            var out = [UInt8](repeating: sentinel, count: nOut + tail)
            var inPlace = false
            if let res = res, threads == 3 { // residual aliasing the output
                for i in 0..<nOut { out[i] = res[i] }
                inPlace = true
            }
            let rc = p.withUnsafeBytes { pk in
                out.withUnsafeMutableBufferPointer { o -> Int32 in
                    let rp: UnsafePointer<UInt8>? = inPlace ? UnsafePointer(o.baseAddress) : nil
                    return res.withUnsafeBufferPointerOpt { rr in
                        em_qconv2d_u8(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout),
                                      Int32(c.kh), Int32(c.kw), Int32(c.stride), Int32(c.pad), mult, zOut,
                                      inPlace ? rp : rr, zRes, resMult, c.relu ? 1 : 0, o.baseAddress, nil)
                    }
                }
            }
            try SelfTest.expect(rc == 0, "\(what) [\(isa), \(threads) threads]: refused")
            try same(out, ref, "\(what) [\(isa), \(threads) threads]")
        }
    }

    /// em_qconv1x1_block_u8_f32 (the int8 mask logits of one RoI's label) vs the whole map's
    /// float-output reference: the block's channels in the window, bit for bit, nothing written
    /// past them; bad blocks and windows refused. Also a K of two x86 slices (516) with 28 x 28
    /// windows inside wider rows, 17 panels of 48 pixels (x86 avx512vnni builds them from the window).
    /// em_qconv2d_u8_tiles cases: (cin, h, tile width, tiles, cout, kernel, relu). The x86
    /// avx512vnni path: 48-pixel panels spanning several tiles and output rows, a tile ending
    /// inside a panel, K not a multiple of 4, 5x5 taps, tiles of 1 column, 2 tiles (W <= 32).
    static let tileCases: [(Int, Int, Int, Int, Int, Int, Bool)] = [
        (37, 6, 14, 5, 21, 3, true), (16, 14, 14, 7, 9, 3, false), (3, 5, 7, 11, 8, 5, true),
        (5, 4, 1, 50, 3, 3, false), (9, 3, 14, 2, 17, 3, true),
    ]

    /// The convolution on tiles (each tile of tw columns an image of its own) equals the
    /// reference run on each tile alone, on every ISA at 1 and 3 threads; nothing written past it.
    static func tiles(_ c: (cin: Int, h: Int, tw: Int, nt: Int, cout: Int, k: Int, relu: Bool)) throws {
        var r = Rng(UInt64(c.cin * 7919 + c.tw * 131 + c.nt))
        let w = c.tw * c.nt, kk = c.cin * c.k * c.k, pad = c.k / 2
        let x = inputs(c.cin * c.h * w, 0, &r), wt = weights(c.cout * kk, 0, &r)
        let zIn = Int32(r.below(256)), zOut = Int32(r.below(256))
        let bias = (0..<c.cout).map { _ in Int32(r.below(20001) - 10000) }
        let mult = mults(c.cout, k: kk, mode: 0, &r)
        let p = try pack(wt, m: c.cout, k: kk, zIn: zIn, bias: bias)
        let what = "conv on \(c.nt) tiles of \(c.cin)x\(c.h)x\(c.tw)->\(c.cout) k\(c.k) relu \(c.relu)"
        var want = [UInt8](repeating: 0, count: c.cout * c.h * w)
        for t in 0..<c.nt {
            var xt = [UInt8](repeating: 0, count: c.cin * c.h * c.tw), yt = [UInt8](repeating: 0, count: c.cout * c.h * c.tw)
            for row in 0..<(c.cin * c.h) { for i in 0..<c.tw { xt[row * c.tw + i] = x[row * w + t * c.tw + i] } }
            let rc = p.withUnsafeBytes {
                em_qconv2d_u8_ref(xt, Int32(c.cin), Int32(c.h), Int32(c.tw), zIn, $0.baseAddress, Int32(c.cout), Int32(c.k),
                                  Int32(c.k), 1, Int32(pad), mult, zOut, nil, 0, 0, c.relu ? 1 : 0, &yt)
            }
            try SelfTest.expect(rc == 0, "\(what): reference refused")
            for row in 0..<(c.cout * c.h) { for i in 0..<c.tw { want[row * w + t * c.tw + i] = yt[row * c.tw + i] } }
        }
        try forEachISA { isa, threads in
            var got = [UInt8](repeating: sentinel, count: want.count + tail)
            let rc = p.withUnsafeBytes {
                em_qconv2d_u8_tiles(x, Int32(c.cin), Int32(c.h), Int32(w), zIn, $0.baseAddress, Int32(c.cout), Int32(c.k),
                                    Int32(c.k), 1, Int32(pad), Int32(c.tw), mult, zOut, c.relu ? 1 : 0, &got)
            }
            try SelfTest.expect(rc == 0, "\(what) [\(isa), \(threads) threads]: refused")
            try same(got, want, "\(what) [\(isa), \(threads) threads]")
        }
        // not tiles of the width, or not a same-size stride-1 convolution: refused
        var out = [UInt8](repeating: 0, count: want.count)
        let bad = p.withUnsafeBytes { b in
            [em_qconv2d_u8_tiles(x, Int32(c.cin), Int32(c.h), Int32(w), zIn, b.baseAddress, Int32(c.cout), Int32(c.k), Int32(c.k),
                                 1, Int32(pad), Int32(w + 1), mult, zOut, 0, &out),
             em_qconv2d_u8_tiles(x, Int32(c.cin), Int32(c.h), Int32(w), zIn, b.baseAddress, Int32(c.cout), Int32(c.k), Int32(c.k),
                                 1, 0, Int32(c.tw), mult, zOut, 0, &out)]
        }
        try SelfTest.expect(bad == [-1, -1], "\(what): bad tiles accepted")
    }

    static func blockWindow() throws {
        try blockWindow(cin: 37, h: 6, w: 23, windows: [(0, 0, 0, 6, 23), (1, 1, 5, 4, 9), (2, 2, 17, 3, 6)], seed: 4242)
        try blockWindow(cin: 516, h: 29, w: 40, windows: [(1, 0, 3, 28, 28), (2, 1, 11, 28, 29)], seed: 4343)
    }

    static func blockWindow(cin: Int, h: Int, w: Int, windows: [(Int, Int, Int, Int, Int)], seed: UInt64) throws {
        var r = Rng(seed)
        let m = 21
        let x = inputs(cin * h * w, 0, &r), wt = weights(m * cin, 0, &r)
        let zIn = Int32(r.below(256))
        let bias = (0..<m).map { _ in Int32(r.below(2001) - 1000) }
        let deq = (0..<m).map { _ in r.unit() * 1e-3 }
        let p = try pack(wt, m: m, k: cin, zIn: zIn, bias: bias)
        var whole = [Float](repeating: 0, count: m * h * w)
        let rc0 = p.withUnsafeBytes {
            em_qconv2d_u8_f32_ref(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), 1, 1, 1, 0, deq, &whole)
        }
        try SelfTest.expect(rc0 == 0, "block window: reference refused")
        try forEachISA { isa, threads in
            for (block, y0, x0, wh, ww) in windows {
                let rows = min(8, m - 8 * block), n = wh * ww
                var out = [Float](repeating: .nan, count: 8 * n + tail)
                let rc = p.withUnsafeBytes {
                    em_qconv1x1_block_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), Int32(block),
                                             Int32(y0), Int32(x0), Int32(wh), Int32(ww), deq, &out)
                }
                let what = "block \(block) window \(wh)x\(ww) at (\(y0), \(x0)) [\(isa), \(threads) threads]"
                try SelfTest.expect(rc == 0, "\(what): refused")
                for c in 0..<rows {
                    for y in 0..<wh {
                        for xx in 0..<ww {
                            let got = out[(c * wh + y) * ww + xx], want = whole[((8 * block + c) * h + y0 + y) * w + x0 + xx]
                            try SelfTest.expect(got.bitPattern == want.bitPattern, "\(what): channel \(c) (\(y), \(xx)) is \(got), reference \(want)")
                        }
                    }
                }
                try SelfTest.expect(out[(rows * n)...].allSatisfy { $0.isNaN }, "\(what): wrote past its \(rows) rows")
            }
            // several windows at once (over the threads): each as on its own
            let blocks: [Int32] = [2, 0, 1, 2], x0s: [Int32] = [0, 11, 3, 17], n = 3 * 6
            var many = [Float](repeating: .nan, count: blocks.count * 8 * n)
            let rc = p.withUnsafeBytes {
                em_qconv1x1_blocks_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), Int32(blocks.count),
                                          blocks, x0s, 2, 3, 6, deq, &many)
            }
            try SelfTest.expect(rc == 0, "4 windows [\(isa), \(threads) threads]: refused")
            for i in 0..<blocks.count {
                var one = [Float](repeating: .nan, count: 8 * n)
                _ = p.withUnsafeBytes {
                    em_qconv1x1_block_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), blocks[i], 2, x0s[i], 3, 6, deq, &one)
                }
                try SelfTest.expect(zip(one, many[(i * 8 * n)..<((i + 1) * 8 * n)]).allSatisfy { $0.bitPattern == $1.bitPattern },
                                    "window \(i) of 4 [\(isa), \(threads) threads] differs from the single call")
            }
        }
        var out = [Float](repeating: 0, count: 8 * h * w)
        for (block, y0, x0, wh, ww) in [(3, 0, 0, 2, 2), (-1, 0, 0, 2, 2), (0, h - 1, 0, 2, 2), (0, 0, w - 3, 2, 4), (0, 0, 0, 0, 3)] {
            let rc = p.withUnsafeBytes {
                em_qconv1x1_block_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), Int32(block),
                                         Int32(y0), Int32(x0), Int32(wh), Int32(ww), deq, &out)
            }
            try SelfTest.expect(rc == -1, "block \(block) window \(wh)x\(ww) at (\(y0), \(x0)) accepted")
        }
    }

    /// em_qconv1x1_rows_u8_f32 (the mask logits of each RoI's label alone): each window's channel
    /// equals the whole map's float-output reference bit for bit, nothing written past the
    /// windows; x86 avx512vnni must do it (elsewhere it returns 1: not done). Cin not a multiple
    /// of 4, windows with gaps and ending at the map's right edge (W not a multiple of 64), more
    /// than 16 windows in one call (ww 8: up to 9 in a 64-column chunk), rows not a multiple of 4;
    /// unsorted or overlapping windows not done, bad arguments refused.
    static func rowsWindows() throws {
        try rowsWindows(cin: 37, h: 7, w: 100, m: 21, x0s: [0, 9, 20, 35, 50, 70, 82, 91], y0: 1, wh: 5, ww: 9, seed: 11)
        try rowsWindows(cin: 64, h: 3, w: 8 * 40, m: 91, x0s: (0..<40).map { 8 * $0 }, y0: 0, wh: 3, ww: 8, seed: 12)
        try rowsWindows(cin: 30, h: 9, w: 131, m: 12, x0s: [3, 40, 103], y0: 0, wh: 9, ww: 28, seed: 13)
    }

    static func rowsWindows(cin: Int, h: Int, w: Int, m: Int, x0s: [Int], y0: Int, wh: Int, ww: Int, seed: UInt64) throws {
        var r = Rng(seed)
        let x = inputs(cin * h * w, 0, &r), wt = weights(m * cin, 0, &r)
        let zIn = Int32(r.below(256))
        let bias = (0..<m).map { _ in Int32(r.below(2001) - 1000) }
        let deq = (0..<m).map { _ in r.unit() * 1e-3 }
        let labels = x0s.map { _ in Int32(r.below(m)) }, cols = x0s.map { Int32($0) }
        let p = try pack(wt, m: m, k: cin, zIn: zIn, bias: bias)
        var whole = [Float](repeating: 0, count: m * h * w)
        let rc0 = p.withUnsafeBytes {
            em_qconv2d_u8_f32_ref(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), 1, 1, 1, 0, deq, &whole)
        }
        try SelfTest.expect(rc0 == 0, "rows windows: reference refused")
        let n = wh * ww, what = "\(x0s.count) windows \(wh)x\(ww) of \(cin)x\(h)x\(w)"
        try forEachISA { isa, threads in
            var out = [Float](repeating: .nan, count: x0s.count * n + tail)
            let rc = p.withUnsafeBytes {
                em_qconv1x1_rows_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), Int32(x0s.count),
                                        labels, cols, Int32(y0), Int32(wh), Int32(ww), deq, &out)
            }
            try SelfTest.expect(rc == 0 || (rc == 1 && isa != "avx512vnni"), "\(what) [\(isa), \(threads) threads]: returned \(rc)")
            if rc != 0 { return }
            for (i, x0) in x0s.enumerated() {
                for y in 0..<wh {
                    for xx in 0..<ww {
                        let got = out[i * n + y * ww + xx], want = whole[(Int(labels[i]) * h + y0 + y) * w + x0 + xx]
                        try SelfTest.expect(got.bitPattern == want.bitPattern,
                                            "\(what) [\(isa), \(threads) threads]: window \(i) (\(y), \(xx)) is \(got), reference \(want)")
                    }
                }
            }
            try SelfTest.expect(out[(x0s.count * n)...].allSatisfy { $0.isNaN }, "\(what) [\(isa)]: wrote past the windows")
        }
        // unsorted or overlapping windows: not done (1); bad arguments: -1
        var out = [Float](repeating: 0, count: 2 * n)
        func call(_ ls: [Int32], _ xs: [Int32], y0: Int = y0) -> Int32 {
            p.withUnsafeBytes {
                em_qconv1x1_rows_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(m), Int32(ls.count), ls, xs,
                                        Int32(y0), Int32(wh), Int32(ww), deq, &out)
            }
        }
        try SelfTest.expect(call([0, 1], [Int32(ww), 0]) == 1 && call([0, 1], [0, Int32(ww - 1)]) == 1, "\(what): unsorted or overlapping windows done")
        for (ls, xs, yy) in [([Int32(m), 0], [0, Int32(ww)], y0), ([-1], [0], y0), ([0], [Int32(w - ww + 1)], y0), ([0], [-1], y0),
                             ([0], [0], h - wh + 1), ([0], [0], -1)] {
            try SelfTest.expect(call(ls, xs, y0: yy) == -1, "\(what): bad label \(ls) / column \(xs) / row \(yy) accepted")
        }
    }

    /// em_qconv2d_u8_head_f32 cases: (cin, h, w, cout, kernel, stride, head rows, relu). Several
    /// pixel chunks per thread (x86: the head on each), a GEMM split over channel blocks (few
    /// pixels, many blocks: the head after it), stride 2, head rows ending inside a block.
    static let convHeadCases: [(Int, Int, Int, Int, Int, Int, Int, Bool)] = [
        (37, 20, 40, 24, 3, 1, 15, true), (16, 5, 9, 64, 3, 1, 7, false), (9, 13, 17, 11, 3, 2, 9, true),
        (21, 30, 70, 8, 1, 1, 3, true),
    ]

    /// The convolution with its head equals the two reference calls (uint8 output byte for byte,
    /// the head's floats bit for bit) on every ISA at 1 and 3 threads, nothing written past
    /// either; a head of another K or zero point refused.
    static func convHead(_ c: (cin: Int, h: Int, w: Int, cout: Int, k: Int, stride: Int, hm: Int, relu: Bool)) throws {
        var r = Rng(UInt64(c.cin * 31 + c.h * 7 + c.w + c.cout * 101 + c.hm))
        let kk = c.cin * c.k * c.k, pad = c.k / 2
        let oh = (c.h + 2 * pad - c.k) / c.stride + 1, ow = (c.w + 2 * pad - c.k) / c.stride + 1, n = oh * ow
        let x = inputs(c.cin * c.h * c.w, 0, &r), wt = weights(c.cout * kk, 0, &r), wh = weights(c.hm * c.cout, 0, &r)
        let zIn = Int32(r.below(256)), zOut = Int32(r.below(256))
        let bias = (0..<c.cout).map { _ in Int32(r.below(20001) - 10000) }, hb = (0..<c.hm).map { _ in Int32(r.below(2001) - 1000) }
        let mult = mults(c.cout, k: kk, mode: 0, &r), deq = (0..<c.hm).map { _ in r.unit() * 1e-3 }
        let p = try pack(wt, m: c.cout, k: kk, zIn: zIn, bias: bias), ph = try pack(wh, m: c.hm, k: c.cout, zIn: zOut, bias: hb)
        let what = "conv \(c.cin)x\(c.h)x\(c.w)->\(c.cout) k\(c.k) s\(c.stride) with a head of \(c.hm)"
        var want = [UInt8](repeating: 0, count: c.cout * n), wantF = [Float](repeating: 0, count: c.hm * n)
        let r0 = p.withUnsafeBytes {
            em_qconv2d_u8_ref(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, $0.baseAddress, Int32(c.cout), Int32(c.k), Int32(c.k),
                              Int32(c.stride), Int32(pad), mult, zOut, nil, 0, 0, c.relu ? 1 : 0, &want)
        }
        let r1 = ph.withUnsafeBytes {
            em_qconv2d_u8_f32_ref(want, Int32(c.cout), Int32(oh), Int32(ow), zOut, $0.baseAddress, Int32(c.hm), 1, 1, 1, 0, deq, &wantF)
        }
        try SelfTest.expect(r0 == 0 && r1 == 0, "\(what): reference refused")
        try forEachISA { isa, threads in
            var got = [UInt8](repeating: sentinel, count: want.count + tail), gotF = [Float](repeating: .nan, count: wantF.count + tail)
            let rc = p.withUnsafeBytes { pc in
                ph.withUnsafeBytes { pk in
                    em_qconv2d_u8_head_f32(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pc.baseAddress, Int32(c.cout), Int32(c.k),
                                           Int32(c.k), Int32(c.stride), Int32(pad), mult, zOut, c.relu ? 1 : 0, &got,
                                           pk.baseAddress, Int32(c.hm), deq, &gotF)
                }
            }
            try SelfTest.expect(rc == 0, "\(what) [\(isa), \(threads) threads]: refused")
            try same(got, want, "\(what) [\(isa), \(threads) threads]")
            for i in 0..<wantF.count where gotF[i].bitPattern != wantF[i].bitPattern {
                throw EdgeError("check failed: \(what) [\(isa), \(threads) threads]: head row \(i / n) pixel \(i % n) is \(gotF[i]), reference \(wantF[i])")
            }
            try SelfTest.expect(gotF[wantF.count...].allSatisfy { $0.isNaN }, "\(what) [\(isa)]: wrote past the head's output")
        }
        // a head of another K, or for another zero point: refused
        let bad1 = try pack(Array(wh.prefix(c.hm * (c.cout - 1))), m: c.hm, k: c.cout - 1, zIn: zOut, bias: hb)
        let bad2 = try pack(wh, m: c.hm, k: c.cout, zIn: (zOut + 1) % 256, bias: hb)
        var o = [UInt8](repeating: 0, count: want.count), f = [Float](repeating: 0, count: wantF.count)
        for b in [bad1, bad2] {
            let rc = p.withUnsafeBytes { pc in
                b.withUnsafeBytes { pk in
                    em_qconv2d_u8_head_f32(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pc.baseAddress, Int32(c.cout), Int32(c.k),
                                           Int32(c.k), Int32(c.stride), Int32(pad), mult, zOut, 0, &o, pk.baseAddress, Int32(c.hm), deq, &f)
                }
            }
            try SelfTest.expect(rc == -1, "\(what): a head of another K or zero point accepted")
        }
    }

    /// em_qpack_concat (the RPN head's cls_logits + bbox_pred as one GEMM): the float-output
    /// convolution over the joint blob gives, row for row, the floats of each blob's own run (and
    /// of the reference), with the rows of the first blob ending inside a channel block (3 + 12,
    /// 13 + 6); blobs of another K or zero point refused.
    static func packConcat() throws {
        var r = Rng(777)
        let cin = 37, h = 5, w = 11, n = h * w
        let x = inputs(cin * n, 0, &r), zIn = Int32(r.below(256))
        for (ma, mb) in [(3, 12), (13, 6)] {
            let wa = weights(ma * cin, 0, &r), wb = weights(mb * cin, 0, &r)
            let ba = (0..<ma).map { _ in Int32(r.below(2001) - 1000) }, bb = (0..<mb).map { _ in Int32(r.below(2001) - 1000) }
            let da = (0..<ma).map { _ in r.unit() * 1e-3 }, db = (0..<mb).map { _ in r.unit() * 1e-3 }
            let pa = try pack(wa, m: ma, k: cin, zIn: zIn, bias: ba), pb = try pack(wb, m: mb, k: cin, zIn: zIn, bias: bb)
            var joint = [UInt8](repeating: 0, count: em_qpack_weights_bytes(Int32(ma + mb), Int32(cin)))
            let rc = pa.withUnsafeBytes { a in
                pb.withUnsafeBytes { b in joint.withUnsafeMutableBytes { em_qpack_concat(a.baseAddress, b.baseAddress, $0.baseAddress) } }
            }
            try SelfTest.expect(rc == 0, "em_qpack_concat \(ma) + \(mb) refused")
            var want = [Float](repeating: 0, count: (ma + mb) * n)
            let r0 = pa.withUnsafeBytes {
                em_qconv2d_u8_f32_ref(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(ma), 1, 1, 1, 0, da, &want)
            }
            let r1 = pb.withUnsafeBytes { b in
                want.withUnsafeMutableBufferPointer {
                    em_qconv2d_u8_f32_ref(x, Int32(cin), Int32(h), Int32(w), zIn, b.baseAddress, Int32(mb), 1, 1, 1, 0, db,
                                          $0.baseAddress! + ma * n)
                }
            }
            try SelfTest.expect(r0 == 0 && r1 == 0, "concat: reference refused")
            try forEachISA { isa, threads in
                var got = [Float](repeating: .nan, count: (ma + mb) * n + tail)
                let rc = joint.withUnsafeBytes {
                    em_qconv2d_u8_f32(x, Int32(cin), Int32(h), Int32(w), zIn, $0.baseAddress, Int32(ma + mb), 1, 1, 1, 0, da + db, &got)
                }
                try SelfTest.expect(rc == 0, "concat \(ma) + \(mb) [\(isa), \(threads) threads]: refused")
                for i in 0..<want.count where got[i].bitPattern != want[i].bitPattern {
                    throw EdgeError("check failed: concat \(ma) + \(mb) [\(isa), \(threads) threads]: row \(i / n) pixel \(i % n) is \(got[i]), its own blob's \(want[i])")
                }
                try SelfTest.expect(got[want.count...].allSatisfy { $0.isNaN }, "concat [\(isa)]: wrote past the output")
            }
        }
        // another K, another zero point: refused
        let w4 = weights(4 * cin, 0, &r), b4 = [Int32](repeating: 0, count: 4)
        let p1 = try pack(w4, m: 4, k: cin, zIn: 3, bias: b4), p2 = try pack(Array(w4.prefix(4 * (cin - 1))), m: 4, k: cin - 1, zIn: 3, bias: b4)
        let p3 = try pack(w4, m: 4, k: cin, zIn: 4, bias: b4)
        var out = [UInt8](repeating: 0, count: em_qpack_weights_bytes(8, Int32(cin)))
        for other in [p2, p3] {
            let rc = p1.withUnsafeBytes { a in
                other.withUnsafeBytes { b in out.withUnsafeMutableBytes { em_qpack_concat(a.baseAddress, b.baseAddress, $0.baseAddress) } }
            }
            try SelfTest.expect(rc == -1, "em_qpack_concat accepted blobs of another K or zero point")
        }
    }

    // MARK: linear and deconvolution

    struct Linear { var n, k, m: Int; var mode = 0 }
    static var smallLinearCases: [Linear] {
        [Linear(n: 5, k: 37, m: 13), Linear(n: 9, k: 130, m: 19, mode: 3), Linear(n: 2, k: 2305, m: 9, mode: 1),
         Linear(n: 1, k: 1, m: 1), Linear(n: 19, k: 136, m: 9), Linear(n: 16, k: 64, m: 5, mode: 2),
         // K long enough for x86's K-slices-outer linear path (FC6's; Kp x 48 > 256 KB): two
         // panels, the last with 12 RoIs, and a last channel block of 4 rows
         Linear(n: 60, k: 5504, m: 12)]
    }

    static func linear(_ c: Linear) throws {
        var r = Rng(UInt64(c.n * 7919 + c.k * 31 + c.m + c.mode))
        let x = inputs(c.n * c.k, c.mode, &r), w = weights(c.m * c.k, c.mode, &r)
        let zIn = Int32(c.mode == 0 ? r.below(256) : 0), zOut = Int32(c.mode == 0 ? r.below(256) : 128)
        let bias = (0..<c.m).map { _ in Int32(r.below(2001) - 1000) }
        let mult = mults(c.m, k: c.k, mode: c.mode, &r)
        let deq = (0..<c.m).map { _ in r.unit() * 1e-3 }
        let p = try pack(w, m: c.m, k: c.k, zIn: zIn, bias: bias)
        let what = "linear \(c.n)x\(c.k)->\(c.m) mode \(c.mode)"
        var direct = [UInt8](repeating: 0, count: c.n * c.m), directF = [Float](repeating: 0, count: c.n * c.m)
        for n in 0..<c.n {
            for m in 0..<c.m {
                var acc = Int64(bias[m])
                for k in 0..<c.k { acc += Int64(w[m * c.k + k]) * (Int64(x[n * c.k + k]) - Int64(zIn)) }
                direct[n * c.m + m] = finish(Float(Int32(acc)) * mult[m], zOut, zOut)
                directF[n * c.m + m] = Float(Int32(acc)) * deq[m]
            }
        }
        var ref = [UInt8](repeating: 0, count: c.n * c.m), refF = [Float](repeating: 0, count: c.n * c.m)
        let rc = p.withUnsafeBytes { pk in
            em_qlinear_u8_ref(x, Int32(c.n), Int32(c.k), zIn, pk.baseAddress, Int32(c.m), mult, zOut, 1, &ref) |
                em_qlinear_u8_f32_ref(x, Int32(c.n), Int32(c.k), zIn, pk.baseAddress, Int32(c.m), deq, &refF)
        }
        try SelfTest.expect(rc == 0, "\(what): reference refused")
        try SelfTest.expect(ref == direct, "\(what): reference differs from int64 + formula")
        try SelfTest.expect(zip(refF, directF).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(what): f32 reference differs from int64 * deq")
        try forEachISA { isa, threads in
            var out = [UInt8](repeating: sentinel, count: c.n * c.m + tail)
            var outF = [Float](repeating: .nan, count: c.n * c.m + tail)
            let rc = p.withUnsafeBytes { pk in
                em_qlinear_u8(x, Int32(c.n), Int32(c.k), zIn, pk.baseAddress, Int32(c.m), mult, zOut, 1, &out) |
                    em_qlinear_u8_f32(x, Int32(c.n), Int32(c.k), zIn, pk.baseAddress, Int32(c.m), deq, &outF)
            }
            try SelfTest.expect(rc == 0, "\(what) [\(isa)]: refused")
            try same(out, ref, "\(what) [\(isa), \(threads) threads]")
            for i in 0..<outF.count {
                let ok = i < refF.count ? outF[i].bitPattern == refF[i].bitPattern : outF[i].isNaN
                try SelfTest.expect(ok, "\(what) f32 [\(isa), \(threads) threads]: element \(i)")
            }
        }
    }

    /// relu: lo = z_out; multScale scales the multipliers (1e30: past the bound under which the
    /// x86 avx512vnni kernels leave the float clamp out); zOut: instead of the mode's
    struct Deconv { var cin, h, w, cout: Int; var mode = 0; var relu: Int32 = 0; var multScale: Float = 1; var zOut: Int32? = nil }
    static var smallDeconvCases: [Deconv] {
        [Deconv(cin: 5, h: 7, w: 6, cout: 3), Deconv(cin: 33, h: 4, w: 5, cout: 10), Deconv(cin: 300, h: 3, w: 2, cout: 3, mode: 1),
         // whole 8-pixel tiles across input rows (aarch64's inline tile path: W >= 8)
         Deconv(cin: 16, h: 6, w: 14, cout: 4), Deconv(cin: 7, h: 3, w: 9, cout: 6),
         // row segments of 16 and 8 pixels and more (x86's vector interleave of the output pairs)
         Deconv(cin: 9, h: 5, w: 37, cout: 5), Deconv(cin: 6, h: 3, w: 26, cout: 4)]
    }

    static func deconv(_ c: Deconv) throws {
        var r = Rng(UInt64(c.cin * 131 + c.h * 7 + c.cout + c.mode))
        let x = inputs(c.cin * c.h * c.w, c.mode, &r), w = weights(c.cin * c.cout * 4, c.mode, &r)
        let zIn = Int32(c.mode == 0 ? r.below(256) : 0), zOut = c.zOut ?? Int32(c.mode == 0 ? r.below(256) : 128)
        let bias = (0..<c.cout).map { _ in Int32(r.below(2001) - 1000) }
        let mult = mults(c.cout, k: c.cin, mode: c.mode, &r).map { $0 * c.multScale }
        var p = [UInt8](repeating: 0, count: em_qpack_weights_bytes(Int32(4 * c.cout), Int32(c.cin)))
        let prc = p.withUnsafeMutableBytes { em_qpack_deconv2x2_weights(w, Int32(c.cin), Int32(c.cout), zIn, bias, $0.baseAddress) }
        try SelfTest.expect(prc == 0, "deconv pack refused")
        let what = "deconv \(c.cin)x\(c.h)x\(c.w)->\(c.cout) mode \(c.mode) relu \(c.relu) mult x\(c.multScale) z_out \(zOut)"
        let oh = 2 * c.h, ow = 2 * c.w, nOut = c.cout * oh * ow
        var direct = [UInt8](repeating: 0, count: nOut)
        for co in 0..<c.cout {
            for y in 0..<oh {
                for xx in 0..<ow {
                    var acc = Int64(bias[co])
                    for ci in 0..<c.cin {
                        acc += Int64(w[((ci * c.cout + co) * 2 + y % 2) * 2 + xx % 2]) *
                            (Int64(x[(ci * c.h + y / 2) * c.w + xx / 2]) - Int64(zIn))
                    }
                    direct[(co * oh + y) * ow + xx] = finish(Float(Int32(acc)) * mult[co], zOut, c.relu != 0 ? zOut : 0)
                }
            }
        }
        var ref = [UInt8](repeating: 0, count: nOut)
        let rc = p.withUnsafeBytes { pk in
            em_qdeconv2x2s2_u8_ref(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout), mult, zOut, c.relu, &ref)
        }
        try SelfTest.expect(rc == 0, "\(what): reference refused")
        try SelfTest.expect(ref == direct, "\(what): reference differs from int64 + formula")
        try forEachISA { isa, threads in
            var out = [UInt8](repeating: sentinel, count: nOut + tail)
            let rc = p.withUnsafeBytes { pk in
                em_qdeconv2x2s2_u8(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout), mult, zOut, c.relu, &out, nil)
            }
            try SelfTest.expect(rc == 0, "\(what) [\(isa)]: refused")
            try same(out, ref, "\(what) [\(isa), \(threads) threads]")
        }
    }

    static var deconv4Cases: [Deconv] {
        [Deconv(cin: 5, h: 7, w: 6, cout: 3), Deconv(cin: 37, h: 4, w: 5, cout: 17), Deconv(cin: 1, h: 1, w: 1, cout: 2),
         Deconv(cin: 512, h: 3, w: 2, cout: 3, mode: 1)]
    }

    /// ConvTranspose2d(4, stride 2, padding 1) with float output: the reference against a direct
    /// int64 sum over the taps (bias once per output) and (float)acc * deq; every ISA's GEMM +
    /// int32 scatter path (and the scratch-less fallback) against the reference, bit for bit.
    static func deconv4(_ c: Deconv) throws {
        var r = Rng(UInt64(c.cin * 97 + c.h * 5 + c.cout + c.mode))
        let x = inputs(c.cin * c.h * c.w, c.mode, &r), w = weights(c.cin * c.cout * 16, c.mode, &r)
        let zIn = Int32(c.mode == 0 ? r.below(256) : 0)
        let bias = (0..<c.cout).map { _ in Int32(r.below(20001) - 10000) }
        let deq = (0..<c.cout).map { _ in r.unit() * 0.001 + 1e-6 }
        var p = [UInt8](repeating: 0, count: em_qpack_weights_bytes(Int32(16 * c.cout), Int32(c.cin)))
        let prc = p.withUnsafeMutableBytes { em_qpack_deconv4x4s2p1_weights(w, Int32(c.cin), Int32(c.cout), zIn, bias, $0.baseAddress) }
        try SelfTest.expect(prc == 0, "deconv4 pack refused")
        let what = "deconv4 \(c.cin)x\(c.h)x\(c.w)->\(c.cout) mode \(c.mode)"
        let oh = 2 * c.h, ow = 2 * c.w, nOut = c.cout * oh * ow
        var direct = [Float](repeating: 0, count: nOut)
        for co in 0..<c.cout { for oy in 0..<oh { for ox in 0..<ow {
            var acc = Int64(bias[co])
            for ky in 0..<4 { for kx in 0..<4 {
                let ty = oy + 1 - ky, tx = ox + 1 - kx
                guard ty >= 0, tx >= 0, ty % 2 == 0, tx % 2 == 0, ty / 2 < c.h, tx / 2 < c.w else { continue }
                for ci in 0..<c.cin {
                    acc += Int64(max(w[((ci * c.cout + co) * 4 + ky) * 4 + kx], -127)) *
                        (Int64(x[(ci * c.h + ty / 2) * c.w + tx / 2]) - Int64(zIn))
                }
            } }
            direct[(co * oh + oy) * ow + ox] = Float(Int32(acc)) * deq[co]
        } } }
        var ref = [Float](repeating: 0, count: nOut)
        let rc = p.withUnsafeBytes { pk in
            em_qdeconv4x4s2p1_u8_f32_ref(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout), deq, &ref)
        }
        try SelfTest.expect(rc == 0, "\(what): reference refused")
        try SelfTest.expect(ref.map { $0.bitPattern } == direct.map { $0.bitPattern }, "\(what): reference differs from int64 + formula")
        var scratch = [UInt8](repeating: 0, count: em_qdeconv4x4s2p1_u8_f32_scratch_bytes(Int32(c.cin), Int32(c.h), Int32(c.w), Int32(c.cout)) + 64)
        try forEachISA { isa, threads in
            for useScratch in [true, false] {
                var out = [Float](repeating: .nan, count: nOut + tail)
                let rc = p.withUnsafeBytes { pk in
                    scratch.withUnsafeMutableBytes { s in
                        em_qdeconv4x4s2p1_u8_f32(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout), deq, &out,
                                                 useScratch ? s.baseAddress : nil)
                    }
                }
                try SelfTest.expect(rc == 0, "\(what) [\(isa)]: refused")
                for i in 0..<nOut where out[i].bitPattern != ref[i].bitPattern {
                    throw EdgeError("check failed: \(what) [\(isa), \(threads) threads]: value \(i) is \(out[i]), reference \(ref[i])")
                }
                try SelfTest.expect(out[nOut...].allSatisfy { $0.isNaN }, "\(what) [\(isa)]: wrote past the output")
            }
        }
        // Bad arguments are refused, the output untouched.
        var out = [Float](repeating: 0, count: nOut)
        let bad = p.withUnsafeBytes { pk in
            em_qdeconv4x4s2p1_u8_f32(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout + 1), deq, &out, nil)
        }
        try SelfTest.expect(bad == -1 && out.allSatisfy { $0 == 0 }, "\(what): a wrong Cout was not refused")
    }

    // MARK: element-wise

    static func elementwise() throws {
        var r = Rng(99)
        let n = 1003
        let a = inputs(n, 0, &r), b = inputs(n, 0, &r)
        var xs = (0..<n).map { _ in Float(r.below(20001) - 10000) * 0.00137 }
        xs[0] = .nan
        xs[1] = .infinity
        xs[2] = -.infinity
        xs[3] = 0.025 // ties of x * inv_scale exercise round half even
        xs[4] = 0.075
        xs[5] = -0.125
        // Formulas.
        let addF = (0..<n).map { i -> UInt8 in
            let pa = Float(Int32(a[i]) - 17) * 0.73, pb = Float(Int32(b[i]) - 200) * 1.31
            return finish(pa + pb, 91, 91)
        }
        let inv: Float = 1 / 0.05
        let quantF = xs.map { finish($0 * inv, 113, 0) }
        let deqF = a.map { Float(Int32($0) - 113) * 0.05 }
        let (c, h, w, th, tw) = (5, 13, 11, 7, 6)
        var upF = [UInt8](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            for y in 0..<h {
                let sy = min(Int((Float(y) * Float(th) / Float(h)).rounded(.down)), th - 1)
                for x in 0..<w {
                    let sx = min(Int((Float(x) * Float(tw) / Float(w)).rounded(.down)), tw - 1)
                    let o = (ch * h + y) * w + x
                    let pa = Float(Int32(a[o]) - 3) * 0.9, pb = Float(Int32(b[(ch * th + sy) * tw + sx]) - 250) * 0.6
                    upF[o] = finish(pa + pb, 128, 0)
                }
            }
        }
        var poolF = [UInt8](repeating: 0, count: 3 * 9 * 10)
        for ch in 0..<3 {
            for oy in 0..<9 {
                for ox in 0..<10 {
                    var m: UInt8 = 0
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx
                            if iy >= 0, iy < 17, ix >= 0, ix < 19 { m = max(m, a[(ch * 17 + iy) * 19 + ix]) }
                        }
                    }
                    poolF[(ch * 9 + oy) * 10 + ox] = m
                }
            }
        }
        try SelfTest.expect(quantF[0] == 0, "quantize NaN gives \(quantF[0])")
        // References against the formulas, then every ISA against the formulas.
        var o = [UInt8](repeating: 0, count: n), f = [Float](repeating: 0, count: n)
        em_qadd_u8_ref(a, 17, 0.73, b, 200, 1.31, n, 91, 1, &o)
        try SelfTest.expect(o == addF, "qadd reference vs formula")
        em_quantize_f32_u8_ref(xs, n, 0.05, 113, &o)
        try SelfTest.expect(o == quantF, "quantize reference vs formula")
        em_dequantize_u8_f32_ref(a, n, 0.05, 113, &f)
        try SelfTest.expect(zip(f, deqF).allSatisfy { $0.bitPattern == $1.bitPattern }, "dequantize reference vs formula")
        var up = [UInt8](repeating: 0, count: c * h * w)
        em_qadd_upsample_nearest_u8_ref(a, 3, 0.9, b, 250, 0.6, Int32(c), Int32(th), Int32(tw), Int32(h), Int32(w), 128, &up)
        try SelfTest.expect(up == upF, "qadd upsample reference vs formula")
        var pool = [UInt8](repeating: 0, count: poolF.count)
        em_qmaxpool2d_u8_ref(a, 3, 17, 19, 3, 2, 1, &pool)
        try SelfTest.expect(pool == poolF, "maxpool reference vs direct")
        try forEachISA { isa, threads in
            let tag = "[\(isa), \(threads) threads]"
            var o = [UInt8](repeating: sentinel, count: n + tail)
            em_qadd_u8(a, 17, 0.73, b, 200, 1.31, n, 91, 1, &o)
            try same(o, addF, "qadd \(tag)")
            o = [UInt8](repeating: sentinel, count: n + tail)
            em_quantize_f32_u8(xs, n, 0.05, 113, &o)
            try same(o, quantF, "quantize \(tag)")
            var f = [Float](repeating: .nan, count: n + tail)
            em_dequantize_u8_f32(a, n, 0.05, 113, &f)
            try SelfTest.expect((0..<f.count).allSatisfy { $0 < n ? f[$0].bitPattern == deqF[$0].bitPattern : f[$0].isNaN }, "dequantize \(tag)")
            var up = [UInt8](a[0..<(c * h * w)]) + [UInt8](repeating: sentinel, count: tail)
            up.withUnsafeMutableBufferPointer { u in // in place: out aliases lat
                em_qadd_upsample_nearest_u8(u.baseAddress, 3, 0.9, b, 250, 0.6, Int32(c), Int32(th), Int32(tw), Int32(h), Int32(w), 128, u.baseAddress)
            }
            try same(up, upF, "qadd upsample in place \(tag)")
            // Exactly twice the top map (FPN's top-down add: the rows duplicated in registers on
            // AVX-512): 32-wide steps with tails, an odd width, one step.
            for (uc, uh, uw, uth, utw) in [(1, 6, 74, 3, 37), (2, 4, 73, 2, 37), (3, 2, 16, 1, 8)] {
                var ur = [UInt8](repeating: 0, count: uc * uh * uw)
                var uo = [UInt8](repeating: sentinel, count: uc * uh * uw + tail)
                em_qadd_upsample_nearest_u8_ref(a, 5, 0.7, b, 120, 1.1, Int32(uc), Int32(uth), Int32(utw), Int32(uh), Int32(uw), 99, &ur)
                em_qadd_upsample_nearest_u8(a, 5, 0.7, b, 120, 1.1, Int32(uc), Int32(uth), Int32(utw), Int32(uh), Int32(uw), 99, &uo)
                try same(uo, ur, "qadd upsample x2 \(uc)x\(uh)x\(uw) \(tag)")
            }
            var pool = [UInt8](repeating: sentinel, count: poolF.count + tail)
            em_qmaxpool2d_u8(a, 3, 17, 19, 3, 2, 1, &pool)
            try same(pool, poolF, "maxpool \(tag)")
            // More pools vs the reference: FPN's LastLevelMaxPool (k1 s2), k2 s2, k3 s1 p1, even sizes,
            // and k3 s2 rows of 34 and 125 outputs (the 16-wide vector loops plus their tails).
            for (pc, ph, pw, pk, ps, pp) in [(5, 9, 8, 1, 2, 0), (4, 10, 11, 2, 2, 0), (3, 16, 18, 3, 2, 1), (2, 7, 7, 3, 1, 1),
                                             (2, 6, 67, 3, 2, 1), (1, 4, 250, 3, 2, 1)] {
                let oh = (ph + 2 * pp - pk) / ps + 1, ow = (pw + 2 * pp - pk) / ps + 1
                var pr = [UInt8](repeating: 0, count: pc * oh * ow)
                var po = [UInt8](repeating: sentinel, count: pc * oh * ow + tail)
                em_qmaxpool2d_u8_ref(a, Int32(pc), Int32(ph), Int32(pw), Int32(pk), Int32(ps), Int32(pp), &pr)
                em_qmaxpool2d_u8(a, Int32(pc), Int32(ph), Int32(pw), Int32(pk), Int32(ps), Int32(pp), &po)
                try same(po, pr, "maxpool \(pc)x\(ph)x\(pw) k\(pk) s\(ps) p\(pp) \(tag)")
            }
            // Exact ties (.5 results): round half to even on every path.
            let tx: [Float] = (0..<64).map { Float($0 - 32) * 0.125 } // x * 4 = k / 2
            var tq = [UInt8](repeating: sentinel, count: tx.count + tail)
            em_quantize_f32_u8(tx, tx.count, 0.25, 100, &tq)
            try same(tq, tx.map { finish($0 * 4, 100, 0) }, "quantize ties \(tag)")
            try SelfTest.expect(tq[33] == 100 && tq[35] == 102 && tq[37] == 102 && tq[31] == 100 && tq[29] == 98,
                                "quantize ties \(tag): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2 expected")
            var ta = [UInt8](repeating: sentinel, count: n + tail)
            em_qadd_u8(a, 7, 0.5, b, 9, 0.25, n, 128, 0, &ta)
            let taF = (0..<n).map { i in finish(Float(Int32(a[i]) - 7) * 0.5 + Float(Int32(b[i]) - 9) * 0.25, 128, 0) }
            try same(ta, taF, "qadd ties \(tag)")
        }
    }
}

extension Optional where Wrapped == [UInt8] {
    /// Calls body with the array's base address, or nil.
    func withUnsafeBufferPointerOpt<R>(_ body: (UnsafePointer<UInt8>?) throws -> R) rethrows -> R {
        switch self {
        case .some(let a): return try a.withUnsafeBufferPointer { try body($0.baseAddress) }
        case .none: return try body(nil)
        }
    }
}
