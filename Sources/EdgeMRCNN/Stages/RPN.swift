// Region proposal network at inference (torchvision models/detection/rpn.py): the head (the
// description's rpn layers, Executor.rpnHeads) gives objectness and box deltas per level,
// reordered [A*C, H, W] -> (H, W, A); per level the top 1000 anchors by logit; decode (weights 1,1,1,1); sigmoid; clip;
// remove boxes smaller than 1e-3; score >= 0; NMS 0.7 per level; keep the best 1000.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

struct RPN {
    let anchorsPerLocation: Int
    let preNMSTopN = 1000
    let postNMSTopN = 1000
    let nmsThresh = 0.7
    let minSize: Float = 1e-3
    let coder = BoxCoder(1, 1, 1, 1)

    /// The base anchors of every level (Anchors.base), made once.
    static let baseAnchors: [[Float]] = Anchors.sizes.map { Anchors.base(size: $0) }

    /// Proposals from the head outputs of every level: objectness logits [A, H, W] and box
    /// deltas [4A, H, W] (float; the int8 pipeline passes its dequantised outputs). The top-k
    /// selection (em_topk_anchors) and the NMS (em_greedy_nms) run in C on one planned scratch
    /// buffer; only the selected anchors are made (the same floats as Anchors.grid) and decoded.
    /// A NaN logit or score takes `reference`, the plain version.
    func proposals(_ heads: [(logits: FeatureMap, deltas: FeatureMap)], sizes s: ImageSizes, _ ws: Workspace)
        -> (boxes: [Float], scores: [Float])
    {
        let a = anchorsPerLocation
        let counts = heads.map { min(preNMSTopN, $0.logits.height * $0.logits.width * a) }
        let total = counts.reduce(0, +), kmax = counts.max() ?? 0
        if total == 0 || heads.count > Anchors.sizes.count || a != Anchors.aspectRatios.count {
            return reference(heads, sizes: s)
        }
        func up(_ b: Int) -> Int { (b + 63) & ~63 }
        let heapB = up(em_topk_anchors_scratch_bytes(Int32(kmax))), topB = up(kmax * 4), boxB = up(total * 16), scoreB = up(total * 4)
        let groupB = up(total * 4), keepB = up(postNMSTopN * 4)
        let nmsB = up(em_greedy_nms_scratch_bytes(Int32(total), Int32(postNMSTopN), Int32(heads.count)))
        let tmpB = 64
        let buf = ws.bytes(heapB + topB + boxB + scoreB + groupB + keepB + nmsB + tmpB)
        let raw = UnsafeMutableRawPointer(buf.pointer)
        let heap = raw.assumingMemoryBound(to: UInt64.self)
        let top = (raw + heapB).assumingMemoryBound(to: Int32.self)
        let cb = (raw + heapB + topB).assumingMemoryBound(to: Float.self)
        let cs = (raw + heapB + topB + boxB).assumingMemoryBound(to: Float.self)
        let cg = (raw + heapB + topB + boxB + scoreB).assumingMemoryBound(to: Int32.self)
        let keepP = (raw + heapB + topB + boxB + scoreB + groupB).assumingMemoryBound(to: Int32.self)
        let nmsScratch = raw + heapB + topB + boxB + scoreB + groupB + keepB
        let tmp = (nmsScratch + nmsB).assumingMemoryBound(to: Float.self)   // anchor [4], deltas [4]
        var nc = 0
        for (li, head) in heads.enumerated() {
            let (logits, deltas) = head
            let fh = logits.height, fw = logits.width, hw = fh * fw
            let lp = logits.pointer, dp = deltas.pointer
            let got = Int(em_topk_anchors(lp, hw, Int32(a), Int32(counts[li]), heap, top))
            if got < 0 { return reference(heads, sizes: s) }
            let b = Self.baseAnchors[li]
            let sy = s.paddedHeight / fh, sx = s.paddedWidth / fw
            let anchor = tmp, d = tmp + 4
            for t in 0..<got {
                let i = Int(top[t])
                let pix = i / a, ai = i % a
                Anchors.anchor(b, ratio: ai, x: pix % fw, y: pix / fw, strideX: sx, strideY: sy, into: anchor)
                for c in 0..<4 { d[c] = dp[(ai * 4 + c) * hw + pix] }
                let o = cb + 4 * nc
                coder.decode(d, box: anchor, into: o)
                Boxes.clip(o, height: s.resizedHeight, width: s.resizedWidth)
                let logit = lp[ai * hw + pix]
                let score = 1 / (1 + expf(-logit))
                if Boxes.isLargeEnough(o, minSize: minSize) && score >= 0 {
                    cs[nc] = score; cg[nc] = Int32(li); nc += 1
                }
            }
        }
        var kept = -1
        if nc > 1000 {
            kept = Int(em_greedy_nms(cb, cs, cg, Int32(nc), Int32(heads.count), nmsThresh, Int32(postNMSTopN),
                                     nmsScratch, keepP))
        }
        var boxes: [Float] = [], scores: [Float] = []
        if kept >= 0 {
            boxes.reserveCapacity(kept * 4); scores.reserveCapacity(kept)
            for t in 0..<kept {
                let i = Int(keepP[t])
                boxes.append(contentsOf: UnsafeBufferPointer(start: cb + 4 * i, count: 4)); scores.append(cs[i])
            }
            return (boxes, scores)
        }
        // torchvision's small-count path (or a NaN score): Boxes.batchedNMS
        let keep = Boxes.batchedNMS(boxes: cb, scores: cs, groups: (0..<nc).map { Int(cg[$0]) },
                                    iouThreshold: nmsThresh, limit: postNMSTopN)
        for i in keep.prefix(postNMSTopN) {
            boxes.append(contentsOf: UnsafeBufferPointer(start: cb + 4 * i, count: 4)); scores.append(cs[i])
        }
        return (boxes, scores)
    }

