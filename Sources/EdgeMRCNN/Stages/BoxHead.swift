// Box branch of RoIHeads (torchvision roi_heads.py + TwoMLPHead + FastRCNNPredictor): 7x7
// RoIAlign, flatten, fc6 + ReLU, fc7 + ReLU, class scores and per-class deltas; then
// postprocess_detections: softmax, decode (10, 10, 5, 5), clip, drop the background, score >
// thresh (strict), remove boxes smaller than 1e-2, NMS 0.5 per class, keep the best 100.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct BoxHead {
    let fc6: Linear, fc7: Linear, clsScore: Linear, bboxPred: Linear
    let numClasses: Int
    let coder = BoxCoder(10, 10, 5, 5)
    let nmsThresh = 0.5
    var detectionsPerImage = 100
    static let chunk = 256
    /// Bounds of the dynamic sizes (what a planning run reserves): RPN post-NMS proposals and
    /// detections per image.
    static let proposalBound = 1000
    static let detectionsPerImageBound = 100
    /// Activation name of the pooled RoI features (the input of fc6).
    static let poolName = "roi_heads.box_roi_pool"

    /// bindWeights false: no float weights are bound (the int8 pipeline scores with its own
    /// layers and uses only the post-processing here).
    init(_ store: TensorStore, numClasses k: Int, source: String, bindWeights: Bool = true) throws {
        func linear(_ name: String, _ inF: Int, _ outF: Int) throws -> Linear {
            bindWeights ? try Linear(store, name, inF: inF, outF: outF, source: source) : Linear(name: name)
        }
        fc6 = try linear("roi_heads.box_head.fc6", 256 * 7 * 7, 1024)
        fc7 = try linear("roi_heads.box_head.fc7", 1024, 1024)
        clsScore = try linear("roi_heads.box_predictor.cls_score", 1024, k)
        bboxPred = try linear("roi_heads.box_predictor.bbox_pred", 1024, 4 * k)
        numClasses = k
    }

    /// Scores `rows` proposals (x1, y1, x2, y2 each) -> class logits [rows, K] and per-class deltas
    /// [rows, 4K]: RoI pooling + MLP + predictor. The float one is `floatScorer`; the int8
    /// network supplies its own (Int8Network.boxScorer).
    typealias Scorer = (_ boxes: UnsafePointer<Float>, _ rows: Int, _ logits: UnsafeMutablePointer<Float>,
                        _ deltas: UnsafeMutablePointer<Float>) throws -> Void

    /// 7x7 RoIAlign on float P2..P5, fc6 + ReLU, fc7 + ReLU, cls_score, bbox_pred.
    func floatScorer(_ features: [FeatureMap], sizes s: ImageSizes, _ ws: Workspace) -> Scorer {
        let levels = Array(features.prefix(4))
        var pooled: FloatBuffer?, h6: FloatBuffer?, h7: FloatBuffer?
        let maxChunk = max(ws.boxChunk, 1)   // the largest chunk `run` passes (planned at that bound)
        return { boxes, n, logits, deltas in
            if (pooled?.count ?? 0) < n * 256 * 49 {
                pooled = ws.floats(n * 256 * 49, reserve: maxChunk * 256 * 49)
                h6 = ws.floats(n * 1024, reserve: maxChunk * 1024); h7 = ws.floats(n * 1024, reserve: maxChunk * 1024)
            }
            let pooled = pooled!, h6 = h6!, h7 = h7!
            MultiScaleRoIAlign.run(levels, boxes: Array(UnsafeBufferPointer(start: boxes, count: 4 * n)), sizes: s,
                                   output: 7, out: pooled.pointer)
            ws.hook?.activation(BoxHead.poolName, pooled.pointer, n * 256 * 49)
            fc6.run(pooled.pointer, rows: n, out: h6.pointer, relu: true, hook: ws.hook)
            fc7.run(h6.pointer, rows: n, out: h7.pointer, relu: true, hook: ws.hook)
            clsScore.run(h7.pointer, rows: n, out: logits, relu: false)
            bboxPred.run(h7.pointer, rows: n, out: deltas, relu: false)
        }
    }

    /// Detections in resized-image coordinates, descending by score. The proposals are scored in
    /// chunks of `ws.boxChunk` RoIs (256; fewer under --max-memory) so that the pooled block
    /// stays small (12.8 MB float for 256).
    func run(proposals: [Float], sizes s: ImageSizes, scoreThresh: Float, _ ws: Workspace,
             scorer: Scorer) throws -> (boxes: [Float], scores: [Float], labels: [Int]) {
        let r = proposals.count / 4
        if r == 0 { return ([], [], []) }
        let k = numClasses
        let rb = max(r, BoxHead.proposalBound)
        let logits = ws.floats(r * k, reserve: rb * k), deltas = ws.floats(r * 4 * k, reserve: rb * 4 * k)
        let chunk = max(ws.boxChunk, 1)
        try proposals.withUnsafeBufferPointer { pp in
            var start = 0
            while start < r {
                let n = min(chunk, r - start)
                try scorer(pp.baseAddress! + 4 * start, n, logits.pointer + start * k, deltas.pointer + start * 4 * k)
                start += n
            }
        }

        var candBoxes: [Float] = [], candScores: [Float] = [], candLabels: [Int] = []
        var probs = [Float](repeating: 0, count: k)
        var box = [Float](repeating: 0, count: 4)
        proposals.withUnsafeBufferPointer { pp in
            for i in 0..<r {
                let lg = logits.pointer + i * k
                var m = lg[0]
                for c in 1..<k { m = max(m, lg[c]) }
                var sum: Float = 0
                for c in 0..<k { probs[c] = expf(lg[c] - m); sum += probs[c] }
                let inv = 1 / sum
                for c in 0..<k { probs[c] = probs[c] * inv }
                for c in 1..<k {
                    let score = probs[c]
                    if !(score > scoreThresh) { continue }
                    box.withUnsafeMutableBufferPointer { bp in
                        coder.decode(deltas.pointer + (i * k + c) * 4, box: pp.baseAddress! + 4 * i, into: bp.baseAddress!)
                        Boxes.clip(bp.baseAddress!, height: s.resizedHeight, width: s.resizedWidth)
                    }
                    if !box.withUnsafeBufferPointer({ Boxes.isLargeEnough($0.baseAddress!, minSize: 1e-2) }) { continue }
                    candBoxes += box; candScores.append(score); candLabels.append(c)
                }
            }
        }
        let keep = candBoxes.withUnsafeBufferPointer { bp in
            candScores.withUnsafeBufferPointer { sp in
                Boxes.batchedNMS(boxes: bp.baseAddress!, scores: sp.baseAddress!, groups: candLabels,
                                 iouThreshold: nmsThresh, limit: detectionsPerImage)
            }
        }
        var boxes: [Float] = [], scores: [Float] = [], labels: [Int] = []
        for i in keep.prefix(detectionsPerImage) {
            boxes += candBoxes[(4 * i)..<(4 * i + 4)]; scores.append(candScores[i]); labels.append(candLabels[i])
        }
        return (boxes, scores, labels)
    }
}
