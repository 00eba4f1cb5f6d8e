// Command dispatch, help, version, exit codes: 0 success, 1 an error (bad file, failed images),
// 2 a usage mistake (unknown command or option, bad option value).
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

let toolVersion = "0.1.0"

struct Command {
    let name: String
    let summary: String
    /// The one-line synopsis printed after usage mistakes.
    let usage: String
    /// Option descriptions for `--help`.
    let details: String
    /// A closing paragraph for `--help` (may be empty).
    var notes: String = ""
    let spec: ArgSpec
    let run: (ParsedArgs) throws -> Int32
}

let globalHelp = """
      --threads N           worker threads for the kernels (default: online CPUs, here \(onlineCPUs()))
      -h, --help            show this help

    """

var allCommands: [Command] { [detectCommand, evalCommand, calibrateCommand, benchCommand, serveCommand, convertCommand, infoCommand, selfTestCommand] }

let mainUsage = "usage: edge-mrcnn [--threads N] <detect|eval|calibrate|bench|serve|convert|info|selftest> [options] (see edge-mrcnn --help)"

func mainHelp() -> String {
    var s = """
    edge-mrcnn \(toolVersion): Mask R-CNN (torchvision maskrcnn_resnet50_fpn) instance segmentation

    usage: edge-mrcnn <command> [options]

    commands:

    """
    for c in allCommands { s += "  " + c.name.padded(10) + c.summary + "\n" }
    s += """

    global options:
      --threads N   worker threads for the kernels (default: online CPUs, here \(onlineCPUs()))
      --help, -h    this help; `edge-mrcnn <command> --help` describes a command
      --version     print the version

    exit status: 0 ok, 1 error (message on stderr), 2 usage mistake

    """
    return s
}

/// Commands that run the model and accept --max-memory.
let memoryBudgetCommands: Set<String> = ["detect", "eval", "bench", "serve"]

/// --max-memory MB (detect, eval, bench, serve): the model's memory budget, applied with `applyMemoryBudget`.
var maxMemoryBytes: Int?

func applyMemoryBudget(_ model: MaskRCNN) { model.maxMemoryBytes = maxMemoryBytes }

let memoryHelp = """
  --max-memory MB       memory budget for weights + activations: the RoI heads then work in
                        smaller chunks when needed; an input that cannot fit is an error (an
                        image whose decoded pixels and the weights exceed it, or by default the
                        physical memory, is refused from its JPEG header, before decoding)

"""

func commandHelp(_ c: Command) -> String {
    var s = "\(c.summary)\n\n\(c.usage)\n\noptions:\n"
    if !c.details.isEmpty { s += c.details.hasSuffix("\n") ? c.details : c.details + "\n" }
    if memoryBudgetCommands.contains(c.name) { s += memoryHelp }
    s += globalHelp
    if !c.notes.isEmpty { s += "\n" + c.notes + (c.notes.hasSuffix("\n") ? "" : "\n") }
    return s
}

