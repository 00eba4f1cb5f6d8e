// `edge-mrcnn serve`: a DeepStack / CodeProject.AI-compatible HTTP detection server (the
// protocol: EdgeMRCNN/Serve/DeepStackAPI.swift; sockets and threads: ServeServer.swift).
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

let serveCommand = Command(
    name: "serve",
    summary: "serve detections over HTTP (DeepStack / CodeProject.AI API)",
    usage: "usage: edge-mrcnn serve --model [NAME=]FILE [--model NAME=FILE ...] [--host ADDR] [--port N] [--api-key KEY] [options]",
    details: """
      --model [NAME=]FILE   a model file (.safetensors or .pth); repeat for several models. A model
                            given without NAME answers POST /v1/vision/detection (else the first
                            model does); each model answers POST /v1/vision/custom/NAME (NAME
                            defaults to the file name without its extension)
      --host ADDR           address to listen on (default 127.0.0.1: this machine only; 0.0.0.0
                            for every IPv4 interface)
      --port N              TCP port (default 5000; 0 picks a free port, printed at start)
      --api-key KEY         require the form field api_key=KEY on detection requests (401 else)
      --max-body-mb N       largest request body in MiB (default \(HTTPLimits.defaultMaxBodyBytes >> 20))
      --max-header-kb N     largest request head in KiB (default \(HTTPLimits.defaultMaxHeaderBytes >> 10))
      --read-timeout S      seconds for a whole request to arrive, and for an idle connection
                            to send its next one (default 30)
      --max-connections N   connections served at once; more are answered 503 (default 8)
      --queue N             detection requests waiting for the model; more are answered 503
                            at once (default 4)
      --min-size N          resize: shorter side target (overrides the model files)
      --max-size N          resize: longer side limit (overrides the model files)
      --classes a,b,c       class names, with or without the background
      --quiet               no log line per request on standard error

    """ + limitsHelp,
    notes: """
    Routes: POST /v1/vision/detection and /v1/vision/custom/NAME (multipart/form-data: field
    "image" a JPEG, optional "min_confidence" 0..1, default 0.4; "api_key" when --api-key is set)
    -> {"success": true, "predictions": [{"label", "confidence", "x_min", "y_min", "x_max",
    "y_max", "mask": {"size", "counts"}}], "count", "inferenceMs", "processMs"}, predictions sorted
    by confidence, highest first; masks are COCO compressed RLE as in the results JSON of detect.
    GET /v1/status (models, precision, kernel ISA, queue), GET /v1/status/ping, GET or POST
    /v1/vision/custom/list. Errors: {"success": false, "error": "..."} with a 4xx/5xx status.
    One model instance serves the requests in arrival order. SIGTERM or SIGINT stops the server:
    the detection running finishes, queued ones are answered 503, exit status 0.
    """,
    spec: ArgSpec(values: ["model", "host", "port", "api-key", "max-body-mb", "max-header-kb", "read-timeout",
                           "max-connections", "queue", "min-size", "max-size", "classes"] + limitFlags,
                  bools: ["quiet"]),
    run: runServe)

/// "NAME=FILE" or "FILE": the name when the text before the first "=" is a valid model name.
func parseModelArgument(_ s: String) -> (name: String?, file: String) {
    if let eq = s.firstIndex(of: "=") {
        let name = String(s[..<eq])
        if isValidModelName(name) { return (name, String(s[s.index(after: eq)...])) }
    }
    return (nil, s)
}

/// Model names appear in URLs: letters, digits, '-', '_', '.', at most 64, not "list".
func isValidModelName(_ n: String) -> Bool {
    !n.isEmpty && n.utf8.count <= 64 && n != "list" && n != "." && n != ".."
        && n.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
            || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
}

func runServe(_ a: ParsedArgs) throws -> Int32 {
    if !a.positionals.isEmpty { throw UsageError("serve takes no positional arguments (got '\(a.positionals[0])')") }
    let modelArgs = a.values["model"] ?? []
    if modelArgs.isEmpty { throw UsageError("--model is required") }
    var config = ServeConfig()
    config.host = a.string("host") ?? "127.0.0.1"
    if config.host.isEmpty { throw UsageError("--host needs an address") }
    config.port = try a.int("port", in: 0...65535) ?? 5000
    config.apiKey = a.string("api-key")
    if let k = config.apiKey, k.isEmpty { throw UsageError("--api-key needs a value") }
    config.http.maxBodyBytes = (try a.int("max-body-mb", in: 1...4096) ?? (HTTPLimits.defaultMaxBodyBytes >> 20)) << 20
    config.http.maxHeaderBytes = (try a.int("max-header-kb", in: 1...1024) ?? (HTTPLimits.defaultMaxHeaderBytes >> 10)) << 10
    config.readTimeout = Double(try a.float("read-timeout", in: 0.1...3600) ?? 30)
    config.maxConnections = try a.int("max-connections", in: 1...1024) ?? 8
    config.queueLength = try a.int("queue", in: 1...1024) ?? 4
    config.limits = try runLimits(a)
    config.quiet = a.bools.contains("quiet")
    let overrides = try modelOverrides(a)

    // Names and files first (usage mistakes before any model is loaded).
    var entries: [(name: String, file: String, named: Bool)] = []
    for arg in modelArgs {
        let (name, file) = parseModelArgument(arg)
        if file.isEmpty { throw UsageError("--model needs a file (--model FILE or --model NAME=FILE)") }
        let finalName = name ?? OutputPaths.stem(OutputPaths.baseName(file))
        guard isValidModelName(finalName) else {
            throw UsageError("model name '\(finalName)' is not usable in a URL: use --model NAME=\(file) with letters, digits, '-', '_', '.'")
        }
        if entries.contains(where: { $0.name == finalName }) {
            throw UsageError("two models named '\(finalName)': give them different names with --model NAME=FILE")
        }
        entries.append((finalName, file, name != nil))
    }
    let unnamed = entries.indices.filter { !entries[$0].named }
    if unnamed.count > 1 {
        throw UsageError("only one --model may be given without a name (it answers /v1/vision/detection); name the others NAME=FILE")
    }
    for e in entries {
        switch LocalFile.kind(e.file) {
        case .missing: throw EdgeError(file: e.file, "no such model file")
        case .directory: throw EdgeError(file: e.file, "is a folder, not a model file")
        default: break
        }
    }

    warnAboutForcedISA()
    var served: [ServedModel] = []
    for e in entries {
        let loaded = try ModelLoader.load(path: e.file, overrides: overrides, notice: { printErr($0) })
        let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: e.file)
        applyMemoryBudget(model)
        model.maxDetections = config.limits.maxDetections
        served.append(ServedModel(name: e.name, file: e.file, model: model, precision: model.precision,
                                  classNames: model.config.classNames))
    }
    let server = DeepStackServer(config: config, models: served, defaultModel: unnamed.first ?? 0)
    try server.run()
    return 0
}
