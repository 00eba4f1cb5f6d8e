// `edge-mrcnn eval`: COCO box and mask AP, computed as pycocotools' COCOeval does, either for a
// model run over the annotated images of a folder or for an existing results file.
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

let evalCommand = Command(
    name: "eval",
    summary: "COCO box and mask AP of a model (or of a results file) against COCO annotations",
    usage: "usage: edge-mrcnn eval --annotations COCO.json (--model FILE --images DIR | --results RESULTS.json) [options]",
    details: """
      --annotations FILE    COCO instances annotations (images, annotations, categories)
      --model FILE          run this model over the annotated images found in --images
      --images DIR          folder with the images (matched by the annotations' file_name)
      --results FILE        instead of a model: score this COCO results JSON (each result has
                            image_id, or only file_name, which is looked up in the annotations)
      --json OUT.json       with --model: also write the results JSON here
      --metrics-json FILE   write the metrics (12 stats per IoU type, 10 for keypoints) as JSON here
      --iou-type T          bbox, segm, keypoints, both (bbox and segm) or auto (default: bbox,
                            segm if the results have masks (not a box-only model's), keypoints if
                            they have keypoints)
      --max-images N        evaluate only the first N annotated images present in DIR
      --score-thresh X      lowest detection score kept (default 0.05, as torchvision)
      --min-size N          resize: shorter side target (overrides the model file)
      --max-size N          resize: longer side limit (overrides the model file)
      --classes a,b,c       class names, with or without the background

    """ + limitsHelp,
    notes: """
    Prints pycocotools' 12-line summary for each IoU type (10 lines for keypoints) and then one
    line "box AP X mask AP Y keypoint AP Z" (AP@[.5:.95] ×100). Labels the model predicts are used as COCO
    category ids. Without --max-images every annotated image must be in DIR; with it, only the
    images evaluated count (the others are left out of the metrics, not scored as misses).
    With --results, every image of the annotations counts, as in pycocotools.
    """,
    spec: ArgSpec(values: ["annotations", "model", "images", "results", "json", "metrics-json", "iou-type",
                           "max-images", "score-thresh", "min-size", "max-size", "classes"] + limitFlags),
    run: runEval)

