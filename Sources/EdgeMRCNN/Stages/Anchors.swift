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
        out.withUnsafeMutableBufferPointer { o in
            var k = 0
            for y in 0..<fh {
                for x in 0..<fw {
                    for r in 0..<a {
                        anchor(b, ratio: r, x: x, y: y, strideX: sx, strideY: sy, into: o.baseAddress! + k)
                        k += 4
                    }
                }
            }
        }
        return out
    }

    /// Anchor `ratio` of feature pixel (x, y) of a level whose base anchors are `b` and whose
    /// pixels are strideX x strideY input pixels apart: [x1, y1, x2, y2] at `o` (what grid makes,
    /// and what the RPN makes for its selected anchors alone).
    @inline(__always)
    static func anchor(_ b: [Float], ratio r: Int, x: Int, y: Int, strideX sx: Int, strideY sy: Int,
                       into o: UnsafeMutablePointer<Float>) {
        let ox = Float(x * sx), oy = Float(y * sy)
        o[0] = ox + b[4 * r]; o[1] = oy + b[4 * r + 1]
        o[2] = ox + b[4 * r + 2]; o[3] = oy + b[4 * r + 3]
    }
}
