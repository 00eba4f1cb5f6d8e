// COCO instances annotations ("images", "annotations", "categories") and COCO results lists,
// read with Core/JSON.swift into what COCOeval needs. Segmentations may be polygon lists,
// uncompressed RLE ({"size":[h,w],"counts":[ints]}, crowd regions) or compressed RLE
// ({"counts":"string"}). Errors are one line naming the file and the entry.

public struct COCOImage {
    public var id: Int
    public var fileName: String
    public var height: Int
    public var width: Int
}

public struct COCOCategory {
    public var id: Int
    public var name: String
}

/// A segmentation as written in JSON (not yet rasterised).
public enum COCOSegmentation {
    /// One or more polygons [x0,y0,x1,y1,...].
    case polygons([[Double]])
    /// Uncompressed or compressed RLE, decoded.
    case rle(RLE)

    /// pycocotools COCO.annToRLE: polygons are rasterised at the image size and unioned; when
    /// the first "polygon" has exactly 4 numbers, all are read as boxes [x,y,w,h] (frPyObjects).
    public func toRLE(height h: Int, width w: Int) throws -> RLE {
        switch self {
        case .rle(let r): return r
        case .polygons(let polys):
            guard let first = polys.first else { throw EdgeError("empty polygon list") }
            var parts: [RLE] = []
            parts.reserveCapacity(polys.count)
            if first.count == 4 {
                for p in polys {
                    guard p.count == 4 else { throw EdgeError("mixed boxes and polygons in one segmentation (first has 4 numbers, another \(p.count))") }
                    parts.append(try MaskOps.rleFromBox(p, height: h, width: w))
                }
            } else if first.count > 4 {
                for p in polys { parts.append(try MaskOps.rleFromPolygon(p, height: h, width: w)) }
            } else {
                throw EdgeError("polygon with \(first.count) numbers (needs at least 6, or 4 for a box)")
            }
            return MaskOps.merge(parts)
        }
    }
}

public struct COCOAnnotation {
    public var id: Int
    public var imageId: Int
    public var categoryId: Int
    /// [x, y, w, h] if given.
    public var bbox: (Double, Double, Double, Double)?
    /// The "area" field (used for the area ranges, never recomputed).
    public var area: Double
    public var isCrowd: Bool
    public var segmentation: COCOSegmentation?
    /// COCO person keypoints: [x1, y1, v1, ...] (v 0 = not labelled) and "num_keypoints".
    public var keypoints: [Double]? = nil
    public var numKeypoints: Int? = nil
}

public struct COCODataset {
    public var images: [COCOImage]
    public var annotations: [COCOAnnotation]
    public var categories: [COCOCategory]
    /// Image id -> index in `images`.
    public var imageIndex: [Int: Int]
    /// File name (and its base name) -> image id.
    public var fileNameIndex: [String: Int]
    public var source: String

    /// Loads an annotations file.
    public static func load(path: String) throws -> COCODataset {
        let json = try JSON.load(path: path)
        return try parse(json, source: path)
    }

