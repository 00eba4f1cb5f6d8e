// `edge-mrcnn detect`: run the model on JPEG files and folders; COCO results JSON and overlays.
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

let detectCommand = Command(
    name: "detect",
    summary: "detect and segment objects in JPEG images, folders or a stream of frames",
    usage: "usage: edge-mrcnn detect --model FILE [--json OUT.json] [--jsonl OUT.jsonl|-] [--overlay-dir DIR] [options] (IMAGE_OR_DIR... | -)",
    details: """
      --model FILE          model file: edge-mrcnn .safetensors or a torchvision .pth checkpoint
      --json OUT.json       write the COCO results JSON here (default: standard output, unless
                            --jsonl is given)
      --jsonl OUT.jsonl     also (or only) write JSON Lines: one object per image or frame,
                            written as soon as it is done; "-" for standard output
      --overlay-dir DIR     also write DIR/<image>.jpg with masks, boxes and labels drawn
                            (frames of standard input: DIR/frame_000001.jpg, ...)
      --overlay-thresh X    lowest score drawn in overlays (default 0.5)
      --score-thresh X      lowest detection score kept (default 0.05, as torchvision)
      --classes-only a,b    keep only these classes (names of the model, or label numbers);
                            the others are dropped before the mask head runs
      --mask-thresh X       masks only for detections scoring at least X; the others keep box
                            and score, without "segmentation" (drawn box-only)
      --no-masks            no masks at all: boxes, classes and scores only
      --min-size N          resize: shorter side target (overrides the model file)
      --max-size N          resize: longer side limit (overrides the model file)
      --classes a,b,c       class names, with or without the background
      --annotations FILE    COCO annotations file: image_id comes from its "images" by file name
                            (default: the number a file name spells, e.g. 000000074646.jpg -> 74646,
                            else the image's position in the run)
      -                     read concatenated JPEG frames from standard input (MJPEG as
                            `rpicam-vid --codec mjpeg -o -` or `ffmpeg ... -f mjpeg -` write it,
                            multipart boundaries allowed) and process them as they arrive
      --drop-frames         (with -) when frames arrive faster than they are processed, keep only
                            the newest waiting frame; the dropped ones are counted and reported
      --max-frame-mb MB     (with -) the largest frame accepted (default \(JPEGFrameSplitter.defaultMaxFrameBytes >> 20));
                            a larger one is reported and skipped

    """ + limitsHelp,
    notes: """
    Folders are searched (not recursively) for .jpg/.jpeg files, in name order. Progress goes to
    standard error. An image or frame that cannot be read is reported in one line (and in the
    JSON Lines as {"frame": N, "file_name": ..., "error": ...}) and skipped; the others are still
    processed and written, and the exit status is then 1. The results JSON is written atomically,
    and not at all when every input failed; JSON Lines files keep their lines (error lines too).
    JSON Lines: {"frame": N, "file_name": ..., "time_ms": decode + detect, "detections": [the
    results JSON objects]}; frames of standard input have file_name "-" and image_id = N.
    SIGINT / SIGTERM end a stream of frames cleanly (the frame in hand is finished, outputs are
    written); a second signal ends the run at once.
    """,
    spec: ArgSpec(values: ["model", "json", "jsonl", "overlay-dir", "overlay-thresh", "score-thresh", "min-size",
                           "max-size", "classes", "annotations", "classes-only", "mask-thresh", "max-frame-mb"] + limitFlags,
                  bools: ["no-masks", "drop-frames"]),
    run: runDetect)

/// Errors of the results output itself (a full disk, a closed pipe): they end the run.
private struct OutputFailure: Error { let error: Error }

/// --classes-only, --mask-thresh, --no-masks (detect, bench): what the model computes beyond
/// boxes. Unknown class names are usage mistakes.
func detectOptions(_ a: ParsedArgs, classNames: [String]) throws -> DetectOptions {
    var o = DetectOptions()
    if let list = a.string("classes-only") {
        do {
            o.classesOnly = try DetectOptions.labels(classList: list, classNames: classNames)
        } catch let e as EdgeError {
            throw UsageError(e.message)
        }
    }
    o.maskThresh = try a.float("mask-thresh", in: 0...1)
    if a.has("no-masks") {
        if o.maskThresh != nil { throw UsageError("give --no-masks or --mask-thresh, not both") }
        o.masks = false
    }
    return o
}

/// The flags of detectOptions (for the commands' ArgSpecs).
let detectOptionValueFlags = ["classes-only", "mask-thresh"]

