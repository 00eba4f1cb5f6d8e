// `edge-mrcnn convert`: a torchvision checkpoint -> an edge-mrcnn safetensors model file.
import EdgeMRCNN

let convertCommand = Command(
    name: "convert",
    summary: "convert a torchvision .pth checkpoint into an edge-mrcnn model file",
    usage: "usage: edge-mrcnn convert (IN.pth | --synthetic-coco [--seed N] [--int8 --size HxW]) -o OUT.safetensors [--min-size N] [--max-size N] [--classes a,b,c]",
    details: """
      -o, --output FILE     the model file to write (.safetensors)
      --synthetic-coco      instead of a checkpoint: the seeded random COCO-layout model of
                            `bench --synthetic-coco` (torchvision's initialisation, BN folded)
      --seed N              its seed (default 0)
      --arch NAME           its architecture (default maskrcnn): maskrcnn, fasterrcnn, maskrcnn_v2,
                            fasterrcnn_v2, keypointrcnn (or torchvision's builder name)
      --int8                calibrate it on --calib-images seeded noise images of --size HxW
                            (default 800x1066, 2 images) and write the int8 model
      --min-size N          resize: shorter side target recorded in the model
      --max-size N          resize: longer side limit recorded in the model
      --classes a,b,c       class names, with or without the background
    """,
    spec: ArgSpec(values: ["output", "min-size", "max-size", "classes", "seed", "size", "calib-images", "arch"],
                  bools: ["synthetic-coco", "int8"], aliases: ["o": "output"]),
    run: runConvert)

func runConvert(_ a: ParsedArgs) throws -> Int32 {
    if a.has("synthetic-coco") { return try runConvertSynthetic(a) }
    for f in ["seed", "size", "calib-images", "int8", "arch"] where a.has(f) {
        throw UsageError("--\(f) applies to --synthetic-coco only")
    }
    guard a.positionals.count == 1 else {
        throw UsageError(a.positionals.isEmpty ? "no input checkpoint given" : "convert takes one input, got \(a.positionals.count)")
    }
    let input = a.positionals[0]
    guard let output = a.string("output"), !output.isEmpty else { throw UsageError("-o OUT.safetensors is required") }
    let overrides = try modelOverrides(a)
    try ModelConverter.convert(input: input, output: output, overrides: overrides) { printErr($0) }
    return 0
}

func runConvertSynthetic(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.isEmpty else { throw UsageError("--synthetic-coco takes no input file") }
    guard let output = a.string("output"), !output.isEmpty else { throw UsageError("-o OUT.safetensors is required") }
    let seed = try a.int("seed", in: 0...Int(Int32.max)) ?? Int(SyntheticModel.defaultSeed)
    if !a.has("int8") && (a.has("size") || a.has("calib-images")) {
        throw UsageError("--size and --calib-images apply to --int8 only")
    }
    var (store, config) = try SyntheticModel.generate(seed: UInt64(seed), architecture: try architectureArg(a))
    try modelOverrides(a).apply(to: &config, source: "synthetic model")
    store.metadata.merge(config.metadata(), uniquingKeysWith: { _, new in new })
    var out: OwnedTensorStore = store
    if a.has("int8") {
        let (h, w) = try parseSize(a.string("size") ?? "800x1066")
        out = try SyntheticModel.calibrate(float: store, config: config, height: h, width: w,
                                           images: try a.int("calib-images", in: 2...100) ?? 2, log: { printErr($0) })
    }
    try SafeTensorsWriter.write(out, metadata: out.metadata, to: output)
    printErr("wrote \(output): synthetic COCO model (\(config.architecture.rawValue)), seed \(seed), \(a.has("int8") ? "int8" : "float32")")
    return 0
}

/// --arch NAME (default maskrcnn v1).
func architectureArg(_ a: ParsedArgs) throws -> Architecture {
    guard let s = a.string("arch") else { return .maskrcnnV1 }
    guard let arch = Architecture.named(s) else {
        throw UsageError("--arch: unknown architecture '\(s)' (known: \(Architecture.allCases.map { $0.shortName }.joined(separator: ", ")))")
    }
    return arch
}
