// Self-test checks of the pipeline area (see SelfTest.swift): pure stages against values
// documented in shared/notes/formats.md §7 (torchvision 0.29.2), no files needed.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

extension SelfTest {
    static var pipelineChecks: [SelfCheck] {
        [
            SelfCheck("pipeline.transform-sizes") {
                // (h, w) -> resized (h, w), padded (h, w) with min 800 / max 1333
                let cases: [(Int, Int, Int, Int, Int, Int)] = [
                    (480, 640, 800, 1066, 800, 1088), (427, 640, 800, 1199, 800, 1216),
                    (500, 375, 1066, 800, 1088, 800), (333, 500, 800, 1201, 800, 1216),
                    (800, 1066, 800, 1066, 800, 1088), (100, 1000, 133, 1333, 160, 1344),
                ]
                for c in cases {
                    let s = Transform.sizes(height: c.0, width: c.1, minSize: 800, maxSize: 1333)
                    try expect(s.resizedHeight == c.2 && s.resizedWidth == c.3 && s.paddedHeight == c.4
                        && s.paddedWidth == c.5, "\(c.0)x\(c.1) -> \(s)")
                }
                // shapes model (256/416): fixture sizes from torchvision
                let s = Transform.sizes(height: 403, width: 349, minSize: 256, maxSize: 416)
                try expect(s.resizedHeight == 295 && s.resizedWidth == 256 && s.paddedHeight == 320
                    && s.paddedWidth == 256, "403x349 -> \(s)")
                let s2 = Transform.sizes(height: 289, width: 292, minSize: 256, maxSize: 416)
                try expect(s2.resizedHeight == 256 && s2.resizedWidth == 258, "289x292 -> \(s2)")
            },
            SelfCheck("pipeline.anchors") {
                let expected: [[Float]] = [
                    [-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23],
                    [-45, -23, 45, 23, -32, -32, 32, 32, -23, -45, 23, 45],
                    [-91, -45, 91, 45, -64, -64, 64, 64, -45, -91, 45, 91],
                    [-181, -91, 181, 91, -128, -128, 128, 128, -91, -181, 91, 181],
                    [-362, -181, 362, 181, -256, -256, 256, 256, -181, -362, 181, 362],
                ]
                for (l, e) in expected.enumerated() {
                    let b = Anchors.base(size: Anchors.sizes[l])
                    try expect(b == e, "base anchors of level \(l): \(b)")
                }
                // 800x1088 padded, P2 200x272: stride 4; anchor (y=1, x=2, ratio 1)
                let g = Anchors.grid(level: 0, featureHeight: 200, featureWidth: 272, paddedHeight: 800, paddedWidth: 1088)
                try expect(g.count == 200 * 272 * 12, "grid size \(g.count)")
                let i = ((1 * 272 + 2) * 3 + 1) * 4
                try expect(Array(g[i..<(i + 4)]) == [8 - 16, 4 - 16, 8 + 16, 4 + 16], "grid anchor \(Array(g[i..<(i + 4)]))")
                // P6 of 800x1088 is 13x17: strides 800/13 = 61, 1088/17 = 64
                let g6 = Anchors.grid(level: 4, featureHeight: 13, featureWidth: 17, paddedHeight: 800, paddedWidth: 1088)
                let j = ((1 * 17 + 1) * 3 + 0) * 4
                try expect(Array(g6[j..<(j + 4)]) == [64 - 362, 61 - 181, 64 + 362, 61 + 181], "P6 anchor \(Array(g6[j..<(j + 4)]))")
            },
            SelfCheck("pipeline.box-coder") {
                let c = BoxCoder(1, 1, 1, 1)
                try expect(c.decode(deltas: [0, 0, 0, 0], box: [10, 20, 30, 60]) == [10, 20, 30, 60], "identity decode")
                let d = c.decode(deltas: [0.5, -0.25, 0, 0], box: [0, 0, 10, 20])
                try expect(d == [5, -5, 15, 15], "shift decode \(d)")
                // dw clamped at log(1000/16): width 1 -> 62.5
                let e = c.decode(deltas: [0, 0, 10, 0], box: [0, 0, 1, 1])
                try expect(abs((e[2] - e[0]) - 62.5) < 1e-3, "clamped width \(e[2] - e[0])")
                let w = BoxCoder(10, 10, 5, 5).decode(deltas: [10, 0, 0, 0], box: [0, 0, 4, 4])
                try expect(w == [4, 0, 8, 4], "weighted decode \(w)")
            },
            SelfCheck("pipeline.nms") {
                let boxes: [Float] = [0, 0, 10, 10,  1, 0, 11, 10,  20, 20, 30, 30,  0, 0, 10, 10]
                let scores: [Float] = [0.9, 0.8, 0.7, 0.95]
                let keep = Boxes.nms(boxes: boxes, scores: scores, subset: [0, 1, 2, 3], iouThreshold: 0.5)
                try expect(keep == [3, 2], "nms keep \(keep)")
                // IoU exactly 0.5 is not suppressed (strict >)
                let b2: [Float] = [0, 0, 2, 1,  1, 0, 4, 1]   // inter 1, union 4 -> 0.25
                let k2 = Boxes.nms(boxes: b2, scores: [1, 0.5], subset: [0, 1], iouThreshold: 0.25)
                try expect(k2 == [0, 1], "iou == thr kept: \(k2)")
                let k3 = Boxes.nms(boxes: b2, scores: [1, 0.5], subset: [0, 1], iouThreshold: 0.2)
                try expect(k3 == [0], "iou > thr suppressed: \(k3)")
                // batched: same boxes in different groups survive
                let k4 = Boxes.batchedNMS(boxes: boxes, scores: scores, groups: [0, 1, 0, 0], iouThreshold: 0.5)
                try expect(k4 == [3, 1, 2], "batched nms \(k4)")
            },
            SelfCheck("pipeline.level-mapper") {
                try expect(MultiScaleRoIAlign.level(box: [0, 0, 224, 224]) == 2, "224 -> P4")
                try expect(MultiScaleRoIAlign.level(box: [0, 0, 112, 112]) == 1, "112 -> P3")
                try expect(MultiScaleRoIAlign.level(box: [0, 0, 111.9, 112]) == 0, "just under 112 -> P2")
                try expect(MultiScaleRoIAlign.level(box: [0, 0, 1, 1]) == 0, "tiny -> P2")
                try expect(MultiScaleRoIAlign.level(box: [0, 0, 448, 448]) == 3, "448 -> P5")
                try expect(MultiScaleRoIAlign.level(box: [0, 0, 2000, 2000]) == 3, "huge -> P5")
                try expect(MultiScaleRoIAlign.scale(featureHeight: 200, imageHeight: 800) == 0.25, "scale 1/4")
                try expect(MultiScaleRoIAlign.scale(featureHeight: 10, imageHeight: 295) == 1.0 / 32, "scale 1/32")
            },
            SelfCheck("pipeline.topk") {
                let v: [Float] = [1, 5, 3, 5, -1, 4]
                let t = RPN.topK(count: v.count, k: 3) { v[$0] }
                try expect(t == [1, 3, 5], "topk \(t)")
                try expect(RPN.topK(count: 2, k: 2) { v[$0] } == [1, 0], "topk all")
            },
            SelfCheck("pipeline.post-c") {
                // CShim/post.c against the Swift code it replaces, on tied values
                var state: UInt64 = 777
                func next() -> Float {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    return Float(state >> 40) / Float(1 << 24)
                }
                // top-k: a level split over the threads (>= 65536 anchors) and a small one
                for (hw, k) in [(22_000, 1000), (100, 1000)] {
                    var v = (0..<(3 * hw)).map { _ in Float(Int(next() * 64)) / 8 - 4 }
                    v[5] = -0.0; v[7] = 0.0
                    var heap = [UInt64](repeating: 0, count: em_topk_anchors_scratch_bytes(Int32(k)) / 8)
                    var out = [Int32](repeating: -1, count: k)
                    let got = Int(em_topk_anchors(v, hw, 3, Int32(k), &heap, &out))
                    let ref = RPN.topK(pixels: hw, anchors: 3, k: min(k, 3 * hw)) { v[$1 * hw + $0] }
                    try expect(Array(out.prefix(max(got, 0)).map { Int($0) }) == ref, "top-k of \(3 * hw)")
                }
                // greedy batched NMS
                let n = 3000
                var boxes: [Float] = [], scores: [Float] = [], groups: [Int] = []
                for _ in 0..<n {
                    let x = next() * 300, y = next() * 200, w = 5 + next() * 80, h = 5 + next() * 80
                    boxes += [x, y, x + w, y + h]
                    scores.append(Float(Int(next() * 100)) / 100); groups.append(Int(next() * 5))
                }
                let g32 = groups.map { Int32($0) }
                var scratch = [UInt8](repeating: 0, count: em_greedy_nms_scratch_bytes(Int32(n), 1000, 5))
                for limit in [1, 100, 1000] {
                    var keep = [Int32](repeating: -1, count: limit)
                    let got = Int(em_greedy_nms(boxes, scores, g32, Int32(n), 5, 0.7, Int32(limit), &scratch, &keep))
                    let ref = Boxes.greedyBatchedNMS(boxes: boxes, scores: scores, groups: groups, iouThreshold: 0.7, limit: limit)
                    try expect(Array(keep.prefix(max(got, 0)).map { Int($0) }) == ref, "greedy NMS limit \(limit)")
                }
                // side-by-side separators: columns 4, 9, 14 of 3 rows of 20
                var cols = [UInt8](repeating: 1, count: 60), colsF = [Float](repeating: 1, count: 60)
                em_set_columns_u8(&cols, 3, 20, 4, 5, 3, 7)
                em_set_columns_f32(&colsF, 3, 20, 4, 5, 3, 0)
                let sep = Set((0..<3).flatMap { r in [4, 9, 14].map { r * 20 + $0 } })
                try expect((0..<60).allSatisfy { cols[$0] == (sep.contains($0) ? 7 : 1) }, "separator columns u8")
                try expect((0..<60).allSatisfy { colsF[$0] == (sep.contains($0) ? 0 : 1) }, "separator columns f32")
                // softmax, then the box head's detections (300 RoIs x 5 classes: 1500 candidates)
                let r = 300, kc = 6
                let logits = (0..<(r * kc)).map { _ in Float(Int(next() * 40)) / 4 - 5 }
                var probs = [Float](repeating: 0, count: r * kc)
                em_softmax_rows_f32(logits, &probs, r, Int32(kc))
                for i in 0..<r {
                    let lg = Array(logits[(i * kc)..<(i * kc + kc)])
                    var m = lg[0]
                    for c in 1..<kc { m = max(m, lg[c]) }
                    var p = [Float](repeating: 0, count: kc), sum: Float = 0
                    for c in 0..<kc { p[c] = expf(lg[c] - m); sum += p[c] }
                    let inv = 1 / sum
                    for c in 0..<kc { p[c] = p[c] * inv }
                    try expect(p.map(\.bitPattern) == probs[(i * kc)..<(i * kc + kc)].map(\.bitPattern), "softmax row \(i)")
                }
                let deltas = (0..<(r * 4 * kc)).map { _ in next() * 2 - 1 }
                var props: [Float] = []
                for _ in 0..<r {
                    let x = next() * 300, y = next() * 200
                    props += [x, y, x + 1 + next() * 100, y + 1 + next() * 100]
                }
                let sizes = ImageSizes(originalHeight: 240, originalWidth: 320, resizedHeight: 240, resizedWidth: 320,
                                       paddedHeight: 256, paddedWidth: 320)
                var head = BoxHead(numClasses: kc)
                for (thresh, limit) in [(Float(0), 100), (Float(0), 7), (Float(0.3), 100)] {
                    head.detectionsPerImage = limit
                    var sc = [UInt8](repeating: 0, count: BoxHead.scratchBytes(rows: r, classes: kc, limit: limit))
                    let c = sc.withUnsafeMutableBytes {
                        head.detections(probs: probs, deltas: deltas, proposals: props, rows: r, sizes: sizes,
                                        scoreThresh: thresh, scratch: $0.baseAddress!)
                    }
                    let ref = head.referenceDetections(probs: probs, deltas: deltas, proposals: props, rows: r,
                                                       sizes: sizes, scoreThresh: thresh)
                    if thresh == 0 { try expect(c != nil, "box head: the C path for 1500 candidates") }
                    if let c {
                        try expect(c.boxes.map(\.bitPattern) == ref.boxes.map(\.bitPattern) && c.scores == ref.scores
                            && c.labels == ref.labels, "box head detections, thresh \(thresh) limit \(limit)")
                    }
                }
            },
        ]
    }
}
