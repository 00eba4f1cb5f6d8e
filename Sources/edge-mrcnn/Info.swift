// `edge-mrcnn info`: describe a model file and the kernels this machine runs.
import CShim
import EdgeMRCNN

let infoCommand = Command(
    name: "info",
    summary: "check and describe a model file, and the kernel instruction set in use",
    usage: "usage: edge-mrcnn info FILE",
    details: "",
    notes: "FILE is an edge-mrcnn .safetensors model or a torchvision .pth checkpoint; it is loaded\nand checked as detect does (a file detect would refuse is an error here too). Set\nEDGE_MRCNN_ISA (scalar, sse41, avx2, avx512, avx512vnni, neon, neondot, neoi8mm) to force kernels.",
    spec: ArgSpec(),
    run: runInfo)

func runInfo(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.count == 1 else {
        throw UsageError(a.positionals.isEmpty ? "no model file given" : "info takes one file, got \(a.positionals.count)")
    }
    warnAboutForcedISA()
    let path = a.positionals[0]
    // Validate what is described, as detect does (same loader, same checks: every tensor present
    // with the right shape and dtype, finite weights, valid metadata and format version), so a
    // file detect refuses is refused here too: one line, exit 1, and nothing described.
    let loaded = try ModelLoader.load(path: path, overrides: ModelOverrides(recognizeKnownCheckpoints: false))
    _ = try MaskRCNN(store: loaded.store, config: loaded.config, source: path)
    let text = try ModelConverter.describe(path: path)
    printOut(text.hasSuffix("\n") ? text : text + "\n")
    printOut(kernelDescription() + "\n")
    return 0
}

/// "kernels: avx2 (best available: avx512), 1 thread".
func kernelDescription() -> String {
    let cur = String(cString: em_isa_name(em_isa_current()))
    let best = String(cString: em_isa_name(em_isa_best()))
    let t = em_num_threads()
    return "kernels: \(cur) (best available: \(best)), \(t) thread\(t == 1 ? "" : "s")"
}
