// `edge-mrcnn bench`: end-to-end latency (median/min/max over timed runs), a per-stage breakdown
// with GMAC/s, arena size, peak RSS and the kernel ISA, for one input. A benchmark, never a test.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim
import EdgeMRCNN

let benchCommand = Command(
    name: "bench",
    summary: "time the whole model on one input: latency, per-stage breakdown, peak memory",
    usage: "usage: edge-mrcnn bench (--model FILE | --synthetic-coco [--arch NAME] [--int8|--float]) [--image IMAGE.jpg | --size HxW] [--runs N] [--warmup N] [--json]",
    details: """
      --model FILE          model file (.safetensors float or int8, or a torchvision .pth)
      --synthetic-coco      instead of a file: a seeded random model in the COCO layout (91 classes,
                            min 800 / max 1333, torchvision's initialisation, BN folded), generated
                            in memory; score threshold 0 so that 100 detections reach the mask head
      --int8, --float       precision of the synthetic model (default int8: calibrated in memory on
                            --calib-images seeded noise images of the benchmark size)
      --seed N              seed of the synthetic weights (default 0)
      --arch NAME           architecture of the synthetic model (default maskrcnn): maskrcnn,
                            fasterrcnn, maskrcnn_v2, fasterrcnn_v2, keypointrcnn
      --calib-images N      noise images for the synthetic int8 calibration (default 2)
      --save-model FILE     also write the synthetic model that is benchmarked (.safetensors); a
                            float file is what bench/peers.py loads into torchvision
      --image FILE          time this JPEG image
      --size HxW            or a synthetic image of this size (seeded noise; default 480x640, or
                            800x1066 with --synthetic-coco)
      --runs N              timed runs (default 7)
      --warmup N            untimed runs first (default 1)
      --score-thresh X      lowest detection score kept (default 0.05; 0 for synthetic models)
      --min-size N          resize: shorter side target (overrides the model file)
      --max-size N          resize: longer side limit (overrides the model file)
      --json                print the figures as one JSON object instead of a table
      --save-detections F   write the last run's detections as COCO results JSON (for comparisons)
      --classes-only a,b    keep only these classes (names or label numbers) before the mask head
      --mask-thresh X       masks only for detections scoring at least X
      --no-masks            no masks at all (the masks and paste stages then do no work)
      --layers              also time every weight layer (its calls summed per run; median over
                            the runs) with its GMAC, GMAC/s and % of the peak: where the kernels
                            fit the core badly
    """,
    notes: """
    Latency is wall-clock time of MaskRCNN.detect (decoded image in, pasted masks out; model
    loading and JPEG decoding are not included). Stages: preprocess, backbone, fpn, rpn, roi_heads,
    masks, paste; GMAC/s counts the conv/linear multiply-accumulates of a stage (box head: 1000
    RoIs assumed) over its median time; % peak compares it with the
    peak measured in the same run: a short in-register loop of the kernel ISA's multiply-accumulate
    instruction (int8: vpdpbusd, vpmaddwd, sdot, smull/sadalp...; float: FMA) on all the kernel
    threads at once, 0.1 s before the first run and after each timed run, the median kept (on a
    shared machine both see the same load; "undisturbed" is the fastest ~10-100 us of the loop).
    Peak RSS is this process's maximum resident set (getrusage),
    model loading included; --synthetic-coco makes its model in a child process (`convert
    --synthetic-coco`) and maps the file, so generation and calibration are not counted. Compare
    float and int8 models with the same input and --threads (default: all online CPUs).
    """,
    spec: ArgSpec(values: ["model", "image", "size", "runs", "warmup", "score-thresh", "min-size", "max-size",
                           "classes", "seed", "calib-images", "save-model", "save-detections", "arch"] + detectOptionValueFlags,
                  bools: ["json", "synthetic-coco", "int8", "float", "no-masks", "layers"]),
    run: runBench)