func runEval(_ a: ParsedArgs) throws -> Int32 {
    if !a.positionals.isEmpty { throw UsageError("unexpected argument '\(a.positionals[0])'") }
    let annPath = try a.requiredString("annotations")
    let resultsPath = a.string("results")
    let modelPath = a.string("model")
    var types: [COCOIoUType]
    let auto = (a.string("iou-type") ?? "auto") == "auto"
    switch a.string("iou-type") ?? "auto" {
    case "auto", "both": types = [.bbox, .segm]
    case "bbox": types = [.bbox]
    case "segm": types = [.segm]
    case "keypoints": types = [.keypoints]
    case let t: throw UsageError("--iou-type must be bbox, segm, keypoints, both or auto, got '\(t)'")
    }
    if resultsPath != nil && modelPath != nil { throw UsageError("give either --model or --results, not both") }
    if resultsPath == nil && modelPath == nil { throw UsageError("--model (with --images) or --results is required") }
    if let m = a.string("metrics-json"), m.isEmpty { throw UsageError("--metrics-json needs a file name") }

    let t0 = monotonicSeconds()
    let gt = try COCODataset.load(path: annPath)
    var results: [COCOResult]
    var imageIds: [Int]? = nil
    var failed = 0
    if let rp = resultsPath {
        for flag in ["images", "json", "max-images", "score-thresh", "min-size", "max-size", "classes"] + limitFlags where a.has(flag) {
            throw UsageError("--\(flag) only applies with --model")
        }
        results = try COCOResults.load(path: rp, gt: gt)
    } else {
        let run = try runModelForEval(a, gt: gt, modelPath: modelPath!)
        results = run.results
        imageIds = run.imageIds
        failed = run.failed
        // a box-only model (Faster R-CNN): the iou types it produces
        if !run.hasMasks && !a.has("iou-type") { types = [.bbox] }
    }
    let tLoad = monotonicSeconds()
    let known = Set(gt.categories.map { $0.id })
    let unknown = results.filter { !known.contains($0.categoryId) }
    if !unknown.isEmpty {
        let ids = Array(Set(unknown.map { $0.categoryId })).sorted().prefix(8).map(String.init).joined(separator: ", ")
        printErr("edge-mrcnn: note: \(unknown.count) result\(unknown.count == 1 ? " has a category id" : "s have category ids") "
                 + "not in the annotations' categories (\(ids)); they are not scored")
    }

    var metrics: [(COCOIoUType, COCOEvalResult)] = []
    var hasSegm = results.contains { $0.segmentation != nil }
    if results.isEmpty { hasSegm = true }
    if auto && !results.isEmpty && !results.contains(where: { $0.segmentation != nil && !$0.segmentationFromBox }) {
        // Auto: mask AP only for results with masks of their own (not box-only models' boxes).
        types.removeAll { $0 == .segm }
        if !results.contains(where: { $0.keypoints != nil }) { printErr("edge-mrcnn: the results have no segmentation: mask AP skipped") }
    }
    if auto && results.contains(where: { $0.keypoints != nil }) {
        if gt.annotations.contains(where: { $0.keypoints != nil }) {
            types.append(.keypoints)
        } else {
            printErr("edge-mrcnn: the annotations have no keypoints: keypoint AP skipped")
        }
    }
    for t in types {
        if t == .segm && !hasSegm && types.count > 1 {
            printErr("edge-mrcnn: the results have no segmentation: mask AP skipped")
            continue
        }
        let r = try COCOEval.evaluate(gt: gt, results: results, iouType: t, imageIds: imageIds)
        metrics.append((t, r))
        printOut("Evaluate annotation type *\(t.rawValue)*\n")
        printOut(r.summaryLines.joined(separator: "\n") + "\n")
    }
    let tEval = monotonicSeconds()
    var line: [String] = []
    for (t, r) in metrics {
        line.append("\(t == .bbox ? "box" : t == .segm ? "mask" : "keypoint") AP \(COCOEvalResult.fixed(r.stats[0] * 100, 2))")
    }
    printOut(line.joined(separator: " ") + "\n")
    let nImages = metrics.first?.1.imageCount ?? 0
    printErr("evaluated \(results.count) detection\(results.count == 1 ? "" : "s") on \(nImages) image\(nImages == 1 ? "" : "s") "
             + "(\(resultsPath == nil ? "model run" : "loading") \(COCOEvalResult.fixed(tLoad - t0, 2)) s, "
             + "scoring \(COCOEvalResult.fixed(tEval - tLoad, 2)) s)")

    if let mp = a.string("metrics-json") {
        var obj: [(String, JSON)] = [("annotations", .string(annPath)), ("images", .int(nImages)),
                                     ("detections", .int(results.count))]
        if let rp = resultsPath { obj.append(("results", .string(rp))) }
        for (t, r) in metrics {
            var m: [(String, JSON)] = []
            for (i, n) in r.names.enumerated() { m.append((n, .double(r.stats[i]))) }
            m.append(("stats", .array(r.stats.map { .double($0) })))
            obj.append((t.rawValue, .object(m)))
        }
        try AtomicFile.write(path: mp, contents: JSON.object(obj).serialized() + "\n")
    }
    if failed > 0 {
        printErr("edge-mrcnn: \(failed) image\(failed == 1 ? "" : "s") failed and \(failed == 1 ? "was" : "were") left out of the metrics")
        return 1
    }
    return 0
}

/// An error writing the results file: it ends the run (unlike a bad image).
private struct EvalOutputFailure: Error { let error: Error }

