// Detection overlays: on a copy of the image, each instance's mask tinted in its class colour,
// its box outlined, and a "name 0.97" label on a filled strip. Everything is clipped to the image,
// so boxes that reach outside it (or garbage coordinates) are safe. Keypoint detections also get
// the COCO person skeleton (limbs between keypoints whose heatmap logit reaches keypointMinScore)
// and a dot per such keypoint.

public struct OverlayStyle {
    /// Mask tint opacity.
    public var maskAlpha: Float = 0.45
    /// Box outline thickness in pixels (before label scaling).
    public var boxThickness = 2
    /// Detections below this score are not drawn.
    public var minScore: Float = 0.5
    /// Label font scale; nil picks 1 for images up to 600 px, 2 above, 3 above 1800 px.
    public var fontScale: Int? = nil
    /// Keypoints whose heatmap logit (torchvision's keypoints_scores) is below this are not drawn
    /// (2, as Detectron's keypoint visualisation).
    public var keypointMinScore: Float = 2

    public init(maskAlpha: Float = 0.45, boxThickness: Int = 2, minScore: Float = 0.5, fontScale: Int? = nil) {
        self.maskAlpha = maskAlpha; self.boxThickness = boxThickness
        self.minScore = minScore; self.fontScale = fontScale
    }
}

public enum Overlay {
    public typealias Color = (r: UInt8, g: UInt8, b: UInt8)

    /// Well separated, saturated colours; class k uses palette[(k - 1) % count].
    static let palette: [Color] = [
        (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128),
        (170, 110, 40), (128, 0, 0), (0, 0, 128), (128, 128, 0), (250, 190, 212), (255, 215, 180),
    ]

    public static func color(forLabel label: Int) -> Color {
        let n = palette.count
        let i = ((label - 1) % n + n) % n
        return palette[i]
    }

    /// "name 0.97" (score rounded to two decimals).
    public static func labelText(name: String, score: Float) -> String {
        let s = score.isFinite ? min(max(score, 0), 1) : 0
        let v = Int((s * 100).rounded())
        let frac = v % 100
        return "\(name) \(v / 100).\(frac < 10 ? "0" : "")\(frac)"
    }

    /// The font scale used for an image of this size.
    public static func fontScale(width: Int, height: Int) -> Int {
        let m = max(width, height)
        return m > 1800 ? 3 : (m > 600 ? 2 : 1)
    }

    /// A copy of `image` with `detections` drawn on it.
    public static func draw(_ image: RGBImage, detections: [Detection], classNames: [String],
                            style: OverlayStyle = OverlayStyle()) -> RGBImage {
        var out = image
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else { return out }
        // Lowest score first, so the best detections end up on top.
        let shown = detections.enumerated()
            .filter { $0.element.score >= style.minScore }
            .sorted { $0.element.score != $1.element.score ? $0.element.score < $1.element.score : $0.offset > $1.offset }
            .map { $0.element }
        let scale = max(style.fontScale ?? fontScale(width: image.width, height: image.height), 1)
        let thickness = max(style.boxThickness, 1) * (scale > 2 ? 2 : 1)
        let alpha = Int((min(max(style.maskAlpha, 0), 1) * 256).rounded())
        out.pixels.withUnsafeMutableBufferPointer { px in
            let canvas = Canvas(px: px, width: image.width, height: image.height)
            for d in shown {
                if let m = d.mask { canvas.tint(m, color(forLabel: d.label), alpha: alpha) }
            }
            for d in shown {
                guard let r = pixelRect(d.box) else { continue }
                canvas.outline(r, color(forLabel: d.label), thickness: thickness)
            }
            for d in shown {
                guard let kps = d.keypoints else { continue }
                let c = color(forLabel: d.label)
                let ok = kps.map { $0.score >= style.keypointMinScore && $0.x.isFinite && $0.y.isFinite }
                if kps.count == COCOKeypoints.names.count {
                    for (a, b) in COCOKeypoints.skeleton where ok[a] && ok[b] {
                        canvas.line(kps[a].x, kps[a].y, kps[b].x, kps[b].y, c, thickness: thickness)
                    }
                }
                let r = thickness + 1
                for (i, k) in kps.enumerated() where ok[i] {
                    let x = pixel(k.x), y = pixel(k.y)
                    canvas.fill(l: x - r, t: y - r, r: x + r, b: y + r, (255, 255, 255))
                    canvas.fill(l: x - r + 1, t: y - r + 1, r: x + r - 1, b: y + r - 1, c)
                }
            }
            for d in shown {
                guard let r = pixelRect(d.box) else { continue }
                let name = ResultsJSON.categoryName(d.label, classNames: classNames)
                canvas.label(labelText(name: name, score: d.score), at: r, color(forLabel: d.label), scale: scale)
            }
        }
        return out
    }

    /// The pixel a finite coordinate falls in (clamped far outside any image).
    static func pixel(_ v: Float) -> Int { Int(min(max(v, -1_000_000), 1_000_000).rounded(.down)) }

    /// Box (x1, y1, x2, y2) -> inclusive pixel rectangle (left, top, right, bottom); nil if not finite.
    static func pixelRect(_ b: (Float, Float, Float, Float)) -> (l: Int, t: Int, r: Int, b: Int)? {
        guard b.0.isFinite, b.1.isFinite, b.2.isFinite, b.3.isFinite else { return nil }
        func clampI(_ v: Float) -> Int { Int(min(max(v, -1_000_000), 1_000_000)) }
        let l = clampI(b.0.rounded(.down)), t = clampI(b.1.rounded(.down))
        let r = max(clampI(b.2.rounded(.up)) - 1, l), bt = max(clampI(b.3.rounded(.up)) - 1, t)
        return (l, t, r, bt)
    }

