// Box branch of RoIHeads (torchvision roi_heads.py): the scorer (7x7 RoIAlign, TwoMLPHead,
// FastRCNNPredictor) runs the network description's roi_heads layers (Executor.boxScorer); then
// postprocess_detections: softmax, decode (10, 10, 5, 5), clip, drop the background, score >
// thresh (strict), remove boxes smaller than 1e-2, NMS 0.5 per class, keep the best 100.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

struct BoxHead {
    let numClasses: Int
    let coder = BoxCoder(10, 10, 5, 5)
    let nmsThresh = 0.5
    var detectionsPerImage = 100
    /// RoIs per box-head chunk: a multiple of 48 (x86 avx512vnni's GEMM panel) and of 8 (the
    /// aarch64 panels), so that only a run's last chunk has a partial panel (256 left 32 of every
    /// chunk's last 48 columns empty: 11% more box-head GEMM work on x86); never more chunks than 256.
    static let chunk = 288
    /// Bounds of the dynamic sizes (what a planning run reserves): RPN post-NMS proposals and
    /// detections per image.
    static let proposalBound = 1000
    static let detectionsPerImageBound = 100

    init(numClasses k: Int) { numClasses = k }

    /// Scores `rows` proposals (x1, y1, x2, y2 each) -> class logits [rows, K] and per-class deltas
    /// [rows, 4K]: RoI pooling + MLP + predictor (Executor.boxScorer).
    typealias Scorer = (_ boxes: UnsafePointer<Float>, _ rows: Int, _ logits: UnsafeMutablePointer<Float>,
                        _ deltas: UnsafeMutablePointer<Float>) throws -> Void

    /// Detections in resized-image coordinates, descending by score. The proposals are scored in
    /// chunks of `ws.boxChunk` RoIs (288; fewer under --max-memory) so that the pooled block
    /// stays small (14.5 MB float for 288).
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