    /// The plain version of `proposals` (every anchor made by Anchors.grid, a Swift heap for the
    /// top-k): the spec of the C path, and what runs on a NaN logit.
    func reference(_ heads: [(logits: FeatureMap, deltas: FeatureMap)], sizes s: ImageSizes)
        -> (boxes: [Float], scores: [Float])
    {
        let a = anchorsPerLocation
        var candBoxes: [Float] = []
        var candScores: [Float] = []
        var candLevel: [Int] = []
        for (li, head) in heads.enumerated() {
            let (logits, deltas) = head
            let p = logits
            let hw = p.height * p.width
            let n = hw * a
            // anchor index i = (y * W + x) * A + a  <->  channel a, pixel y * W + x
            let top = Self.topK(pixels: hw, anchors: a, k: min(preNMSTopN, n)) { pix, ai in logits.pointer[ai * hw + pix] }
            let anchors = Anchors.grid(level: li, featureHeight: p.height, featureWidth: p.width,
                                       paddedHeight: s.paddedHeight, paddedWidth: s.paddedWidth)
            var d = [Float](repeating: 0, count: 4)
            var b = [Float](repeating: 0, count: 4)
            for i in top {
                let pix = i / a, ai = i % a
                for c in 0..<4 { d[c] = deltas.pointer[(ai * 4 + c) * hw + pix] }
                anchors.withUnsafeBufferPointer { an in
                    d.withUnsafeBufferPointer { dp in
                        b.withUnsafeMutableBufferPointer { bp in
                            coder.decode(dp.baseAddress!, box: an.baseAddress! + 4 * i, into: bp.baseAddress!)
                            Boxes.clip(bp.baseAddress!, height: s.resizedHeight, width: s.resizedWidth)
                        }
                    }
                }
                let logit = logits.pointer[ai * hw + pix]
                let score = 1 / (1 + expf(-logit))
                let keep = b.withUnsafeBufferPointer { Boxes.isLargeEnough($0.baseAddress!, minSize: minSize) }
                if keep && score >= 0 {
                    candBoxes += b; candScores.append(score); candLevel.append(li)
                }
            }
        }
        let keep = candBoxes.withUnsafeBufferPointer { bp in
            candScores.withUnsafeBufferPointer { sp in
                Boxes.batchedNMS(boxes: bp.baseAddress!, scores: sp.baseAddress!, groups: candLevel,
                                 iouThreshold: nmsThresh, limit: postNMSTopN)
            }
        }
        let kept = keep.prefix(postNMSTopN)
        var boxes: [Float] = []
        boxes.reserveCapacity(kept.count * 4)
        var scores: [Float] = []
        for i in kept {
            boxes += candBoxes[(4 * i)..<(4 * i + 4)]; scores.append(candScores[i])
        }
        return (boxes, scores)
    }

    /// Indices of the k largest values, descending (ties: lower index first), via a bounded min-heap.
    static func topK(count n: Int, k: Int, _ value: (Int) -> Float) -> [Int] {
        var h = TopKHeap(k)
        if k <= 0 { return [] }
        for i in 0..<n { h.offer(value(i), i) }
        return h.sorted()
    }

    /// topK over the anchor indices i = pix * a + ai of `hw` pixels with `a` anchors each, offered
    /// in the same order (i ascending) without dividing i: value(pix, ai).
    static func topK(pixels hw: Int, anchors a: Int, k: Int, _ value: (_ pix: Int, _ ai: Int) -> Float) -> [Int] {
        var h = TopKHeap(k)
        if k <= 0 { return [] }
        var i = 0
        for pix in 0..<hw {
            for ai in 0..<a { h.offer(value(pix, ai), i); i += 1 }
        }
        return h.sorted()
    }
}

/// The bounded min-heap of RPN.topK: (value, index) pairs, "worse" = smaller value, or equal value
/// and larger index; the root is the worst kept.
struct TopKHeap {
    private var hv = [Float](), hi = [Int]()
    private let k: Int

    init(_ k: Int) {
        self.k = max(k, 0)
        hv.reserveCapacity(self.k); hi.reserveCapacity(self.k)
    }

    @inline(__always) private static func worse(_ v1: Float, _ i1: Int, _ v2: Float, _ i2: Int) -> Bool {
        v1 < v2 || (v1 == v2 && i1 > i2)
    }

    private mutating func siftDown(_ start: Int) {
        var p = start
        let m = hv.count
        while true {
            let l = 2 * p + 1
            if l >= m { break }
            var c = l
            if l + 1 < m && Self.worse(hv[l + 1], hi[l + 1], hv[l], hi[l]) { c = l + 1 }
            if Self.worse(hv[c], hi[c], hv[p], hi[p]) {
                hv.swapAt(c, p); hi.swapAt(c, p); p = c
            } else { break }
        }
    }

    @inline(__always) mutating func offer(_ v: Float, _ i: Int) {
        if hv.count < k {
            hv.append(v); hi.append(i)
            var c = hv.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                if Self.worse(hv[c], hi[c], hv[p], hi[p]) { hv.swapAt(c, p); hi.swapAt(c, p); c = p } else { break }
            }
        } else if k > 0 && Self.worse(hv[0], hi[0], v, i) {
            hv[0] = v; hi[0] = i
            siftDown(0)
        }
    }

    /// The kept indices, best first.
    func sorted() -> [Int] {
        var order = Array(0..<hv.count)
        order.sort { Self.worse(hv[$1], hi[$1], hv[$0], hi[$0]) }
        return order.map { hi[$0] }
    }
}
