#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// COCO detection evaluation (box and mask AP), following pycocotools/cocoeval.py 2.0.11 step by
// step so that the 12 summary numbers come out the same (see notes/formats.md §6):
// _prepare (GT/DT per image and category, crowd = ignore), computeIoU (dts by score, stable,
// top 100), evaluateImg (greedy matching per IoU threshold, ties to the later gt, area-range
// ignores from the GT "area" field), accumulate (precision envelope, recall thresholds by a
// left searchsorted) and summarize (numpy's pairwise-summed mean of the entries > −1).

public enum COCOIoUType: String {
    case bbox, segm
}

public struct COCOEvalParams {
    /// np.linspace(.5, .95, 10): i·step + .5, the last one exactly .95.
    public var iouThrs: [Double]
    /// np.linspace(0, 1, 101).
    public var recThrs: [Double]
    public var maxDets: [Int] = [1, 10, 100]
    /// all, small, medium, large; inclusive at both ends.
    public var areaRng: [(Double, Double)] = [(0, 1e10), (0, 1024), (1024, 9216), (9216, 1e10)]
    public var areaLabels: [String] = ["all", "small", "medium", "large"]

    public init() {
        iouThrs = COCOEvalParams.linspace(0.5, 0.95, 10)
        recThrs = COCOEvalParams.linspace(0.0, 1.0, 101)
    }

    /// numpy.linspace with endpoint=True: arange(num)·step + start, then the last set to stop.
    public static func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
        let step = (stop - start) / Double(num - 1)
        var y = (0..<num).map { Double($0) * step + start }
        if num > 1 { y[num - 1] = stop }
        return y
    }
}

/// The outcome of one evaluation: the accumulated arrays and the 12 summary numbers.
public struct COCOEvalResult {
    public var iouType: COCOIoUType
    public var params: COCOEvalParams
    public var categoryIds: [Int]
    public var imageCount: Int
    public var detectionCount: Int
    /// precision[t][r][k][a][m] flattened (row-major), −1 where a category has no GT.
    public var precision: [Double]
    /// recall[t][k][a][m] flattened.
    public var recall: [Double]
    /// stats[0..11] as COCOeval.summarize: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
    public var stats: [Double]

