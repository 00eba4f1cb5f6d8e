// torchvision AnchorGenerator (models/detection/anchor_utils.py) for the 5 FPN levels:
// sizes 32..512, aspect ratios (0.5, 1, 2); base anchors rounded half-to-even in float32;
// stride = padded image size // feature size per axis; order y, then x, then ratio.

public enum Anchors {
    public static let sizes: [Float] = [32, 64, 128, 256, 512]
    public static let aspectRatios: [Float] = [0.5, 1.0, 2.0]

    /// The 3 base anchors [x1, y1, x2, y2] of one size (12 floats).
    public static func base(size: Float) -> [Float] {
        var out: [Float] = []
        for r in aspectRatios {
            let hr = r.squareRoot()
            let wr = 1 / hr
            let ws = wr * size, hs = hr * size
            out += [-ws, -hs, ws, hs].map { ($0 / 2).rounded(.toNearestOrEven) }
        }
        return out
    }

    /// Anchors of one level: [featH * featW * 3 * 4] floats.
    public static func grid(level: Int, featureHeight fh: Int, featureWidth fw: Int,
                            paddedHeight ph: Int, paddedWidth pw: Int) -> [Float] {
        let b = base(size: sizes[level])
        let sy = ph / fh, sx = pw / fw
        let a = aspectRatios.count
        var out = [Float](repeating: 0, count: fh * fw * a * 4)
        var k = 0
        for y in 0..<fh {
            let oy = Float(y * sy)
            for x in 0..<fw {
                let ox = Float(x * sx)
                for r in 0..<a {
                    out[k] = ox + b[4 * r]; out[k + 1] = oy + b[4 * r + 1]
                    out[k + 2] = ox + b[4 * r + 2]; out[k + 3] = oy + b[4 * r + 3]
                    k += 4
                }
            }
        }
        return out
    }
}
