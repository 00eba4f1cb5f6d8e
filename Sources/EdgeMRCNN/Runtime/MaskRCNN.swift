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
    /// Estimated bytes of the RoI-head buffers at one chunk level (float layout; the int8 heads
    /// need less): box chunk pooled features + fc6/fc7 rows + logits/deltas of every proposal,
    /// and the mask head's pooled features, two conv maps, the upsampled map and the deconv scratch.
    static func headBytes(_ l: (boxChunk: Int, maskBatch: Int), numClasses k: Int) -> Int {
        let box = l.boxChunk * (256 * 49 + 2 * 1024) * 4 + BoxHead.proposalBound * 5 * k * 4
        let w = l.maskBatch * 15 - 1
        let mask = BoxHead.detectionsPerImageBound * (784 + 256 * 196) * 4 + (2 * 256 * 14 * w + 2 * 256 * 28 * 2 * w + 4 * 256 * 14 * w) * 4
        return max(box, mask) + BoxHead.detectionsPerImageBound * 784 * 4
    }

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
                // every weight layer runs on the int8 kernels; the head structs only contribute
                // their float post-processing (decoding, NMS, ...), so no float weights are bound
                int8 = try Int8Network(store, config: config, source: source)
            }
        }
        self.store = store
        var wb = store.names.reduce(0) { $0 + (store.tensor($1)?.byteCount ?? 0) }
        if let q = int8 { wb += q.weightBytes }
        weightBytes = wb
        let bind = int8 == nil
        backbone = bind ? try Backbone(store, source: source) : nil
        fpn = bind ? try FPN(store, source: source) : nil
        rpn = try RPN(store, source: source, bindWeights: bind)
        boxHead = try BoxHead(store, numClasses: config.numClasses, source: source, bindWeights: bind)
        maskHead = try MaskHead(store, numClasses: config.numClasses, source: source, bindWeights: bind)
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
            let lower = fixedBytes + 640 * (ph / 4) * (pw / 4) * (int8 != nil ? 1 : 4)
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
            while t + 1 < MaskRCNN.memoryLevels.count && MaskRCNN.headBytes(MaskRCNN.memoryLevels[t], numClasses: config.numClasses) > room {
                t += 1
            }
            arena.setPlanTag(t)
            applyLevel(t)
        }
        let capture = trace?.captureTensors ?? false

        // the input is released as soon as the stem has read it (unless a trace keeps it)
        var x: FeatureMap?
        let sizes: ImageSizes
        do {
            let r = Transform.run(image, config: config, ws)
            x = r.0; sizes = r.1
        }
        trace?.sizes = sizes
        hook?.activation(MaskRCNN.inputName, x!.pointer, x!.count)
        if capture { trace?.input = x }
        try lap("preprocess")

        // C2..C5 are released as soon as the FPN has consumed them.
        var proposals: [Float], pscores: [Float]
        var det: (boxes: [Float], scores: [Float], labels: [Int])
        let probs: FloatBuffer
        let wanted: MaskSelection   // DetectOptions: classes kept, detections that get masks
        if let q = int8 {
            var y = try q.stem(x!, ws)
            x = nil
            var pq = try q.features(stem: &y, ws, afterBackbone: { try lap("backbone") })
            try lap("fpn")
            let heads = try q.rpnHeads(pq, ws)
            if capture { trace?.fpn = pq.map { $0.dequantized(ws) } }
            // RoIAlign samples every channel of a pixel at once: P2..P5 in HWC from here on
            let hwc = q.hwcLevels(pq, ws)
            pq = []
            (proposals, pscores) = rpn.proposals(heads, sizes: sizes)
            try lap("rpn")
            chooseHeadLevel()
            det = try boxHead.run(proposals: proposals, sizes: sizes, scoreThresh: scoreThresh, ws,
                                  scorer: q.boxScorer(hwc, sizes: sizes, ws))
            try lap("roi_heads")
            wanted = options.apply(to: &det)
            probs = try q.masks(hwc, boxes: wanted.boxes, labels: wanted.labels, sizes: sizes, numClasses: config.numClasses, ws)
        } else {
            var cs: [FeatureMap?] = backbone!.run(consuming: &x, ws)
            try lap("backbone")
            let ps = fpn!.run(consuming: &cs, ws)
            if capture { trace?.fpn = ps }
            try lap("fpn")
            (proposals, pscores) = rpn.run(ps, sizes: sizes, ws)
            try lap("rpn")
            chooseHeadLevel()
            det = try boxHead.run(proposals: proposals, sizes: sizes, scoreThresh: scoreThresh, ws,
                                  scorer: boxHead.floatScorer(ps, sizes: sizes, ws))
            try lap("roi_heads")
            wanted = options.apply(to: &det)
            probs = maskHead.run(ps, boxes: wanted.boxes, labels: wanted.labels, sizes: sizes, ws)
        }
        if capture {
            trace?.proposals = proposals; trace?.proposalScores = pscores
            trace?.prePasteBoxes = det.boxes; trace?.scores = det.scores; trace?.labels = det.labels
        }
        if capture { trace?.maskProbabilities = probs.toArray() }
        try lap("masks")

        let boxes = Paste.rescale(det.boxes, sizes: sizes)
        var out: [Detection] = []
        out.reserveCapacity(det.labels.count)
        let m = MaskHead.size
        // Streamed: each mask is pasted into one reusable buffer and RLE-encoded at once.
        var paster = MaskPaster(boxes: wanted.pick(boxes), size: m, imageHeight: image.height, imageWidth: image.width)
        for i in 0..<det.labels.count {
            let b = Array(boxes[(4 * i)..<(4 * i + 4)])
            let rle = wanted.slot[i].map { paster.rle(probs.pointer + $0 * m * m, box: b) }
            out.append(Detection(box: (b[0], b[1], b[2], b[3]), score: det.scores[i], label: det.labels[i],
                                 mask: rle))
        }
        try lap("paste")
        completed = true
        return out
    }
}