    public static let statNames = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]

    /// The 12 lines pycocotools prints.
    public var summaryLines: [String] {
        let defs: [(ap: Bool, iou: Double?, area: String, maxDets: Int)] = [
            (true, nil, "all", 100), (true, 0.5, "all", 100), (true, 0.75, "all", 100),
            (true, nil, "small", 100), (true, nil, "medium", 100), (true, nil, "large", 100),
            (false, nil, "all", 1), (false, nil, "all", 10), (false, nil, "all", 100),
            (false, nil, "small", 100), (false, nil, "medium", 100), (false, nil, "large", 100),
        ]
        var out: [String] = []
        for (i, d) in defs.enumerated() {
            let title = d.ap ? "Average Precision" : "Average Recall"
            let type = d.ap ? "(AP)" : "(AR)"
            let iou = d.iou.map { COCOEvalResult.fixed($0, 2) }
                ?? "\(COCOEvalResult.fixed(params.iouThrs[0], 2)):\(COCOEvalResult.fixed(params.iouThrs[params.iouThrs.count - 1], 2))"
            let md = String(d.maxDets)
            out.append(" " + pad(title, 18) + " " + type + " @[ IoU=" + pad(iou, 9) + " | area=" + lpad(d.area, 6)
                       + " | maxDets=" + lpad(md, 3) + " ] = " + COCOEvalResult.fixed(stats[i], 3))
        }
        return out
    }

    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    private func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

    /// `v` with `digits` decimals, correctly rounded (C printf "%.Nf", as Python's format does).
    public static func fixed(_ v: Double, _ digits: Int) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        let n = withVaList([v]) { vsnprintf(&buf, buf.count, "%.\(max(0, min(digits, 20)))f", $0) }
        guard n > 0 && Int(n) < buf.count else { return "\(v)" }
        return String(decoding: buf[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

public enum COCOEval {
    /// Evaluates `results` (after loadRes) against `gt`. `imageIds`: the images to evaluate
    /// (default: every image of the GT, as pycocotools does).
    public static func evaluate(gt: COCODataset, results: [COCOResult], iouType: COCOIoUType,
                                imageIds: [Int]? = nil, params: COCOEvalParams = COCOEvalParams()) throws -> COCOEvalResult {
        let p = params
        let imgIds = Array(Set(imageIds ?? gt.images.map { $0.id })).sorted()
        let catIds = Array(Set(gt.categories.map { $0.id })).sorted()
        let I = imgIds.count, K = catIds.count
        var imgPos: [Int: Int] = [:]
        for (i, id) in imgIds.enumerated() { imgPos[id] = i }
        var catPos: [Int: Int] = [:]
        for (k, id) in catIds.enumerated() { catPos[id] = k }

        // _prepare: GT and DT per (image, category), in file order.
        struct Obj { var id: Int; var score: Double; var area: Double; var crowd: Bool; var box: (Double, Double, Double, Double); var rle: RLE? }
        var gts = [[Obj]](repeating: [], count: I * K)
        var dts = [[Obj]](repeating: [], count: I * K)
        for a in gt.annotations {
            guard let i = imgPos[a.imageId], let k = catPos[a.categoryId], let im = gt.image(id: a.imageId) else { continue }
            var o = Obj(id: a.id, score: 0, area: a.area, crowd: a.isCrowd, box: (0, 0, 0, 0), rle: nil)
            switch iouType {
            case .bbox:
                guard let b = a.bbox else { throw EdgeError(file: gt.source, "annotation id \(a.id) has no \"bbox\" (needed for box AP)") }
                o.box = b
            case .segm:
                guard let s = a.segmentation else {
                    throw EdgeError(file: gt.source, "annotation id \(a.id) has no \"segmentation\" (needed for mask AP)")
                }
                do { o.rle = try s.toRLE(height: im.height, width: im.width) } catch let e as EdgeError {
                    throw EdgeError(file: gt.source, "annotation id \(a.id): bad segmentation: \(e.message)")
                }
                o.box = MaskOps.box(of: o.rle!)
            }
            gts[i * K + k].append(o)
        }
        var nDet = 0
        for r in results {
            guard let i = imgPos[r.imageId], let k = catPos[r.categoryId], let im = gt.image(id: r.imageId) else { continue }
            var o = Obj(id: r.id, score: r.score, area: r.area, crowd: false, box: (0, 0, 0, 0), rle: nil)
            switch iouType {
            case .bbox:
                guard let b = r.bbox else { throw EdgeError("result \(r.id - 1) has no \"bbox\" (needed for box AP)") }
                o.box = b
            case .segm:
                guard let s = r.segmentation else { throw EdgeError("result \(r.id - 1) has no \"segmentation\" (needed for mask AP)") }
                do { o.rle = try s.toRLE(height: im.height, width: im.width) } catch let e as EdgeError {
                    throw EdgeError("result \(r.id - 1): bad segmentation: \(e.message)")
                }
                o.box = MaskOps.box(of: o.rle!)
            }
            dts[i * K + k].append(o)
            nDet += 1
        }

        let T = p.iouThrs.count, R = p.recThrs.count, A = p.areaRng.count, M = p.maxDets.count
        let maxDet = p.maxDets.max() ?? 100

        // computeIoU per (image, category): dts sorted by score (stable), cut to maxDet; IoU [D x G].
        var sortedDts = [[Obj]](repeating: [], count: I * K)
        var ious = [[Double]](repeating: [], count: I * K)
        for c in 0..<(I * K) {
            let d0 = dts[c], g = gts[c]
            if d0.isEmpty && g.isEmpty { continue }
            let order = (0..<d0.count).sorted { d0[$0].score > d0[$1].score || (d0[$0].score == d0[$1].score && $0 < $1) }
            let d = order.prefix(maxDet).map { d0[$0] }
            sortedDts[c] = d
            if d.isEmpty || g.isEmpty { continue }
            var m = [Double](repeating: 0, count: d.count * g.count)
            for (di, dd) in d.enumerated() {
                for (gi, gg) in g.enumerated() {
                    switch iouType {
                    case .bbox: m[di * g.count + gi] = MaskOps.boxIoU(dd.box, gg.box, crowd: gg.crowd)
                    case .segm: m[di * g.count + gi] = MaskOps.maskIoU(dd.rle!, gg.rle!, crowd: gg.crowd, dtBox: dd.box, gtBox: gg.box)
                    }
                }
            }
            ious[c] = m
        }

        // evaluateImg for every (category, area range, image) with maxDet.
        struct EvalImg { var scores: [Double]; var matched: [Bool]; var ignored: [Bool]; var npig: Int }  // [t*D + d]
        var evalImgs = [EvalImg?](repeating: nil, count: K * A * I)
        let crowdThr = 1 - 1e-10
        for k in 0..<K {
            for (ai, rng) in p.areaRng.enumerated() {
                for i in 0..<I {
                    let c = i * K + k
                    let g = gts[c], d = sortedDts[c]
                    if g.isEmpty && d.isEmpty { continue }
                    let G = g.count, D = d.count
                    var gIgnore = g.map { $0.crowd || $0.area < rng.0 || $0.area > rng.1 }
                    // Stable: non-ignored first.
                    let gtind = (0..<G).filter { !gIgnore[$0] } + (0..<G).filter { gIgnore[$0] }
                    gIgnore = gtind.map { gIgnore[$0] }
                    let gCrowd = gtind.map { g[$0].crowd }
                    let gId = gtind.map { g[$0].id }
                    var dtm = [Int](repeating: 0, count: T * D)       // matched gt id (0 = none)
                    var dtIg = [Bool](repeating: false, count: T * D)
                    if G > 0 && D > 0 {
                        let iou = ious[c]
                        var gtm = [Bool](repeating: false, count: G)
                        for t in 0..<T {
                            for j in 0..<G { gtm[j] = false }
                            let thr = min(p.iouThrs[t], crowdThr)
                            for di in 0..<D {
                                var best = thr
                                var m = -1
                                let row = di * G
                                for gi in 0..<G {
                                    if gtm[gi] && !gCrowd[gi] { continue }
                                    if m > -1 && !gIgnore[m] && gIgnore[gi] { break }
                                    let v = iou[row + gtind[gi]]
                                    if v < best { continue }
                                    best = v; m = gi
                                }
                                if m == -1 { continue }
                                dtIg[t * D + di] = gIgnore[m]
                                dtm[t * D + di] = gId[m]
                                gtm[m] = true
                            }
                        }
                    }
                    for di in 0..<D where d[di].area < rng.0 || d[di].area > rng.1 {
                        for t in 0..<T where dtm[t * D + di] == 0 { dtIg[t * D + di] = true }
                    }
                    evalImgs[(k * A + ai) * I + i] = EvalImg(scores: d.map { $0.score }, matched: dtm.map { $0 != 0 },
                                                             ignored: dtIg, npig: gIgnore.filter { !$0 }.count)
                }
            }
        }

        // accumulate.
        var precision = [Double](repeating: -1, count: T * R * K * A * M)
        var recall = [Double](repeating: -1, count: T * K * A * M)
        for k in 0..<K {
            for a in 0..<A {
                for (mi, md) in p.maxDets.enumerated() {
                    var es: [EvalImg] = []
                    for i in 0..<I { if let e = evalImgs[(k * A + a) * I + i] { es.append(e) } }
                    if es.isEmpty { continue }
                    // Concatenate each image's first md dts: (score, image slot, index in image).
                    var scores: [Double] = []
                    var src: [(Int, Int)] = []
                    var npig = 0
                    for (ei, e) in es.enumerated() {
                        let n = min(md, e.scores.count)
                        for d in 0..<n { scores.append(e.scores[d]); src.append((ei, d)) }
                        npig += e.npig
                    }
                    if npig == 0 { continue }
                    let order = (0..<scores.count).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
                    let nd = order.count
                    var rc = [Double](repeating: 0, count: nd), pr = [Double](repeating: 0, count: nd)
                    for t in 0..<T {
                        var tp = 0, fp = 0
                        for (j, o) in order.enumerated() {
                            let (ei, d) = src[o]
                            let e = es[ei]
                            let D = e.scores.count
                            if !e.ignored[t * D + d] {
                                if e.matched[t * D + d] { tp += 1 } else { fp += 1 }
                            }
                            let tpd = Double(tp), fpd = Double(fp)
                            rc[j] = tpd / Double(npig)
                            pr[j] = tpd / (fpd + tpd + 2.220446049250313e-16)
                        }
                        recall[((t * K + k) * A + a) * M + mi] = nd > 0 ? rc[nd - 1] : 0
                        if nd > 1 {
                            var j = nd - 1
                            while j > 0 { if pr[j] > pr[j - 1] { pr[j - 1] = pr[j] }; j -= 1 }
                        }
                        var idx = 0
                        for (ri, r) in p.recThrs.enumerated() {
                            while idx < nd && rc[idx] < r { idx += 1 }   // searchsorted left (rc is sorted)
                            let q = idx < nd ? pr[idx] : 0
                            precision[(((t * R + ri) * K + k) * A + a) * M + mi] = q
                            if idx >= nd {
                                // pycocotools stops at the first index past the end: the rest stay 0.
                                for r2 in (ri + 1)..<R { precision[(((t * R + r2) * K + k) * A + a) * M + mi] = 0 }
                                break
                            }
                        }
                    }
                }
            }
        }

        // summarize.
        func ap(_ iou: Int?, _ area: Int, _ md: Int) -> Double {
            guard let mi = p.maxDets.firstIndex(of: md) else { return -1 }
            var vals: [Double] = []
            for t in 0..<T where iou == nil || iou == t {
                for r in 0..<R { for k in 0..<K {
                    let v = precision[(((t * R + r) * K + k) * A + area) * M + mi]
                    if v > -1 { vals.append(v) }
                } }
            }
            return numpyMean(vals)
        }
        func ar(_ area: Int, _ md: Int) -> Double {
            guard let mi = p.maxDets.firstIndex(of: md) else { return -1 }
            var vals: [Double] = []
            for t in 0..<T { for k in 0..<K {
                let v = recall[((t * K + k) * A + area) * M + mi]
                if v > -1 { vals.append(v) }
            } }
            return numpyMean(vals)
        }
        let t50 = p.iouThrs.firstIndex(of: 0.5), t75 = p.iouThrs.firstIndex(of: 0.75)
        let m0 = p.maxDets[0], m1 = p.maxDets[min(1, M - 1)], m2 = p.maxDets[min(2, M - 1)]
        let stats: [Double] = [
            ap(nil, 0, m2), t50.map { ap($0, 0, m2) } ?? -1, t75.map { ap($0, 0, m2) } ?? -1,
            ap(nil, 1, m2), ap(nil, 2, m2), ap(nil, 3, m2),
            ar(0, m0), ar(0, m1), ar(0, m2), ar(1, m2), ar(2, m2), ar(3, m2),
        ]
        return COCOEvalResult(iouType: iouType, params: p, categoryIds: catIds, imageCount: I, detectionCount: nDet,
                              precision: precision, recall: recall, stats: stats)
    }

    /// np.mean of a 1-D float64 array: numpy's pairwise sum (0 + pairwise), divided by n; −1 if empty.
    public static func numpyMean(_ v: [Double]) -> Double {
        if v.isEmpty { return -1 }
        return (0.0 + pairwiseSum(v[...])) / Double(v.count)
    }

    /// numpy's pairwise summation (8-way unrolled blocks of at most 128).
    static func pairwiseSum(_ a: ArraySlice<Double>) -> Double {
        let n = a.count, s = a.startIndex
        if n < 8 {
            var r = 0.0
            for x in a { r += x }
            return r
        } else if n <= 128 {
            var r = [Double](a[s..<(s + 8)])
            var i = 8
            while i < n - (n % 8) {
                for j in 0..<8 { r[j] += a[s + i + j] }
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n { res += a[s + i]; i += 1 }
            return res
        } else {
            var n2 = n / 2
            n2 -= n2 % 8
            return pairwiseSum(a[s..<(s + n2)]) + pairwiseSum(a[(s + n2)...])
        }
    }
}
