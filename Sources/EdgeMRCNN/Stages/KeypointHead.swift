// Keypoint branch (torchvision KeypointRCNNHeads + KeypointRCNNPredictor + keypointrcnn_inference):
// the description's keypoints layers — 14x14 RoIAlign, 8 conv 3x3 512 + ReLU, the 4x4/2 pad 1
// transposed conv to the keypoint logits (float output) — run as one chain on RoIs side by side
// (as the mask head: one zero column between neighbours; the transposed conv's taps that reach
// a separator column read zeros, so every RoI's 28x28 logits are its own), then per RoI in float:
// the bilinear x2 upsampling to 56x56 and heatmaps_to_keypoints (KeypointDecode), and
// transform.postprocess' resize_keypoints (x · original/resized width, same for y, float32).

extension Executor {
    /// The keypoints of each box (resized-image coordinates, as torchvision pools them), in
    /// original-image pixels: [n][numKeypoints].
    func keypoints(_ levels: [Act], boxes: [Float], sizes s: ImageSizes, _ ws: Workspace) throws -> [[Keypoint]] {
        let n = boxes.count / 4
        let defs = net.layers(in: .keypoints)
        if n == 0 || defs.isEmpty { return [] }
        let pool = defs[0], chainDefs = Array(defs.dropFirst())
        guard case .roiAlign(let p, let sampling) = pool.op else { throw EdgeError("keypoint pool is not a RoIAlign") }
        let k = chainDefs.last!.cout
        let c = pool.cout, pitch = p + 1
        let (pq, pooled) = poolRoIs(pool, rois: n, levels: levels, boxes: boxes, sizes: s, ws)
        // per-RoI float buffers: the 28x28 logits, the 56x56 heatmaps, the bicubic rows
        let lo = 2 * p, hm = 4 * p
        let lowres = ws.floats(k * lo * lo), heat = ws.floats(k * hm * hm)
        let maxW = Float(max(s.resizedWidth, 1) + 2)
        let rowsNeeded = { (w: Float) in KeypointDecode.scratchCount(mapHeight: hm, roiWidth: w) }
        var widest: Float = 1
        for i in 0..<n { widest = max(widest, boxes[4 * i + 2] - boxes[4 * i]) }   // boxes are clipped to the image
        let rows = ws.floats(rowsNeeded(widest), reserve: rowsNeeded(maxW))
        let rw = s.ratioWidth, rh = s.ratioHeight

        let bufs = HeadBuffers(ws)
        var out: [[Keypoint]] = []
        out.reserveCapacity(n)
        var kps = [Keypoint](repeating: Keypoint(x: 0, y: 0, score: 0), count: k)
        try sideBySide(chainDefs, rois: n, channels: c, size: p, q: pq, bufs, ws, fill: { start, cnt, x in
            try fillPooled(x, levels: levels, boxes: boxes, pooled: pooled, start: start, count: cnt,
                           channels: c, size: p, sampling: sampling, sizes: s)
        }, use: { start, cnt, logits, _ in
            // logits: float [k, 2p, 2w]; RoI r's 2p x 2p block starts at column 2 r pitch
            precondition(logits.q == nil && logits.height == lo, "keypoint logits must be float [K, 28, W]")
            for r in 0..<cnt {
                let i = start + r
                for ch in 0..<k {
                    for y in 0..<lo {
                        (lowres.pointer + (ch * lo + y) * lo).update(from: logits.f32 + (ch * lo + y) * logits.width + 2 * r * pitch,
                                                                     count: lo)
                    }
                }
                KeypointDecode.upsample2x(lowres.pointer, channels: k, height: lo, width: lo, into: heat.pointer)
                let b = (boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3])
                kps.withUnsafeMutableBufferPointer { kp in
                    KeypointDecode.decode(maps: heat.pointer, keypoints: k, height: hm, width: hm, box: b,
                                          scratch: rows.pointer, into: kp.baseAddress!)
                }
                out.append(kps.map { Keypoint(x: $0.x * rw, y: $0.y * rh, score: $0.score) })
            }
            bufs.give(logits)
        })
        return out
    }
}
