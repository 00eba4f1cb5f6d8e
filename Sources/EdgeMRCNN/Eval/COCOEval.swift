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
// Keypoints (iouType "keypoints") as pycocotools: computeOks with COCO's per-keypoint sigmas
// (GTs without labelled keypoints match within their box extended by its size), GT ignored when
// crowd or num_keypoints = 0, maxDets 20, area ranges all/medium/large and summarizeKps' 10 stats.

public enum COCOIoUType: String {
    case bbox, segm, keypoints
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

    /// pycocotools' Params.kpt_oks_sigmas: np.array([.26, .25, ...]) / 10.0 (COCO's 17 keypoints).
    public var kptOksSigmas: [Double] = COCOKeypoints.oksSigmasTimes10.map { $0 / 10.0 }

    public init() {
        iouThrs = COCOEvalParams.linspace(0.5, 0.95, 10)
        recThrs = COCOEvalParams.linspace(0.0, 1.0, 101)
    }

    /// pycocotools' Params(iouType): setKpParams for keypoints (maxDets [20], all/medium/large).
    public init(iouType: COCOIoUType) {
        self.init()
        if iouType == .keypoints {
            maxDets = [20]
            areaRng = [(0, 1e10), (1024, 9216), (9216, 1e10)]
            areaLabels = ["all", "medium", "large"]
        }
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
    /// stats as COCOeval.summarize: for bbox/segm the 12 AP, AP50, AP75, APs, APm, APl, AR1,
    /// AR10, AR100, ARs, ARm, ARl; for keypoints the 10 AP, AP50, AP75, APm, APl, AR, AR50,
    /// AR75, ARm, ARl (maxDets 20).
    public var stats: [Double]

    public static let statNames = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    public static let keypointStatNames = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]

    /// The names of `stats` for this IoU type.
    public var names: [String] { iouType == .keypoints ? COCOEvalResult.keypointStatNames : COCOEvalResult.statNames }

    typealias SummaryDef = (ap: Bool, iou: Double?, area: String, maxDets: Int)

    /// summarize's (or summarizeKps') list of figures.
    static func summaryDefs(_ t: COCOIoUType, maxDets md: [Int]) -> [SummaryDef] {
        if t == .keypoints {
            return [(true, nil, "all", 20), (true, 0.5, "all", 20), (true, 0.75, "all", 20),
                    (true, nil, "medium", 20), (true, nil, "large", 20),
                    (false, nil, "all", 20), (false, 0.5, "all", 20), (false, 0.75, "all", 20),
                    (false, nil, "medium", 20), (false, nil, "large", 20)]
        }
        let m0 = md[0], m1 = md[min(1, md.count - 1)], m2 = md[min(2, md.count - 1)]
        return [(true, nil, "all", m2), (true, 0.5, "all", m2), (true, 0.75, "all", m2),
                (true, nil, "small", m2), (true, nil, "medium", m2), (true, nil, "large", m2),
                (false, nil, "all", m0), (false, nil, "all", m1), (false, nil, "all", m2),
                (false, nil, "small", m2), (false, nil, "medium", m2), (false, nil, "large", m2)]
    }

