// Mask branch (torchvision MaskRCNNHeads + MaskRCNNPredictor + maskrcnn_inference): 14x14
// RoIAlign, 4 x (conv 3x3 + ReLU), ConvTranspose2d 2x2/2 + ReLU, 1x1 conv to K x 28 x 28, then
// the sigmoid of the predicted label's channel (only that channel is computed).

#if canImport(Glibc)
import Glibc
#endif

struct MaskHead {
    let convs: [Conv2d]
    let deconv: Deconv2x2
    let logits: Conv2d
    let numClasses: Int
    static let size = 28

    init(_ store: TensorStore, numClasses k: Int, source: String) throws {
        convs = try (0..<4).map {
            try Conv2d(store, "roi_heads.mask_head.\($0)", cin: 256, cout: 256, kernel: 3, pad: 1, source: source)
        }
        deconv = try Deconv2x2(store, "roi_heads.mask_predictor.conv5_mask", cin: 256, cout: 256, source: source)
        logits = try Conv2d(store, "roi_heads.mask_predictor.mask_fcn_logits", cin: 256, cout: k, kernel: 1, source: source)
        numClasses = k
    }

    /// 28x28 probabilities [N * 784] for boxes in resized-image coordinates.
    func run(_ features: [FeatureMap], boxes: [Float], labels: [Int], sizes s: ImageSizes,
             _ ws: Workspace) -> FloatBuffer {
        let n = labels.count
        let m = MaskHead.size
        let out = ws.floats(n * m * m)
        if n == 0 { return out }
        let pooled = ws.floats(n * 256 * 14 * 14)
        MultiScaleRoIAlign.run(Array(features.prefix(4)), boxes: boxes, sizes: s, output: 14, out: pooled.pointer)
        let a = ws.floats(256 * 14 * 14), b = ws.floats(256 * 14 * 14)
        let up = ws.floats(256 * m * m)
        for i in 0..<n {
            convs[0].run(pooled.pointer + i * 256 * 196, 14, 14, out: a.pointer, ws, relu: true)
            convs[1].run(a.pointer, 14, 14, out: b.pointer, ws, relu: true)
            convs[2].run(b.pointer, 14, 14, out: a.pointer, ws, relu: true)
            convs[3].run(a.pointer, 14, 14, out: b.pointer, ws, relu: true)
            deconv.run(b.pointer, 14, 14, out: up.pointer, ws, relu: true)
            let label = min(max(labels[i], 0), numClasses - 1)
            let one = Conv2dSlice(base: logits, channel: label)
            let dst = out.pointer + i * m * m
            one.run(up.pointer, m, m, out: dst, ws)
            for j in 0..<(m * m) { dst[j] = 1 / (1 + expf(-dst[j])) }
        }
        return out
    }
}

/// One output channel of a 1x1 (or any) convolution.
private struct Conv2dSlice {
    let base: Conv2d
    let channel: Int
    func run(_ input: UnsafePointer<Float>, _ h: Int, _ w: Int, out: UnsafeMutablePointer<Float>, _ ws: Workspace) {
        let per = base.cin * base.kernel * base.kernel
        let c = Conv2d(weight: base.weight + channel * per, bias: base.bias + channel, cin: base.cin, cout: 1,
                       kernel: base.kernel, stride: base.stride, pad: base.pad)
        c.run(input, h, w, out: out, ws, relu: false)
    }
}