    /// Reads a parsed annotations document; `source` names it in errors.
    public static func parse(_ json: JSON, source: String) throws -> COCODataset {
        func fail(_ m: String) -> EdgeError { EdgeError(file: source, m) }
        guard json.objectValue != nil else { throw fail("not a JSON object (expected a COCO annotations file)") }
        guard let imgs = json["images"]?.arrayValue else { throw fail("no \"images\" list (not a COCO annotations file)") }
        var images: [COCOImage] = []
        images.reserveCapacity(imgs.count)
        var imageIndex: [Int: Int] = [:]
        var fileNameIndex: [String: Int] = [:]
        for (i, im) in imgs.enumerated() {
            guard im.objectValue != nil else { throw fail("images[\(i)] is not an object") }
            guard let id = im["id"]?.intValue else { throw fail("images[\(i)] has no integer \"id\"") }
            guard let h = im["height"]?.intValue, let w = im["width"]?.intValue else {
                throw fail("images[\(i)] (id \(id)) has no integer \"height\" and \"width\"")
            }
            guard h >= 0, w >= 0, h <= 1 << 20, w <= 1 << 20, h * w < 1 << 32 else {
                throw fail("images[\(i)] (id \(id)) has an unusable size \(w)x\(h)")
            }
            let name = im["file_name"]?.stringValue ?? ""
            if imageIndex[id] != nil { throw fail("images[\(i)]: duplicate image id \(id)") }
            imageIndex[id] = images.count
            images.append(COCOImage(id: id, fileName: name, height: h, width: w))
            if !name.isEmpty {
                fileNameIndex[name] = id
                let base = OutputPaths.baseName(name)
                if base != name && fileNameIndex[base] == nil { fileNameIndex[base] = id }
            }
        }
        var categories: [COCOCategory] = []
        var catSet = Set<Int>()
        if let cats = json["categories"] {
            guard let list = cats.arrayValue else { throw fail("\"categories\" is not a list") }
            for (i, c) in list.enumerated() {
                guard let id = c["id"]?.intValue else { throw fail("categories[\(i)] has no integer \"id\"") }
                if !catSet.insert(id).inserted { throw fail("categories[\(i)]: duplicate category id \(id)") }
                categories.append(COCOCategory(id: id, name: c["name"]?.stringValue ?? ""))
            }
        } else {
            throw fail("no \"categories\" list")
        }
        var annotations: [COCOAnnotation] = []
        if let anns = json["annotations"] {
            guard let list = anns.arrayValue else { throw fail("\"annotations\" is not a list") }
            annotations.reserveCapacity(list.count)
            var annIds = Set<Int>()
            for (i, a) in list.enumerated() {
                let what = "annotations[\(i)]"
                guard a.objectValue != nil else { throw fail("\(what) is not an object") }
                guard let id = a["id"]?.intValue else { throw fail("\(what) has no integer \"id\"") }
                let wid = "\(what) (id \(id))"
                if !annIds.insert(id).inserted { throw fail("\(wid): duplicate annotation id") }
                guard let imageId = a["image_id"]?.intValue else { throw fail("\(wid) has no integer \"image_id\"") }
                guard let imgIdx = imageIndex[imageId] else { throw fail("\(wid): image_id \(imageId) is not in \"images\"") }
                guard let catId = a["category_id"]?.intValue else { throw fail("\(wid) has no integer \"category_id\"") }
                guard catSet.contains(catId) else { throw fail("\(wid): category_id \(catId) is not in \"categories\"") }
                var bbox: (Double, Double, Double, Double)?
                if let b = a["bbox"] {
                    do { bbox = try readBox(b) } catch let e as EdgeError { throw fail("\(wid): \(e.message)") }
                }
                var area: Double
                if let ar = a["area"] {
                    guard let v = ar.doubleValue, v.isFinite else { throw fail("\(wid): \"area\" is not a number") }
                    area = v
                } else {
                    throw fail("\(wid) has no \"area\"")
                }
                var crowd = false
                if let c = a["iscrowd"] {
                    if let b = c.boolValue { crowd = b } else if let n = c.intValue { crowd = n != 0 } else {
                        throw fail("\(wid): \"iscrowd\" is not 0 or 1")
                    }
                }
                var seg: COCOSegmentation?
                // An empty list (person_keypoints files may carry one) is no segmentation: only mask AP needs it.
                if let s = a["segmentation"], !s.isNull, s.arrayValue.map({ !$0.isEmpty }) ?? true {
                    let im = images[imgIdx]
                    do { seg = try readSegmentation(s, height: im.height, width: im.width) } catch let e as EdgeError {
                        throw fail("\(wid): bad segmentation: \(e.message)")
                    }
                }
                var kps: [Double]?
                if let k = a["keypoints"], !k.isNull {
                    do { kps = try readKeypoints(k) } catch let e as EdgeError { throw fail("\(wid): \(e.message)") }
                }
                var numKps: Int?
                if let n = a["num_keypoints"], !n.isNull {
                    guard let v = n.intValue, v >= 0 else { throw fail("\(wid): \"num_keypoints\" is not a non-negative integer") }
                    numKps = v
                }
                annotations.append(COCOAnnotation(id: id, imageId: imageId, categoryId: catId, bbox: bbox,
                                                  area: area, isCrowd: crowd, segmentation: seg,
                                                  keypoints: kps, numKeypoints: numKps))
            }
        }
        return COCODataset(images: images, annotations: annotations, categories: categories,
                           imageIndex: imageIndex, fileNameIndex: fileNameIndex, source: source)
    }

    /// The image id of a file name (full name as in the annotations, or its base name).
    public func imageId(fileName: String) -> Int? {
        fileNameIndex[fileName] ?? fileNameIndex[OutputPaths.baseName(fileName)]
    }

    public func image(id: Int) -> COCOImage? { imageIndex[id].map { images[$0] } }

    static func readBox(_ b: JSON) throws -> (Double, Double, Double, Double) {
        guard let a = b.arrayValue, a.count == 4 else { throw EdgeError("\"bbox\" is not a list of 4 numbers") }
        var v: [Double] = []
        for x in a {
            guard let d = x.doubleValue, d.isFinite else { throw EdgeError("\"bbox\" is not a list of 4 numbers") }
            v.append(d)
        }
        return (v[0], v[1], v[2], v[3])
    }

