// torchvision MultiScaleRoIAlign (ops/poolers.py) over P2..P5: scales inferred from the feature
// and (unpadded) image heights as 2^round(log2(feat_h / image_h)); LevelMapper k0 = 4, canonical
// size 224, eps 1e-6, levels clamped to [2, 5]; roi_align sampling_ratio 2, aligned = false.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

public enum MultiScaleRoIAlign {
    /// torchvision _infer_scale (height only, as torchvision returns possible_scales[0]).
    public static func scale(featureHeight: Int, imageHeight: Int) -> Float {
        let approx = Float(Double(featureHeight) / Double(imageHeight))
        let e = log2f(approx).rounded(.toNearestOrEven)
        return Float(pow(2.0, Double(e)))
    }

    /// LevelMapper: index into [P2..P5] for a box, given k_min/k_max from the scales.
    public static func level(_ b: UnsafePointer<Float>, kMin: Int = 2, kMax: Int = 5) -> Int {
        let area = (b[2] - b[0]) * (b[3] - b[1])
        let s = area.squareRoot()
        let t = (Float(4) + log2f(s / Float(224))) + Float(1e-6)
        var k = t.rounded(.down)
        if k.isNaN { k = Float(kMin) }
        k = min(max(k, Float(kMin)), Float(kMax))
        return Int(k) - kMin
    }

    public static func level(box: [Float]) -> Int {
        box.withUnsafeBufferPointer { level($0.baseAddress!) }
    }

    /// The level (index into P2..P5) of each of `r` boxes, with k_min/k_max from the scales.
    static func levels(_ boxes: UnsafePointer<Float>, count r: Int, scales: [Float]) -> [Int] {
        let kMin = Int(-log2f(scales[0]))
        let kMax = Int(-log2f(scales[scales.count - 1]))
        return (0..<r).map { min(max(level(boxes + 4 * $0, kMin: kMin, kMax: kMax), 0), scales.count - 1) }
    }

