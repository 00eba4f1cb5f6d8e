// Calibration: runs the float model over sample images with a HistogramObserver on every
// activation that gets uint8 parameters (QuantSpec.activations), then chooses the parameters.

public final class CalibrationObserver: ActivationHook {
    public private(set) var observers: [String: HistogramObserver] = [:]
    /// The first layer whose output held a NaN or an infinity.
    public private(set) var firstNonFinite: String?
    public let bins: Int
    /// The activations of this network get parameters.
    public let spec: QuantSpec

    public init(bins: Int = 2048, network: Network = .maskRCNNResNet50FPN(numClasses: 2)) {
        self.bins = bins; spec = QuantSpec(network)
    }

    public func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int) {
        let k = spec.key(name)
        let o: HistogramObserver
        if let e = observers[k] { o = e } else { o = HistogramObserver(bins: bins); observers[k] = o }
        o.observe(UnsafePointer(values), count)
        if o.nonFinite && firstNonFinite == nil { firstNonFinite = name }
    }

    /// Parameters of every observed activation (`choice`: per activation a method other than
    /// `method`). Activations never seen (no RoIs in any image) get minmax of nothing: scale 1,
    /// zero point 0.
    public func qparams(_ method: CalibrationMethod, percentile: Double = 99.99,
                        choice: [String: CalibrationMethod] = [:]) -> [String: QParams] {
        var out: [String: QParams] = [:]
        for a in spec.activations {
            out[a] = observers[a]?.qparams(choice[a] ?? method, percentile: percentile) ?? QParams(lo: 0, hi: 0)
        }
        return out
    }
}

public final class Calibrator {
    public let model: MaskRCNN
    public let observer: CalibrationObserver
    public private(set) var imageNames: [String] = []

    public init(model: MaskRCNN, bins: Int = 2048) {
        self.model = model
        observer = CalibrationObserver(bins: bins, network: model.network)
    }

    /// Runs the float model on one image and records its activations. Throws (naming the layer)
    /// when an activation is NaN or infinite.
    public func add(_ image: RGBImage, name: String) throws {
        _ = try model.detect(image, scoreThresh: 0.05, trace: nil, hook: observer)
        if let bad = observer.firstNonFinite {
            throw EdgeError(file: name, "activation of layer '\(bad)' is NaN or infinite; cannot calibrate")
        }
        imageNames.append(name)
    }

    /// The int8 model from the images added so far.
    public func quantizedModel(float store: TensorStore, method: CalibrationMethod, percentile: Double = 99.99,
                               floatLayers: [String: String] = [:], biasCorrection: [String: [Float]] = [:],
                               correctionImages: Int = 0, choice: MethodChoice.Result? = nil,
                               source: String) throws -> OwnedTensorStore {
        guard imageNames.count >= 2 else {
            throw EdgeError("calibration needs at least 2 images, got \(imageNames.count)")
        }
        let qp = observer.qparams(method, percentile: percentile, choice: choice?.methods ?? [:])
        var info = CalibrationInfo(method: method, imageNames: imageNames, percentile: percentile)
        info.correctionImages = correctionImages
        info.choice = choice
        return try QuantizedModel.build(float: store, config: model.config, qparams: qp, info: info,
                                        floatLayers: floatLayers, biasCorrection: biasCorrection, source: source)
    }
}

/// Empirical bias correction of the int8 layers: off, on, or both (one pass, two files).
public enum BiasCorrection: String, CaseIterable, Sendable {
    case off, on, both
    public static let defaultMode = BiasCorrection.on
}

/// The `calibrate` command as a library call (the CLI and the tests use it).
public enum Calibration {
    /// JPEG files of a folder, sorted by name; other files are reported through `log` and skipped.
    public static func imageFiles(in dir: String, log: (String) -> Void) throws -> [String] {
        switch LocalFile.kind(dir) {
        case .missing: throw EdgeError(file: dir, "no such folder")
        case .directory: break
        default: throw EdgeError(file: dir, "is not a folder (--images expects a folder of JPEG images)")
        }
        let names = try LocalFile.list(dir).filter { !$0.hasPrefix(".") }
        if names.isEmpty { throw EdgeError(file: dir, "the image folder is empty") }
        var out: [String] = []
        for n in names {
            let p = OutputPaths.join(dir, n)
            let e = OutputPaths.ext(n)
            guard LocalFile.kind(p) == .file else { log("skipping \(p): not a file"); continue }
            guard e == "jpg" || e == "jpeg" else { log("skipping \(p): not a .jpg/.jpeg image"); continue }
            out.append(p)
        }
        if out.isEmpty { throw EdgeError(file: dir, "no .jpg or .jpeg images in this folder") }
        return out
    }

