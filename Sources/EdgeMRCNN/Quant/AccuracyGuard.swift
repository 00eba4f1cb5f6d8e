// `calibrate --accuracy-guard`: quantise every layer, measure mask AP on annotated images against
// the float model's, and return the report's worst layers to float one at a time until int8 is
// within the allowed drop or the layer budget is spent.

/// One annotated image the guard evaluates on.
public struct GuardImage {
    public var path: String
    public var image: COCOImage
    public init(path: String, image: COCOImage) { self.path = path; self.image = image }
}

public enum AccuracyGuard {
    public struct Score: Sendable {
        public var boxAP: Double, maskAP: Double
        /// Mask AP with each of `jackknifeFolds` interleaved groups of the images left out in turn
        /// (empty with fewer than 2 images): the drop's standard error.
        public var maskAPLeaveOut: [Double] = []
        public init(boxAP: Double, maskAP: Double, maskAPLeaveOut: [Double] = []) {
            self.boxAP = boxAP; self.maskAP = maskAP; self.maskAPLeaveOut = maskAPLeaveOut
        }
    }

    public static let jackknifeFolds = 10

    /// Jackknife standard error of the mask AP drop float - int8 on the same images (paired): the
    /// spread of the drop when a tenth of the images is left out. Nil when not measured.
    public static func dropStandardError(float f: Score, int8 q: Score) -> Double? {
        let k = f.maskAPLeaveOut.count
        guard k >= 2, q.maskAPLeaveOut.count == k else { return nil }
        let d = zip(f.maskAPLeaveOut, q.maskAPLeaveOut).map { $0 - $1 }
        let mean = d.reduce(0, +) / Double(k)
        let ss = d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return (Double(k - 1) / Double(k) * ss).squareRoot()
    }

    public struct Step: Sendable {
        /// The layers in float at this step; `added`: the one this step returned to float.
        public var floatLayers: [String]
        public var added: String?
        public var score: Score
        public var seconds: Double
    }

    public struct Outcome: Sendable {
        public var float: Score
        public var steps: [Step]
        /// The float layers settled on (the last step's), and whether the drop is within bounds.
        public var settled: [String] { steps.last?.floatLayers ?? [] }
        public var met: Bool
    }

    /// The stepping: `measure(floatLayers)` scores a candidate (all int8 but those). Returns the
    /// float score and every step; stops at the first step within `maxDrop` mask AP of float or
    /// when `budget` layers are in float. `ranking`: int8 layers worst first.
    public static func search(ranking: [String], budget: Int, maxDrop: Double, float: Score,
                              clock: () -> Double = { 0 },
                              measure: ([String]) throws -> Score,
                              progress: (Step) -> Void = { _ in }) throws -> Outcome {
        var steps: [Step] = []
        var layers: [String] = []
        var added: String? = nil
        while true {
            let t0 = clock()
            let s = try measure(layers)
            let step = Step(floatLayers: layers, added: added, score: s, seconds: clock() - t0)
            steps.append(step)
            progress(step)
            if float.maskAP - s.maskAP <= maxDrop { return Outcome(float: float, steps: steps, met: true) }
            if layers.count >= budget || layers.count >= ranking.count { return Outcome(float: float, steps: steps, met: false) }
            added = ranking[layers.count]
            layers.append(added!)
        }
    }

    /// Box and mask AP (x100) of `model` on `images`, scored with the project's COCOeval.
    public static func evaluate(_ model: MaskRCNN, gt: COCODataset, images: [GuardImage]) throws -> Score {
        let dets = try images.map { try model.detect(try loadImage(path: $0.path), scoreThresh: 0.05) }
        return try score(dets, images: images.map { $0.image }, gt: gt)
    }

    /// Box and mask AP (x100) of `detections[i]` on `images[i]` against `gt`.
    public static func score(_ detections: [[Detection]], images: [COCOImage], gt: COCODataset) throws -> Score {
        var results: [COCOResult] = []
        for (im, dets) in zip(images, detections) {
            for d in dets {
                let text = try ResultsJSON.object(d, imageId: im.id, fileName: OutputPaths.baseName(im.fileName), categoryName: "")
                results.append(try COCOResults.parseOne(try JSON.parse(text), index: results.count, bboxBranch: true,
                                                        gt: gt, source: "(guard results)"))
            }
        }
        let ids = images.map { $0.id }
        let b = try COCOEval.evaluate(gt: gt, results: results, iouType: .bbox, imageIds: ids)
        let m = try COCOEval.evaluate(gt: gt, results: results, iouType: .segm, imageIds: ids)
        let k = min(jackknifeFolds, ids.count)
        var leaveOut: [Double] = []
        if k >= 2 {
            for f in 0..<k {
                let kept = ids.enumerated().filter { $0.offset % k != f }.map { $0.element }
                leaveOut.append(try COCOEval.evaluate(gt: gt, results: results, iouType: .segm, imageIds: kept).stats[0] * 100)
            }
        }
        return Score(boxAP: b.stats[0] * 100, maskAP: m.stats[0] * 100, maskAPLeaveOut: leaveOut)
    }