func parseSize(_ s: String) throws -> (h: Int, w: Int) {
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

/// Runs this executable with `args` in a child process (posix_spawn) and returns its exit status.
/// The synthetic model is made in a child so that its generation and calibration memory never
/// counts towards this process's peak RSS.
private func runSelf(_ args: [String]) throws -> Int32 {
    var exe = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &exe, exe.count - 1)
    guard n > 0 else { throw EdgeError("cannot find this executable (/proc/self/exe) to make the synthetic model") }
    let path = String(cString: exe)
    var argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, nil, nil, &argv, environ)
    guard rc == 0 else { throw EdgeError("cannot start \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        if errno != EINTR { throw EdgeError("waiting for \(path) failed") }
    }
    // WIFEXITED / WEXITSTATUS by hand (macros are not imported)
    return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

func runBench(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.isEmpty else { throw UsageError("bench takes no positional arguments") }
    let synthetic = a.has("synthetic-coco")
    if synthetic && a.has("model") { throw UsageError("give --model FILE or --synthetic-coco, not both") }
    if !synthetic && !a.has("model") { throw UsageError("--model FILE (or --synthetic-coco) is required") }
    if a.has("int8") && a.has("float") { throw UsageError("give --int8 or --float, not both") }
    if !synthetic {
        for f in ["int8", "float", "seed", "calib-images", "save-model", "arch"] where a.has(f) {
            throw UsageError("--\(f) applies to --synthetic-coco only (a model file has its own precision)")
        }
    }
    let runs = try a.int("runs", in: 1...1000) ?? 7
    let warmup = try a.int("warmup", in: 0...100) ?? 1
    let seed = try a.int("seed", in: 0...Int(Int32.max)) ?? Int(SyntheticModel.defaultSeed)
    let calibImages = try a.int("calib-images", in: 2...100) ?? 2
    let overrides = try modelOverrides(a)
    if a.has("image") && a.has("size") { throw UsageError("give --image or --size, not both") }

    warnAboutForcedISA()
    let image: RGBImage
    let inputName: String
    if let path = a.string("image") {
        image = try loadImage(path: path)
        inputName = path
    } else {
        let (h, w) = try parseSize(a.string("size") ?? (synthetic ? "800x1066" : "480x640"))
        image = SyntheticModel.noiseImage(height: h, width: w)
        inputName = "synthetic \(h)x\(w)"
    }

    let modelName: String
    let model: MaskRCNN
    let precision: String
    var isSyntheticFile = false
    if synthetic {
        // Made by `convert --synthetic-coco` in a child process, then memory-mapped like any model
        // file (a temporary one unless --save-model names it).
        let wantInt8 = !a.has("float")
        let keep = a.string("save-model")
        let tmp = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let file = keep ?? "\(tmp)/edge-mrcnn-synthetic-\(getpid()).safetensors"
        let arch = try architectureArg(a)
        var args = ["--threads", "\(em_num_threads())", "convert", "--synthetic-coco", "--seed", "\(seed)", "-o", file]
        if arch != .maskrcnnV1 { args += ["--arch", arch.shortName] }
        if wantInt8 {
            args += ["--int8", "--size", "\(image.height)x\(image.width)", "--calib-images", "\(calibImages)"]
        }
        for f in ["min-size", "max-size", "classes"] { if let v = a.string(f) { args += ["--" + f, v] } }
        printErr("making the synthetic COCO model (seed \(seed), \(wantInt8 ? "int8, calibrated on \(calibImages) noise images" : "float")): edge-mrcnn " + args.joined(separator: " "))
        let status = try runSelf(args)
        guard status == 0 else {
            if keep == nil { unlink(file) }
            throw EdgeError("making the synthetic model failed (exit status \(status))")
        }
        let loaded = try ModelLoader.load(path: file, notice: { printErr($0) })
        if keep == nil { unlink(file) }   // the mapping stays valid
        modelName = arch == .maskrcnnV1 ? "synthetic COCO (seed \(seed))" : "synthetic COCO \(arch.shortName) (seed \(seed))"
        model = try MaskRCNN(store: loaded.store, config: loaded.config, source: file)
        precision = loaded.store.metadata["precision"] ?? "float32"
        isSyntheticFile = true
    } else {
        let modelPath = try a.requiredString("model")
        modelName = modelPath
        let loaded = try ModelLoader.load(path: modelPath, overrides: overrides, notice: { printErr($0) })
        model = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        precision = loaded.store.metadata["precision"] ?? "float32"
        isSyntheticFile = loaded.store.metadata[SyntheticModel.metadataKey] != nil
    }
    applyMemoryBudget(model)
    let scoreThresh = try a.float("score-thresh", in: 0...1) ?? (isSyntheticFile ? SyntheticModel.scoreThresh : 0.05)
    let wanted = try detectOptions(a, classNames: model.config.classNames)

    // The roofline: this machine's multiply-accumulate peak for the kernel ISA in use, measured
    // in this run on the threads the kernels use: 0.1 s of the ISA's peak loop before the first
    // run and after each timed run, so that the peak samples the same machine load as the runs
    // (their median is the peak the stages are compared with). The fastest short batch of each
    // thread (summed) is the undisturbed rate of the cores, reported beside it.
    let isInt8 = precision == "int8"
    let peakISA = em_isa_current()
    let peakThreads = em_num_threads()
    var peakSamples: [Double] = []
    var peakBurst = 0.0
    func samplePeak() {
        var burst = 0.0
        let r = isInt8 ? em_int8_peak_macs_per_s(peakISA, peakThreads, 0.1, &burst)
                       : em_f32_peak_macs_per_s(peakISA, peakThreads, 0.1, &burst)
        if r > 0 { peakSamples.append(r) }
        peakBurst = max(peakBurst, burst)
    }
    samplePeak()

    var walls: [Double] = []
    var stageSamples: [String: [Double]] = [:], cpuSamples: [String: [Double]] = [:]
    var stageOrder: [String] = []
    let timeLayers = a.has("layers")
    var layerSamples: [String: [Double]] = [:], layerOrder: [String] = []
    var detections = 0, masks = 0
    var sizes = ""
    var padded = (h: 0, w: 0)
    var lastDetections: [Detection] = []
    for i in 0..<(warmup + runs) {
        let trace = PipelineTrace()
        if timeLayers { trace.layerClock = LayerClock() }
        let t0 = monotonicSeconds()
        let dets = try model.detect(image, scoreThresh: scoreThresh, trace: trace, options: wanted)
        let dt = monotonicSeconds() - t0
        if let s = trace.sizes {
            sizes = "\(s.resizedHeight)x\(s.resizedWidth) padded \(s.paddedHeight)x\(s.paddedWidth)"
            padded = (s.paddedHeight, s.paddedWidth)
        }
        let timed = i >= warmup
        printErr("\(timed ? "run \(i - warmup + 1)/\(runs)" : "warm-up \(i + 1)/\(warmup)"): \(ms(dt)) ms, \(dets.count) detections")
        guard timed else { continue }
        samplePeak()
        walls.append(dt)
        detections = dets.count
        masks = dets.filter { $0.mask != nil }.count
        lastDetections = dets
        for (stage, secs) in trace.timings {
            if stageSamples[stage] == nil { stageOrder.append(stage); stageSamples[stage] = [] }
            stageSamples[stage]!.append(secs)
        }
        for (stage, secs) in trace.cpuTimings { cpuSamples[stage, default: []].append(secs) }
        if let clock = trace.layerClock {
            for l in clock.order {
                if layerSamples[l] == nil { layerOrder.append(l) }
                layerSamples[l, default: []].append(clock.seconds[l]!)
            }
        }
    }
    if isSyntheticFile && detections < 100 {
        printErr("edge-mrcnn: note: the synthetic model gave \(detections) detections, not 100")
    }
    if let path = a.string("save-detections") {
        let text = try ResultsJSON.document([(imageId: 1, fileName: inputName, detections: lastDetections)],
                                            classNames: model.config.classNames)
        try AtomicFile.write(path: path, contents: text)
    }
    let peak = median(peakSamples)   // MAC/s; 0 if the ISA's loop could not run
    var loads = [Double](repeating: 0, count: 3)
    let loadText = getloadavg(&loads, 3) == 3 ? loads.map { formatFixed($0, 2) }.joined(separator: " ") : "n/a"
    let peakInstruction = String(cString: isInt8 ? em_int8_peak_instruction(peakISA) : em_f32_peak_instruction(peakISA))
    func efficiency(_ macs: Int, _ secs: Double) -> Double? {
        peak > 0 && secs > 0 ? Double(macs) / secs / peak : nil
    }
    let isa = String(cString: em_isa_name(em_isa_current()))
    let rss = peakRSSBytes()
    let macs = WorkCount.macs(height: padded.h, width: padded.w, network: model.network, detections: masks,
                              keypointDetections: model.network.hasKeypoints ? detections : 0)
    let totalMACs = macs.values.reduce(0, +)
    let layerMACs = timeLayers ? WorkCount.layerMACs(height: padded.h, width: padded.w, network: model.network,
                                                     detections: masks) : [:]
    let arena = model.arenaSummary
    let threads = Int(em_num_threads())
    let med = median(walls)

    if a.has("json") {
        var fields: [String] = [
            "\"model\":" + ResultsJSON.string(modelName),
            "\"precision\":" + ResultsJSON.string(precision),
            "\"layers_precision\":" + ResultsJSON.string(model.precision),
            "\"float_layers\":[" + floatLayerNames(model).map { ResultsJSON.string($0) }.joined(separator: ",") + "]",
            "\"input\":" + ResultsJSON.string(inputName),
            "\"network_input\":" + ResultsJSON.string(sizes),
            "\"isa\":" + ResultsJSON.string(isa),
            "\"threads\":\(threads)",
            "\"runs\":\(runs)",
            "\"score_thresh\":\(scoreThresh)",
            "\"detections\":\(detections)",
            "\"masks\":\(masks)",
            "\"median_s\":\(med)",
            "\"min_s\":\(walls.min() ?? 0)",
            "\"max_s\":\(walls.max() ?? 0)",
            "\"peak_rss_bytes\":\(rss)",
            "\"arena_bytes\":" + (arena.map { "\($0.planBytes)" } ?? "null"),
            "\"arena_sum_bytes\":" + (arena.map { "\($0.sumBytes)" } ?? "null"),
            "\"gmac\":\(Double(totalMACs) / 1e9)",
        ]
        let stages = stageOrder.map { ResultsJSON.string($0) + ":\(median(stageSamples[$0]!))" }
        fields.append("\"stages_median_s\":{" + stages.joined(separator: ",") + "}")
        let cpu = stageOrder.map { ResultsJSON.string($0) + ":\(median(cpuSamples[$0] ?? []))" }
        fields.append("\"stages_cpu_median_s\":{" + cpu.joined(separator: ",") + "}")
        let gm = stageOrder.compactMap { s in macs[s].map { ResultsJSON.string(s) + ":\(Double($0) / 1e9)" } }
        fields.append("\"stages_gmac\":{" + gm.joined(separator: ",") + "}")
        fields.append("\"peak_gmac_per_s\":" + (peak > 0 ? "\(peak / 1e9)" : "null"))
        fields.append("\"peak_burst_gmac_per_s\":" + (peakBurst > 0 ? "\(peakBurst / 1e9)" : "null"))
        fields.append("\"peak_instruction\":" + ResultsJSON.string(peakInstruction))
        fields.append("\"efficiency_vs_burst\":" + (peakBurst > 0 && med > 0 ? "\(Double(totalMACs) / med / peakBurst)" : "null"))
        fields.append("\"load_average\":" + ResultsJSON.string(loadText))
        fields.append("\"efficiency\":" + (efficiency(totalMACs, med).map { "\($0)" } ?? "null"))
        let eff = stageOrder.compactMap { s in
            macs[s].map { ResultsJSON.string(s) + ":" + (efficiency($0, median(stageSamples[s]!)).map { "\($0)" } ?? "null") }
        }
        fields.append("\"stages_efficiency\":{" + eff.joined(separator: ",") + "}")
        if timeLayers {
            let rows = layerOrder.map { l -> String in
                let t = median(layerSamples[l]!), m = layerMACs[l] ?? 0
                return "{\"name\":" + ResultsJSON.string(l) + ",\"median_s\":\(t),\"gmac\":\(Double(m) / 1e9),\"efficiency\":"
                    + (efficiency(m, t).map { "\($0)" } ?? "null") + "}"
            }
            fields.append("\"layers\":[" + rows.joined(separator: ",") + "]")
        }
        printOut("{" + fields.joined(separator: ",") + "}\n")
        return 0
    }
    let arenaText = arena.map { "\(formatFixed(Double($0.planBytes) / 1048576, 1)) MiB planned for \(formatFixed(Double($0.sumBytes) / 1048576, 1)) MiB of buffers" } ?? "n/a"
    var out = """
    model:       \(modelName) (\(precisionText(model)))
    input:       \(inputName) -> network input \(sizes)
    kernels:     \(isa), \(threads) thread\(threads == 1 ? "" : "s")
    detections:  \(detections) (score threshold \(scoreThresh)), \(masks) with masks
    latency:     median \(ms(med)) ms, min \(ms(walls.min() ?? 0)) ms, max \(ms(walls.max() ?? 0)) ms over \(runs) run\(runs == 1 ? "" : "s")
    work:        \(formatFixed(Double(totalMACs) / 1e9, 1)) GMAC, \(formatFixed(med > 0 ? Double(totalMACs) / 1e9 / med : 0, 1)) GMAC/s overall\(pct(efficiency(totalMACs, med)).map { ", \($0) of peak" } ?? "")
    peak:        \(peak > 0 ? formatFixed(peak / 1e9, 1) + " GMAC/s" : "n/a") (\(peakInstruction), \(peakThreads) thread\(peakThreads == 1 ? "" : "s"), median of \(peakSamples.count) samples between the runs); undisturbed \(peakBurst > 0 ? formatFixed(peakBurst / 1e9, 1) + " GMAC/s" : "n/a")\(peakBurst > 0 && med > 0 ? ", " + formatFixed(100 * Double(totalMACs) / med / peakBurst, 1) + "% of it" : "")
    load:        \(loadText) (load average after the runs)
    arena:       \(arenaText)
    peak RSS:    \(formatFixed(Double(rss) / 1048576, 1)) MiB
    stages:      median ms    cpu ms   share   GMAC   GMAC/s   % peak

    """
    for s in stageOrder {
        let t = median(stageSamples[s]!)
        var row = "  " + s.padded(12) + ms(t).leftPadded(10) + ms(median(cpuSamples[s] ?? [])).leftPadded(10)
            + (formatFixed(med > 0 ? 100 * t / med : 0, 1) + "%").leftPadded(8)
        if let m = macs[s] {
            row += formatFixed(Double(m) / 1e9, 1).leftPadded(7) + formatFixed(t > 0 ? Double(m) / 1e9 / t : 0, 1).leftPadded(9)
                + (pct(efficiency(m, t)) ?? "").leftPadded(9)
        }
        out += row + "\n"
    }
    if timeLayers {
        // Each weight layer: GEMM + its im2col panels + requantisation, the share of the whole
        // run, and its efficiency against the same peak.
        out += "layers:      median ms   share   GMAC   GMAC/s   % peak\n"
        var sum = 0.0, sumMACs = 0
        for l in layerOrder {
            let t = median(layerSamples[l]!), m = layerMACs[l] ?? 0
            sum += t; sumMACs += m
            out += "  " + l.padded(40) + ms(t).leftPadded(8) + (formatFixed(med > 0 ? 100 * t / med : 0, 1) + "%").leftPadded(8)
                + formatFixed(Double(m) / 1e9, 2).leftPadded(7) + formatFixed(t > 0 ? Double(m) / 1e9 / t : 0, 1).leftPadded(9)
                + (pct(efficiency(m, t)) ?? "").leftPadded(9) + "\n"
        }
        out += "  " + "all layers".padded(40) + ms(sum).leftPadded(8) + (formatFixed(med > 0 ? 100 * sum / med : 0, 1) + "%").leftPadded(8)
            + formatFixed(Double(sumMACs) / 1e9, 2).leftPadded(7) + formatFixed(sum > 0 ? Double(sumMACs) / 1e9 / sum : 0, 1).leftPadded(9)
            + (pct(efficiency(sumMACs, sum)) ?? "").leftPadded(9) + "\n"
    }
    printOut(out)
    return 0
}

private func pct(_ e: Double?) -> String? { e.map { formatFixed(100 * $0, 1) + "%" } }

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? " " + self : String(repeating: " ", count: n - count) + self }
}

/// The weight layers a mixed-precision int8 model keeps in float (empty for all-int8 or float models).
func floatLayerNames(_ m: MaskRCNN) -> [String] {
    let f = m.layerPrecisions.filter { $0.precision != "int8" }.map { $0.name }
    return f.count == m.layerPrecisions.count ? [] : f
}

/// "int8", "float32", or "int8 (N of 74 layers float: a, b, ...)".
func precisionText(_ m: MaskRCNN) -> String {
    let f = floatLayerNames(m)
    guard !f.isEmpty else { return m.precision }
    let names = f.count <= 6 ? f.joined(separator: ", ") : f.prefix(6).joined(separator: ", ") + ", ..."
    return String(m.precision.dropLast()) + ": " + names + ")"
}