/// Runs the model over the annotated images in --images; returns the results as loadRes would
/// read them back from the results JSON (the same text is parsed), and the ids of the images run.
private func runModelForEval(_ a: ParsedArgs, gt: COCODataset, modelPath: String)
    throws -> (results: [COCOResult], imageIds: [Int], failed: Int, hasMasks: Bool)
{
    let dir = try a.requiredString("images")
    let scoreThresh = try a.float("score-thresh", in: 0...1) ?? 0.05
    let limits = try runLimits(a)
    let maxImages = try a.int("max-images", in: 1...Int.max)
    let overrides = try modelOverrides(a)
    let jsonPath = a.string("json")
    if let j = jsonPath, j.isEmpty { throw UsageError("--json needs a file name") }
    guard LocalFile.kind(dir) == .directory else { throw EdgeError(file: dir, "no such folder (--images)") }
    switch LocalFile.kind(modelPath) {
    case .missing: throw EdgeError(file: modelPath, "no such model file")
    case .directory: throw EdgeError(file: modelPath, "is a folder, not a model file")
    default: break
    }

    // The annotated images, in the annotations' order, found in DIR.
    var todo: [(image: COCOImage, path: String)] = []
    var missing: [String] = []
    for im in gt.images {
        if let n = maxImages, todo.count >= n { break }
        let full = OutputPaths.join(dir, im.fileName)
        let base = OutputPaths.join(dir, OutputPaths.baseName(im.fileName))
        if !im.fileName.isEmpty && LocalFile.kind(full) == .file {
            todo.append((im, full))
        } else if !im.fileName.isEmpty && LocalFile.kind(base) == .file {
            todo.append((im, base))
        } else {
            missing.append(im.fileName.isEmpty ? "(image id \(im.id) has no file_name)" : im.fileName)
        }
    }
    if maxImages == nil && !missing.isEmpty {
        throw EdgeError(file: dir, "\(missing.count) of \(gt.images.count) annotated images are not in this folder "
                        + "(first: \(missing[0])); use --max-images N to evaluate the ones present")
    }
    if todo.isEmpty { throw EdgeError(file: dir, "none of the images of \(gt.source) is in this folder") }

    warnAboutForcedISA()
    let loaded = try ModelLoader.load(path: modelPath, overrides: overrides, notice: { printErr($0) })
    let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
    applyMemoryBudget(model)
    let classNames = model.config.classNames
    model.maxDetections = limits.maxDetections
    let weightBytes = model.weightBytes

    // Results are written as they come (atomically) and read back object by object exactly as
    // a results file would be (Float text -> Double), so both modes score the same numbers.
    let file = try jsonPath.map { try AtomicFile(path: $0) }
    var results: [COCOResult] = []
    var ids: [Int] = []
    var failed = 0
    do {
        for (k, item) in todo.enumerated() {
            let t0 = monotonicSeconds()
            do {
                try checkImageLimits(path: item.path, limits: limits, weightBytes: weightBytes)
                let image = try loadImage(path: item.path, maxPixels: limits.maxPixels)
                if image.width != item.image.width || image.height != item.image.height {
                    printErr("edge-mrcnn: \(item.path): warning: image is \(image.width)x\(image.height), annotations say "
                             + "\(item.image.width)x\(item.image.height)")
                }
                let dets = try model.detect(image, scoreThresh: scoreThresh)
                let name = OutputPaths.baseName(item.path)
                var chunk = ""
                var parsed: [COCOResult] = []
                for d in dets {
                    let text = try ResultsJSON.object(d, imageId: item.image.id, fileName: name,
                                                      categoryName: ResultsJSON.categoryName(d.label, classNames: classNames))
                    parsed.append(try COCOResults.parseOne(try JSON.parse(text), index: results.count + parsed.count,
                                                           bboxBranch: true, gt: gt, source: jsonPath ?? "(results)"))
                    chunk += (results.count + parsed.count == 1 ? "[\n" : ",\n") + text
                }
                if let f = file, !chunk.isEmpty {
                    do { try f.write(chunk) } catch { throw EvalOutputFailure(error: error) }
                }
                results += parsed
                ids.append(item.image.id)
                printErr("[\(k + 1)/\(todo.count)] \(name): \(dets.count) detection\(dets.count == 1 ? "" : "s"), "
                         + "\(formatFixed(monotonicSeconds() - t0, 2)) s")
            } catch let e as EvalOutputFailure {
                throw e.error
            } catch {
                failed += 1
                let msg = oneLine((error as? EdgeError)?.message ?? String(describing: error))
                printErr("edge-mrcnn: " + (msg.hasPrefix(item.path) ? msg : "\(item.path): \(msg)"))
            }
        }
        if let f = file {
            try f.write(results.isEmpty ? "[]\n" : "\n]\n")
            try f.commit()
            printErr("wrote \(results.count) detection\(results.count == 1 ? "" : "s") to \(jsonPath!)")
        }
    } catch {
        file?.abort()
        throw error
    }
    return (results, ids, failed, model.network.hasMasks)
}
