// Mask branch (torchvision MaskRCNNHeads + MaskRCNNPredictor + maskrcnn_inference): 14x14
// RoIAlign, 4 x (conv 3x3 + ReLU), ConvTranspose2d 2x2/2 + ReLU, 1x1 conv to K x 28 x 28, then
// the sigmoid of the predicted label's channel (only that channel is computed).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

struct MaskHead {
    let convs: [Conv2d]
    let deconv: Deconv2x2
    let logits: Conv2d
    let numClasses: Int
    static let size = 28
    /// Activation name of the pooled RoI features (the input of mask_head.0).
    static let poolName = "roi_heads.mask_roi_pool"

    /// bindWeights false: unbound placeholders (the int8 pipeline runs its own mask layers).
    init(_ store: TensorStore, numClasses k: Int, source: String, bindWeights: Bool = true) throws {
        numClasses = k
        guard bindWeights else {
            convs = (0..<4).map { Conv2d.unbound("roi_heads.mask_head.\($0)", cin: 256, cout: 256, kernel: 3, pad: 1) }
            deconv = Deconv2x2(unbound: "roi_heads.mask_predictor.conv5_mask", cin: 256, cout: 256)
            logits = Conv2d.unbound("roi_heads.mask_predictor.mask_fcn_logits", cin: 256, cout: k, kernel: 1)
            return
        }
        convs = try (0..<4).map {
            try Conv2d(store, "roi_heads.mask_head.\($0)", cin: 256, cout: 256, kernel: 3, pad: 1, source: source)
        }
        deconv = try Deconv2x2(store, "roi_heads.mask_predictor.conv5_mask", cin: 256, cout: 256, source: source)
        logits = try Conv2d(store, "roi_heads.mask_predictor.mask_fcn_logits", cin: 256, cout: k, kernel: 1, source: source)
    }

    /// RoIs per batch: the 14x14 maps of a batch are laid side by side in one [256, 14, W] map
    /// with one zero column between neighbours, so each 3x3 convolution (pad 1) runs as one large
    /// GEMM and still sees exactly the zeros torchvision's per-RoI padding gives. The separator
    /// columns are re-zeroed after every convolution.
    static let batch = 16

    /// 28x28 probabilities [N * 784] for boxes in resized-image coordinates.
    func run(_ features: [FeatureMap], boxes: [Float], labels: [Int], sizes s: ImageSizes,
             _ ws: Workspace) -> FloatBuffer {
        let n = labels.count
        let m = MaskHead.size
        let maxN = max(n, ws.detectionBound)
        let out = ws.floats(n * m * m, reserve: maxN * m * m)
        if n == 0 { return out }
        let c = 256, p = 14, pitch = p + 1
        let pooled = ws.floats(n * c * p * p, reserve: maxN * c * p * p)
        MultiScaleRoIAlign.run(Array(features.prefix(4)), boxes: boxes, sizes: s, output: p, out: pooled.pointer)
        ws.hook?.activation(MaskHead.poolName, pooled.pointer, n * c * p * p)
        let g = min(max(ws.maskBatch, 1), n)
        let maxW = g * pitch - 1, boundW = max(ws.maskBatch, 1) * pitch - 1
        let a = ws.floats(c * p * maxW, reserve: c * p * boundW), b = ws.floats(c * p * maxW, reserve: c * p * boundW)
        let up = ws.floats(c * 2 * p * 2 * maxW, reserve: c * 2 * p * 2 * boundW)
        var start = 0
        while start < n {
            let cnt = min(g, n - start)
            let w = cnt * pitch - 1
            // gather into the wide layout (separator columns zero)
            a.pointer.initialize(repeating: 0, count: c * p * w)
            for r in 0..<cnt {
                let src = pooled.pointer + (start + r) * c * p * p
                for ch in 0..<c {
                    for y in 0..<p {
                        (a.pointer + (ch * p + y) * w + r * pitch).update(from: src + (ch * p + y) * p, count: p)
                    }
                }
            }
            func zeroSeparators(_ x: UnsafeMutablePointer<Float>) {
                if cnt < 2 { return }
                for row in 0..<(c * p) {
                    let base = x + row * w
                    for r in 0..<(cnt - 1) { base[r * pitch + p] = 0 }
                }
            }
            convs[0].run(a.pointer, p, w, out: b.pointer, ws, relu: true); zeroSeparators(b.pointer)
            convs[1].run(b.pointer, p, w, out: a.pointer, ws, relu: true); zeroSeparators(a.pointer)
            convs[2].run(a.pointer, p, w, out: b.pointer, ws, relu: true); zeroSeparators(b.pointer)
            convs[3].run(b.pointer, p, w, out: a.pointer, ws, relu: true)
            deconv.run(a.pointer, p, w, out: up.pointer, ws, relu: true, reserveWidth: boundW)   // [c, 28, 2w]
            let uw = 2 * w
            for r in 0..<cnt {
                let i = start + r
                let label = min(max(labels[i], 0), numClasses - 1)
                let wrow = logits.weight + label * c
                let dst = out.pointer + i * m * m
                for y in 0..<m {
                    em_sgemm(1, Int32(m), Int32(c), wrow, Int32(c), up.pointer + y * uw + 2 * r * pitch,
                             Int32(m * uw), dst + y * m, Int32(m), logits.bias + label, 0, 0)
                }
                ws.hook?.activation(logits.name, dst, m * m)
                for j in 0..<(m * m) { dst[j] = 1 / (1 + expf(-dst[j])) }
            }
            start += cnt
        }
        return out
    }
}

