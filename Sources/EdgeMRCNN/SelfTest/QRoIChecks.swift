// Self-test checks of the int8 pipeline's float-output convolution and its uint8 RoIAlign
// (em_qkernels.h): on every ISA and with threads 1 and 3,
// - em_qconv2d_u8_f32 equals its C reference bit for bit, and the reference equals an int64
//   accumulation times the per-channel factor;
// - em_roi_align_u8_hwc equals the float round trip it replaces (em_dequantize_u8_f32 ->
//   em_roi_align_f32 -> em_quantize_f32_u8) byte for byte, for RoIs inside, across and outside
//   the map, tiny and huge, written through strides into a sentinel-filled buffer;
// - em_transpose_chw_hwc_u8 is the exact CHW -> HWC permutation.
#if canImport(Glibc)
import Glibc
#endif
import CShim

extension QKernelCheck {
    struct FloatConv { var cin, h, w, cout, k, stride, pad: Int }
    static var floatConvCases: [FloatConv] {
        [FloatConv(cin: 7, h: 5, w: 9, cout: 3, k: 1, stride: 1, pad: 0),
         FloatConv(cin: 13, h: 6, w: 11, cout: 12, k: 1, stride: 1, pad: 0),
         FloatConv(cin: 5, h: 7, w: 6, cout: 9, k: 3, stride: 1, pad: 1),
         FloatConv(cin: 3, h: 9, w: 8, cout: 4, k: 3, stride: 2, pad: 1),
         // K 720: two K slices (x86), 105 pixels: 3 panels of 48, the last partial; 15 rows
         FloatConv(cin: 80, h: 7, w: 15, cout: 15, k: 3, stride: 1, pad: 1)]
    }

