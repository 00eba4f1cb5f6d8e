// COCO results JSON: a JSON array with one object per detection,
//   {"image_id":74646,"file_name":"000000074646.jpg","category_id":1,"category_name":"person",
//    "bbox":[x,y,w,h],"score":0.97,"segmentation":{"size":[h,w],"counts":"..."}}
// Keypoint models add COCO's keypoint result fields, "keypoints":[x1,y1,1,x2,y2,1,...] (v = 1 as
// torchvision reports visibility) and torchvision's per-keypoint heatmap logits,
// "keypoints_scores":[s1,s2,...]; box-only models write no "segmentation".
// bbox is in original image pixels, from (x1, y1, x2, y2) as w = x2 - x1 (no +1). Floats are
// written in the shortest form that reads back to the same Float32. NaN and infinities are
// rejected (JSON has no spelling for them).
//
// ResultsWriter streams: results are appended image by image to a sink (a file or stdout).

public enum ResultsJSON {
    /// The JSON number for a Float: shortest round-trip text. Throws for NaN / infinity.
    public static func number(_ v: Float, what: String = "value") throws -> String {
        guard v.isFinite else { throw EdgeError("results JSON: \(what) is \(v), which JSON cannot represent") }
        if v == 0 { return "0.0" }  // also turns -0.0 into 0.0
        return v.description  // e.g. "0.97", "12.0", "1e-05": all valid JSON numbers
    }

    /// A JSON string literal (quotes included) with the escapes JSON requires.
    public static func string(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
        return out
    }

    /// One results object for one detection (without a trailing comma or newline).
    public static func object(_ d: Detection, imageId: Int, fileName: String, categoryName: String) throws -> String {
        let (x1, y1, x2, y2) = d.box
        let bx = try number(x1, what: "box x1 of \(fileName)")
        let by = try number(y1, what: "box y1 of \(fileName)")
        let bw = try number(x2 - x1, what: "box width of \(fileName)")
        let bh = try number(y2 - y1, what: "box height of \(fileName)")
        let score = try number(d.score, what: "score of \(fileName)")
        var s = "{\"image_id\":\(imageId),\"file_name\":\(string(fileName)),\"category_id\":\(d.label),"
        s += "\"category_name\":\(string(categoryName)),\"bbox\":[\(bx),\(by),\(bw),\(bh)],\"score\":\(score)"
        if let rle = d.mask {
            s += ",\"segmentation\":{\"size\":[\(rle.height),\(rle.width)],\"counts\":\(string(rle.compressedString))}"
        }
        if let kps = d.keypoints {
            var k = ",\"keypoints\":["
            var ks = ",\"keypoints_scores\":["
            for (i, p) in kps.enumerated() {
                let c = i == 0 ? "" : ","
                k += c + (try number(p.x, what: "keypoint x of \(fileName)")) + ","
                    + (try number(p.y, what: "keypoint y of \(fileName)")) + ",1"
                ks += c + (try number(p.score, what: "keypoint score of \(fileName)"))
            }
            s += k + "]" + ks + "]"
        }
        s += "}"
        return s
    }

    /// The category name for a label ("class<N>" when the model has no name for it).
    public static func categoryName(_ label: Int, classNames: [String]) -> String {
        if label >= 0 && label < classNames.count { return classNames[label] }
        return "class\(label)"
    }

    /// A whole results array in one string (tests, small runs).
    public static func document(_ images: [(imageId: Int, fileName: String, detections: [Detection])],
                                classNames: [String]) throws -> String {
        var text = ""
        let w = ResultsWriter { text += $0 }
        for im in images {
            try w.append(im.detections, imageId: im.imageId, fileName: im.fileName, classNames: classNames)
        }
        try w.finish()
        return text
    }
}

/// Writes a results array piece by piece: "[", then the objects of each image as they come,
/// then "]". Each object sits on its own line. The text of one image is built completely before
/// anything of it is written, so a bad value never leaves half an object in the output.
public final class ResultsWriter {
    private let sink: (String) throws -> Void
    private var started = false
    private var finished = false
    public private(set) var count = 0

    public init(sink: @escaping (String) throws -> Void) { self.sink = sink }

    public func append(_ detections: [Detection], imageId: Int, fileName: String, classNames: [String]) throws {
        precondition(!finished, "ResultsWriter.append after finish")
        var chunk = ""
        var n = count
        for d in detections {
            let obj = try ResultsJSON.object(d, imageId: imageId, fileName: fileName,
                                             categoryName: ResultsJSON.categoryName(d.label, classNames: classNames))
            chunk += (n == 0 ? "[\n" : ",\n") + obj
            n += 1
        }
        if chunk.isEmpty { return }
        try sink(chunk)
        started = true
        count = n
    }

    public func finish() throws {
        if finished { return }
        finished = true
        try sink(started ? "\n]\n" : "[]\n")
    }
}

/// How images get their COCO image_id: from an annotations file (by file_name), else the number
/// that is the whole base name (COCO style "000000074646.jpg" -> 74646), else the 1-based position
/// of the image in the run.
public struct ImageIdResolver {
    public let annotations: [String: Int]?
    public let annotationsPath: String?

    public init() { annotations = nil; annotationsPath = nil }

    /// Reads the "images" list of a COCO annotations file.
    public init(annotationsFile path: String) throws {
        annotations = try COCOImageIndex.load(path: path)
        annotationsPath = path
    }

    public init(fileNameToId: [String: Int]) { annotations = fileNameToId; annotationsPath = "(annotations)" }

    /// The image id of `path` (any folders are ignored), the image being number `position` (1-based).
    public func imageId(path: String, position: Int) throws -> Int {
        let base = OutputPaths.baseName(path)
        if let ann = annotations {
            if let id = ann[base] ?? ann[path] { return id }
            throw EdgeError(file: path, "not listed in the images of \(annotationsPath ?? "the annotations")")
        }
        return ImageIdResolver.numericStem(base) ?? position
    }

    /// The number a base name spells before its extension if it is all digits ("000000074646.jpg").
    public static func numericStem(_ base: String) -> Int? {
        let stem = OutputPaths.stem(base)
        guard !stem.isEmpty, stem.utf8.count <= 18, stem.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(stem)
    }
}

/// Small path helpers (no Foundation).
public enum OutputPaths {
    /// The last path component ("a/b/c.jpg" -> "c.jpg").
    public static func baseName(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        if let i = p.lastIndex(of: "/") { return String(p[p.index(after: i)...]) }
        return String(p)
    }

    /// The base name without its extension ("c.tar.jpg" -> "c.tar"; ".hidden" stays).
    public static func stem(_ base: String) -> String {
        if let i = base.lastIndex(of: "."), i != base.startIndex { return String(base[..<i]) }
        return base
    }

    /// The lower-cased extension without the dot ("" if none).
    public static func ext(_ base: String) -> String {
        if let i = base.lastIndex(of: "."), i != base.startIndex {
            return String(base[base.index(after: i)...]).lowercased()
        }
        return ""
    }

    public static func join(_ dir: String, _ name: String) -> String {
        if dir.isEmpty { return name }
        return dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }
}
