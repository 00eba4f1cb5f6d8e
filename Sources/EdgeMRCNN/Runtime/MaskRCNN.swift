// The float Mask R-CNN R50-FPN model: weights + the pipeline stages (Stages/). OWNER: pipeline.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Per-stage intermediates and timings of one `detect` run (for parity tests and benchmarks).
/// Timings are always recorded; tensors only when `captureTensors` is true.
public final class PipelineTrace {
    public var captureTensors: Bool
    /// (stage, seconds) in run order: preprocess, backbone, fpn, rpn, roi_heads, masks, paste.
    public var timings: [(stage: String, seconds: Double)] = []
    /// The same stages in process CPU time (all threads); on a busy machine the steadier measure
    /// of single-threaded work.
    public var cpuTimings: [(stage: String, seconds: Double)] = []
    public var sizes: ImageSizes?
    /// Normalised, resized, zero-padded input [3, paddedH, paddedW].
    public var input: FeatureMap?
    /// P2, P3, P4, P5, P6 (torchvision '0', '1', '2', '3', 'pool').
    public var fpn: [FeatureMap] = []
    /// RPN proposals (flat x1,y1,x2,y2 in resized coordinates) and objectness probabilities.
    public var proposals: [Float] = []
    public var proposalScores: [Float] = []
    /// Final boxes before rescaling to the original image (resized coordinates), flat.
    public var prePasteBoxes: [Float] = []
    public var scores: [Float] = []
    public var labels: [Int] = []
    /// 28x28 probabilities of the predicted label per detection, [N * 784].
    public var maskProbabilities: [Float] = []

    public init(captureTensors: Bool = false) { self.captureTensors = captureTensors }

    public var totalSeconds: Double { timings.reduce(0) { $0 + $1.seconds } }
}

public final class MaskRCNN {
    public let config: ModelConfig
    private let store: TensorStore   // keeps the weight memory alive
    private let backbone: Backbone?
    private let fpn: FPN?
    /// The int8 layers (int8 model files); nil for float models and simulated int8.
    private var int8: Int8Network?
    /// EDGE_MRCNN_INT8=simulate: run int8 models on the float kernels with simulated quantisation.
    static var simulateInt8: Bool {
        guard let e = getenv("EDGE_MRCNN_INT8") else { return false }
        return String(cString: e) == "simulate"
    }
    /// "float32", "int8" or "int8 (simulated)".
    public var precision: String { int8 != nil ? "int8" : activationHook is SimulatedInt8 ? "int8 (simulated)" : "float32" }
    private let rpn: RPN
    private let boxHead: BoxHead
    private let maskHead: MaskHead
    /// Activation name of the normalised, padded input image (the input of the stem).
    public static let inputName = "input"

    /// Binds the weights of `store` (canonical names from ModelSpec). `source` names the file in
    /// error messages. Throws on missing or mis-shaped tensors.
    public init(store: TensorStore, config: ModelConfig, source: String) throws {
        guard config.numClasses >= 2 else {
            throw EdgeError(file: source, "model has \(config.numClasses) classes, need at least 2")
        }
        guard config.minSize > 0, config.maxSize > 0 else {
            throw EdgeError(file: source, "invalid transform sizes min \(config.minSize) max \(config.maxSize)")
        }
        self.config = config
        var store: TensorStore = store
        if QuantizedModel.isInt8(store) {
            if MaskRCNN.simulateInt8 {
                // simulated on the float kernels: dequantised weights, every activation quantised
                // in place (EDGE_MRCNN_INT8=simulate; for accuracy studies)
                let (s, qp) = try QuantizedModel.dequantized(store, config: config, source: source)
                store = s
                activationHook = SimulatedInt8(qparams: qp)
            } else {
                int8 = try Int8Network(store, config: config, source: source)
                // the head structs keep their float logic; only their (small) weights are bound
                let (s, _) = try QuantizedModel.dequantized(store, config: config, source: source,
                                                            only: { !$0.hasPrefix("backbone.") && $0 != "roi_heads.box_head.fc6" })
                store = s
            }
        }
        self.store = store
        backbone = int8 == nil ? try Backbone(store, source: source) : nil
        fpn = int8 == nil ? try FPN(store, source: source) : nil
        rpn = try RPN(store, source: source)
        boxHead = try BoxHead(store, numClasses: config.numClasses, source: source, withMLP: int8 == nil)
        maskHead = try MaskHead(store, numClasses: config.numClasses, source: source)
    }