    /// A segmentation object: polygon list, {"size","counts":[...]} or {"size","counts":"..."}.
    /// A keypoints list: [x1, y1, v1, ...], finite numbers, a multiple of 3 long.
    static func readKeypoints(_ k: JSON) throws -> [Double] {
        guard let a = k.arrayValue, !a.isEmpty, a.count % 3 == 0 else {
            throw EdgeError("\"keypoints\" is not a list of [x, y, v] triples")
        }
        var v: [Double] = []
        v.reserveCapacity(a.count)
        for x in a {
            guard let d = x.doubleValue, d.isFinite, abs(d) <= MaskOps.maxCoordinate else {
                throw EdgeError("\"keypoints\" has a value that is not a usable number")
            }
            v.append(d)
        }
        return v
    }

    static func readSegmentation(_ s: JSON, height: Int, width: Int) throws -> COCOSegmentation {
        if let polys = s.arrayValue {
            guard !polys.isEmpty else { throw EdgeError("empty polygon list") }
            var out: [[Double]] = []
            out.reserveCapacity(polys.count)
            for (k, p) in polys.enumerated() {
                guard let coords = p.arrayValue else { throw EdgeError("polygon \(k) is not a list of numbers") }
                var xy: [Double] = []
                xy.reserveCapacity(coords.count)
                for c in coords {
                    guard let d = c.doubleValue, d.isFinite, abs(d) <= MaskOps.maxCoordinate else {
                        throw EdgeError("polygon \(k) has a value that is not a usable number")
                    }
                    xy.append(d)
                }
                out.append(xy)
            }
            // Check the shape now, so that errors name the file when it is loaded.
            if out[0].count < 4 || (out[0].count > 4 && out.contains { $0.count < 2 }) {
                throw EdgeError("polygon with too few numbers (\(out.map { $0.count }.min() ?? 0))")
            }
            if out[0].count == 4 && out.contains(where: { $0.count != 4 }) {
                throw EdgeError("mixed boxes and polygons (first has 4 numbers)")
            }
            return .polygons(out)
        }
        guard s.objectValue != nil else { throw EdgeError("neither a polygon list nor an RLE object") }
        guard let size = s["size"]?.arrayValue, size.count == 2, let h = size[0].intValue, let w = size[1].intValue,
              h >= 0, w >= 0, h <= 1 << 20, w <= 1 << 20 else {
            throw EdgeError("RLE without a valid \"size\": [h, w]")
        }
        guard let counts = s["counts"] else { throw EdgeError("RLE without \"counts\"") }
        if let str = counts.stringValue {
            return .rle(try RLE(height: h, width: w, compressed: str))
        }
        guard let list = counts.arrayValue else { throw EdgeError("RLE \"counts\" is neither a string nor a list") }
        var cnts: [Int] = []
        cnts.reserveCapacity(list.count)
        var total = 0
        for c in list {
            guard let n = c.intValue, n >= 0, n <= 1 << 40 else { throw EdgeError("RLE counts: not a non-negative integer") }
            cnts.append(n)
            let (s, o) = total.addingReportingOverflow(n)
            guard !o else { throw EdgeError("RLE counts: runs sum to more than \(Int.max)") }
            total = s
        }
        guard total == h * w else {
            throw EdgeError("RLE counts sum to \(total), expected \(h)x\(w) = \(h * w)")
        }
        return .rle(RLE(height: h, width: w, counts: cnts))
    }
}

/// One detection of a results file after pycocotools' loadRes.
public struct COCOResult {
    /// index + 1, as loadRes numbers them.
    public var id: Int
    public var imageId: Int
    public var categoryId: Int
    public var score: Double
    public var bbox: (Double, Double, Double, Double)?
    /// Area as loadRes sets it: w·h of the bbox (bbox branch) or the RLE area (segm branch).
    public var area: Double
    public var segmentation: COCOSegmentation?
    /// [x1, y1, v1, ...] of a keypoint result.
    public var keypoints: [Double]? = nil
    /// The segmentation is loadRes' box polygon (a result without a mask of its own).
    public var segmentationFromBox = false
}

public enum COCOResults {
    /// Which branch of pycocotools' loadRes the results take, decided by the first result:
    /// bbox (area = w·h), segm (area and bbox from the mask), keypoints (area and bbox from the
    /// keypoints' extent).
    public enum Branch { case bbox, segm, keypoints }

    /// Loads a results file (a JSON list) against `gt`.
    public static func load(path: String, gt: COCODataset) throws -> [COCOResult] {
        let json = try JSON.load(path: path)
        return try parse(json, gt: gt, source: path)
    }