    /// Labels from the float model's own detections (`--accuracy-guard` without annotations): on
    /// each of `files`, the float detections scoring >= `scoreFloor` become the ground truth
    /// (box, mask, class), so the guard measures how far int8 strays from float, not from the
    /// truth. Throws when the float model detects nothing that high on any image.
    public static func floatLabels(_ model: MaskRCNN, files: [String], scoreFloor: Float = 0.5) throws -> (COCODataset, [GuardImage]) {
        var out: [GuardImage] = [], dets: [[Detection]] = []
        for (i, path) in files.enumerated() {
            let image = try loadImage(path: path)
            out.append(GuardImage(path: path, image: COCOImage(id: i + 1, fileName: OutputPaths.baseName(path),
                                                               height: image.height, width: image.width)))
            dets.append(try model.detect(image, scoreThresh: 0.05))
        }
        return (try labels(from: dets, images: out.map { $0.image }, config: model.config, scoreFloor: scoreFloor), out)
    }

    /// The annotations made of detections scoring >= `scoreFloor` (`detections[i]` on `images[i]`).
    public static func labels(from detections: [[Detection]], images: [COCOImage], config: ModelConfig,
                              scoreFloor: Float = 0.5) throws -> COCODataset {
        var ims: [JSON] = [], anns: [JSON] = []
        for (im, ds) in zip(images, detections) {
            ims.append(.object([("id", .int(im.id)), ("file_name", .string(im.fileName)), ("height", .int(im.height)),
                                ("width", .int(im.width))]))
            for d in ds where d.score >= scoreFloor {
                let r = try JSON.parse(try ResultsJSON.object(d, imageId: im.id, fileName: im.fileName, categoryName: ""))
                let b = r["bbox"]?.arrayValue?.compactMap { $0.doubleValue } ?? []
                var fields: [(String, JSON)] = [("id", .int(anns.count + 1)), ("image_id", .int(im.id)), ("category_id", .int(d.label)),
                                                ("bbox", r["bbox"] ?? .null)]
                if let sg = r["segmentation"], !sg.isNull {
                    fields.append(("segmentation", sg))
                } else if b.count == 4 {
                    // no mask (--no-masks): the box as a polygon, as loadRes does for results
                    let x1 = b[0], y1 = b[1], x2 = b[0] + b[2], y2 = b[1] + b[3]
                    fields.append(("segmentation", .array([.array([x1, y1, x1, y2, x2, y2, x2, y1].map { .double($0) })])))
                }
                fields += [("area", .double(b.count == 4 ? b[2] * b[3] : 0)), ("iscrowd", .int(0))]
                anns.append(.object(fields))
            }
        }
        if anns.isEmpty {
            throw EdgeError("--accuracy-guard without --annotations: the float model detects nothing scoring >= \(scoreFloor) "
                            + "on the \(images.count) guard image\(images.count == 1 ? "" : "s"); nothing to measure int8 against")
        }
        let cats: [JSON] = (1..<max(config.numClasses, 2)).map { c in
            .object([("id", .int(c)), ("name", .string(ResultsJSON.categoryName(c, classNames: config.classNames)))])
        }
        let doc = JSON.object([("images", .array(ims)), ("annotations", .array(anns)), ("categories", .array(cats))])
        return try COCODataset.parse(doc, source: "(the float model's detections)")
    }

    /// The first `limit` annotated images of `gt` found in `dir` (annotations' order). Throws when
    /// none of them has an annotation.
    public static func images(gt: COCODataset, dir: String, limit: Int) throws -> [GuardImage] {
        guard LocalFile.kind(dir) == .directory else { throw EdgeError(file: dir, "no such folder (--guard-images-dir)") }
        let annotated = Set(gt.annotations.map { $0.imageId })
        var out: [GuardImage] = []
        for im in gt.images where annotated.contains(im.id) {
            if out.count >= limit { break }
            for p in [OutputPaths.join(dir, im.fileName), OutputPaths.join(dir, OutputPaths.baseName(im.fileName))]
            where !im.fileName.isEmpty && LocalFile.kind(p) == .file {
                out.append(GuardImage(path: p, image: im)); break
            }
        }
        if out.isEmpty {
            throw EdgeError(file: gt.source, annotated.isEmpty
                ? "has no annotations: --accuracy-guard needs annotated images"
                : "none of its annotated images is in \(dir): --accuracy-guard needs annotated images")
        }
        return out
    }
}