    /// The overlay file for an input image: DIR/<stem>.jpg, or DIR/<stem>_overlay.jpg when that
    /// would be the input file itself.
    public static func outputPath(directory: String, imagePath: String) -> String {
        let stem = OutputPaths.stem(OutputPaths.baseName(imagePath))
        let plain = OutputPaths.join(directory, stem + ".jpg")
        if LocalFile.sameFile(plain, imagePath) { return OutputPaths.join(directory, stem + "_overlay.jpg") }
        return plain
    }
}

/// Clipped drawing primitives on an RGB buffer.
struct Canvas {
    let px: UnsafeMutableBufferPointer<UInt8>
    let width: Int
    let height: Int

    @inline(__always) func blend(_ i: Int, _ c: Overlay.Color, alpha: Int) {
        let a = alpha, na = 256 - alpha
        px[i] = UInt8((Int(px[i]) * na + Int(c.r) * a + 128) >> 8)
        px[i + 1] = UInt8((Int(px[i + 1]) * na + Int(c.g) * a + 128) >> 8)
        px[i + 2] = UInt8((Int(px[i + 2]) * na + Int(c.b) * a + 128) >> 8)
    }

    /// Fills columns l...r of rows t...b (inclusive), clipped.
    func fill(l: Int, t: Int, r: Int, b: Int, _ c: Overlay.Color) {
        let x0 = max(l, 0), x1 = min(r, width - 1), y0 = max(t, 0), y1 = min(b, height - 1)
        if x1 < x0 || y1 < y0 { return }
        for y in y0...y1 {
            var i = (y * width + x0) * 3
            for _ in x0...x1 {
                px[i] = c.r; px[i + 1] = c.g; px[i + 2] = c.b
                i += 3
            }
        }
    }

    /// Tints the set pixels of an RLE mask, one column run at a time (no bitmap is made).
    /// A mask of another size than the image is drawn in its own coordinates, clipped.
    func tint(_ m: RLE, _ c: Overlay.Color, alpha: Int) {
        let w = width, h = height
        m.forEachColumnRun { x, y0, y1 in
            guard x < w else { return }
            let end = min(y1, h)
            var y = y0
            while y < end {
                blend((y * w + x) * 3, c, alpha: alpha)
                y += 1
            }
        }
    }

    /// A line from (x0, y0) to (x1, y1) (pixel coordinates), drawn with a square brush of
    /// `thickness` pixels; clipped (only the part within a margin of the image is walked).
    func line(_ x0: Float, _ y0: Float, _ x1: Float, _ y1: Float, _ c: Overlay.Color, thickness: Int) {
        let lim = Float(max(width, height) + 8)
        func clip(_ v: Float) -> Float { min(max(v, -lim), 2 * lim) }
        let ax = clip(x0), ay = clip(y0), bx = clip(x1), by = clip(y1)
        let n = Int(max(abs(bx - ax), abs(by - ay)).rounded(.up))
        let k = thickness - 1, h = k / 2
        for i in 0...max(n, 0) {
            let t = n == 0 ? 0 : Float(i) / Float(n)
            let x = Overlay.pixel(ax + (bx - ax) * t), y = Overlay.pixel(ay + (by - ay) * t)
            if x + k < 0 || y + k < 0 || x - k >= width || y - k >= height { continue }
            fill(l: x - h, t: y - h, r: x - h + k, b: y - h + k, c)
        }
    }

    func outline(_ r: (l: Int, t: Int, r: Int, b: Int), _ c: Overlay.Color, thickness: Int) {
        let k = thickness - 1
        fill(l: r.l, t: r.t, r: r.r, b: min(r.t + k, r.b), c)  // top
        fill(l: r.l, t: max(r.b - k, r.t), r: r.r, b: r.b, c)  // bottom
        fill(l: r.l, t: r.t, r: min(r.l + k, r.r), b: r.b, c)  // left
        fill(l: max(r.r - k, r.l), t: r.t, r: r.r, b: r.b, c)  // right
    }

    /// A label strip just above the box's top-left corner (inside the box when there is no room
    /// above), kept inside the image where possible.
    func label(_ text: String, at r: (l: Int, t: Int, r: Int, b: Int), _ bg: Overlay.Color, scale s: Int) {
        let pad = s
        let w = BitmapFont.textWidth(text) * s + 2 * pad
        let h = BitmapFont.glyphHeight * s + 2 * pad
        var x = r.l
        var y = r.t - h >= 0 ? r.t - h : r.t
        if x + w > width { x = width - w }
        if x < 0 { x = 0 }
        if y + h > height { y = height - h }
        if y < 0 { y = 0 }
        fill(l: x, t: y, r: x + w - 1, b: y + h - 1, bg)
        // Dark text on light colours, white on dark ones.
        let lum = 299 * Int(bg.r) + 587 * Int(bg.g) + 114 * Int(bg.b)
        let fg: Overlay.Color = lum > 150_000 ? (0, 0, 0) : (255, 255, 255)
        var cx = x + pad
        let cy = y + pad
        for ch in text.utf8 {
            if cx >= width { break }
            for gy in 0..<BitmapFont.glyphHeight {
                for gx in 0..<BitmapFont.glyphWidth where BitmapFont.ink(ch, x: gx, y: gy) {
                    fill(l: cx + gx * s, t: cy + gy * s, r: cx + gx * s + s - 1, b: cy + gy * s + s - 1, fg)
                }
            }
            cx += BitmapFont.advance * s
        }
    }
}