    static func floatConv(_ c: FloatConv) throws {
        var r = Rng(UInt64(c.cin * 131 + c.h * 17 + c.cout * 7 + c.k))
        let kk = c.cin * c.k * c.k
        let oh = (c.h + 2 * c.pad - c.k) / c.stride + 1, ow = (c.w + 2 * c.pad - c.k) / c.stride + 1
        let n = c.cout * oh * ow
        let x = inputs(c.cin * c.h * c.w, 0, &r), w = weights(c.cout * kk, 0, &r)
        let zIn = Int32(r.below(256))
        let bias = (0..<c.cout).map { _ in Int32(r.below(2001) - 1000) }
        let deq = (0..<c.cout).map { _ in r.unit() * 1e-3 }
        let p = try pack(w, m: c.cout, k: kk, zIn: zIn, bias: bias)
        let what = "conv f32 \(c.cin)x\(c.h)x\(c.w)->\(c.cout) k\(c.k) s\(c.stride) p\(c.pad)"
        var direct = [Float](repeating: 0, count: n)
        for m in 0..<c.cout {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var acc = Int64(bias[m])
                    for ci in 0..<c.cin {
                        for ky in 0..<c.k {
                            for kx in 0..<c.k {
                                let iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx
                                let v = (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) ? Int64(zIn) : Int64(x[(ci * c.h + iy) * c.w + ix])
                                acc += Int64(w[((m * c.cin + ci) * c.k + ky) * c.k + kx]) * (v - Int64(zIn))
                            }
                        }
                    }
                    direct[(m * oh + oy) * ow + ox] = Float(Int32(acc)) * deq[m]
                }
            }
        }
        var ref = [Float](repeating: .nan, count: n)
        let rc = p.withUnsafeBytes { pk in
            em_qconv2d_u8_f32_ref(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout),
                                  Int32(c.k), Int32(c.k), Int32(c.stride), Int32(c.pad), deq, &ref)
        }
        try SelfTest.expect(rc == 0, "\(what): reference refused")
        try SelfTest.expect(ref.map(\.bitPattern) == direct.map(\.bitPattern), "\(what): reference differs from int64 x factor")
        try forEachISA { isa, threads in
            var out = [Float](repeating: -7.25, count: n + tail)
            let rc = p.withUnsafeBytes { pk in
                em_qconv2d_u8_f32(x, Int32(c.cin), Int32(c.h), Int32(c.w), zIn, pk.baseAddress, Int32(c.cout),
                                  Int32(c.k), Int32(c.k), Int32(c.stride), Int32(c.pad), deq, &out)
            }
            try SelfTest.expect(rc == 0, "\(what) [\(isa), \(threads) threads]: refused")
            for i in 0..<n where out[i].bitPattern != ref[i].bitPattern {
                throw EdgeError("check failed: \(what) [\(isa), \(threads) threads]: element \(i) is \(out[i]), reference \(ref[i])")
            }
            for i in n..<(n + tail) where out[i] != -7.25 {
                throw EdgeError("check failed: \(what) [\(isa), \(threads) threads]: element \(i) past the output was written")
            }
        }
    }

    static func transpose() throws {
        var r = Rng(77)
        // 16-channel multiples (SSE2 / NEON 16 x 16 blocks, then a tail), whole and partial 64-pixel
        // tiles, and the rest one by one, on every ISA
        let cases = [(1, 1, 1), (3, 5, 7), (70, 3, 29), (256, 2, 3), (65, 9, 8), (32, 5, 7), (48, 10, 13),
                     (64, 5, 7), (128, 9, 13), (256, 4, 16)]
        let xs = cases.map { inputs($0.0 * $0.1 * $0.2, 0, &r) }
        try forEachISA { isa, threads in
            for ((c, h, w), x) in zip(cases, xs) {
                var out = [UInt8](repeating: sentinel, count: c * h * w + tail)
                em_transpose_chw_hwc_u8(x, Int32(c), Int32(h), Int32(w), &out)
                var want = [UInt8](repeating: 0, count: c * h * w)
                for ch in 0..<c { for p in 0..<(h * w) { want[p * c + ch] = x[ch * h * w + p] } }
                try same(out, want, "transpose chw->hwc \(c)x\(h)x\(w) [\(isa), \(threads) threads]")
            }
        }
    }

    struct RoICase { var c, h, w, p: Int; var scale: Float }
    static var roiCases: [RoICase] {
        [RoICase(c: 5, h: 7, w: 9, p: 7, scale: 0.25), RoICase(c: 256, h: 6, w: 5, p: 7, scale: 0.125),
         RoICase(c: 19, h: 13, w: 4, p: 14, scale: 0.5), RoICase(c: 300, h: 3, w: 3, p: 2, scale: 1),
         RoICase(c: 64, h: 11, w: 10, p: 14, scale: 0.5), RoICase(c: 32, h: 8, w: 9, p: 17, scale: 0.5)]
    }

    static func roiAlign(_ c: RoICase) throws {
        var r = Rng(UInt64(c.c * 1000 + c.h * 10 + c.p))
        let chw = inputs(c.c * c.h * c.w, 0, &r)
        var hwc = [UInt8](repeating: 0, count: chw.count)
        em_transpose_chw_hwc_u8(chw, Int32(c.c), Int32(c.h), Int32(c.w), &hwc)
        let sIn = r.unit() * 0.05, zIn = Int32(r.below(256))
        let sOut = r.unit() * 0.02, zOut = Int32(r.below(256))
        // image-pixel boxes: inside, across the border, fully outside, degenerate, huge, inverted
        let iw = Float(c.w) / c.scale, ih = Float(c.h) / c.scale
        var boxes: [Float] = []
        for _ in 0..<9 {
            let x1 = Float(r.below(Int(iw) + 1)) - 0.3 * iw * r.unit() + 0.25 * iw
            let y1 = Float(r.below(Int(ih) + 1)) - 0.3 * ih * r.unit() + 0.25 * ih
            boxes += [x1, y1, x1 + iw * 0.7 * r.unit(), y1 + ih * 0.6 * r.unit()]
        }
        boxes += [2 * iw, 2 * ih, 3 * iw, 3 * ih]          // outside
        boxes += [1.5, 1.5, 1.5, 1.5]                      // zero size
        boxes += [-iw, -ih, 5 * iw, 4 * ih]                // huge
        boxes += [0.7 * iw, 0.8 * ih, 0.2 * iw, 0.1 * ih]  // inverted
        let n = boxes.count / 4, blk = c.c * c.p * c.p
        // sampling ratio 2 (torchvision's heads: 4 samples per bin, a power of two) and adaptive
        // (0: ceil(roi size / P) per axis, so counts such as 3, 6 or 9)
        for sampling: Int32 in [2, 0] {
            // reference: the float round trip, [n, C, P, P]
            var deq = [Float](repeating: 0, count: chw.count)
            em_dequantize_u8_f32(chw, chw.count, sIn, zIn, &deq)
            var pooled = [Float](repeating: 0, count: n * blk)
            em_roi_align_f32(deq, Int32(c.c), Int32(c.h), Int32(c.w), c.scale, sampling, 0, boxes, Int32(n), nil, Int32(c.p),
                             Int32(c.p), &pooled)
            var want = [UInt8](repeating: 0, count: n * blk)
            em_quantize_f32_u8(pooled, pooled.count, sOut, zOut, &want)
            // the uint8 kernel writes RoI i at 2 * i * blk (channel stride P*P, row stride P); the
            // gaps must stay untouched
            let offsets = (0..<n).map { 2 * $0 * blk }
            let what = "roi_align u8 C \(c.c) \(c.h)x\(c.w) P \(c.p) scale \(c.scale) sampling \(sampling)"
            try forEachISA { isa, threads in
                var out = [UInt8](repeating: sentinel, count: 2 * n * blk + tail)
                let rc = em_roi_align_u8_hwc(hwc, Int32(c.c), Int32(c.h), Int32(c.w), sIn, zIn, c.scale, sampling, boxes, Int32(n),
                                             offsets, Int32(c.p), Int32(c.p), c.p * c.p, c.p, sOut, zOut, &out)
                try SelfTest.expect(rc == 0, "\(what) [\(isa), \(threads) threads]: refused")
                var expect = [UInt8](repeating: sentinel, count: 2 * n * blk)
                for i in 0..<n { for j in 0..<blk { expect[2 * i * blk + j] = want[i * blk + j] } }
                try same(out, expect, "\(what) [\(isa), \(threads) threads]")
            }
        }
    }
}