    /// Runs the whole model on one image. Detections are in original image coordinates, sorted
    /// by descending score, at most 100, with masks pasted and thresholded at 0.5.
    /// scoreThresh: torchvision's box_score_thresh (0.05).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05) throws -> [Detection] {
        try detect(image, scoreThresh: scoreThresh, trace: nil)
    }

    /// `detect` that also fills `trace` (timings always; tensors if trace.captureTensors).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05, trace: PipelineTrace?) throws -> [Detection] {
        try detect(image, scoreThresh: scoreThresh, trace: trace, hook: activationHook)
    }

    /// Set by the int8 loader: simulated quantisation of every activation (see Quant/).
    public var activationHook: ActivationHook?

    /// `detect` with an activation hook (calibration observers, simulated int8).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05, trace: PipelineTrace?,
                       hook: ActivationHook?) throws -> [Detection] {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw EdgeError("image has invalid size \(image.width)x\(image.height)")
        }
        let ws = Workspace()
        ws.hook = hook
        var t0 = monotonicSeconds(), c0 = processCPUSeconds()
        func lap(_ name: String) {
            guard let trace = trace else { return }
            let t = monotonicSeconds(), c = processCPUSeconds()
            trace.timings.append((name, t - t0))
            trace.cpuTimings.append((name, c - c0))
            t0 = t; c0 = c
        }
        let capture = trace?.captureTensors ?? false

        let (x, sizes) = Transform.run(image, config: config, ws)
        trace?.sizes = sizes
        hook?.activation(MaskRCNN.inputName, x.pointer, x.count)
        if capture { trace?.input = x }
        lap("preprocess")

        // C2..C5 are released as soon as the FPN has consumed them.
        let ps: [FeatureMap]
        var proposals: [Float], pscores: [Float]
        var det: (boxes: [Float], scores: [Float], labels: [Int])
        let probs: FloatBuffer
        if let q = int8 {
            let pq = try q.features(x, afterBackbone: { lap("backbone") })
            lap("fpn")
            ps = pq.prefix(4).map { $0.dequantized() }   // RoIAlign reads float maps
            (proposals, pscores) = rpn.proposals(try q.rpnHeads(pq), sizes: sizes)
            if capture { trace?.fpn = ps + [pq[4].dequantized()] }
            lap("rpn")
            det = boxHead.run(ps, proposals: proposals, sizes: sizes, scoreThresh: scoreThresh, ws,
                              predictor: q.boxPredictor(numClasses: config.numClasses))
            lap("roi_heads")
            probs = try q.masks(ps, boxes: det.boxes, labels: det.labels, sizes: sizes, numClasses: config.numClasses)
        } else {
            let cs = backbone!.run(x, ws)
            lap("backbone")
            ps = fpn!.run(cs, ws)
            if capture { trace?.fpn = ps }
            lap("fpn")
            (proposals, pscores) = rpn.run(ps, sizes: sizes, ws)
            lap("rpn")
            det = boxHead.run(ps, proposals: proposals, sizes: sizes, scoreThresh: scoreThresh, ws)
            lap("roi_heads")
            probs = maskHead.run(ps, boxes: det.boxes, labels: det.labels, sizes: sizes, ws)
        }
        if capture {
            trace?.proposals = proposals; trace?.proposalScores = pscores
            trace?.prePasteBoxes = det.boxes; trace?.scores = det.scores; trace?.labels = det.labels
        }
        if capture { trace?.maskProbabilities = probs.toArray() }
        lap("masks")

        let boxes = Paste.rescale(det.boxes, sizes: sizes)
        var out: [Detection] = []
        out.reserveCapacity(det.labels.count)
        let m = MaskHead.size
        for i in 0..<det.labels.count {
            let b = Array(boxes[(4 * i)..<(4 * i + 4)])
            let region = Paste.mask(probs.pointer + i * m * m, size: m, box: b, imageHeight: image.height,
                                    imageWidth: image.width)
            out.append(Detection(box: (b[0], b[1], b[2], b[3]), score: det.scores[i], label: det.labels[i],
                                 mask: region))
        }
        lap("paste")
        return out
    }
}