func runDetect(_ a: ParsedArgs) throws -> Int32 {
    guard !a.positionals.isEmpty else { throw UsageError("no images given (IMAGE_OR_DIR... or - for standard input)") }
    let fromStdin = a.positionals.contains("-")
    if fromStdin && a.positionals.count > 1 {
        throw UsageError("- (frames from standard input) cannot be mixed with image files or folders")
    }
    if !fromStdin {
        for f in ["drop-frames", "max-frame-mb"] where a.has(f) {
            throw UsageError("--\(f) applies to frames from standard input (-) only")
        }
    } else if a.has("annotations") {
        throw UsageError("--annotations does not apply to frames from standard input (their image_id is the frame number)")
    }
    let modelPath = try a.requiredString("model")
    let scoreThresh = try a.float("score-thresh", in: 0...1) ?? 0.05
    let overlayThresh = try a.float("overlay-thresh", in: 0...1) ?? 0.5
    let maxFrameBytes = (try a.int("max-frame-mb", in: 1...4096) ?? (JPEGFrameSplitter.defaultMaxFrameBytes >> 20)) << 20
    let limits = try runLimits(a)
    let overrides = try modelOverrides(a)
    let jsonPath = a.string("json")
    let jsonlPath = a.string("jsonl")
    let overlayDir = a.string("overlay-dir")
    if let j = jsonPath, j.isEmpty { throw UsageError("--json needs a file name") }
    if let j = jsonlPath, j.isEmpty { throw UsageError("--jsonl needs a file name (or - for standard output)") }
    if let d = overlayDir, d.isEmpty { throw UsageError("--overlay-dir needs a folder name") }
    if a.has("mask-thresh") && a.has("no-masks") { throw UsageError("give --no-masks or --mask-thresh, not both") }
    _ = try a.float("mask-thresh", in: 0...1)

    switch LocalFile.kind(modelPath) {
    case .missing: throw EdgeError(file: modelPath, "no such model file")
    case .directory: throw EdgeError(file: modelPath, "is a folder, not a model file")
    default: break
    }
    let images = fromStdin ? [] : try expandImageArguments(a.positionals)
    let resolver = try a.string("annotations").map { try ImageIdResolver(annotationsFile: $0) } ?? ImageIdResolver()

    warnAboutForcedISA()
    let loaded = try ModelLoader.load(path: modelPath, overrides: overrides, notice: { printErr($0) })
    let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
    applyMemoryBudget(model)
    model.maxDetections = limits.maxDetections
    let weightBytes = model.weightBytes
    let wanted = try detectOptions(a, classNames: model.config.classNames)

    var options = DetectRunOptions(jsonPath: jsonPath, overlayDir: overlayDir, maxPixels: limits.maxPixels,
                                   overlayStyle: OverlayStyle(minScore: overlayThresh), classNames: model.config.classNames,
                                   resolver: resolver,
                                   preflight: { try checkImageLimits(path: $0, limits: limits, weightBytes: weightBytes) })
    options.jsonlPath = jsonlPath
    options.preflightBytes = { try checkImageLimits(bytes: $0, name: $1, limits: limits, weightBytes: weightBytes) }
    let detect: (RGBImage) throws -> [Detection] = { try model.detect($0, scoreThresh: scoreThresh, options: wanted) }
    if fromStdin {
        installStopHandlers()
        let reader = try JPEGFrameReader(fd: 0, maxFrameBytes: maxFrameBytes, dropFrames: a.has("drop-frames"))
        let failed = try processFrames(reader, options, detect: detect)
        return failed > 0 ? 1 : 0
    }
    let failed = try processImages(images, options, detect: detect)
    return failed > 0 ? 1 : 0
}

struct DetectRunOptions {
    var jsonPath: String?
    var overlayDir: String?
    var maxPixels: Int
    var overlayStyle: OverlayStyle
    var classNames: [String]
    var resolver: ImageIdResolver
    /// Checks an image path before it is decoded (limits from its header); throws to skip it.
    var preflight: (String) throws -> Void = { _ in }
    /// JSON Lines output: a file, or "-" for standard output; nil: none.
    var jsonlPath: String? = nil
    /// Checks a frame (bytes, name) before it is decoded; throws to skip it.
    var preflightBytes: ([UInt8], String) throws -> Void = { _, _ in }

    /// The results JSON array is written to --json, or to standard output when neither --json
    /// nor --jsonl is given.
    var writesArray: Bool { jsonPath != nil || jsonlPath == nil }
}

/// One input of the detect loop.
enum DetectInput {
    /// An image file, number `position` in the run.
    case file(path: String, position: Int)
    /// A frame of standard input.
    case frame(number: Int, bytes: [UInt8])
    /// A frame that could not be cut from the stream (damaged, too large).
    case brokenFrame(number: Int, message: String)
}

