// Box utilities with torchvision's exact float32 semantics (models/detection/_utils.py BoxCoder,
// ops/boxes.py clip/remove_small/batched_nms, csrc/ops/cpu/nms_kernel.cpp). Boxes are flat
// [x1, y1, x2, y2] Float arrays.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// torchvision BoxCoder (decode only), with bbox_xform_clip = log(1000/16).
public struct BoxCoder {
    public let wx: Float, wy: Float, ww: Float, wh: Float
    public static let xformClip = Float(log(1000.0 / 16.0))

    public init(_ wx: Float, _ wy: Float, _ ww: Float, _ wh: Float) {
        self.wx = wx; self.wy = wy; self.ww = ww; self.wh = wh
    }

    /// Decodes deltas d (4 values at d[0..3]) relative to box b (4 values) into out (4 values).
    @inline(__always)
    public func decode(_ d: UnsafePointer<Float>, box b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let width = b[2] - b[0]
        let height = b[3] - b[1]
        let cx = b[0] + 0.5 * width
        let cy = b[1] + 0.5 * height
        let dx = d[0] / wx
        let dy = d[1] / wy
        let dw = min(d[2] / ww, BoxCoder.xformClip)
        let dh = min(d[3] / wh, BoxCoder.xformClip)
        let pcx = dx * width + cx
        let pcy = dy * height + cy
        let pw = expf(dw) * width
        let ph = expf(dh) * height
        let hw = 0.5 * pw
        let hh = 0.5 * ph
        out[0] = pcx - hw
        out[1] = pcy - hh
        out[2] = pcx + hw
        out[3] = pcy + hh
    }

    /// Array convenience: decode one box.
    public func decode(deltas: [Float], box: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: 4)
        deltas.withUnsafeBufferPointer { d in
            box.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in decode(d.baseAddress!, box: b.baseAddress!, into: o.baseAddress!) }
            }
        }
        return out
    }
}

public enum Boxes {
    /// clip_boxes_to_image: x to [0, width], y to [0, height].
    @inline(__always)
    public static func clip(_ b: UnsafeMutablePointer<Float>, height: Int, width: Int) {
        let w = Float(width), h = Float(height)
        b[0] = min(max(b[0], 0), w); b[2] = min(max(b[2], 0), w)
        b[1] = min(max(b[1], 0), h); b[3] = min(max(b[3], 0), h)
    }

    /// remove_small_boxes: keep iff (x2 - x1) >= minSize and (y2 - y1) >= minSize.
    @inline(__always)
    public static func isLargeEnough(_ b: UnsafePointer<Float>, minSize: Float) -> Bool {
        (b[2] - b[0]) >= minSize && (b[3] - b[1]) >= minSize
    }

    /// Indices sorted by score descending (ties: lower index first; torch leaves ties unspecified).
    static func orderByScore(_ scores: UnsafePointer<Float>, _ idx: [Int]) -> [Int] {
        idx.sorted { a, b in
            let sa = scores[a], sb = scores[b]
            return sa > sb || (sa == sb && a < b)
        }
    }