        // softmax in place (the logits are read nowhere else), rows spread over the kernel threads
        let probs = logits.pointer
        em_softmax_rows_f32(probs, probs, r, Int32(k))
        let limit = detectionsPerImage
        let scratchBytes = BoxHead.scratchBytes(rows: r, classes: k, limit: limit)
        let scratch = ws.bytes(scratchBytes, reserve: BoxHead.scratchBytes(rows: rb, classes: k, limit: limit))
        return proposals.withUnsafeBufferPointer { pp in
            detections(probs: probs, deltas: deltas.pointer, proposals: pp.baseAddress!, rows: r, sizes: s,
                           scoreThresh: scoreThresh, scratch: UnsafeMutableRawPointer(scratch.pointer))
                ?? referenceDetections(probs: probs, deltas: deltas.pointer, proposals: pp.baseAddress!, rows: r,
                                       sizes: s, scoreThresh: scoreThresh)
        }
    }

    static func scratchBytes(rows r: Int, classes k: Int, limit: Int) -> Int {
        em_box_detections_scratch_bytes(r, Int32(k), Int32(limit)) + limit * 24
    }

    /// postprocess_detections after the softmax (probs [r, K], deltas [r, 4K], proposals [r, 4])
    /// when more than 1000 candidates pass the filters (torchvision's greedy-capable path):
    /// em_box_detections decodes lazily in score order and stops at detectionsPerImage kept;
    /// nil otherwise (then referenceDetections). `scratch`: scratchBytes(rows:classes:limit:).
    func detections(probs: UnsafePointer<Float>, deltas: UnsafePointer<Float>, proposals: UnsafePointer<Float>,
                    rows r: Int, sizes s: ImageSizes, scoreThresh: Float, scratch: UnsafeMutableRawPointer)
        -> (boxes: [Float], scores: [Float], labels: [Int])?
    {
        let k = numClasses, limit = detectionsPerImage
        let sb = em_box_detections_scratch_bytes(r, Int32(k), Int32(limit))
        let ob = (scratch + sb).assumingMemoryBound(to: Float.self)
        let os = (scratch + sb + limit * 16).assumingMemoryBound(to: Float.self)
        let ol = (scratch + sb + limit * 20).assumingMemoryBound(to: Int32.self)
        let kept = Int(em_box_detections(probs, deltas, proposals, r, Int32(k), scoreThresh, coder.wx, coder.wy,
                                         coder.ww, coder.wh, BoxCoder.xformClip, Float(s.resizedHeight),
                                         Float(s.resizedWidth), 1e-2, nmsThresh, Int32(limit), 1000, scratch, ob, os, ol))
        if kept < 0 { return nil }
        return (Array(UnsafeBufferPointer(start: ob, count: 4 * kept)), Array(UnsafeBufferPointer(start: os, count: kept)),
                (0..<kept).map { Int(ol[$0]) })
    }

    /// postprocess_detections after the softmax, plainly: every candidate decoded, then
    /// Boxes.batchedNMS (the spec of `detections`, and the path of 1000 candidates or fewer).
    func referenceDetections(probs: UnsafePointer<Float>, deltas: UnsafePointer<Float>, proposals: UnsafePointer<Float>,
                             rows r: Int, sizes s: ImageSizes, scoreThresh: Float)
        -> (boxes: [Float], scores: [Float], labels: [Int])
    {
        let k = numClasses
        var candBoxes: [Float] = [], candScores: [Float] = [], candLabels: [Int] = []
        var box = [Float](repeating: 0, count: 4)
        for i in 0..<r {
            for c in 1..<k {
                let score = probs[i * k + c]
                if !(score > scoreThresh) { continue }
                box.withUnsafeMutableBufferPointer { bp in
                    coder.decode(deltas + (i * k + c) * 4, box: proposals + 4 * i, into: bp.baseAddress!)
                    Boxes.clip(bp.baseAddress!, height: s.resizedHeight, width: s.resizedWidth)
                }
                if !box.withUnsafeBufferPointer({ Boxes.isLargeEnough($0.baseAddress!, minSize: 1e-2) }) { continue }
                candBoxes += box; candScores.append(score); candLabels.append(c)
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

extension Executor {
    /// BoxHead.Scorer: RoIAlign of the description's box pool on P2..P5 (uint8 HWC maps straight
    /// to the first layer's uint8 input; float maps to float), then its layers: the MLP chain and
    /// the float-output predictor layers, which write the class logits and the box deltas (in the
    /// description's order). A head that starts with convolutions (v2's FastRCNNConvFCHead) runs
    /// them on batches of RoIs laid side by side as the mask head does (one zero column between
    /// neighbours, re-zeroed after each layer), then flattens each RoI (C, H, W order, torch's
    /// Flatten) into the rows of its FC layers.
    func boxScorer(_ levels: [Act], sizes s: ImageSizes, _ ws: Workspace) -> BoxHead.Scorer {
        let defs = net.layers(in: .roi_heads)
        let pool = defs[0], weightDefs = defs.filter { $0.op.hasWeights && !$0.floatOutput }
        let convDefs = weightDefs.filter { if case .conv = $0.op { return true } else { return false } }
        let chainDefs = weightDefs.filter { $0.op == .linear }
        let predictors = defs.filter { $0.floatOutput }.map { layer($0.name) }
        guard case .roiAlign(let p, let sampling) = pool.op else { fatalError("box pool is not a RoIAlign") }
        let inF = pool.cout * p * p
        let maxChunk = max(ws.boxChunk, 1)   // the largest chunk BoxHead.run passes (planned at that bound)
        let bufs = HeadBuffers(ws)
        let pq = levels.first?.q != nil ? params(pool.name) : nil
        return { boxes, n, logits, deltas in
            let x = bufs.take(n, 1, inF, q: pq, bound: maxChunk * inF)
            if let q = pq {
                try MultiScaleRoIAlign.runU8(levels, boxes: boxes, count: n, sizes: s, output: p, sampling: sampling,
                                             outQ: q, out: x.u8, cstride: p * p, ystride: p, offset: { $0 * inF })
            } else {
                MultiScaleRoIAlign.run(levels, boxes: Array(UnsafeBufferPointer(start: boxes, count: 4 * n)), sizes: s,
                                       output: p, sampling: sampling, out: x.f32)
                ws.hook?.activation(pool.name, x.f32, x.count)
            }
            var rows = x
            if !convDefs.isEmpty {
                rows = try self.convRows(convDefs, x, rois: n, size: p, bufs, maxRows: maxChunk, ws)
                bufs.give(x)
            }
            let h = try self.chain(chainDefs, rows, bufs, bound: { $0 / n * maxChunk }, ws)
            for (l, out) in zip(predictors, [logits, deltas]) {
                let hin = h.matches(l.inputParams) ? h : bufs.take(h.channels, 1, h.width, q: l.inputParams, bound: maxChunk * h.width)
                if hin.raw != h.raw { h.convert(into: hin) }
                try l.run(hin, into: Act(storage: nil, raw: UnsafeMutableRawPointer(out), n, 1, l.def.cout, q: nil), ws)
                if hin.raw != h.raw { bufs.give(hin) }
            }
            bufs.give(h)
        }
    }
}

extension Executor {
    /// The convolutions `defs` (3x3, pad 1, each reading the previous one) on `n` RoIs of
    /// [C, p, p] given as rows `x` [n, 1, C*p*p]: batches of RoIs side by side with one zero
    /// (zero-point) column between neighbours, re-zeroed after every layer a padded convolution
    /// reads; the last layer's output flattened back into rows [n, 1, C'*p*p] (torch's Flatten order).
    func convRows(_ defs: [LayerDef], _ x: Act, rois n: Int, size p: Int, _ bufs: HeadBuffers, maxRows: Int,
                  _ ws: Workspace) throws -> Act {
        let c = x.width / (p * p), pitch = p + 1
        let cOut = defs.last!.cout, inF2 = cOut * p * p
        let outQ = layer(defs.last!.name).outputParams
        let rows = bufs.take(n, 1, inF2, q: outQ, bound: maxRows * inF2)
        try sideBySide(defs, rois: n, channels: c, size: p, q: x.q, bufs, ws, fill: { start, cnt, sb in
            let es = x.q == nil ? 4 : 1, w = sb.width
            for r in 0..<cnt {
                for row in 0..<(c * p) {
                    (sb.raw + (row * w + r * pitch) * es).copyMemory(from: x.raw + ((start + r) * x.width + row * p) * es, byteCount: p * es)
                }
            }
        }, use: { start, cnt, y, _ in
            let eo = y.q == nil ? 4 : 1, w = y.width
            for r in 0..<cnt {
                for row in 0..<(cOut * p) {
                    (rows.raw + ((start + r) * inF2 + row * p) * eo).copyMemory(from: y.raw + (row * w + r * pitch) * eo, byteCount: p * eo)
                }
            }
            bufs.give(y)
        })
        return rows
    }
}