extension String {
    func padded(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}

func printErr(_ s: String) {
    fputs(s + "\n", stderr)
}

func printOut(_ s: String) {
    fputs(s, stdout)
}

/// Runs the CLI on `argv` (without the program name) and returns the exit status.
func runCLI(_ argv: [String]) -> Int32 {
    var args = argv
    var threads: String?
    // Global options before the command.
    while let first = args.first, first.hasPrefix("-") {
        if first == "--help" || first == "-h" { printOut(mainHelp()); return 0 }
        if first == "--version" { printOut("edge-mrcnn \(toolVersion)\n"); return 0 }
        if first == "--threads" {
            guard args.count >= 2 else { return usageFailure("option '--threads' needs a value", mainUsage) }
            threads = args[1]; args.removeFirst(2); continue
        }
        if first.hasPrefix("--threads=") { threads = String(first.dropFirst(10)); args.removeFirst(); continue }
        return usageFailure("unknown option '\(first)'", mainUsage)
    }
    guard let name = args.first else { return usageFailure("no command given", mainUsage) }
    args.removeFirst()
    if name == "help" {
        if let sub = args.first, let c = allCommands.first(where: { $0.name == sub }) { printOut(commandHelp(c)) } else { printOut(mainHelp()) }
        return 0
    }
    if name == "version" { printOut("edge-mrcnn \(toolVersion)\n"); return 0 }
    guard let cmd = allCommands.first(where: { $0.name == name }) else {
        return usageFailure("unknown command '\(name)'", mainUsage)
    }
    var spec = cmd.spec
    spec.valueFlags.insert("threads")
    if memoryBudgetCommands.contains(cmd.name) { spec.valueFlags.insert("max-memory") }
    spec.boolFlags.insert("help")
    spec.aliases["h"] = "help"
    do {
        var parsed = try parseArgs(args, spec: spec)
        if parsed.bools.contains("help") { printOut(commandHelp(cmd)); return 0 }
        if let t = threads, parsed.values["threads"] == nil { parsed.values["threads"] = [t] }
        em_set_num_threads(Int32(try parsed.int("threads", in: 1...1024) ?? onlineCPUs()))
        if let mb = try parsed.int("max-memory", in: 1...(1 << 30)) { maxMemoryBytes = mb << 20 }
        return try cmd.run(parsed)
    } catch let e as UsageError {
        return usageFailure(e.message, cmd.usage)
    } catch let e as EdgeError {
        printErr("edge-mrcnn: \(oneLine(e.message))")
        return 1
    } catch {
        printErr("edge-mrcnn: \(oneLine(String(describing: error)))")
        return 1
    }
}

func usageFailure(_ message: String, _ usage: String) -> Int32 {
    printErr("edge-mrcnn: \(message)")
    printErr(usage)
    return 2
}

/// `s` as one printable line: line breaks become spaces, other control characters (a NUL would
/// cut the message short) become '?'.
func oneLine(_ s: String) -> String {
    var out = String.UnicodeScalarView()
    for u in s.unicodeScalars {
        if u == "\n" || u == "\r" || u == "\t" { out.append(" ") }
        else if u.value < 0x20 || u.value == 0x7F { out.append("?") }
        else { out.append(u) }
    }
    return String(out)
}

/// Warns on stderr when EDGE_MRCNN_ISA asks for an ISA this CPU or build cannot run (the C
/// dispatch then falls back to the best one available).
func warnAboutForcedISA() {
    guard let e = getenv("EDGE_MRCNN_ISA") else { return }
    let want = String(cString: e)
    if want.isEmpty { return }
    let isa = em_isa_from_name(want)
    let using = String(cString: em_isa_name(em_isa_current()))
    if isa < 0 {
        var known: [String] = []
        for i in 0..<Int32(EM_ISA_COUNT.rawValue) { known.append(String(cString: em_isa_name(i))) }
        printErr("edge-mrcnn: EDGE_MRCNN_ISA=\(want) is not a known ISA (\(known.joined(separator: ", "))); using \(using)")
    } else if em_isa_supported(isa) == 0 {
        printErr("edge-mrcnn: EDGE_MRCNN_ISA=\(want) is not supported on this CPU or build; using \(using)")
    }
}

/// The default --threads: the CPUs online now (sysconf), at least 1.
func onlineCPUs() -> Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Help lines of the limit flags (detect, eval).
let limitsHelp = """
      --max-pixels N        refuse images with more than N pixels, checked from the JPEG header
                            before decoding (default \(defaultMaxPixels))
      --max-detections N    keep at most N detections per image (default \(defaultMaxDetections), at most \(maxMaxDetections))
    """

/// (--max-memory is a global flag of the model commands, see memoryBudgetCommands.)
let limitFlags = ["max-pixels", "max-detections"]

/// --max-pixels, --max-detections, and the --max-memory budget: an image whose decoded pixels and
/// the weights alone exceed it (default: the physical memory) is refused before decoding; the
/// arena planner checks the activations against it before the model runs.
func runLimits(_ a: ParsedArgs) throws -> RunLimits {
    RunLimits(maxPixels: try a.int("max-pixels", in: 1...Int(Int32.max) * 16) ?? defaultMaxPixels,
              maxDetections: try a.int("max-detections", in: 1...maxMaxDetections) ?? defaultMaxDetections,
              maxMemoryBytes: maxMemoryBytes)
}

/// Model overrides from --min-size, --max-size, --classes.
func modelOverrides(_ a: ParsedArgs) throws -> ModelOverrides {
    let minSize = try a.int("min-size", in: 1...100_000)
    let maxSize = try a.int("max-size", in: 1...100_000)
    if let lo = minSize, let hi = maxSize, lo > hi {
        throw UsageError("--min-size (\(lo)) must not exceed --max-size (\(hi))")
    }
    let classes = a.string("classes")
    if let c = classes, c.isEmpty { throw UsageError("--classes needs a comma-separated list of names") }
    return ModelOverrides(minSize: minSize, maxSize: maxSize, classList: classes)
}