/// Detects on each image in turn: results JSON streamed (atomically when to a file), overlays,
/// progress on stderr. A bad image is reported in one line and skipped. Returns the number of
/// images that failed; throws only for errors that end the run (the output cannot be written).
func processImages(_ images: [String], _ o: DetectRunOptions,
                   detect: (RGBImage) throws -> [Detection]) throws -> Int {
    var k = 0
    let r = try processInputs(next: {
        guard k < images.count else { return nil }
        k += 1
        return .file(path: images[k - 1], position: k)
    }, total: images.count, o, detect: detect)
    if r.failed > 0 { printErr("edge-mrcnn: \(r.failed) of \(images.count) image\(images.count == 1 ? "" : "s") failed") }
    return r.failed
}

/// Detects on the frames of a stream as they come. Returns the number of frames that failed,
/// plus one if the stream could not be read to its end or held no frame at all.
func processFrames(_ reader: JPEGFrameReader, _ o: DetectRunOptions,
                   detect: (RGBImage) throws -> [Detection]) throws -> Int {
    let r = try processInputs(next: {
        switch reader.next() {
        case .frame(let n, let bytes)?: return .frame(number: n, bytes: bytes)
        case .error(let n, let message)?: return .brokenFrame(number: n, message: message)
        case nil: return nil
        }
    }, total: nil, o, dropped: reader.dropFrames ? { reader.dropped } : nil, detect: detect)
    var failed = r.failed
    let seen = reader.framesSeen
    var summary = "standard input: \(seen) frame\(seen == 1 ? "" : "s"), \(r.processed) processed, \(r.failed) failed"
    if reader.dropFrames { summary += ", \(reader.dropped) dropped (--drop-frames)" }
    if reader.stopped { summary += "; stopped by a signal" }
    if reader.lostErrors > 0 { summary += ", \(reader.lostErrors) error report\(reader.lostErrors == 1 ? "" : "s") lost" }
    printErr(summary)
    if let e = reader.readError {
        printErr("edge-mrcnn: standard input: \(e)")
        failed += 1
    } else if seen == 0 {
        printErr("edge-mrcnn: standard input: no JPEG frame found (\(reader.skippedBytes) bytes read)")
        failed += 1
    }
    return failed
}