    /// torchvision nms (CPU kernel): greedy in score order; suppress j when IoU(i, j) > thr.
    /// `boxes` [n * 4] and `scores` [n]; `subset` the indices to consider (all if nil).
    /// Returns kept indices in descending score order.
    public static func nms(boxes: UnsafePointer<Float>, scores: UnsafePointer<Float>, subset: [Int],
                           iouThreshold: Double, offsets: UnsafePointer<Float>? = nil) -> [Int] {
        let order = orderByScore(scores, subset)
        let n = order.count
        if n == 0 { return [] }
        // Gather in sorted order for locality.
        var x1 = [Float](repeating: 0, count: n), y1 = x1, x2 = x1, y2 = x1, area = x1
        for (k, i) in order.enumerated() {
            let o = offsets?[i] ?? 0
            x1[k] = boxes[4 * i] + o; y1[k] = boxes[4 * i + 1] + o
            x2[k] = boxes[4 * i + 2] + o; y2[k] = boxes[4 * i + 3] + o
            area[k] = (x2[k] - x1[k]) * (y2[k] - y1[k])
        }
        var suppressed = [Bool](repeating: false, count: n)
        var keep: [Int] = []
        x1.withUnsafeBufferPointer { x1 in y1.withUnsafeBufferPointer { y1 in
        x2.withUnsafeBufferPointer { x2 in y2.withUnsafeBufferPointer { y2 in
        area.withUnsafeBufferPointer { area in suppressed.withUnsafeMutableBufferPointer { sup in
            for i in 0..<n {
                if sup[i] { continue }
                keep.append(order[i])
                let ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], iarea = area[i]
                var j = i + 1
                while j < n {
                    if !sup[j] {
                        let xx1 = max(ix1, x1[j]), yy1 = max(iy1, y1[j])
                        let xx2 = min(ix2, x2[j]), yy2 = min(iy2, y2[j])
                        let w = max(0, xx2 - xx1), h = max(0, yy2 - yy1)
                        let inter = w * h
                        let ovr = inter / (iarea + area[j] - inter)
                        if Double(ovr) > iouThreshold { sup[j] = true }
                    }
                    j += 1
                }
            }
        }}}}}}
        return keep
    }

    /// torchvision batched_nms: NMS independently per group id. Like torchvision on CPU, more
    /// than 1000 boxes run NMS per group and sort the union by score; fewer use the coordinate
    /// offset trick (boxes + id * (max coordinate + 1)), whose float rounding we reproduce.
    /// `limit`: only the first `limit` kept indices are wanted (torchvision's keep[:k] after
    /// batched_nms). Above 1000 boxes this runs greedily in global score order against the kept
    /// boxes of each group and stops at `limit`: exactly the per-group NMS result cut to `limit`
    /// (a box's fate depends only on the higher-ranked boxes of its group, and the IoU is computed
    /// with the same operands in the same order), at O(n * kept) instead of O(n^2) per group.
    public static func batchedNMS(boxes: UnsafePointer<Float>, scores: UnsafePointer<Float>, groups: [Int],
                                  iouThreshold: Double, limit: Int? = nil) -> [Int] {
        let n = groups.count
        if n == 0 { return [] }
        if n > 1000, let limit {
            return greedyBatchedNMS(boxes: boxes, scores: scores, groups: groups, iouThreshold: iouThreshold,
                                    limit: limit)
        }
        if n > 1000 {
            var byGroup: [Int: [Int]] = [:]
            for i in 0..<n { byGroup[groups[i], default: []].append(i) }
            var kept: [Int] = []
            for g in byGroup.keys.sorted() {
                guard let members = byGroup[g] else { continue }
                kept += nms(boxes: boxes, scores: scores, subset: members, iouThreshold: iouThreshold)
            }
            kept.sort()
            return orderByScore(scores, kept)
        }
        var maxCoord = -Float.infinity
        for i in 0..<(4 * n) { maxCoord = max(maxCoord, boxes[i]) }
        let offsets = groups.map { Float($0) * (maxCoord + 1) }
        return offsets.withUnsafeBufferPointer { off in
            nms(boxes: boxes, scores: scores, subset: Array(0..<n), iouThreshold: iouThreshold, offsets: off.baseAddress)
        }
    }

    private struct KeptBoxes { var x1: [Float] = [], y1: [Float] = [], x2: [Float] = [], y2: [Float] = [], area: [Float] = [] }

    static func greedyBatchedNMS(boxes: UnsafePointer<Float>, scores: UnsafePointer<Float>, groups: [Int],
                                 iouThreshold: Double, limit: Int) -> [Int] {
        var order = ScoreOrder(scores, count: groups.count)
        var slotOf: [Int: Int] = [:]
        var kept: [KeptBoxes] = []
        var keep: [Int] = []
        keep.reserveCapacity(min(limit, groups.count))
        while keep.count < limit, let j = order.next() {
            let jx1 = boxes[4 * j], jy1 = boxes[4 * j + 1], jx2 = boxes[4 * j + 2], jy2 = boxes[4 * j + 3]
            let jarea = (jx2 - jx1) * (jy2 - jy1)
            let slot: Int
            if let s = slotOf[groups[j]] { slot = s } else {
                slot = kept.count; slotOf[groups[j]] = slot; kept.append(KeptBoxes())
            }
            let suppressed = kept[slot].x1.withUnsafeBufferPointer { x1 in kept[slot].y1.withUnsafeBufferPointer { y1 in
                kept[slot].x2.withUnsafeBufferPointer { x2 in kept[slot].y2.withUnsafeBufferPointer { y2 in
                kept[slot].area.withUnsafeBufferPointer { area -> Bool in
                    for i in 0..<x1.count {
                        // as nms: i is the kept (higher-ranked) box, j the candidate
                        let xx1 = max(x1[i], jx1), yy1 = max(y1[i], jy1)
                        let xx2 = min(x2[i], jx2), yy2 = min(y2[i], jy2)
                        let w = max(0, xx2 - xx1), h = max(0, yy2 - yy1)
                        let inter = w * h
                        let ovr = inter / (area[i] + jarea - inter)
                        if Double(ovr) > iouThreshold { return true }
                    }
                    return false
                }}}}}
            if suppressed { continue }
            kept[slot].x1.append(jx1); kept[slot].y1.append(jy1); kept[slot].x2.append(jx2)
            kept[slot].y2.append(jy2); kept[slot].area.append(jarea)
            keep.append(j)
        }
        return keep
    }

    /// The indices 0..<n in orderByScore's order (score descending, ties: lower index first),
    /// produced one at a time: a binary min-heap of keys (the score's bits mapped to an unsigned
    /// order, inverted, above the index), so taking the first m costs O(n + m log n) instead of a
    /// full sort. Without NaN scores the order is total, so it is exactly orderByScore's; with a
    /// NaN score (no strict order) it is orderByScore's sort itself.
    struct ScoreOrder {
        private var keys: [UInt64] = []
        private var sorted: [Int]? = nil
        private var taken = 0

        init(_ scores: UnsafePointer<Float>, count n: Int) {
            for i in 0..<n where scores[i].isNaN {
                sorted = Boxes.orderByScore(scores, Array(0..<n))
                return
            }
            keys = [UInt64](unsafeUninitializedCapacity: n) { buf, done in
                for i in 0..<n {
                    let b = (scores[i] + 0).bitPattern   // + 0: -0 becomes +0 (the two are equal scores)
                    let up = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000   // ascending with the score
                    buf[i] = UInt64(~up) << 32 | UInt64(UInt32(truncatingIfNeeded: i))
                }
                done = n
            }
            keys.withUnsafeMutableBufferPointer { k in
                var p = k.count / 2 - 1
                while p >= 0 { Self.siftDown(k, p, k.count); p -= 1 }
            }
        }

        private static func siftDown(_ k: UnsafeMutableBufferPointer<UInt64>, _ start: Int, _ m: Int) {
            var p = start
            let v = k[p]
            while true {
                var c = 2 * p + 1
                if c >= m { break }
                if c + 1 < m && k[c + 1] < k[c] { c += 1 }
                if k[c] >= v { break }
                k[p] = k[c]; p = c
            }
            k[p] = v
        }

        /// The next index in score order, nil after the last.
        mutating func next() -> Int? {
            if let s = sorted {
                guard taken < s.count else { return nil }
                taken += 1
                return s[taken - 1]
            }
            let m = keys.count - taken
            if m <= 0 { return nil }
            taken += 1
            return keys.withUnsafeMutableBufferPointer { k -> Int in
                let top = k[0]
                k[0] = k[m - 1]
                if m > 1 { Self.siftDown(k, 0, m - 1) }
                return Int(top & 0xFFFF_FFFF)
            }
        }
    }

    /// IoU of two boxes (no +1), for tests and tools.
    public static func iou(_ a: [Float], _ b: [Float]) -> Float {
        let w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        let h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let inter = w * h
        let u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return u > 0 ? inter / u : 0
    }
}