    /// --report: measure on the first `images` calibration images; JSON to `jsonPath` if given.
    public struct ReportOptions {
        public var jsonPath: String?
        public var images: Int
        /// The end-to-end figure (one float run per int8 layer and image) on the first N images.
        public var endToEndImages: Int
        public init(jsonPath: String?, images: Int = 20, endToEndImages: Int = ReportOptions.defaultEndToEndImages) {
            self.jsonPath = jsonPath; self.images = images; self.endToEndImages = endToEndImages
        }
        public static let defaultEndToEndImages = 4
    }

    /// --accuracy-guard: the images to evaluate on (annotated, or nil: labelled by the float
    /// model's own detections), the allowed mask AP drop and the budget.
    public struct GuardOptions {
        public var annotations: String?
        public var imagesDir: String
        public var images: Int
        public var maxDrop: Double
        public var budget: Int
        /// Images of the end-to-end ranking (when there is no --report).
        public var endToEndImages: Int
        public init(annotations: String?, imagesDir: String, images: Int = 100, maxDrop: Double = 0.1, budget: Int = 3,
                    endToEndImages: Int = ReportOptions.defaultEndToEndImages) {
            self.annotations = annotations; self.imagesDir = imagesDir; self.images = images
            self.maxDrop = maxDrop; self.budget = budget; self.endToEndImages = endToEndImages
        }
    }

