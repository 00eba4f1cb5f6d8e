// Keypoint heatmaps to keypoints, in float, as torchvision computes them:
// - KeypointRCNNPredictor's upsampling after its transposed convolution: F.interpolate(x,
//   scale_factor=2, mode="bilinear", align_corners=False) (ATen's generic CPU kernel: source
//   index 0.5·(d + 0.5) − 0.5 clamped at 0, the two taps along x, then along y).
// - roi_heads.heatmaps_to_keypoints, per RoI: each heatmap resized bicubically (align_corners=False,
//   A = −0.75, edge taps clamped) to the RoI's size rounded up (width and height clamped to ≥ 1
//   first), the first maximum of the resized map, x = (x_int + 0.5) · (w / ceil(w)) + x1 (same for
//   y), score = the resized map's value there.
// The bicubic resize is evaluated in ATen's order: for each output pixel, the 4 taps along x of
// each of the 4 source rows, then the 4 rows along y. Rows are interpolated along x once into
// `scratch` ([H, ceil(w)]), then each output row combines 4 of them.

public enum KeypointDecode {
    /// torch's cubic convolution coefficients for fraction t (A = −0.75), in float as ATen.
    @inline(__always) static func cubicCoefficients(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        func c1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func c2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        let x2 = 1 - t
        return (c2(t + 1), c1(t), c1(x2), c2(x2 + 1))
    }

    /// ATen's cubic source index and fraction for output index `d` (align_corners=False):
    /// real = scale·(d + 0.5) − 0.5, index = min(floor(real), n − 1), t = clamp(real − index, 0, 1).
    @inline(__always) static func cubicSource(_ d: Int, scale: Float, inputSize n: Int) -> (Int, Float) {
        let real = scale * (Float(d) + 0.5) - 0.5
        let i = min(Int(real.rounded(.down)), n - 1)
        let t = min(max(real - Float(i), 0), 1)
        return (i, t)
    }

    /// Floats of scratch `decode` needs for maps of height `mapHeight` and a RoI up to `roiWidth`
    /// pixels wide (in the resized image).
    public static func scratchCount(mapHeight: Int, roiWidth: Float) -> Int {
        let w = roiWidth.isFinite ? max(roiWidth, 1).rounded(.up) : 1
        return mapHeight * Int(min(w, Float(1 << 20)))
    }

    /// heatmaps_to_keypoints for one RoI: `maps` [k, h, w] (contiguous), `box` (x1, y1, x2, y2) in
    /// the coordinates the RoI was pooled in. Writes k keypoints (x, y, score) to `out`.
    /// `scratch` holds at least scratchCount(mapHeight: h, roiWidth: x2 − x1) floats.
    public static func decode(maps: UnsafePointer<Float>, keypoints k: Int, height h: Int, width w: Int,
                              box: (Float, Float, Float, Float), scratch: UnsafeMutablePointer<Float>,
                              into out: UnsafeMutablePointer<Keypoint>) {
        let width = max(box.2 - box.0, 1), height = max(box.3 - box.1, 1)
        let ow = width.isFinite ? Int(min(width.rounded(.up), Float(1 << 20))) : 1
        let oh = height.isFinite ? Int(min(height.rounded(.up), Float(1 << 20))) : 1
        let widthCorrection = width / Float(ow), heightCorrection = height / Float(oh)
        let sx = Float(w) / Float(ow), sy = Float(h) / Float(oh)
        for kp in 0..<k {
            let m = maps + kp * h * w
            // Each source row along x: scratch[y * ow + x].
            for x in 0..<ow {
                let (ix, t) = cubicSource(x, scale: sx, inputSize: w)
                let c = cubicCoefficients(t)
                let i0 = min(max(ix - 1, 0), w - 1), i1 = min(max(ix, 0), w - 1)
                let i2 = min(max(ix + 1, 0), w - 1), i3 = min(max(ix + 2, 0), w - 1)
                for y in 0..<h {
                    let r = m + y * w
                    var v = r[i0] * c.0
                    v += r[i1] * c.1
                    v += r[i2] * c.2
                    v += r[i3] * c.3
                    scratch[y * ow + x] = v
                }
            }
            // Along y, keeping the first maximum (row-major order, as argmax).
            var best = -Float.infinity, bx = 0, by = 0
            var found = false
            for y in 0..<oh {
                let (iy, t) = cubicSource(y, scale: sy, inputSize: h)
                let c = cubicCoefficients(t)
                let r0 = scratch + min(max(iy - 1, 0), h - 1) * ow, r1 = scratch + min(max(iy, 0), h - 1) * ow
                let r2 = scratch + min(max(iy + 1, 0), h - 1) * ow, r3 = scratch + min(max(iy + 2, 0), h - 1) * ow
                for x in 0..<ow {
                    var v = r0[x] * c.0
                    v += r1[x] * c.1
                    v += r2[x] * c.2
                    v += r3[x] * c.3
                    if !found || v > best || (v.isNaN && !best.isNaN) {
                        best = v; bx = x; by = y; found = true
                    }
                }
            }
            let px = (Float(bx) + 0.5) * widthCorrection, py = (Float(by) + 0.5) * heightCorrection
            out[kp] = Keypoint(x: px + box.0, y: py + box.1, score: best)
        }
    }

    /// F.interpolate(scale_factor=2, mode="bilinear", align_corners=False) of [c, h, w] into
    /// [c, 2h, 2w].
    public static func upsample2x(_ src: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
                                  into dst: UnsafeMutablePointer<Float>) {
        let oh = 2 * h, ow = 2 * w
        @inline(__always) func taps(_ d: Int, _ n: Int) -> (Int, Int, Float, Float) {
            var real: Float = 0.5 * (Float(d) + 0.5) - 0.5
            if real < 0 { real = 0 }
            let i0 = min(Int(real.rounded(.down)), n - 1)
            let l1 = min(max(real - Float(i0), 0), 1)
            let i1 = i0 + (i0 < n - 1 ? 1 : 0)
            return (i0, i1, 1 - l1, l1)
        }
        for ch in 0..<c {
            let s = src + ch * h * w, o = dst + ch * oh * ow
            for y in 0..<oh {
                let (y0, y1, wy0, wy1) = taps(y, h)
                let r0 = s + y0 * w, r1 = s + y1 * w
                for x in 0..<ow {
                    let (x0, x1, wx0, wx1) = taps(x, w)
                    let t0 = r0[x0] * wx0 + r0[x1] * wx1
                    let t1 = r1[x0] * wx0 + r1[x1] * wx1
                    o[y * ow + x] = t0 * wy0 + t1 * wy1
                }
            }
        }
    }
}
