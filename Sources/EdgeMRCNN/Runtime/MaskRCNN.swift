// The Mask R-CNN model: its weights bound by the executor (Stages/Executor.swift) at each layer's
// precision, and the pipeline that runs the stages on one image.

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
    /// Set it (bench --layers) to get each weight layer's wall time; nil: layers are not timed.
    public var layerClock: LayerClock?
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
    /// Estimated bytes of the RoI-head buffers at one chunk level (float layout; the int8 heads
    /// need less), from the network description: a box chunk's pooled features and MLP rows plus
    /// the logits/deltas of every proposal; the mask head's pooled features of every detection,
    /// two conv maps, the upsampled map and the deconv scratch of a batch; the 28x28 probabilities.
    static func headBytes(_ l: (boxChunk: Int, maskBatch: Int), _ net: Network) -> Int {
        func rois(_ s: NetStage) -> (pooled: Int, c: Int, p: Int, rows: Int) {
            let d = net.layers(in: s)
            guard let d0 = d.first, case .roiAlign(let p, _) = d0.op else { return (0, 0, 0, 0) }
            return (d[0].cout * p * p, d[0].cout, p, d.filter { $0.op == .linear && !$0.floatOutput }.reduce(0) { $0 + $1.cout })
        }
        let b = rois(.roi_heads), m = rois(.masks), k = net.numClasses, mm = 4 * m.p * m.p
        let box = l.boxChunk * (b.pooled + b.rows) * 4 + BoxHead.proposalBound * 5 * k * 4
        let w = l.maskBatch * (m.p + 1) - 1
        let mask = BoxHead.detectionsPerImageBound * (mm + m.pooled) * 4 + 14 * m.c * m.p * w * 4   // two conv maps, the upsampled map (x4), the deconv scratch (x4, x2)
        return max(box, mask) + BoxHead.detectionsPerImageBound * mm * 4
    }

    public let config: ModelConfig
    private let store: TensorStore   // keeps the weight memory alive
    /// The model file's metadata.
    var metadata: [String: String] { store.metadata }
    /// Every layer of the network description bound at its precision, and the walk over them.
    private let net: Executor
    /// EDGE_MRCNN_INT8=simulate: run int8 models on the float kernels with simulated quantisation.
    static var simulateInt8: Bool {
        guard let e = getenv("EDGE_MRCNN_INT8") else { return false }
        return String(cString: e) == "simulate"
    }
    /// The network description this model runs.
    public var network: Network { net.net }
    /// "float32", "int8", "int8 (N layers float)" or "int8 (simulated)".
    public var precision: String {
        let q = net.int8Layers, all = net.net.weightLayers.count
        if q == 0 { return activationHook is SimulatedInt8 ? "int8 (simulated)" : "float32" }
        return q == all ? "int8" : "int8 (\(all - q) of \(all) layers float)"
    }
    /// Each weight layer's name and precision ("int8" or "float32"), in network order.
    public var layerPrecisions: [(name: String, precision: String)] {
        net.net.weightLayers.map { ($0.name, net.layer($0.name).isInt8 ? "int8" : "float32") }
    }
    private let rpn: RPN
    /// Activation memory, planned per padded input shape and reused (Runtime/Buffers.swift).
    private let arena = Arena()
    /// What the arena planner did: plan size vs the sum of the buffers, plans made, fallbacks.
    public var arenaStats: ArenaStats { arena.stats }
    /// Bytes of weight memory the model keeps (mapped or owned tensors and packed int8 blobs).
    public private(set) var weightBytes = 0
    /// --max-memory: a budget in bytes for weights + the decoded image + planned activations (kernel
    /// scratch included; not the runtime itself nor a .pth loader's transient copy). With a
    /// budget the RoI heads work in smaller chunks when the full-size ones would not fit, and
    /// detect fails with a one-line error when even the smallest do not fit. nil: no budget.
    public var maxMemoryBytes: Int?
    /// RoI chunk sizes from fastest (most memory) to smallest: box-head RoIs per chunk and mask
    /// RoIs per batch. Index = the plan's tag.
    static let memoryLevels: [(boxChunk: Int, maskBatch: Int)] = [(BoxHead.chunk, MaskHead.batch), (64, 4), (16, 1)]
    private var boxHead: BoxHead
    /// Detections kept per image, best first (torchvision box_detections_per_img, default 100).
    public var maxDetections: Int {
        get { boxHead.detectionsPerImage }
        set { boxHead.detectionsPerImage = max(newValue, 1) }
    }
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
        if QuantizedModel.isInt8(store) && MaskRCNN.simulateInt8 {
            // simulated on the float kernels: dequantised weights, every activation quantised
            // in place (EDGE_MRCNN_INT8=simulate; for accuracy studies)
            let (s, qp) = try QuantizedModel.dequantized(store, config: config, source: source)
            store = s
            activationHook = SimulatedInt8(qparams: qp, network: try Network.build(config))
        }
        self.store = store
        net = try Executor(store, config: config, source: source)
        weightBytes = store.names.reduce(0) { $0 + (store.tensor($1)?.byteCount ?? 0) } + net.ownedBytes
        rpn = RPN(anchorsPerLocation: net.net.anchorsPerLocation)
        boxHead = BoxHead(numClasses: config.numClasses)
    }

    /// Runs the whole model on one image. Detections are in original image coordinates, sorted
    /// by descending score, at most 100, with masks pasted and thresholded at 0.5.
    /// scoreThresh: torchvision's box_score_thresh (0.05). options: classes kept and which
    /// detections get masks (Runtime/DetectOptions.swift; default: all, as torchvision).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05, options: DetectOptions = .all) throws -> [Detection] {
        try detect(image, scoreThresh: scoreThresh, trace: nil, options: options)
    }

    /// `detect` that also fills `trace` (timings always; tensors if trace.captureTensors).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05, trace: PipelineTrace?,
                       options: DetectOptions = .all) throws -> [Detection] {
        try detect(image, scoreThresh: scoreThresh, trace: trace, hook: activationHook, options: options)
    }

    /// Set by the int8 loader: simulated quantisation of every activation (see Quant/).
    public var activationHook: ActivationHook?
    /// Sees every weight layer as it runs (the calibration report, Quant/Report.swift).
    var layerObserver: LayerObserver?
    /// The executor's binding of weight layer `name` (the report runs single layers with it).
    func boundLayer(_ name: String) -> Layer { net.layer(name) }
    /// The uint8 parameters of an activation in this model (int8 files).
    func activationParams(_ name: String) -> QParams? { net.params(name) }

    /// `detect` with an activation hook (calibration observers, simulated int8).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05, trace: PipelineTrace?,
                       hook: ActivationHook?, options: DetectOptions = .all) throws -> [Detection] {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw EdgeError("image has invalid size \(image.width)x\(image.height)")
        }
        let sizes0 = Transform.sizes(height: image.height, width: image.width, minSize: config.minSize,
                                     maxSize: config.maxSize)
        let ph = sizes0.paddedHeight, pw = sizes0.paddedWidth
        let mb = 1 << 20
        func budgetError(_ need: Int, _ what: String) -> EdgeError {
            EdgeError("input \(image.width)x\(image.height) (padded \(pw)x\(ph)) needs at least \((need + mb - 1) / mb) MB "
                + "(weights \(weightBytes / mb) MB + image \(image.pixels.count / mb) MB + \(what)), --max-memory allows \(maxMemoryBytes! / mb) MB")
        }
        // With a budget (--max-memory), checked before anything runs: the decoded image, the
        // weights and a lower bound of the activations (layer1's first bottleneck holds 64 + 64 +
        // 256 + 256 channels at stride 4); then a saved plan that does not fit is re-made with
        // smaller RoI chunks, or fails when the smallest chunks do not fit either; a planning run
        // checks what it has allocated at every stage and picks the RoI chunks that fit.
        let fixedBytes = weightBytes + image.pixels.count
        if let limit = maxMemoryBytes {
            let lower = fixedBytes + 640 * (ph / 4) * (pw / 4) * (net.int8Layers > 0 ? 1 : 4)
            if lower > limit { throw budgetError(lower, "activations at least \((lower - fixedBytes) / mb) MB") }
        }
        let existing = arena.savedPlan(paddedHeight: ph, paddedWidth: pw)
        var tag = existing?.tag ?? 0
        if let limit = maxMemoryBytes, let e = existing {
            let need = fixedBytes + e.planBytes
            if need > limit {
                if tag + 1 < MaskRCNN.memoryLevels.count {
                    tag += 1   // re-plan with smaller RoI chunks
                } else {
                    throw budgetError(need, "activations \(e.planBytes / mb) MB")
                }
            }
        }
        arena.shrinkBlock = maxMemoryBytes != nil
        arena.beginRun(paddedHeight: ph, paddedWidth: pw, tag: tag)
        var completed = false
        defer { arena.endRun(completed: completed) }
        let ws = Workspace(arena: arena)
        ws.hook = hook
        ws.layerObserver = layerObserver
        ws.layerClock = trace?.layerClock
        func applyLevel(_ t: Int) {
            let l = MaskRCNN.memoryLevels[min(max(t, 0), MaskRCNN.memoryLevels.count - 1)]
            ws.boxChunk = l.boxChunk; ws.maskBatch = l.maskBatch
            ws.detectionBound = max(boxHead.detectionsPerImage, 1)
        }
        applyLevel(tag)
        var t0 = monotonicSeconds(), c0 = processCPUSeconds()
        func lap(_ name: String) throws {
            if let limit = maxMemoryBytes, arena.isRecording {
                let need = fixedBytes + arena.recordingPeakBytes
                if need > limit { throw budgetError(need, "activations \(arena.recordingPeakBytes / mb) MB so far") }
            }
            guard let trace = trace else { return }
            let t = monotonicSeconds(), c = processCPUSeconds()
            trace.timings.append((name, t - t0))
            trace.cpuTimings.append((name, c - c0))
            t0 = t; c0 = c
        }
        /// Planning run with a budget: the largest RoI chunks (at least the plan's) whose head
        /// buffers fit beside what is alive now.
        func chooseHeadLevel() {
            guard let limit = maxMemoryBytes, arena.isRecording else { return }
            let room = limit - fixedBytes - arena.recordingLiveBytes
            var t = arena.recordingTag
            while t + 1 < MaskRCNN.memoryLevels.count && MaskRCNN.headBytes(MaskRCNN.memoryLevels[t], net.net) > room {
                t += 1
            }
            arena.setPlanTag(t)
            applyLevel(t)
        }
        let capture = trace?.captureTensors ?? false

        // the input is released as soon as the stem has read it (unless a trace keeps it)
        var x: Act?
        let sizes: ImageSizes
        // int8 stem, nothing that looks at the float input: normalised and quantised in one pass
        if hook == nil, !capture, let q = net.inputQParams,
           let r = Transform.runU8(image, config: config, q: q, ws) {
            x = r.0; sizes = r.1
        } else {
            let r = Transform.run(image, config: config, ws)
            x = Act(r.0); sizes = r.1
            hook?.activation(MaskRCNN.inputName, r.0.pointer, r.0.count)
            if capture { trace?.input = r.0 }
        }
        trace?.sizes = sizes
        try lap("preprocess")

        // C2..C5 are released as soon as the FPN has consumed them.
        var levels = try net.features(&x, ws) { try lap($0.rawValue) }
        if capture { trace?.fpn = levels.map { $0.featureMap(ws) } }
        let heads = try net.rpnHeads(levels, ws)
        // RoIAlign samples every channel of a uint8 pixel at once: P2..P5 in HWC from here on
        let roiLevels = net.roiLevels(levels, ws)
        levels = []
        let (proposals, pscores) = rpn.proposals(heads, sizes: sizes, ws)
        try lap("rpn")
        chooseHeadLevel()
        var det = try boxHead.run(proposals: proposals, sizes: sizes, scoreThresh: scoreThresh, ws,
                                  scorer: net.boxScorer(roiLevels, sizes: sizes, ws))
        try lap("roi_heads")
        var options = options
        if !net.net.hasMasks { options.masks = false }   // a box-only architecture (Faster R-CNN)
        let wanted = options.apply(to: &det)   // DetectOptions: classes kept, detections that get masks
        let probs = try net.masks(roiLevels, boxes: wanted.boxes, labels: wanted.labels, sizes: sizes, ws)
        if capture {
            trace?.proposals = proposals; trace?.proposalScores = pscores
            trace?.prePasteBoxes = det.boxes; trace?.scores = det.scores; trace?.labels = det.labels
        }
        if capture { trace?.maskProbabilities = probs.toArray() }
        try lap("masks")
        // Keypoint R-CNN: the keypoints of every detection kept (torchvision: all of them)
        var keypoints: [[Keypoint]] = []
        if net.net.hasKeypoints {
            keypoints = try net.keypoints(roiLevels, boxes: det.boxes, sizes: sizes, ws)
            try lap("keypoints")
        }

        let boxes = Paste.rescale(det.boxes, sizes: sizes)
        var out: [Detection] = []
        out.reserveCapacity(det.labels.count)
        let m = MaskHead.size
        // Streamed: each mask is pasted into a reusable buffer (one per kernel thread) and
        // RLE-encoded at once; the detections are spread over the kernel threads.
        let rles = MaskPaster.rles(probs.pointer, boxes: boxes, slots: wanted.slot, size: m,
                                   imageHeight: image.height, imageWidth: image.width)
        for i in 0..<det.labels.count {
            let b = Array(boxes[(4 * i)..<(4 * i + 4)])
            out.append(Detection(box: (b[0], b[1], b[2], b[3]), score: det.scores[i], label: det.labels[i],
                                 mask: rles[i], keypoints: keypoints.isEmpty ? nil : keypoints[i]))
        }
        try lap("paste")
        completed = true
        return out
    }
}

