// Mask branch (torchvision MaskRCNNHeads + MaskRCNNPredictor + maskrcnn_inference): the
// description's masks layers — 14x14 RoIAlign, the conv chain, the transposed conv, the 1x1 logits
// — then the sigmoid of the predicted label's channel (float logits layers compute only that
// channel).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

enum MaskHead {
    static let size = 28
    /// RoIs per batch: the 14x14 maps of a batch are laid side by side in one [256, 14, W] map
    /// with one zero column between neighbours, so each 3x3 convolution (pad 1) runs as one large
    /// GEMM and still sees exactly the zeros torchvision's per-RoI padding gives. The separator
    /// columns are re-zeroed (the zero point, for uint8) after every layer whose reader pads.
    static let batch = 16
}

extension Executor {
    /// 28x28 probabilities [N * 784] of the predicted labels for boxes in resized-image
    /// coordinates. `levels`: P2..P5 as `roiLevels` gives them.
    func masks(_ levels: [Act], boxes: [Float], labels: [Int], sizes s: ImageSizes, _ ws: Workspace) throws -> FloatBuffer {
        let n = labels.count
        let m = MaskHead.size
        let maxN = max(n, ws.detectionBound)
        let out = ws.floats(n * m * m, reserve: maxN * m * m)
        let defs = net.layers(in: .masks)
        if n == 0 || defs.isEmpty { return out }
        let pool = defs[0], chainDefs = Array(defs.dropFirst().dropLast()), logits = layer(defs.last!.name)
        guard case .roiAlign(let p, let sampling) = pool.op else { fatalError("mask pool is not a RoIAlign") }
        let c = pool.cout
        let (pq, pooled) = poolRoIs(pool, rois: n, levels: levels, boxes: boxes, sizes: s, ws)
        let pitch = sideBySidePitch(chainDefs, size: p, q: pq, ws)
        let bufs = HeadBuffers(ws)
        try sideBySide(chainDefs, rois: n, channels: c, size: p, q: pq, pitch: pitch, bufs, ws, fill: { start, cnt, x in
            try fillPooled(x, levels: levels, boxes: boxes, pooled: pooled, start: start, count: cnt,
                           channels: c, size: p, pitch: pitch, sampling: sampling, sizes: s)
        }, use: { start, cnt, up, bound in
            // the logits of the predicted label only
            var xin = up
            if !up.matches(logits.inputParams) {
                xin = bufs.take(up.channels, up.height, up.width, q: logits.inputParams, bound: bound(up.count))
                up.convert(into: xin)
            }
            // int8 with more than two 8-channel blocks of classes (COCO: 12): per RoI only the block
            // of its label, on its window (the same floats); all classes on the whole batch when
            // an observer (calibration report) must see the layer's whole output
            let perLabel = logits.isInt8 && logits.def.cout > 16 && ws.layerObserver == nil && ws.hook == nil
            var all: Act?, block: Act?
            if perLabel {
                let b = bufs.take(8 * cnt, m, m, q: nil, bound: bound(8 * cnt * m * m))
                let ls = (0..<cnt).map { min(max(labels[start + $0], 0), logits.def.cout - 1) }
                try logits.int8Channels(ls, of: xin, columns: (0..<cnt).map { 2 * $0 * pitch }, size: m, blocks: b,
                                        into: out.pointer + start * m * m, ws)
                block = b
            } else if logits.isInt8 {
                let a = bufs.take(logits.def.cout, xin.height, xin.width, q: nil, bound: bound(logits.def.cout * xin.height * xin.width))
                try logits.run(xin, into: a, ws)
                all = a
            }
            for r in 0..<cnt {
                let i = start + r
                let label = min(max(labels[i], 0), logits.def.cout - 1)
                let dst = out.pointer + i * m * m
                if block == nil { logits.channel(label, of: xin, column: 2 * r * pitch, size: m, all: all, into: dst, ws) }
            }
            em_sigmoid_f32(out.pointer + start * m * m, cnt * m * m)   // the batch's probabilities
            [up, xin].forEach(bufs.give)
            if let a = all { bufs.give(a) }
            if let b = block { bufs.give(b) }
        })
        return out
    }
}
