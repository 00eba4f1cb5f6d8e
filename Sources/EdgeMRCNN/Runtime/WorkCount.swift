// Multiply-accumulates of the weight layers per pipeline stage, from the layer shapes (for the
// GMAC/s column of `edge-mrcnn bench`). Nominal work: the int8 mask head's batching separators
// and the GEMM tile padding are not counted.

public enum WorkCount {
    /// MACs per stage ("backbone", "fpn", "rpn", "roi_heads", "masks") for a padded network input
    /// of `height` x `width`, `proposals` RoIs into the box head and `detections` into the mask head.
    public static func macs(height: Int, width: Int, numClasses k: Int, proposals: Int = 1000,
                            detections: Int = 100) -> [String: Int] {
        func out(_ n: Int, _ kernel: Int, _ stride: Int) -> Int { (n + 2 * (kernel / 2) - kernel) / stride + 1 }
        func conv(_ cin: Int, _ cout: Int, _ kernel: Int, _ h: Int, _ w: Int) -> Int { cin * cout * kernel * kernel * h * w }
        var backbone = 0
        var h = out(height, 7, 2), w = out(width, 7, 2)
        backbone += conv(3, 64, 7, h, w)
        h = out(h, 3, 2); w = out(w, 3, 2)           // max pool 3x3/2
        var cin = 64
        var levels: [(c: Int, h: Int, w: Int)] = []
        for (li, blocks) in ModelSpec.resnetBlocks.enumerated() {
            let width = ModelSpec.resnetWidths[li]
            for b in 0..<blocks {
                let s = (b == 0 && li > 0) ? 2 : 1
                let oh = out(h, 3, s), ow = out(w, 3, s)
                backbone += conv(cin, width, 1, h, w)          // conv1 at the input resolution
                backbone += conv(width, width, 3, oh, ow)      // conv2 carries the stride
                backbone += conv(width, 4 * width, 1, oh, ow)  // conv3
                if b == 0 { backbone += conv(cin, 4 * width, 1, oh, ow) }  // downsample (1x1, stride s)
                h = oh; w = ow; cin = 4 * width
            }
            levels.append((cin, h, w))
        }
        let f = ModelSpec.fpnChannels
        var fpn = 0
        for l in levels { fpn += conv(l.c, f, 1, l.h, l.w) + conv(f, f, 3, l.h, l.w) }
        var rpnPositions = levels.reduce(0) { $0 + $1.h * $1.w }
        let p6 = levels[3]
        rpnPositions += ((p6.h - 1) / 2 + 1) * ((p6.w - 1) / 2 + 1)
        let a = ModelSpec.anchorsPerLocation
        let rpn = rpnPositions * (f * f * 9 + f * a + f * 4 * a)
        let roi = proposals * (f * 49 * 1024 + 1024 * 1024 + 1024 * k + 1024 * 4 * k)
        let masks = detections * (4 * conv(f, f, 3, 14, 14) + f * f * 4 * 14 * 14 + f * k * 28 * 28)
        return ["backbone": backbone, "fpn": fpn, "rpn": rpn, "roi_heads": roi, "masks": masks]
    }
}
