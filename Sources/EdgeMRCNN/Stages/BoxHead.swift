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

    /// withMLP false: fc6 is not bound (the int8 pipeline runs the MLP with its own predictor).
    init(_ store: TensorStore, numClasses k: Int, source: String, withMLP: Bool = true) throws {
        fc6 = withMLP ? try Linear(store, "roi_heads.box_head.fc6", inF: 256 * 7 * 7, outF: 1024, source: source)
            : Linear(name: "roi_heads.box_head.fc6")
        fc7 = try Linear(store, "roi_heads.box_head.fc7", inF: 1024, outF: 1024, source: source)
        clsScore = try Linear(store, "roi_heads.box_predictor.cls_score", inF: 1024, outF: k, source: source)
        bboxPred = try Linear(store, "roi_heads.box_predictor.bbox_pred", inF: 1024, outF: 4 * k, source: source)
        numClasses = k
    }

    /// Detections in resized-image coordinates, descending by score.
    /// The MLP + predictor on `rows` pooled RoIs [rows, 256*7*7] -> logits [rows, K], deltas
    /// [rows, 4K] (the int8 pipeline supplies its own).
    typealias Predictor = (_ pooled: UnsafeMutablePointer<Float>, _ rows: Int, _ logits: UnsafeMutablePointer<Float>,
                           _ deltas: UnsafeMutablePointer<Float>) -> Void

    func run(_ features: [FeatureMap], proposals: [Float], sizes s: ImageSizes, scoreThresh: Float,
             _ ws: Workspace, predictor: Predictor? = nil) -> (boxes: [Float], scores: [Float], labels: [Int]) {
        let r = proposals.count / 4
        if r == 0 { return ([], [], []) }
        let k = numClasses
        // RoIs in chunks so that the pooled [chunk, 12544] block stays small (12.8 MB for 256).
        let maxChunk = max(ws.boxChunk, 1)
        let chunk = min(r, maxChunk)
        let pooled = ws.floats(chunk * 256 * 49, reserve: maxChunk * 256 * 49)
        let h6 = ws.floats(chunk * 1024, reserve: maxChunk * 1024), h7 = ws.floats(chunk * 1024, reserve: maxChunk * 1024)
        let rb = max(r, BoxHead.proposalBound)
        let logits = ws.floats(r * k, reserve: rb * k), deltas = ws.floats(r * 4 * k, reserve: rb * 4 * k)
        let levels = Array(features.prefix(4))
        var start = 0
        while start < r {
            let n = min(chunk, r - start)
            MultiScaleRoIAlign.run(levels, boxes: Array(proposals[(4 * start)..<(4 * (start + n))]), sizes: s,
                                   output: 7, out: pooled.pointer)
            if let predictor {
                predictor(pooled.pointer, n, logits.pointer + start * k, deltas.pointer + start * 4 * k)
                start += n
                continue
            }
            ws.hook?.activation(BoxHead.poolName, pooled.pointer, n * 256 * 49)
            fc6.run(pooled.pointer, rows: n, out: h6.pointer, relu: true, hook: ws.hook)
            fc7.run(h6.pointer, rows: n, out: h7.pointer, relu: true, hook: ws.hook)
            clsScore.run(h7.pointer, rows: n, out: logits.pointer + start * k, relu: false)
            bboxPred.run(h7.pointer, rows: n, out: deltas.pointer + start * 4 * k, relu: false)
            start += n
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
                                 iouThreshold: nmsThresh)
            }
        }
        var boxes: [Float] = [], scores: [Float] = [], labels: [Int] = []
        for i in keep.prefix(detectionsPerImage) {
            boxes += candBoxes[(4 * i)..<(4 * i + 4)]; scores.append(candScores[i]); labels.append(candLabels[i])
        }
        return (boxes, scores, labels)
    }
}
