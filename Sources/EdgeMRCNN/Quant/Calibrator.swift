// Calibration: runs the float model over sample images with a HistogramObserver on every
// activation that gets uint8 parameters (QuantSpec.activations), then chooses the parameters.

public final class CalibrationObserver: ActivationHook {
    public private(set) var observers: [String: HistogramObserver] = [:]
    /// The first layer whose output held a NaN or an infinity.
    public private(set) var firstNonFinite: String?
    public let bins: Int

    public init(bins: Int = 2048) { self.bins = bins }

    public func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int) {
        let k = QuantSpec.key(name)
        let o: HistogramObserver
        if let e = observers[k] { o = e } else { o = HistogramObserver(bins: bins); observers[k] = o }
        o.observe(UnsafePointer(values), count)
        if o.nonFinite && firstNonFinite == nil { firstNonFinite = name }
    }

    /// Parameters of every observed activation. Activations never seen (no RoIs in any image)
    /// get minmax of nothing: scale 1, zero point 0.
    public func qparams(_ method: CalibrationMethod, percentile: Double = 99.99) -> [String: QParams] {
        var out: [String: QParams] = [:]
        for a in QuantSpec.activations {
            out[a] = observers[a]?.qparams(method, percentile: percentile) ?? QParams(lo: 0, hi: 0)
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
        observer = CalibrationObserver(bins: bins)
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
                               floatLayers: [String: String] = [:], source: String) throws -> OwnedTensorStore {
        guard imageNames.count >= 2 else {
            throw EdgeError("calibration needs at least 2 images, got \(imageNames.count)")
        }
        let qp = observer.qparams(method, percentile: percentile)
        let info = CalibrationInfo(method: method, imageNames: imageNames, percentile: percentile)
        return try QuantizedModel.build(float: store, config: model.config, qparams: qp, info: info,
                                        floatLayers: floatLayers, source: source)
    }
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

    /// Calibrates the float model at `modelPath` on the images of `imagesDir` and writes the int8
    /// model to `output`. Images that cannot be decoded are skipped with a message; fewer than 2
    /// usable images is an error.
    public static func run(modelPath: String, imagesDir: String, output: String,
                           method: CalibrationMethod = CalibrationMethod.defaultMethod,
                           alsoWrite: [(method: CalibrationMethod, output: String)] = [],
                           maxImages: Int? = nil, percentile: Double = 99.99,
                           floatLayers: [String: String] = [:],
                           overrides: ModelOverrides = ModelOverrides(), log: (String) -> Void = { _ in }) throws {
        guard percentile > 0, percentile <= 100 else {
            throw EdgeError("percentile \(percentile) must be in (0, 100]")
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
        let cal = Calibrator(model: model)
        for (k, f) in files.enumerated() {
            let image: RGBImage
            do { image = try loadImage(path: f) } catch {
                log("skipping \(f): \((error as? EdgeError)?.message ?? "\(error)")")
                continue
            }
            try cal.add(image, name: OutputPaths.baseName(f))
            log("[\(k + 1)/\(files.count)] \(OutputPaths.baseName(f))")
        }
        guard cal.imageNames.count >= 2 else {
            throw EdgeError(file: imagesDir, "calibration needs at least 2 usable images, got \(cal.imageNames.count)")
        }
        for (m, out) in [(method, output)] + alsoWrite {
            let q = try cal.quantizedModel(float: loaded.store, method: m, percentile: percentile,
                                           floatLayers: floatLayers, source: modelPath)
            try SafeTensorsWriter.write(q, metadata: q.metadata, to: out)
            log("wrote \(out): int8, \(m.rawValue) calibration on \(cal.imageNames.count) images")
        }
    }
}
