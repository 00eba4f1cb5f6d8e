// `edge-mrcnn bench`: end-to-end latency (median/min/max over timed runs), a per-stage breakdown,
// peak RSS and the kernel ISA, for one input. A benchmark, never a test.
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

let benchCommand = Command(
    name: "bench",
    summary: "time the whole model on one input: latency, per-stage breakdown, peak memory",
    usage: "usage: edge-mrcnn bench --model FILE [--image IMAGE.jpg | --size HxW] [--runs N] [--warmup N] [--json]",
    details: """
      --model FILE          model file (.safetensors float or int8, or a torchvision .pth)
      --image FILE          time this JPEG image
      --size HxW            or a synthetic image of this size (seeded noise; default 480x640)
      --runs N              timed runs (default 7)
      --warmup N            untimed runs first (default 1)
      --score-thresh X      lowest detection score kept (default 0.05)
      --min-size N          resize: shorter side target (overrides the model file)
      --max-size N          resize: longer side limit (overrides the model file)
      --json                print the figures as one JSON object instead of a table
    """,
    notes: """
    Latency is wall-clock time of MaskRCNN.detect (decoded image in, pasted masks out; model
    loading and JPEG decoding are not included). Peak RSS is the process's maximum resident set
    (getrusage), model loading included. Compare float and int8 models with the same input and
    --threads.
    """,
    spec: ArgSpec(values: ["model", "image", "size", "runs", "warmup", "score-thresh", "min-size", "max-size",
                           "classes"],
                  bools: ["json"]),
    run: runBench)

/// Deterministic noise image (xorshift), so synthetic runs are repeatable.
private func syntheticImage(height: Int, width: Int) -> RGBImage {
    var state: UInt32 = 0x9E37_79B9
    var px = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<px.count {
        state ^= state << 13; state ^= state >> 17; state ^= state << 5
        px[i] = UInt8(truncatingIfNeeded: state >> 24)
    }
    return RGBImage(width: width, height: height, pixels: px)
}

private func parseSize(_ s: String) throws -> (h: Int, w: Int) {
    let parts = s.split(separator: "x")
    guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]), h > 0, w > 0, h <= 20000, w <= 20000
    else { throw UsageError("--size wants HxW with positive sides up to 20000, e.g. 800x1066; got '\(s)'") }
    return (h, w)
}

private func median(_ v: [Double]) -> Double {
    let s = v.sorted()
    if s.isEmpty { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
}

private func ms(_ s: Double) -> String { formatFixed(s * 1000, 1) }

private func peakRSSBytes() -> Int {
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    return Int(ru.ru_maxrss) * 1024
}

func runBench(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.isEmpty else { throw UsageError("bench takes no positional arguments") }
    let modelPath = try a.requiredString("model")
    let runs = try a.int("runs", in: 1...1000) ?? 7
    let warmup = try a.int("warmup", in: 0...100) ?? 1
    let scoreThresh = try a.float("score-thresh", in: 0...1) ?? 0.05
    let overrides = try modelOverrides(a)
    if a.has("image") && a.has("size") { throw UsageError("give --image or --size, not both") }

    warnAboutForcedISA()
    let image: RGBImage
    let inputName: String
    if let path = a.string("image") {
        image = try loadImage(path: path)
        inputName = path
    } else {
        let (h, w) = try parseSize(a.string("size") ?? "480x640")
        image = syntheticImage(height: h, width: w)
        inputName = "synthetic \(h)x\(w)"
    }
    let loaded = try ModelLoader.load(path: modelPath, overrides: overrides, notice: { printErr($0) })
    let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
    applyMemoryBudget(model)
    let precision = loaded.store.metadata["precision"] ?? "float32"

    var walls: [Double] = []
    var stageSamples: [String: [Double]] = [:]
    var stageOrder: [String] = []
    var detections = 0
    var sizes = ""
    for i in 0..<(warmup + runs) {
        let trace = PipelineTrace()
        let t0 = monotonicSeconds()
        let dets = try model.detect(image, scoreThresh: scoreThresh, trace: trace)
        let dt = monotonicSeconds() - t0
        if let s = trace.sizes { sizes = "\(s.resizedHeight)x\(s.resizedWidth) padded \(s.paddedHeight)x\(s.paddedWidth)" }
        let timed = i >= warmup
        printErr("\(timed ? "run \(i - warmup + 1)/\(runs)" : "warm-up \(i + 1)/\(warmup)"): \(ms(dt)) ms, \(dets.count) detections")
        guard timed else { continue }
        walls.append(dt)
        detections = dets.count
        for (stage, secs) in trace.timings {
            if stageSamples[stage] == nil { stageOrder.append(stage); stageSamples[stage] = [] }
            stageSamples[stage]!.append(secs)
        }
    }
    let isa = String(cString: em_isa_name(em_isa_current()))
    let rss = peakRSSBytes()
    if a.has("json") {
        var fields: [String] = [
            "\"model\":" + ResultsJSON.string(modelPath),
            "\"precision\":" + ResultsJSON.string(precision),
            "\"input\":" + ResultsJSON.string(inputName),
            "\"network_input\":" + ResultsJSON.string(sizes),
            "\"isa\":" + ResultsJSON.string(isa),
            "\"threads\":\(em_num_threads())",
            "\"runs\":\(runs)",
            "\"detections\":\(detections)",
            "\"median_s\":\(median(walls))",
            "\"min_s\":\(walls.min() ?? 0)",
            "\"max_s\":\(walls.max() ?? 0)",
            "\"peak_rss_bytes\":\(rss)",
        ]
        let stages = stageOrder.map { ResultsJSON.string($0) + ":\(median(stageSamples[$0]!))" }
        fields.append("\"stages_median_s\":{" + stages.joined(separator: ",") + "}")
        printOut("{" + fields.joined(separator: ",") + "}\n")
        return 0
    }
    var out = """
    model:       \(modelPath) (\(precision))
    input:       \(inputName) -> network input \(sizes)
    kernels:     \(isa), \(em_num_threads()) thread\(em_num_threads() == 1 ? "" : "s")
    detections:  \(detections)
    latency:     median \(ms(median(walls))) ms, min \(ms(walls.min() ?? 0)) ms, max \(ms(walls.max() ?? 0)) ms over \(runs) run\(runs == 1 ? "" : "s")
    peak RSS:    \(formatFixed(Double(rss) / 1048576, 1)) MiB
    stages (median ms):

    """
    for s in stageOrder { out += "  \(s.padded(12))\(ms(median(stageSamples[s]!)))\n" }
    printOut(out)
    return 0
}
