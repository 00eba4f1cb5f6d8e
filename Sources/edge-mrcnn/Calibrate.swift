// `edge-mrcnn calibrate`: a float model + sample images -> an int8 model file.
import EdgeMRCNN

let calibrateCommand = Command(
    name: "calibrate",
    summary: "calibrate a float model on sample images and write an int8 model",
    usage: "usage: edge-mrcnn calibrate --model FLOAT_MODEL --images DIR -o INT8.safetensors [--method M] [options]",
    details: """
      --model FILE          the float model (.safetensors from `convert`, or a .pth checkpoint)
      --images DIR          folder of sample .jpg/.jpeg images (at least 2)
      -o, --output FILE     the int8 model file to write
      --method M            activation range: minmax, percentile, entropy, mse (default \(CalibrationMethod.defaultMethod.rawValue));
                            all: one file per method, OUT-<method>.safetensors;
                            auto: per activation the method whose rounding and clipping cost the
                            layers reading it least (their float output with only that input
                            fake-quantised, noise/signal), on the first --auto-images images
      --auto-images N       images the auto choice is measured on (default 6)
      --percentile P        for --method percentile (default 99.99)
      --max-images N        use at most the first N images (by name)
      --min-size N          resize: shorter side target (overrides the model file)
      --max-size N          resize: longer side limit (overrides the model file)
      --classes a,b,c       class names, with or without the background
      --keep-float L[,L…]   keep these weight layers in float (names as `info` lists them, or
                            patterns with *, e.g. backbone.body.conv1,roi_heads.mask_predictor.*);
                            the runtime converts at their boundaries
      --bias-correction M   on, off or both (both: OUT and OUT-nobc from one pass; default \(BiasCorrection.defaultMode.rawValue)):
                            subtract each int8 layer's per-channel mean output shift (int8 alone vs
                            float, on the first --bias-images calibration images) from its bias
      --bias-images N       images the bias correction is measured on (default 6)
      --report [FILE]       per-layer error report, worst first: each int8 layer's end-to-end cost (the
                            detections' disagreement with float when only it is int8), its int8 output
                            vs float (SQNR dB, cosine) alone and with the int8 layers upstream, ranges,
                            clipping, MACs, as a table on stderr (and JSON to FILE); plus the
                            float-vs-int8 detection agreement
      --report-images N     measure the report on the first N calibration images (default 20)
      --end-to-end-images N the end-to-end cost on the first N of them (default \(Calibration.ReportOptions.defaultEndToEndImages); one float run per
                            layer and image; 0: none, ranked by SQNR alone)
      --accuracy-guard      quantise everything, then return the report's worst layers to float one
                            at a time until the mask AP drop against float is within --max-drop
      --annotations FILE    COCO annotations of the guard's images; without it the guard measures
                            against the float model's own detections (score >= 0.5) as labels
      --guard-images-dir D  folder of the guard's images (default: the --images folder)
      --guard-images N      evaluate on the first N (annotated) images (default 100)
      --max-drop X          allowed mask AP drop, AP x100 (default 0.1)
      --max-float-layers N  at most N layers returned to float (default 3)
    """,
    notes: """
    The result is deterministic: the same model, images and options give a byte-identical file.
    Files that are not JPEG images are skipped with a message.
    """,
    spec: ArgSpec(values: ["model", "images", "output", "method", "percentile", "max-images", "min-size",
                           "max-size", "classes", "keep-float", "report-images", "annotations", "guard-images-dir",
                           "guard-images", "max-drop", "max-float-layers", "bias-correction", "bias-images",
                           "end-to-end-images", "auto-images"],
                  bools: ["accuracy-guard"], optionalValues: ["report"], aliases: ["o": "output"]),
    run: runCalibrate)