    /// Calibrates the float model at `modelPath` on the images of `imagesDir` and writes the int8
    /// model to `output`. Images that cannot be decoded are skipped with a message; fewer than 2
    /// usable images is an error. `report`: the per-layer report (table through `log`);
    /// `guardOptions`: the accuracy guard (adds float layers to `floatLayers`).
    public static func run(modelPath: String, imagesDir: String, output: String,
                           method: CalibrationMethod = CalibrationMethod.defaultMethod,
                           alsoWrite: [(method: CalibrationMethod, output: String)] = [],
                           maxImages: Int? = nil, percentile: Double = 99.99,
                           floatLayers: [String: String] = [:],
                           report: ReportOptions? = nil, guardOptions: GuardOptions? = nil,
                           biasCorrection: BiasCorrection = .defaultMode, biasImageCount: Int = 6,
                           methodChoice: Bool = false, choiceImageCount: Int = 6,
                           overrides: ModelOverrides = ModelOverrides(), log: (String) -> Void = { _ in }) throws {
        guard percentile > 0, percentile <= 100 else {
            throw EdgeError("percentile \(percentile) must be in (0, 100]")
        }
        if let g = guardOptions {
            guard g.budget >= 1 else { throw EdgeError("--max-float-layers must be at least 1 for --accuracy-guard, got \(g.budget)") }
            guard g.maxDrop >= 0, g.maxDrop.isFinite else { throw EdgeError("--max-drop must be a number >= 0, got \(g.maxDrop)") }
            guard g.images >= 1 else { throw EdgeError("--guard-images must be at least 1, got \(g.images)") }
        }
        // the guard's images first: a bad annotations file fails before the calibration pass
        var guardSet = try guardOptions.flatMap { g -> (COCODataset, [GuardImage])? in
            guard let a = g.annotations else { return nil }
            let gt = try COCODataset.load(path: a)
            return (gt, try AccuracyGuard.images(gt: gt, dir: g.imagesDir, limit: g.images))
        }
        let guardFiles = try guardOptions.flatMap { g -> [String]? in
            g.annotations != nil ? nil : Array(try imageFiles(in: g.imagesDir, log: { _ in }).prefix(g.images))
        }
        var files = try imageFiles(in: imagesDir, log: log)
        if let m = maxImages { files = Array(files.prefix(max(m, 0))) }
        if files.count < 2 {
            throw EdgeError(file: imagesDir, "calibration needs at least 2 images, found \(files.count)")
        }
        let loaded = try ModelLoader.load(path: modelPath, overrides: overrides, notice: log)
        if QuantizedModel.isInt8(loaded.store) {
            throw EdgeError(file: modelPath, "is already an int8 model; calibrate a float model")
        }
        let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        // --keep-float names are checked against this model's architecture before the pass
        if let bad = floatLayers.keys.sorted().first(where: { model.network.layer($0)?.op.hasWeights != true }) {
            throw EdgeError(file: modelPath, "'\(bad)' is not a weight layer of \(model.network.name) (`edge-mrcnn info MODEL` lists them)")
        }
        let cal = Calibrator(model: model)
        var used: [String] = []
        for (k, f) in files.enumerated() {
            let image: RGBImage
            do { image = try loadImage(path: f) } catch {
                log("skipping \(f): \((error as? EdgeError)?.message ?? "\(error)")")
                continue
            }
            try cal.add(image, name: OutputPaths.baseName(f))
            used.append(f)
            log("[\(k + 1)/\(files.count)] \(OutputPaths.baseName(f))")
        }
        guard cal.imageNames.count >= 2 else {
            throw EdgeError(file: imagesDir, "calibration needs at least 2 usable images, got \(cal.imageNames.count)")
        }
        var keep = floatLayers
        // the bias correction's images and the report's (a report never changes the file)
        var cache: [Int: [(String, RGBImage)]] = [:]
        func firstImages(_ n: Int) throws -> [(String, RGBImage)] {
            if let m = cache[n] { return m }
            let m = try used.prefix(max(n, 1)).map { (OutputPaths.baseName($0), try loadImage(path: $0)) }
            cache[n] = m
            return m
        }
        func measureImages() throws -> [(String, RGBImage)] { try firstImages(biasImageCount) }
        // --method auto: the method of each activation, by the error of the layers reading it
        var choice: MethodChoice.Result? = nil
        if methodChoice {
            guard choiceImageCount >= 1 else { throw EdgeError("--auto-images must be at least 1, got \(choiceImageCount)") }
            let t0 = monotonicSeconds()
            let imgs = try firstImages(choiceImageCount).map { $0.1 }
            let errors = try MethodChoice.measure(model: model, observer: cal.observer, percentile: percentile, images: imgs)
            let c = MethodChoice.Result(methods: MethodChoice.choose(activations: cal.observer.spec.activations, errors: errors),
                                        images: imgs.count)
            choice = c
            log("method per activation (auto, measured on \(imgs.count) image\(imgs.count == 1 ? "" : "s")): \(MethodChoice.summary(c.methods)) "
                + "(\(COCOEvalResult.fixed(monotonicSeconds() - t0, 1)) s)")
        }
        // bias correction: the per-channel mean shift of each int8 layer alone, measured on the
        // first calibration images with the uncorrected model, subtracted from its bias
        var corrections: [CalibrationMethod: [String: [Float]]] = [:]
        func corrected(_ m: CalibrationMethod, _ k: [String: String]) throws -> [String: [Float]] {
            guard biasCorrection != .off else { return [:] }
            if let c = corrections[m] { return c }
            let t0 = monotonicSeconds()
            let q0 = try cal.quantizedModel(float: loaded.store, method: m, percentile: percentile, floatLayers: k,
                                            choice: choice, source: modelPath)
            let r0 = try CalibrationReport.measure(float: model, int8: try MaskRCNN(store: q0, config: loaded.config, source: output),
                                                   images: try measureImages())
            corrections[m] = r0.biasCorrections
            log("bias correction (\(choice == nil ? m.rawValue : MethodChoice.auto)): \(r0.biasCorrections.count) layers measured on \(try measureImages().count) images "
                + "(\(COCOEvalResult.fixed(monotonicSeconds() - t0, 1)) s)")
            return r0.biasCorrections
        }
        func build(_ m: CalibrationMethod, _ k: [String: String], correct: Bool) throws -> OwnedTensorStore {
            let c = correct ? try corrected(m, floatLayers) : [:]
            return try cal.quantizedModel(float: loaded.store, method: m, percentile: percentile, floatLayers: k,
                                          biasCorrection: c, correctionImages: c.isEmpty ? 0 : try measureImages().count,
                                          choice: choice, source: modelPath)
        }
        let correctMain = biasCorrection != .off
        if report != nil || guardOptions != nil {
            let q = try build(method, keep, correct: correctMain)
            let qm = try MaskRCNN(store: q, config: loaded.config, source: output)
            let imgs = try firstImages(report?.images ?? 20)
            let t0 = monotonicSeconds()
            let e2e = report?.endToEndImages ?? guardOptions?.endToEndImages ?? ReportOptions.defaultEndToEndImages
            let r = try CalibrationReport.measure(float: model, int8: qm, images: imgs, endToEndImages: e2e, progress: log)
            if let ro = report {
                log(r.table)
                log("(report: \(COCOEvalResult.fixed(monotonicSeconds() - t0, 1)) s)")
                if let p = ro.jsonPath { try AtomicFile.write(path: p, contents: r.json.serialized() + "\n") }
            }
            if let g = guardOptions {
                let t1 = monotonicSeconds()
                if let files = guardFiles { guardSet = try AccuracyGuard.floatLabels(model, files: files) }
                let (gt, gimgs) = guardSet!
                let fs = try AccuracyGuard.evaluate(model, gt: gt, images: gimgs)
                let plural = gimgs.count == 1 ? "" : "s"
                log("accuracy guard on \(gimgs.count) " + (guardFiles == nil ? "annotated image\(plural)"
                        : "image\(plural) labelled by the float model's own detections (score >= 0.5)") + ": float box AP "
                    + "\(COCOEvalResult.fixed(fs.boxAP, 2)), mask AP \(COCOEvalResult.fixed(fs.maskAP, 2)) "
                    + "(\(COCOEvalResult.fixed(monotonicSeconds() - t1, 1)) s); allowed mask AP drop \(g.maxDrop), "
                    + "at most \(g.budget) layer\(g.budget == 1 ? "" : "s") in float")
                let base = keep
                var worstSE = 0.0
                let outcome = try AccuracyGuard.search(
                    ranking: r.worstInt8Layers.filter { base[$0] == nil }, budget: g.budget, maxDrop: g.maxDrop, float: fs,
                    clock: monotonicSeconds,
                    measure: { extra in
                        var k = base
                        for l in extra { k[l] = "--accuracy-guard" }
                        let s = try build(method, k, correct: correctMain)
                        return try AccuracyGuard.evaluate(try MaskRCNN(store: s, config: loaded.config, source: output),
                                                          gt: gt, images: gimgs)
                    },
                    progress: { st in
                        let se = AccuracyGuard.dropStandardError(float: fs, int8: st.score)
                        if let se { worstSE = max(worstSE, se) }
                        log("  step \(st.floatLayers.count): " + (st.added.map { "+ \($0) in float" } ?? "all int8")
                            + ": box AP \(COCOEvalResult.fixed(st.score.boxAP, 2)), mask AP \(COCOEvalResult.fixed(st.score.maskAP, 2)) "
                            + "(drop \(COCOEvalResult.fixed(fs.maskAP - st.score.maskAP, 2))"
                            + (se.map { " ± \(COCOEvalResult.fixed($0, 2)) standard error" } ?? "")
                            + "; \(COCOEvalResult.fixed(st.seconds, 1)) s)")
                    })
                if worstSE > g.maxDrop {
                    log("note: on \(gimgs.count) image\(plural) the drop's standard error (jackknife, up to \(COCOEvalResult.fixed(worstSE, 2)) mask AP) "
                        + "exceeds the allowed drop \(g.maxDrop): whether a step meets it is decided by noise as much as by the layers "
                        + "(more images: --guard-images; or a larger --max-drop)")
                }
                guard outcome.met else {
                    let best = outcome.steps.max { $0.score.maskAP < $1.score.maskAP }!
                    throw EdgeError("--accuracy-guard: the budget of \(g.budget) float layer\(g.budget == 1 ? "" : "s") is spent and int8 "
                        + "is still \(COCOEvalResult.fixed(fs.maskAP - outcome.steps.last!.score.maskAP, 2)) mask AP below float "
                        + "(allowed \(g.maxDrop)); best: \(best.floatLayers.isEmpty ? "all int8" : best.floatLayers.joined(separator: ","))"
                        + " at \(COCOEvalResult.fixed(fs.maskAP - best.score.maskAP, 2)); nothing written (raise --max-float-layers or --max-drop)")
                }
                for l in outcome.settled { keep[l] = "--accuracy-guard" }
                log("accuracy guard settled on " + (outcome.settled.isEmpty ? "all layers int8" : "\(outcome.settled.count) float layer"
                    + (outcome.settled.count == 1 ? "" : "s") + ": " + outcome.settled.joined(separator: ", "))
                    + " (mask AP \(COCOEvalResult.fixed(outcome.steps.last!.score.maskAP, 2)) vs float \(COCOEvalResult.fixed(fs.maskAP, 2)))")
            }
        }
        var outs: [(CalibrationMethod, Bool, String)] = [(method, correctMain, output)] + alsoWrite.map { ($0.method, correctMain, $0.output) }
        if biasCorrection == .both {
            // one calibration pass, both variants: OUT (corrected) and OUT-nobc (not)
            let stem = output.hasSuffix(".safetensors") ? String(output.dropLast(12)) : output
            outs.append((method, false, stem + "-nobc.safetensors"))
        }
        for (m, bc, out) in outs {
            let q = try build(m, keep, correct: bc)
            try SafeTensorsWriter.write(q, metadata: q.metadata, to: out)
            log("wrote \(out): int8, \(choice == nil ? m.rawValue : "per-activation (auto)") calibration on \(cal.imageNames.count) images"
                + (bc ? ", bias-corrected" : "")
                + (keep.isEmpty ? "" : ", \(keep.count) layer\(keep.count == 1 ? "" : "s") in float"))
        }
    }
}