/// The detect loop over any inputs. Returns (processed, failed).
func processInputs(next: () throws -> DetectInput?, total: Int?, _ o: DetectRunOptions,
                   dropped: (() -> Int)? = nil,
                   detect: (RGBImage) throws -> [Detection]) throws -> (processed: Int, failed: Int) {
    if let d = o.overlayDir { try LocalFile.makeDirectory(d) }
    let file = o.writesArray ? try o.jsonPath.map { try AtomicFile(path: $0) } : nil
    let writer = ResultsWriter { text in
        do {
            if let f = file { try f.write(text) } else { printOut(text); fflush(stdout) }
        } catch {
            throw OutputFailure(error: error)
        }
    }
    var lines: LineWriter?
    if let j = o.jsonlPath {
        if j == "-" { fflush(stdout); lines = LineWriter(standardOutput: ()) } else { lines = try LineWriter(path: j) }
    }
    func writeLine(_ text: String) throws {
        do { try lines?.write(text) } catch { throw OutputFailure(error: error) }
    }
    var failed = 0, processed = 0
    var usedOverlayPaths = Set<String>()
    do {
        while let input = try next() {
            let t0 = monotonicSeconds()
            let number: Int, base: String, name: String
            switch input {
            case .file(let path, let position):
                number = position; base = OutputPaths.baseName(path); name = path
            case .frame(let n, _), .brokenFrame(let n, _):
                number = n; base = "-"; name = "frame \(n)"
            }
            var extra: [(key: String, value: String)] = []
            if let d = dropped { extra.append(("dropped", "\(d())")) }
            do {
                let image: RGBImage
                let imageId: Int
                switch input {
                case .file(let path, let position):
                    imageId = try o.resolver.imageId(path: path, position: position)
                    try o.preflight(path)
                    image = try loadImage(path: path, maxPixels: o.maxPixels)
                case .frame(let n, let bytes):
                    imageId = n
                    try o.preflightBytes(bytes, name)
                    image = try decodeJPEG(bytes: bytes, name: name, maxPixels: o.maxPixels)
                case .brokenFrame(_, let message):
                    throw EdgeError(file: name, message)
                }
                let dets = try detect(image)
                let secs = monotonicSeconds() - t0
                if o.writesArray {
                    try writer.append(dets, imageId: imageId, fileName: base, classNames: o.classNames)
                }
                if lines != nil {
                    let text = try JSONLines.detections(frame: number, fileName: base, imageId: imageId, timeMs: secs * 1000,
                                                        detections: dets, classNames: o.classNames, extra: extra)
                    try writeLine(text)
                }
                if let d = o.overlayDir {
                    let drawn = Overlay.draw(image, detections: dets, classNames: o.classNames, style: o.overlayStyle)
                    var out: String
                    if case .file(let path, _) = input {
                        // Same base name from two folders: the second gets "_2", and so on.
                        out = Overlay.outputPath(directory: d, imagePath: path)
                        var k = 2
                        while usedOverlayPaths.contains(out) {
                            out = OutputPaths.join(d, OutputPaths.stem(OutputPaths.baseName(path)) + "_\(k).jpg")
                            k += 1
                        }
                        usedOverlayPaths.insert(out)
                    } else {
                        out = OutputPaths.join(d, "frame_" + zeroPadded(number, 6) + ".jpg")
                    }
                    try writeJPEG(drawn, path: out)
                }
                processed += 1
                let took = formatFixed(monotonicSeconds() - t0, 2)
                let what = "\(dets.count) detection\(dets.count == 1 ? "" : "s"), \(took) s"
                if let n = total {
                    printErr("[\(number)/\(n)] \(base): \(what)")
                } else {
                    printErr("[frame \(number)] \(what)" + (dropped.map { ", \($0()) dropped so far" } ?? ""))
                }
            } catch let e as OutputFailure {
                throw e
            } catch {
                failed += 1
                // Name the file even if the message came from somewhere that did not.
                let msg = oneLine((error as? EdgeError)?.message ?? String(describing: error))
                let full = msg.hasPrefix(name) ? msg : "\(name): \(msg)"
                printErr("edge-mrcnn: " + full)
                try writeLine(JSONLines.error(frame: number, fileName: base, message: full, extra: extra))
            }
        }
        if o.writesArray {
            if processed > 0 {
                try writer.finish()
                try file?.commit()
            } else {
                // Every input failed: no results file at all (an empty list would read as "no
                // detections" downstream), and nothing on standard output.
                file?.abort()
            }
        }
        try lines?.close()
    } catch let e as OutputFailure {
        file?.abort()
        throw e.error
    } catch {
        file?.abort()
        throw error
    }
    if let j = o.jsonPath, o.writesArray {
        if processed > 0 {
            printErr("wrote \(writer.count) detection\(writer.count == 1 ? "" : "s") for \(processed) image\(processed == 1 ? "" : "s") to \(j)")
        } else {
            printErr("no results written to \(j): every input failed")
        }
    }
    return (processed, failed)
}

/// SIGINT / SIGTERM while frames are read from standard input end the stream after the frame in
/// hand (as the end of input would: results written, summary printed) instead of killing the
/// run; a second signal kills it. Installed without SA_RESTART, so that a blocked read(2) returns.
func installStopHandlers() {
    _ = JPEGFrameReader.stopFlag   // allocated before any handler can run
    var sa = sigaction()
    sa.__sigaction_handler.sa_handler = { _ in
        JPEGFrameReader.stopFlag.pointee = 1
        signal(SIGINT, SIG_DFL); signal(SIGTERM, SIG_DFL)   // a second one ends the run at once
    }
    sigemptyset(&sa.sa_mask)
    sa.sa_flags = 0
    sigaction(SIGINT, &sa, nil)
    sigaction(SIGTERM, &sa, nil)
}

/// `v` in decimal with at least `width` digits.
func zeroPadded(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// Files stay as given; folders become their .jpg/.jpeg files (any case), sorted by name.
func expandImageArguments(_ args: [String]) throws -> [String] {
    var out: [String] = []
    for p in args {
        switch LocalFile.kind(p) {
        case .missing:
            throw EdgeError(file: p, "no such file or folder")
        case .directory:
            let names = try LocalFile.list(p).filter { name in
                let e = OutputPaths.ext(name)
                return (e == "jpg" || e == "jpeg") && LocalFile.kind(OutputPaths.join(p, name)) == .file
            }
            if names.isEmpty { throw EdgeError(file: p, "no .jpg or .jpeg images in this folder") }
            out += names.map { OutputPaths.join(p, $0) }
        case .file, .other:
            out.append(p)
        }
    }
    return out
}

/// `v` with `digits` decimals (no Foundation).
func formatFixed(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "\(v)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let neg = v < 0
    let r = Int((abs(v) * scale).rounded())
    let ip = r / Int(scale), fp = r % Int(scale)
    var f = String(fp)
    while f.count < digits { f = "0" + f }
    return (neg && r != 0 ? "-" : "") + String(ip) + (digits > 0 ? "." + f : "")
}
