// `edge-mrcnn detect`: run the model on JPEG files and folders; COCO results JSON and overlays.
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

let detectCommand = Command(
    name: "detect",
    summary: "detect and segment objects in JPEG images",
    usage: "usage: edge-mrcnn detect --model FILE [--json OUT.json] [--overlay-dir DIR] [options] IMAGE_OR_DIR...",
    details: """
      --model FILE          model file: edge-mrcnn .safetensors or a torchvision .pth checkpoint
      --json OUT.json       write the COCO results JSON here (default: standard output)
      --overlay-dir DIR     also write DIR/<image>.jpg with masks, boxes and labels drawn
      --overlay-thresh X    lowest score drawn in overlays (default 0.5)
      --score-thresh X      lowest detection score kept (default 0.05, as torchvision)
      --min-size N          resize: shorter side target (overrides the model file)
      --max-size N          resize: longer side limit (overrides the model file)
      --classes a,b,c       class names, with or without the background
      --annotations FILE    COCO annotations file: image_id comes from its "images" by file name
                            (default: the number a file name spells, e.g. 000000074646.jpg -> 74646,
                            else the image's position in the run)

    """ + limitsHelp,
    notes: """
    Folders are searched (not recursively) for .jpg/.jpeg files, in name order. Progress goes to
    standard error. An image that cannot be read is reported in one line and skipped; the others
    are still written, and the exit status is then 1. Output files are written atomically.
    """,
    spec: ArgSpec(values: ["model", "json", "overlay-dir", "overlay-thresh", "score-thresh", "min-size",
                           "max-size", "classes", "annotations"] + limitFlags),
    run: runDetect)

/// Errors of the results output itself (a full disk): they end the run.
private struct OutputFailure: Error { let error: Error }

func runDetect(_ a: ParsedArgs) throws -> Int32 {
    guard !a.positionals.isEmpty else { throw UsageError("no images given (IMAGE_OR_DIR...)") }
    let modelPath = try a.requiredString("model")
    let scoreThresh = try a.float("score-thresh", in: 0...1) ?? 0.05
    let overlayThresh = try a.float("overlay-thresh", in: 0...1) ?? 0.5
    let limits = try runLimits(a)
    let overrides = try modelOverrides(a)
    let jsonPath = a.string("json")
    let overlayDir = a.string("overlay-dir")
    if let j = jsonPath, j.isEmpty { throw UsageError("--json needs a file name") }
    if let d = overlayDir, d.isEmpty { throw UsageError("--overlay-dir needs a folder name") }

    switch LocalFile.kind(modelPath) {
    case .missing: throw EdgeError(file: modelPath, "no such model file")
    case .directory: throw EdgeError(file: modelPath, "is a folder, not a model file")
    default: break
    }
    let images = try expandImageArguments(a.positionals)
    let resolver = try a.string("annotations").map { try ImageIdResolver(annotationsFile: $0) } ?? ImageIdResolver()

    warnAboutForcedISA()
    let loaded = try ModelLoader.load(path: modelPath, overrides: overrides, notice: { printErr($0) })
    let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
    applyMemoryBudget(model)
    model.maxDetections = limits.maxDetections
    let weightBytes = model.weightBytes

    let options = DetectRunOptions(jsonPath: jsonPath, overlayDir: overlayDir, maxPixels: limits.maxPixels,
                                   overlayStyle: OverlayStyle(minScore: overlayThresh), classNames: model.config.classNames,
                                   resolver: resolver,
                                   preflight: { try checkImageLimits(path: $0, limits: limits, weightBytes: weightBytes) })
    let failed = try processImages(images, options) { try model.detect($0, scoreThresh: scoreThresh) }
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
}

/// Detects on each image in turn: results JSON streamed (atomically when to a file), overlays,
/// progress on stderr. A bad image is reported in one line and skipped. Returns the number of
/// images that failed; throws only for errors that end the run (the output cannot be written).
func processImages(_ images: [String], _ o: DetectRunOptions,
                   detect: (RGBImage) throws -> [Detection]) throws -> Int {
    if let d = o.overlayDir { try LocalFile.makeDirectory(d) }
    let file = try o.jsonPath.map { try AtomicFile(path: $0) }
    let writer = ResultsWriter { text in
        do {
            if let f = file { try f.write(text) } else { printOut(text); fflush(stdout) }
        } catch {
            throw OutputFailure(error: error)
        }
    }
    var failed = 0
    var usedOverlayPaths = Set<String>()
    let n = images.count
    do {
        for (k, path) in images.enumerated() {
            let t0 = monotonicSeconds()
            let base = OutputPaths.baseName(path)
            do {
                let imageId = try o.resolver.imageId(path: path, position: k + 1)
                try o.preflight(path)
                let image = try loadImage(path: path, maxPixels: o.maxPixels)
                let dets = try detect(image)
                try writer.append(dets, imageId: imageId, fileName: base, classNames: o.classNames)
                if let d = o.overlayDir {
                    let drawn = Overlay.draw(image, detections: dets, classNames: o.classNames, style: o.overlayStyle)
                    // Same base name from two folders: the second gets "_2", and so on.
                    var out = Overlay.outputPath(directory: d, imagePath: path)
                    var k = 2
                    while usedOverlayPaths.contains(out) {
                        out = OutputPaths.join(d, OutputPaths.stem(OutputPaths.baseName(path)) + "_\(k).jpg")
                        k += 1
                    }
                    usedOverlayPaths.insert(out)
                    try writeJPEG(drawn, path: out)
                }
                let secs = monotonicSeconds() - t0
                printErr("[\(k + 1)/\(n)] \(base): \(dets.count) detection\(dets.count == 1 ? "" : "s"), \(formatFixed(secs, 2)) s")
            } catch let e as OutputFailure {
                throw e
            } catch {
                failed += 1
                // Name the file even if the message came from somewhere that did not.
                let msg = oneLine((error as? EdgeError)?.message ?? String(describing: error))
                printErr("edge-mrcnn: " + (msg.hasPrefix(path) ? msg : "\(path): \(msg)"))
            }
        }
        try writer.finish()
        try file?.commit()
    } catch let e as OutputFailure {
        file?.abort()
        throw e.error
    } catch {
        file?.abort()
        throw error
    }
    if let j = o.jsonPath {
        printErr("wrote \(writer.count) detection\(writer.count == 1 ? "" : "s") for \(n - failed) image\(n - failed == 1 ? "" : "s") to \(j)")
    }
    if failed > 0 { printErr("edge-mrcnn: \(failed) of \(n) image\(n == 1 ? "" : "s") failed") }
    return failed
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