    /// pycocotools COCO.loadRes: image ids must be in the GT (a result may give only "file_name",
    /// which is looked up in the GT images); if the first result has a non-empty "bbox", every
    /// result takes area = w·h (and a missing segmentation becomes the box polygon); otherwise
    /// the area is the RLE area and a missing bbox is toBbox(RLE).
    public static func parse(_ json: JSON, gt: COCODataset, source: String) throws -> [COCOResult] {
        func fail(_ m: String) -> EdgeError { EdgeError(file: source, m) }
        guard let list = json.arrayValue else { throw fail("not a JSON list of results") }
        var out: [COCOResult] = []
        out.reserveCapacity(list.count)
        var branch = Branch.segm
        if let first = list.first {
            if let b = first["bbox"], let a = b.arrayValue, !a.isEmpty {
                branch = .bbox
            } else if first["segmentation"] == nil, first["keypoints"] != nil {
                branch = .keypoints
            }
        }
        for (i, r) in list.enumerated() {
            out.append(try parseOne(r, index: i, branch: branch, gt: gt, source: source))
        }
        return out
    }

    /// One result (number `i`, 0-based) after loadRes; `bboxBranch`: whether the first result of
    /// the list has a non-empty "bbox" (see `parse`).
    public static func parseOne(_ r: JSON, index i: Int, bboxBranch: Bool, gt: COCODataset, source: String) throws -> COCOResult {
        try parseOne(r, index: i, branch: bboxBranch ? .bbox : .segm, gt: gt, source: source)
    }

    /// One result after loadRes' `branch` (the first result's: see `parse`).
    public static func parseOne(_ r: JSON, index i: Int, branch: Branch, gt: COCODataset, source: String) throws -> COCOResult {
        func fail(_ m: String) -> EdgeError { EdgeError(file: source, m) }
        let what = "result \(i)"
        guard r.objectValue != nil else { throw fail("\(what) is not an object") }
        var imageId: Int
        if let v = r["image_id"] {
            guard let id = v.intValue else { throw fail("\(what): \"image_id\" is not an integer") }
            imageId = id
        } else if let n = r["file_name"]?.stringValue {
            guard let id = gt.imageId(fileName: n) else {
                throw fail("\(what): file_name \"\(n)\" is not among the images of \(gt.source)")
            }
            imageId = id
        } else {
            throw fail("\(what) has neither \"image_id\" nor \"file_name\"")
        }
        guard let im = gt.image(id: imageId) else {
            throw fail("\(what): image_id \(imageId) is not in the images of \(gt.source) (results do not correspond to these annotations)")
        }
        guard let cat = r["category_id"]?.intValue else { throw fail("\(what) has no integer \"category_id\"") }
        guard let score = r["score"]?.doubleValue, score.isFinite else { throw fail("\(what) has no numeric \"score\"") }
        var bbox: (Double, Double, Double, Double)?
        if let b = r["bbox"] {
            do { bbox = try COCODataset.readBox(b) } catch let e as EdgeError { throw fail("\(what): \(e.message)") }
        }
        var seg: COCOSegmentation?
        if let s = r["segmentation"], !s.isNull {
            do { seg = try COCODataset.readSegmentation(s, height: im.height, width: im.width) } catch let e as EdgeError {
                throw fail("\(what): bad segmentation: \(e.message)")
            }
        }
        var kps: [Double]?
        if let k = r["keypoints"], !k.isNull {
            do { kps = try COCODataset.readKeypoints(k) } catch let e as EdgeError { throw fail("\(what): \(e.message)") }
        }
        var fromBox = false
        var area: Double
        if branch == .keypoints {
            guard let k = kps else { throw fail("\(what) has no \"keypoints\" (the first result has them)") }
            var x0 = Double.infinity, x1 = -Double.infinity, y0 = Double.infinity, y1 = -Double.infinity
            for j in stride(from: 0, to: k.count, by: 3) {
                x0 = min(x0, k[j]); x1 = max(x1, k[j]); y0 = min(y0, k[j + 1]); y1 = max(y1, k[j + 1])
            }
            area = (x1 - x0) * (y1 - y0)
            bbox = (x0, y0, x1 - x0, y1 - y0)
        } else if branch == .bbox {
            guard let b = bbox else { throw fail("\(what) has no \"bbox\" (the first result has one)") }
            area = b.2 * b.3
            if seg == nil {
                let x1 = b.0, x2 = b.0 + b.2, y1 = b.1, y2 = b.1 + b.3
                seg = .polygons([[x1, y1, x1, y2, x2, y2, x2, y1]])
                fromBox = true
            }
        } else {
            guard let s = seg else { throw fail("\(what) has neither \"bbox\" nor \"segmentation\"") }
            let rle: RLE
            do { rle = try s.toRLE(height: im.height, width: im.width) } catch let e as EdgeError {
                throw fail("\(what): bad segmentation: \(e.message)")
            }
            area = Double(rle.area)
            if bbox == nil { bbox = MaskOps.box(of: rle) }
            seg = .rle(rle)
        }
        return COCOResult(id: i + 1, imageId: imageId, categoryId: cat, score: score, bbox: bbox,
                          area: area, segmentation: seg, keypoints: kps, segmentationFromBox: fromBox)
    }
}
