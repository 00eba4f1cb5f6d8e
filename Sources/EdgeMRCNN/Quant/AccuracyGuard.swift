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
        public init(boxAP: Double, maskAP: Double) { self.boxAP = boxAP; self.maskAP = maskAP }
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
        var results: [COCOResult] = []
        for item in images {
            let image = try loadImage(path: item.path)
            let dets = try model.detect(image, scoreThresh: 0.05)
            for d in dets {
                let text = try ResultsJSON.object(d, imageId: item.image.id, fileName: OutputPaths.baseName(item.path),
                                                  categoryName: ResultsJSON.categoryName(d.label, classNames: model.config.classNames))
                results.append(try COCOResults.parseOne(try JSON.parse(text), index: results.count, bboxBranch: true,
                                                        gt: gt, source: "(guard results)"))
            }
        }
        let ids = images.map { $0.image.id }
        let b = try COCOEval.evaluate(gt: gt, results: results, iouType: .bbox, imageIds: ids)
        let m = try COCOEval.evaluate(gt: gt, results: results, iouType: .segm, imageIds: ids)
        return Score(boxAP: b.stats[0] * 100, maskAP: m.stats[0] * 100)
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
