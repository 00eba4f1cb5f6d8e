// `edge-mrcnn info`: describe a model file and the kernels this machine runs.
import CShim
import EdgeMRCNN

let infoCommand = Command(
    name: "info",
    summary: "describe a model file and the kernel instruction set in use",
    usage: "usage: edge-mrcnn info FILE",
    details: "",
    notes: "FILE is an edge-mrcnn .safetensors model or a torchvision .pth checkpoint. Set\nEDGE_MRCNN_ISA (scalar, sse41, avx2, avx512, avx512vnni, neon, neondot, neoi8mm) to force kernels.",
    spec: ArgSpec(),
    run: runInfo)

func runInfo(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.count == 1 else {
        throw UsageError(a.positionals.isEmpty ? "no model file given" : "info takes one file, got \(a.positionals.count)")
    }
    warnAboutForcedISA()
    let text = try ModelConverter.describe(path: a.positionals[0])
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
