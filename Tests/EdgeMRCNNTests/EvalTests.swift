import Foundation
import XCTest
@testable import EdgeMRCNN

/// COCO evaluation against pycocotools 2.0.11 (fixtures made by tools/make_eval_fixtures.py).
final class EvalTests: XCTestCase {
    static let subsetAnnotations = "data/coco-val2017-subset/annotations/instances_val2017_subset.json"
    static let shapesAnnotations = "data/shapes-val/annotations.json"
    static let shapesResults = "models/shapes-r50fpn/torchvision-results-shapes-val.json"

    func expected() throws -> JSON { try JSON.load(path: Shared.fixture("eval/expected.json")) }

    func numbers(_ j: JSON?) -> [Double] { j?.arrayValue?.compactMap { $0.doubleValue } ?? [] }

    func assertStats(_ got: [Double], _ want: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, 12, what, file: file, line: line)
        XCTAssertEqual(want.count, 12, what, file: file, line: line)
        for (i, (g, w)) in zip(got, want).enumerated() {
            // The brief asks for 0.001; the implementation reproduces pycocotools' arithmetic, so
            // hold it to rounding noise.
            XCTAssertEqual(g, w, accuracy: 1e-12, "\(what) stat \(i) (\(COCOEvalResult.statNames[i]))", file: file, line: line)
        }
    }

    // MARK: - rasterisation

    func testSyntheticPolygonsMatchPycocotools() throws {
        let cases = try expected()["synthetic_polygons"]?.arrayValue ?? []
        XCTAssertGreaterThan(cases.count, 10)
        for (i, c) in cases.enumerated() {
            let polys = c["polygons"]!.arrayValue!.map { numbers($0) }
            let h = c["height"]!.intValue!, w = c["width"]!.intValue!
            let rle = try COCOSegmentation.polygons(polys).toRLE(height: h, width: w)
            XCTAssertEqual(rle.compressedString, c["counts"]!.stringValue!, "case \(i) \(polys)")
            XCTAssertEqual(rle.area, c["area"]!.intValue!, "case \(i)")
            XCTAssertEqual(rle.counts.reduce(0, +), h * w, "case \(i)")
        }
    }

    func testRandomPolygonsMatchPycocotools() throws {
        let cases = try expected()["random_polygons"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 200)
        for (i, c) in cases.enumerated() {
            let a = c.arrayValue!
            let h = a[0].intValue!, w = a[1].intValue!
            let polys = a[2].arrayValue!.map { numbers($0) }
            let rle = try COCOSegmentation.polygons(polys).toRLE(height: h, width: w)
            XCTAssertEqual(rle.compressedString, a[3].stringValue!, "random polygon \(i): \(h)x\(w) \(polys)")
        }
    }

    func testSubsetPolygonsMatchPycocotools() throws {
        let path = try Shared.require(EvalTests.subsetAnnotations)
        let gt = try COCODataset.load(path: path)
        let e = try expected()
        let polys = e["subset_polygons"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(polys.count, 10)
        var multiPart = 0
        for p in polys {
            let id = p["ann_id"]!.intValue!
            guard let a = gt.annotations.first(where: { $0.id == id }), let im = gt.image(id: a.imageId) else {
                XCTFail("annotation \(id) missing"); continue
            }
            let rle = try a.segmentation!.toRLE(height: im.height, width: im.width)
            XCTAssertEqual(rle.compressedString, p["counts"]!.stringValue!, "annotation \(id)")
            XCTAssertEqual(rle.area, p["area"]!.intValue!, "annotation \(id)")
            let b = MaskOps.box(of: rle), wb = numbers(p["bbox"])
            XCTAssertEqual([b.0, b.1, b.2, b.3], wb, "annotation \(id)")
            if p["parts"]!.intValue! > 1 { multiPart += 1 }
        }
        XCTAssertGreaterThan(multiPart, 0, "no multi-part polygon among the recorded ones")
        // The crowd region (uncompressed RLE) re-encodes to the same string.
        let c = e["subset_crowd"]!
        let crowd = gt.annotations.first { $0.id == c["ann_id"]!.intValue! }!
        XCTAssertTrue(crowd.isCrowd)
        let im = gt.image(id: crowd.imageId)!
        let rle = try crowd.segmentation!.toRLE(height: im.height, width: im.width)
        XCTAssertEqual(rle.compressedString, c["counts"]!.stringValue!)
        XCTAssertEqual(rle.area, c["area"]!.intValue!)
    }

    func testFormatsExamples() throws {
        // notes/formats.md §5: square (10,10)-(20,20) in 30x30 -> pixels 10..19, area 100.
        let sq = try MaskOps.rleFromPolygon([10, 10, 20, 10, 20, 20, 10, 20], height: 30, width: 30)
        XCTAssertEqual(sq.area, 100)
        let b = sq.bbox
        XCTAssertTrue(b.x == 10 && b.y == 10 && b.w == 10 && b.h == 10, "\(b)")
        // Triangle (0,0),(4,0),(0,4): rows with 3, 2, 1 pixels.
        let tri = try MaskOps.rleFromPolygon([0, 0, 4, 0, 0, 4], height: 6, width: 6)
        let m = tri.rowMajorMask()
        let rows = (0..<6).map { y in (0..<6).reduce(0) { $0 + Int(m[y * 6 + $1]) } }
        XCTAssertEqual(rows, [3, 2, 1, 0, 0, 0])
        // IoU: a 20x10 dt inside a 40x20 gt: 0.25, crowd 1.0 (boxes and masks).
        let dt = (5.0, 5.0, 20.0, 10.0), gtb = (0.0, 0.0, 40.0, 20.0)
        XCTAssertEqual(MaskOps.boxIoU(dt, gtb, crowd: false), 0.25)
        XCTAssertEqual(MaskOps.boxIoU(dt, gtb, crowd: true), 1.0)
        let dm = try MaskOps.rleFromBox([5, 5, 20, 10], height: 30, width: 50)
        let gm = try MaskOps.rleFromBox([0, 0, 40, 20], height: 30, width: 50)
        XCTAssertEqual(MaskOps.maskIoU(dm, gm, crowd: false, dtBox: MaskOps.box(of: dm), gtBox: MaskOps.box(of: gm)), 0.25)
        XCTAssertEqual(MaskOps.maskIoU(dm, gm, crowd: true, dtBox: MaskOps.box(of: dm), gtBox: MaskOps.box(of: gm)), 1.0)
        // Union of two overlapping squares.
        let u = MaskOps.merge([try MaskOps.rleFromBox([0, 0, 4, 4], height: 10, width: 10),
                               try MaskOps.rleFromBox([2, 2, 4, 4], height: 10, width: 10)])
        XCTAssertEqual(u.area, 28)
        XCTAssertEqual(u.counts.reduce(0, +), 100)
    }

    func testThresholdsAreNumpyLinspace() {
        let p = COCOEvalParams()
        let want: [UInt64] = [0x3FE0000000000000, 0x3FE199999999999A, 0x3FE3333333333333, 0x3FE4CCCCCCCCCCCD,
                              0x3FE6666666666666, 0x3FE8000000000000, 0x3FE999999999999A, 0x3FEB333333333333,
                              0x3FECCCCCCCCCCCCC, 0x3FEE666666666666]
        XCTAssertEqual(p.iouThrs.map { $0.bitPattern }, want)
        XCTAssertEqual(p.recThrs.count, 101)
        XCTAssertEqual(p.recThrs[100], 1.0)
        XCTAssertEqual(p.recThrs[7], 7 * 0.01)
    }

    // MARK: - COCOeval stats

    func testCocoSubsetStats() throws {
        let gt = try COCODataset.load(path: try Shared.require(EvalTests.subsetAnnotations))
        let e = try expected()["coco_subset"]!
        for (file, prefix) in [("coco-subset-results.json", ""), ("coco-subset-results-segm-only.json", "segm_only_")] {
            let res = try COCOResults.load(path: Shared.fixture("eval/" + file), gt: gt)
            XCTAssertEqual(res.count, e["detections"]!.intValue!)
            for t in [COCOIoUType.bbox, .segm] {
                let r = try COCOEval.evaluate(gt: gt, results: res, iouType: t)
                assertStats(r.stats, numbers(e[prefix + t.rawValue]), "\(file) \(t)")
            }
        }
        // More than maxDets=100 detections on some images, tied scores within and across images,
        // boxes only (mask AP then uses the box polygons).
        let many = try expected()["coco_subset_many"]!
        let res = try COCOResults.load(path: Shared.fixture("eval/coco-subset-results-many.json"), gt: gt)
        XCTAssertEqual(res.count, many["detections"]!.intValue!)
        for t in [COCOIoUType.bbox, .segm] {
            let r = try COCOEval.evaluate(gt: gt, results: res, iouType: t)
            assertStats(r.stats, numbers(many[t.rawValue]), "many \(t)")
        }
    }

    func testShapesTorchvisionResultsStats() throws {
        let gt = try COCODataset.load(path: try Shared.require(EvalTests.shapesAnnotations))
        let res = try COCOResults.load(path: try Shared.require(EvalTests.shapesResults), gt: gt)
        let e = try expected()["shapes_val"]!
        XCTAssertEqual(res.count, e["detections"]!.intValue!)
        for t in [COCOIoUType.bbox, .segm] {
            let r = try COCOEval.evaluate(gt: gt, results: res, iouType: t)
            assertStats(r.stats, numbers(e[t.rawValue]), "shapes \(t)")
            let slice = try COCOEval.evaluate(gt: gt, results: res, iouType: t, imageIds: numbers(e["slice_image_ids"]).map { Int($0) })
            assertStats(slice.stats, numbers(e["slice_" + t.rawValue]), "shapes slice \(t)")
        }
        // torchvision-ap.json: box 18.53, mask 22.60 (×100).
        let box = try COCOEval.evaluate(gt: gt, results: res, iouType: .bbox).stats[0]
        let mask = try COCOEval.evaluate(gt: gt, results: res, iouType: .segm).stats[0]
        XCTAssertEqual(COCOEvalResult.fixed(box * 100, 2), "18.53")
        XCTAssertEqual(COCOEvalResult.fixed(mask * 100, 2), "22.60")
    }

    // MARK: - edge cases (expected values from pycocotools on the same data)

    static let tinyGT = """
    {"images":[{"id":1,"file_name":"a.jpg","height":100,"width":100},{"id":2,"file_name":"dir/b.jpg","height":100,"width":100}],
     "categories":[{"id":1,"name":"x"},{"id":2,"name":"y"}],
     "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[10,10,20,20],"area":400,"iscrowd":0,"segmentation":[[10,10,30,10,30,30,10,30]]},
      {"id":2,"image_id":2,"category_id":1,"bbox":[0,0,50,50],"area":2500,"iscrowd":1,"segmentation":{"size":[100,100],"counts":[0,50\(String(repeating: ",50,50", count: 49)),5050]}}]}
    """

    func tiny(_ results: String, _ t: COCOIoUType) throws -> [Double] {
        let gt = try COCODataset.parse(try JSON.parse(EvalTests.tinyGT), source: "tiny.json")
        let res = try COCOResults.parse(try JSON.parse(results), gt: gt, source: "res.json")
        return try COCOEval.evaluate(gt: gt, results: res, iouType: t).stats
    }

    func testEdgeCases() throws {
        let a = #"{"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":0.9}"#
        let inCrowd = #"{"image_id":2,"category_id":1,"bbox":[5,5,10,10],"score":0.95}"#
        let outCrowd = #"{"image_id":2,"category_id":1,"bbox":[60,60,10,10],"score":0.95}"#
        let noGTCat = #"{"image_id":1,"category_id":2,"bbox":[60,60,10,10],"score":0.99}"#
        let perfect = [0.9999999999999998, 0.9999999999999999, 0.9999999999999999, 0.9999999999999998, -1, -1, 1, 1, 1, 1, -1, -1]
        let half = [0.5, 0.5, 0.5, 0.5, -1, -1, 1, 1, 1, 1, -1, -1]
        for t in [COCOIoUType.bbox, .segm] {
            assertStats(try tiny("[\(a)]", t), perfect, "one TP \(t)")
            // A detection inside a crowd region matches it and is ignored (not a false positive).
            assertStats(try tiny("[\(a),\(inCrowd)]", t), perfect, "crowd-only image \(t)")
            // Outside the crowd region it is a false positive ranked first.
            assertStats(try tiny("[\(a),\(outCrowd)]", t), half, "FP on the crowd image \(t)")
            // A category without GT does not count.
            assertStats(try tiny("[\(a),\(noGTCat)]", t), perfect, "category without GT \(t)")
            // No detections: AP 0 where there is GT, −1 elsewhere (pycocotools' loadRes cannot
            // read an empty list; this is what its accumulate gives for no detections).
            assertStats(try tiny("[]", t), [0, 0, 0, 0, -1, -1, 0, 0, 0, 0, -1, -1], "no detections \(t)")
        }
        // Results with only file_name are mapped through the annotations (also by base name).
        let byName = #"[{"file_name":"a.jpg","category_id":1,"bbox":[10,10,20,20],"score":0.9},{"file_name":"b.jpg","category_id":1,"bbox":[60,60,10,10],"score":0.95}]"#
        assertStats(try tiny(byName, .bbox), half, "file_name results")
    }

    // MARK: - errors

    func assertError(_ body: () throws -> Void, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error (expected \(parts))", file: file, line: line)
        } catch let e as EdgeError {
            XCTAssertFalse(e.message.contains("\n"), e.message, file: file, line: line)
            for p in parts { XCTAssertTrue(e.message.contains(p), "'\(e.message)' lacks '\(p)'", file: file, line: line) }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testMalformedAnnotations() throws {
        func parse(_ s: String) throws { _ = try COCODataset.parse(try JSON.parse(s), source: "ann.json") }
        let img = #"{"id":1,"file_name":"a.jpg","height":10,"width":10}"#
        let cat = #"{"id":1,"name":"x"}"#
        func ann(_ extra: String) -> String {
            #"{"images":[\#(img)],"categories":[\#(cat)],"annotations":[{"id":5,"image_id":1,"category_id":1,"area":4,"bbox":[1,1,2,2]\#(extra)}]}"#
        }
        assertError({ try parse("[1,2]") }, contains: ["ann.json", "not a JSON object"])
        assertError({ try parse(#"{"annotations":[]}"#) }, contains: ["ann.json", "images"])
        assertError({ try parse(#"{"images":[{"id":1}],"categories":[]}"#) }, contains: ["images[0]", "height"])
        assertError({ try parse(#"{"images":[\#(img),\#(img)],"categories":[]}"#) }, contains: ["duplicate image id 1"])
        assertError({ try parse(#"{"images":[\#(img)],"categories":[\#(cat)],"annotations":[{"id":5,"image_id":7,"category_id":1,"area":4}]}"#) },
                    contains: ["ann.json", "annotations[0] (id 5)", "image_id 7 is not in \"images\""])
        assertError({ try parse(#"{"images":[\#(img)],"categories":[\#(cat)],"annotations":[{"id":5,"image_id":1,"category_id":9,"area":4}]}"#) },
                    contains: ["category_id 9 is not in \"categories\""])
        assertError({ try parse(ann(#","segmentation":[["a",1,2,3,4,5]]"#)) }, contains: ["id 5", "bad segmentation", "polygon 0"])
        assertError({ try parse(ann(#","segmentation":[[1,2,3]]"#)) }, contains: ["bad segmentation", "too few"])
        assertError({ try parse(ann(#","segmentation":{"size":[10,10],"counts":[5,5]}"#)) }, contains: ["bad segmentation", "sum to 10"])
        assertError({ try parse(ann(#","segmentation":{"size":[10,10],"counts":"!!"}"#)) }, contains: ["bad segmentation", "invalid character"])
        assertError({ try parse(ann(#","segmentation":{"counts":"00"}"#)) }, contains: ["bad segmentation", "size"])
        assertError({ try parse(ann(#","segmentation":[[1e300,1,2,3,4,5]]"#)) }, contains: ["bad segmentation"])
        assertError({ try parse(ann(#","bbox":[1,2]"#).replacingOccurrences(of: #""bbox":[1,1,2,2],"#, with: "")) }, contains: ["bbox"])
        assertError({ try parse(#"{"images":[\#(img)],"categories":[\#(cat)],"annotations":[{"id":5,"image_id":1,"category_id":1}]}"#) },
                    contains: ["no \"area\""])
        // Files: invalid JSON names the file and the byte.
        let tmp = NSTemporaryDirectory() + "eval-bad-\(getpid()).json"
        try "{\"images\": [".write(toFile: tmp, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        assertError({ _ = try COCODataset.load(path: tmp) }, contains: [tmp, "invalid JSON"])
        assertError({ _ = try COCODataset.load(path: tmp + ".missing") }, contains: [tmp + ".missing"])
    }

    func testMalformedResults() throws {
        let gt = try COCODataset.parse(try JSON.parse(EvalTests.tinyGT), source: "tiny.json")
        func parse(_ s: String) throws { _ = try COCOResults.parse(try JSON.parse(s), gt: gt, source: "res.json") }
        assertError({ try parse("{}") }, contains: ["res.json", "not a JSON list"])
        assertError({ try parse(#"[{"image_id":9,"category_id":1,"bbox":[0,0,1,1],"score":1}]"#) }, contains: ["result 0", "image_id 9"])
        assertError({ try parse(#"[{"file_name":"zz.jpg","category_id":1,"bbox":[0,0,1,1],"score":1}]"#) }, contains: ["zz.jpg"])
        assertError({ try parse(#"[{"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]"#) }, contains: ["score"])
        assertError({ try parse(#"[{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"score":1},{"image_id":1,"category_id":1,"score":1}]"#) },
                    contains: ["result 1", "bbox"])
        assertError({ try parse(#"[{"image_id":1,"category_id":1,"score":1,"segmentation":{"size":[100,100],"counts":"0"}}]"#) },
                    contains: ["result 0", "bad segmentation"])
    }

    // MARK: - CLI

    func testEvalCommandOnResultsFile() throws {
        let ann = try Shared.require(EvalTests.subsetAnnotations)
        let bin = CLITests.binary
        guard FileManager.default.isExecutableFile(atPath: bin) else { throw Shared.missing("no edge-mrcnn binary at \(bin)") }
        let metrics = NSTemporaryDirectory() + "eval-metrics-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: metrics) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["eval", "--annotations", ann, "--results", Shared.fixture("eval/coco-subset-results.json"),
                       "--metrics-json", metrics]
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        try p.run()
        let out = String(decoding: o.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let lines = out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2 + 24 + 1, out)
        XCTAssertEqual(lines.last, "box AP 41.53 mask AP 35.75")
        XCTAssertEqual(lines[1], " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.415")
        XCTAssertEqual(lines[13], "Evaluate annotation type *segm*")
        let m = try JSON.load(path: metrics)
        let want = try expected()["coco_subset"]!
        assertStats(numbers(m["bbox"]?["stats"]), numbers(want["bbox"]), "metrics json bbox")
        assertStats(numbers(m["segm"]?["stats"]), numbers(want["segm"]), "metrics json segm")
    }

    func runBinary(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let bin = CLITests.binary
        guard FileManager.default.isExecutableFile(atPath: bin) else { throw Shared.missing("no edge-mrcnn binary at \(bin)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        try p.run()
        let out = String(decoding: o.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, out, err)
    }

    func testEvalCommandErrors() throws {
        let ann = try Shared.require(EvalTests.shapesAnnotations)
        let model = try Shared.require("models/shapes-r50fpn/model.pth")
        let empty = NSTemporaryDirectory() + "eval-empty-\(getpid())"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        var r = try runBinary(["eval", "--annotations", ann])
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertTrue(r.err.contains("--results is required"), r.err)
        r = try runBinary(["eval", "--annotations", ann, "--results", "x.json", "--model", model])
        XCTAssertEqual(r.status, 2, r.err)
        r = try runBinary(["eval", "--annotations", ann, "--model", model, "--images", empty])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("200 of 200 annotated images are not in this folder"), r.err)
        r = try runBinary(["eval", "--annotations", ann, "--results", ann])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("not a JSON list of results"), r.err)
        r = try runBinary(["eval", "--annotations", Shared.fixture("eval/coco-subset-results.json"), "--results", ann])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("coco-subset-results.json: not a JSON object"), r.err)
    }

    /// Consistency, not correctness (the program is compared with itself; COCOeval's correctness
    /// is checked against pycocotools above): runs the shapes model on the first annotated image;
    /// the metrics must equal those of scoring the results file it wrote.
    func testEvalCommandRunsModelConsistentWithItsResultsFile() throws {
        let ann = try Shared.require(EvalTests.shapesAnnotations)
        let model = try Shared.require("models/shapes-r50fpn/model.pth")
        let images = try Shared.require("data/shapes-val/images")
        let tmp = NSTemporaryDirectory() + "eval-run-\(getpid())"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let r = try runBinary(["eval", "--annotations", ann, "--model", model, "--images", images, "--max-images", "1",
                               "--json", tmp + "/res.json", "--metrics-json", tmp + "/m.json"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.split(separator: "\n").last?.hasPrefix("box AP ") ?? false, r.out)
        let gt = try COCODataset.load(path: ann)
        let res = try COCOResults.load(path: tmp + "/res.json", gt: gt)
        XCTAssertFalse(res.isEmpty)
        XCTAssertTrue(res.allSatisfy { $0.imageId == 1 })
        let m = try JSON.load(path: tmp + "/m.json")
        XCTAssertEqual(m["images"]?.intValue, 1)
        for t in [COCOIoUType.bbox, .segm] {
            let s = try COCOEval.evaluate(gt: gt, results: res, iouType: t, imageIds: [1]).stats
            assertStats(numbers(m[t.rawValue]?["stats"]), s, "model run \(t)")
        }
    }
}
