// `edge-mrcnn convert`: a torchvision checkpoint -> an edge-mrcnn safetensors model file.
import EdgeMRCNN

let convertCommand = Command(
    name: "convert",
    summary: "convert a torchvision .pth checkpoint into an edge-mrcnn model file",
    usage: "usage: edge-mrcnn convert IN.pth -o OUT.safetensors [--min-size N] [--max-size N] [--classes a,b,c]",
    details: """
      -o, --output FILE     the model file to write (.safetensors)
      --min-size N          resize: shorter side target recorded in the model
      --max-size N          resize: longer side limit recorded in the model
      --classes a,b,c       class names, with or without the background
    """,
    spec: ArgSpec(values: ["output", "min-size", "max-size", "classes"], aliases: ["o": "output"]),
    run: runConvert)

func runConvert(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.count == 1 else {
        throw UsageError(a.positionals.isEmpty ? "no input checkpoint given" : "convert takes one input, got \(a.positionals.count)")
    }
    let input = a.positionals[0]
    guard let output = a.string("output"), !output.isEmpty else { throw UsageError("-o OUT.safetensors is required") }
    let overrides = try modelOverrides(a)
    try ModelConverter.convert(input: input, output: output, overrides: overrides) { printErr($0) }
    return 0
}