func runCalibrate(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
    let modelPath = try a.requiredString("model")
    let images = try a.requiredString("images")
    guard let output = a.string("output"), !output.isEmpty else { throw UsageError("-o INT8.safetensors is required") }
    let keep = try keepFloat(a)
    let (report, guardOptions) = try reportAndGuard(a, images: images)
    var bc = BiasCorrection.defaultMode
    if let s = a.string("bias-correction") {
        guard let v = BiasCorrection(rawValue: s) else { throw UsageError("--bias-correction must be on, off or both, got '\(s)'") }
        bc = v
    }
    var method = CalibrationMethod.defaultMethod
    let auto = a.string("method") == MethodChoice.auto
    let autoImages = try a.int("auto-images", in: 1...Int(Int32.max))
    if autoImages != nil && !auto { throw UsageError("--auto-images applies to --method auto only") }
    var also: [(method: CalibrationMethod, output: String)] = []
    if a.string("method") == "all" {
        // one calibration pass, one file per method: OUT-<method>.safetensors
        let stem = output.hasSuffix(".safetensors") ? String(output.dropLast(12)) : output
        let outs = CalibrationMethod.allCases.map { ($0, stem + "-" + $0.rawValue + ".safetensors") }
        method = outs[0].0
        also = Array(outs.dropFirst())
        try Calibration.run(modelPath: try a.requiredString("model"), imagesDir: try a.requiredString("images"),
                            output: outs[0].1, method: method, alsoWrite: also,
                            maxImages: try a.int("max-images", in: 1...Int(Int32.max)),
                            percentile: Double(a.string("percentile") ?? "99.99") ?? 99.99, floatLayers: keep,
                            report: report, guardOptions: guardOptions, biasCorrection: bc,
                            biasImageCount: try a.int("bias-images", in: 1...Int(Int32.max)) ?? 6,
                            overrides: try modelOverrides(a), log: { printErr($0) })
        return 0
    }
    if let m = a.string("method") {
        if !auto {
            guard let v = CalibrationMethod(rawValue: m) else {
                throw UsageError("--method must be one of \(CalibrationMethod.allCases.map { $0.rawValue }.joined(separator: ", ")), all or auto, got '\(m)'")
            }
            method = v
        }
    }
    var p = 99.99
    if let s = a.string("percentile") {
        guard let v = Double(s), v > 0, v <= 100 else { throw UsageError("--percentile must be a number in (0, 100], got '\(s)'") }
        p = v
    }
    let maxImages = try a.int("max-images", in: 1...Int(Int32.max))
    let overrides = try modelOverrides(a)
    warnAboutForcedISA()
    try Calibration.run(modelPath: modelPath, imagesDir: images, output: output, method: method, maxImages: maxImages,
                        percentile: p, floatLayers: keep, report: report, guardOptions: guardOptions,
                        biasCorrection: bc, biasImageCount: try a.int("bias-images", in: 1...Int(Int32.max)) ?? 6,
                        methodChoice: auto, choiceImageCount: autoImages ?? 6, overrides: overrides, log: { printErr($0) })
    return 0
}

/// --keep-float: the layers named (or matched) -> the reason recorded in the file.
func keepFloat(_ a: ParsedArgs) throws -> [String: String] {
    guard let s = a.string("keep-float") else { return [:] }
    let patterns = s.split(separator: ",").map { String($0.trimmingSpaces()) }.filter { !$0.isEmpty }
    guard !patterns.isEmpty else { throw UsageError("--keep-float needs layer names, e.g. backbone.body.conv1") }
    // the model's architecture is known only once it is read: a name must be a weight layer of one
    // of the family (the executor checks it against the model's own network when it loads the file)
    var names: [String] = []
    for p in patterns {
        let hits = Architecture.allCases.compactMap { try? Network.build($0, numClasses: 2) }
            .flatMap { (try? $0.weightLayers(matching: [p])) ?? [] }
        if hits.isEmpty { _ = try Network.maskRCNNResNet50FPN(numClasses: 2).weightLayers(matching: [p]) }
        for h in hits where !names.contains(h) { names.append(h) }   // several architectures share a name
    }
    return Dictionary(uniqueKeysWithValues: names.map { ($0, "--keep-float") })
}

/// --report [FILE], --report-images, --accuracy-guard and its options.
func reportAndGuard(_ a: ParsedArgs, images: String) throws -> (Calibration.ReportOptions?, Calibration.GuardOptions?) {
    var report: Calibration.ReportOptions? = nil
    let n = try a.int("report-images", in: 1...Int(Int32.max))
    let e2e = try a.int("end-to-end-images", in: 0...Int(Int32.max))
    if a.has("report") {
        let f = a.string("report")
        report = Calibration.ReportOptions(jsonPath: f?.isEmpty == false ? f : nil, images: n ?? 20,
                                           endToEndImages: e2e ?? Calibration.ReportOptions.defaultEndToEndImages)
    } else if e2e != nil && !a.has("accuracy-guard") {
        throw UsageError("--end-to-end-images applies to --report and --accuracy-guard only")
    }
    let guardFlags = ["annotations", "guard-images-dir", "guard-images", "max-drop", "max-float-layers"]
    guard a.has("accuracy-guard") else {
        if let f = guardFlags.first(where: { a.has($0) }) { throw UsageError("--\(f) applies to --accuracy-guard only") }
        return (report, nil)
    }
    var ann: String? = nil
    if a.has("annotations") {
        guard let s = a.string("annotations"), !s.isEmpty else { throw UsageError("--annotations needs a COCO.json file") }
        ann = s
    }
    let budget = try a.int("max-float-layers", in: 0...Int(Int32.max)) ?? 3
    if budget < 1 { throw UsageError("--max-float-layers must be at least 1 for --accuracy-guard (0 leaves nothing to return to float)") }
    var drop = 0.1
    if let s = a.string("max-drop") {
        guard let v = Double(s), v >= 0, v.isFinite else { throw UsageError("--max-drop must be a number >= 0 (mask AP x100), got '\(s)'") }
        drop = v
    }
    let g = Calibration.GuardOptions(annotations: ann, imagesDir: a.string("guard-images-dir") ?? images,
                                     images: try a.int("guard-images", in: 1...Int(Int32.max)) ?? 100,
                                     maxDrop: drop, budget: budget, endToEndImages: e2e ?? Calibration.ReportOptions.defaultEndToEndImages)
    return (report, g)
}