    /// The lines pycocotools prints (12, or 10 for keypoints).
    public var summaryLines: [String] {
        let defs = COCOEvalResult.summaryDefs(iouType, maxDets: params.maxDets)
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
                                imageIds: [Int]? = nil, params: COCOEvalParams? = nil) throws -> COCOEvalResult {
        let p = params ?? COCOEvalParams(iouType: iouType)
        let nKps = p.kptOksSigmas.count
        let imgIds = Array(Set(imageIds ?? gt.images.map { $0.id })).sorted()
        let catIds = Array(Set(gt.categories.map { $0.id })).sorted()
        let I = imgIds.count, K = catIds.count
        var imgPos: [Int: Int] = [:]
        for (i, id) in imgIds.enumerated() { imgPos[id] = i }
        var catPos: [Int: Int] = [:]
        for (k, id) in catIds.enumerated() { catPos[id] = k }

        // _prepare: GT and DT per (image, category), in file order.
        struct Obj {
            var id: Int; var score: Double; var area: Double; var crowd: Bool; var box: (Double, Double, Double, Double); var rle: RLE?
            var ignore = false; var kps: [Double] = []
        }
        var gts = [[Obj]](repeating: [], count: I * K)
        var dts = [[Obj]](repeating: [], count: I * K)
        for a in gt.annotations {
            guard let i = imgPos[a.imageId], let k = catPos[a.categoryId], let im = gt.image(id: a.imageId) else { continue }
            var o = Obj(id: a.id, score: 0, area: a.area, crowd: a.isCrowd, box: (0, 0, 0, 0), rle: nil)
            o.ignore = a.isCrowd
            switch iouType {
            case .keypoints:
                guard let k = a.keypoints, let n = a.numKeypoints else {
                    throw EdgeError(file: gt.source, "annotation id \(a.id) has no \"keypoints\" and \"num_keypoints\" (needed for keypoint AP)")
                }
                guard k.count == 3 * nKps else {
                    throw EdgeError(file: gt.source, "annotation id \(a.id) has \(k.count / 3) keypoints, keypoint AP needs \(nKps)")
                }
                guard let b = a.bbox else { throw EdgeError(file: gt.source, "annotation id \(a.id) has no \"bbox\" (needed for keypoint AP)") }
                o.box = b
                o.kps = k
                o.ignore = o.ignore || n == 0
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
            case .keypoints:
                guard let k = r.keypoints else { throw EdgeError("result \(r.id - 1) has no \"keypoints\" (needed for keypoint AP)") }
                guard k.count == 3 * nKps else {
                    throw EdgeError("result \(r.id - 1) has \(k.count / 3) keypoints, keypoint AP needs \(nKps)")
                }
                o.kps = k
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
                    case .keypoints: m[di * g.count + gi] = oks(dt: dd.kps, gt: gg.kps, gtBox: gg.box, gtArea: gg.area, sigmas: p.kptOksSigmas)
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
                    var gIgnore = g.map { $0.ignore || $0.area < rng.0 || $0.area > rng.1 }
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
        func ar(_ iou: Int?, _ area: Int, _ md: Int) -> Double {
            guard let mi = p.maxDets.firstIndex(of: md) else { return -1 }
            var vals: [Double] = []
            for t in 0..<T where iou == nil || iou == t { for k in 0..<K {
                let v = recall[((t * K + k) * A + area) * M + mi]
                if v > -1 { vals.append(v) }
            } }
            return numpyMean(vals)
        }
        var stats: [Double] = []
        for d in COCOEvalResult.summaryDefs(iouType, maxDets: p.maxDets) {
            guard let a = p.areaLabels.firstIndex(of: d.area) else { stats.append(-1); continue }
            var t: Int? = nil
            if let thr = d.iou {
                guard let ti = p.iouThrs.firstIndex(of: thr) else { stats.append(-1); continue }
                t = ti
            }
            stats.append(d.ap ? ap(t, a, d.maxDets) : ar(t, a, d.maxDets))
        }
        return COCOEvalResult(iouType: iouType, params: p, categoryIds: catIds, imageCount: I, detectionCount: nDet,
                              precision: precision, recall: recall, stats: stats)
    }

    /// pycocotools' computeOks for one (detection, GT) pair: e = (dx² + dy²) / vars / (area + eps) / 2
    /// over the GT's labelled keypoints (all of them, measured outside the GT box extended by its
    /// size on each side, when none is labelled), OKS = mean of exp(−e).
    public static func oks(dt: [Double], gt: [Double], gtBox: (Double, Double, Double, Double), gtArea: Double,
                           sigmas: [Double]) -> Double {
        let k = sigmas.count
        var k1 = 0
        for j in 0..<k where gt[3 * j + 2] > 0 { k1 += 1 }
        let x0 = gtBox.0 - gtBox.2, x1 = gtBox.0 + gtBox.2 * 2
        let y0 = gtBox.1 - gtBox.3, y1 = gtBox.1 + gtBox.3 * 2
        let denom = gtArea + 2.220446049250313e-16
        var terms: [Double] = []
        terms.reserveCapacity(k)
        for j in 0..<k {
            if k1 > 0 && !(gt[3 * j + 2] > 0) { continue }
            let xd = dt[3 * j], yd = dt[3 * j + 1]
            let dx: Double, dy: Double
            if k1 > 0 {
                dx = xd - gt[3 * j]; dy = yd - gt[3 * j + 1]
            } else {
                dx = max(0, x0 - xd) + max(0, xd - x1)
                dy = max(0, y0 - yd) + max(0, yd - y1)
            }
            let s2 = sigmas[j] * 2
            let e = (dx * dx + dy * dy) / (s2 * s2) / denom / 2
            terms.append(exp(-e))
        }
        guard !terms.isEmpty else { return 0 }
        // np.sum: the first element, then numpy's pairwise sum of the rest.
        let sum = terms.count == 1 ? terms[0] : terms[0] + pairwiseSum(terms[1...])
        return sum / Double(terms.count)
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