    /// The int8 pooler: pools `r` boxes from uint8 P2..P5 in HWC layout (`hwc[l]` holds
    /// [H, W, C] bytes; channels/height/width as the CHW map) straight to uint8 with parameters
    /// `outQ`, equal bit for bit to dequantise -> `run` -> quantise. Box i's [C, P, P] block goes
    /// to out + offset(i) with channel stride `cstride` and row stride `ystride`.
    static func runU8(_ hwc: [Act], boxes: UnsafePointer<Float>, count r: Int, sizes s: ImageSizes, output p: Int, sampling: Int,
                      outQ: QParams, out: UnsafeMutablePointer<UInt8>, cstride: Int, ystride: Int,
                      offset: (Int) -> Int) throws {
        if r == 0 { return }
        let nl = hwc.count
        guard nl >= 1, nl <= 8 else { throw EdgeError("RoIAlign (uint8): \(nl) pyramid levels, expected 1 to 8") }
        // one call over every level (em_roi_align_u8_hwc_levels: the threads share all RoIs);
        // per-RoI level and output offset in temporary (stack) buffers, per-level fields in tuples
        var feat: (UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?,
                   UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?)
            = (nil, nil, nil, nil, nil, nil, nil, nil)
        var cs = (Int32(0), Int32(0), Int32(0), Int32(0), Int32(0), Int32(0), Int32(0), Int32(0))
        var hs = cs, ws = cs, zs = cs
        var ss: (Float, Float, Float, Float, Float, Float, Float, Float) = (0, 0, 0, 0, 0, 0, 0, 0)
        var scs = ss
        var kMin = 0, kMax = 0
        withUnsafeMutableBytes(of: &feat) { fb in
            let fp = fb.bindMemory(to: UnsafePointer<UInt8>?.self)
            withUnsafeMutableBytes(of: &cs) { cb in withUnsafeMutableBytes(of: &hs) { hb in withUnsafeMutableBytes(of: &ws) { wb in
            withUnsafeMutableBytes(of: &zs) { zb in withUnsafeMutableBytes(of: &ss) { sb in withUnsafeMutableBytes(of: &scs) { scb in
                let c = cb.bindMemory(to: Int32.self), h = hb.bindMemory(to: Int32.self), w = wb.bindMemory(to: Int32.self)
                let z = zb.bindMemory(to: Int32.self), si = sb.bindMemory(to: Float.self), sc = scb.bindMemory(to: Float.self)
                for (l, f) in hwc.enumerated() {
                    fp[l] = UnsafePointer(f.u8); c[l] = Int32(f.channels); h[l] = Int32(f.height); w[l] = Int32(f.width)
                    z[l] = f.q!.zeroPoint; si[l] = f.q!.scale
                    sc[l] = scale(featureHeight: f.height, imageHeight: s.resizedHeight)
                }
                kMin = Int(-log2f(sc[0])); kMax = Int(-log2f(sc[nl - 1]))
            } } } } } }
        }
        let rc = withUnsafeTemporaryAllocation(of: Int32.self, capacity: r) { lvl in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: r) { offs in
                for i in 0..<r {
                    lvl[i] = Int32(min(max(level(boxes + 4 * i, kMin: kMin, kMax: kMax), 0), nl - 1))
                    offs[i] = offset(i)
                }
                return withUnsafeBytes(of: &feat) { fb in withUnsafeBytes(of: &cs) { cb in withUnsafeBytes(of: &hs) { hb in
                    withUnsafeBytes(of: &ws) { wb in withUnsafeBytes(of: &zs) { zb in withUnsafeBytes(of: &ss) { sb in
                    withUnsafeBytes(of: &scs) { scb in
                        em_roi_align_u8_hwc_levels(Int32(nl), fb.bindMemory(to: UnsafePointer<UInt8>?.self).baseAddress,
                                                   cb.bindMemory(to: Int32.self).baseAddress, hb.bindMemory(to: Int32.self).baseAddress,
                                                   wb.bindMemory(to: Int32.self).baseAddress, sb.bindMemory(to: Float.self).baseAddress,
                                                   zb.bindMemory(to: Int32.self).baseAddress, scb.bindMemory(to: Float.self).baseAddress,
                                                   Int32(sampling), boxes, lvl.baseAddress, Int32(r),
                                                   UnsafeRawPointer(offs.baseAddress!).assumingMemoryBound(to: Int.self),
                                                   Int32(p), Int32(p), cstride, ystride, outQ.scale, outQ.zeroPoint, out)
                    } } } } } } }
            }
        }
        if rc != 0 { throw EdgeError("RoIAlign (uint8) rejected its arguments or ran out of memory") }
    }

    /// Pools every box (resized-image coordinates) to [C, P, P] into out [R, C, P, P].
    static func run(_ features: [Act], boxes: [Float], sizes s: ImageSizes, output p: Int, sampling: Int,
                    out: UnsafeMutablePointer<Float>) {
        let r = boxes.count / 4
        if r == 0 { return }
        let scales = features.map { scale(featureHeight: $0.height, imageHeight: s.resizedHeight) }
        let kMin = Int(-log2f(scales[0]))
        let kMax = Int(-log2f(scales[scales.count - 1]))
        var perLevelBoxes = [[Float]](repeating: [], count: features.count)
        var perLevelIndex = [[Int32]](repeating: [], count: features.count)
        boxes.withUnsafeBufferPointer { bp in
            for i in 0..<r {
                let l = min(max(level(bp.baseAddress! + 4 * i, kMin: kMin, kMax: kMax), 0), features.count - 1)
                perLevelBoxes[l] += bp[(4 * i)..<(4 * i + 4)]
                perLevelIndex[l].append(Int32(i))
            }
        }
        for (l, f) in features.enumerated() where !perLevelIndex[l].isEmpty {
            perLevelBoxes[l].withUnsafeBufferPointer { rb in
                perLevelIndex[l].withUnsafeBufferPointer { ib in
                    em_roi_align_f32(f.f32, Int32(f.channels), Int32(f.height), Int32(f.width), scales[l], Int32(sampling), 0,
                                     rb.baseAddress, Int32(ib.count), ib.baseAddress, Int32(p), Int32(p), out)
                }
            }
        }
    }
}
