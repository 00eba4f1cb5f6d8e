import Foundation
import XCTest
@testable import EdgeMRCNN

final class ResultsJSONTests: XCTestCase {
    private func det(_ box: (Float, Float, Float, Float), _ score: Float, _ label: Int, mask: MaskRegion? = nil) -> Detection {
        Detection(box: box, score: score, label: label, mask: mask.map { RLE(region: $0) })
    }

    func testNumbers() throws {
        XCTAssertEqual(try ResultsJSON.number(0.97), "0.97")
        XCTAssertEqual(try ResultsJSON.number(12), "12.0")
        XCTAssertEqual(try ResultsJSON.number(-0.0), "0.0")
        XCTAssertEqual(try ResultsJSON.number(1e-5), "1e-05")
        XCTAssertThrowsError(try ResultsJSON.number(.nan))
        XCTAssertThrowsError(try ResultsJSON.number(.infinity))
        // Shortest round trip.
        for v: Float in [0.1, 1.0 / 3.0, 123.456, 0.050000004, 416.99997] {
            XCTAssertEqual(Float(try ResultsJSON.number(v)), v)
        }
    }

    func testStringEscapes() {
        XCTAssertEqual(ResultsJSON.string("a\"b\\c\nd\u{01}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"")
    }

    func testDocumentParsesAndHasTheFields() throws {
        let region = MaskRegion(x0: 1, y0: 1, width: 2, height: 2, imageWidth: 4, imageHeight: 3, bits: [1, 1, 1, 0])
        let doc = try ResultsJSON.document([
            (imageId: 74646, fileName: "000000074646.jpg",
             detections: [det((1.5, 2, 10.25, 20), 0.97, 1, mask: region), det((0, 0, 1, 1), 0.5, 7)]),
            (imageId: 2, fileName: "b \"q\".jpg", detections: []),
            (imageId: 3, fileName: "c.jpg", detections: [det((3, 4, 5, 6), 0.25, 2)]),
        ], classNames: ["__background__", "circle", "square"])
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(doc.utf8)) as? [[String: Any]])
        XCTAssertEqual(arr.count, 3)
        let first = arr[0]
        XCTAssertEqual(first["image_id"] as? Int, 74646)
        XCTAssertEqual(first["file_name"] as? String, "000000074646.jpg")
        XCTAssertEqual(first["category_id"] as? Int, 1)
        XCTAssertEqual(first["category_name"] as? String, "circle")
        XCTAssertEqual(first["bbox"] as? [Double], [1.5, 2, 8.75, 18])
        XCTAssertEqual((first["score"] as? Double).map { Float($0) }, 0.97)
        let seg = try XCTUnwrap(first["segmentation"] as? [String: Any])
        XCTAssertEqual(seg["size"] as? [Int], [3, 4])
        let counts = try XCTUnwrap(seg["counts"] as? String)
        let rle = try RLE(height: 3, width: 4, compressed: counts)
        XCTAssertEqual(rle.area, 3)
        XCTAssertEqual(arr[1]["category_name"] as? String, "class7")
        XCTAssertNil(arr[1]["segmentation"])
        XCTAssertEqual(arr[2]["image_id"] as? Int, 3)
    }

    func testEmptyDocument() throws {
        XCTAssertEqual(try ResultsJSON.document([], classNames: []), "[]\n")
        XCTAssertEqual(try ResultsJSON.document([(imageId: 1, fileName: "a.jpg", detections: [])], classNames: []), "[]\n")
    }

    func testNaNIsRejectedWithoutPartialOutput() throws {
        var text = ""
        let w = ResultsWriter { text += $0 }
        try w.append([det((0, 0, 1, 1), 0.9, 1)], imageId: 1, fileName: "a.jpg", classNames: [])
        let before = text
        XCTAssertThrowsError(try w.append([det((0, 0, 1, 1), 0.9, 1), det((0, .nan, 1, 1), 0.8, 1)],
                                          imageId: 2, fileName: "b.jpg", classNames: []))
        XCTAssertEqual(text, before)
        try w.finish()
        let arr = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]
        XCTAssertEqual(arr?.count, 1)
    }

    func testImageIds() throws {
        let r = ImageIdResolver()
        XCTAssertEqual(try r.imageId(path: "/x/000000074646.jpg", position: 5), 74646)
        XCTAssertEqual(try r.imageId(path: "shapes_777_00011.jpg", position: 5), 5)
        XCTAssertEqual(try r.imageId(path: "12a.jpg", position: 9), 9)
        let ann = ImageIdResolver(fileNameToId: ["shapes_777_00011.jpg": 11])
        XCTAssertEqual(try ann.imageId(path: "dir/shapes_777_00011.jpg", position: 1), 11)
        XCTAssertThrowsError(try ann.imageId(path: "other.jpg", position: 1))
    }

    func testCOCOImageIndex() throws {
        let json = """
        {"info": {"x": [1, 2.5e3, true, null, "s\\"}"]}, "images": [
          {"license": 1, "file_name": "a.jpg", "height": 10, "id": 42},
          {"id": 7, "coco_url": "http://x/y", "file_name": "val2017/b\\u00e9.jpg"}],
         "annotations": [{"segmentation": [[1, 2, 3]], "id": 1}], "categories": []}
        """
        let map = try COCOImageIndex.parse(Array(json.utf8))
        XCTAssertEqual(map["a.jpg"], 42)
        XCTAssertEqual(map["val2017/bé.jpg"], 7)
        XCTAssertEqual(map["bé.jpg"], 7)
        XCTAssertThrowsError(try COCOImageIndex.parse(Array("{\"images\": [{\"id\": 1}]}".utf8)))
        XCTAssertThrowsError(try COCOImageIndex.parse(Array("{\"images\": [".utf8)))
        XCTAssertThrowsError(try COCOImageIndex.parse(Array("[]".utf8)))
    }

    func testCOCOImageIndexOnSharedAnnotations() throws {
        let dir = try Shared.require("data/shapes-val")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") }
        guard let ann = names.first else { throw Shared.missing("no annotations json in \(dir)") }
        let map = try COCOImageIndex.load(path: dir + "/" + ann)
        XCTAssertGreaterThanOrEqual(map.count, 200)
    }

    func testAtomicFile() throws {
        let dir = NSTemporaryDirectory() + "edge-atomic-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.json"
        try AtomicFile.write(path: path, contents: "old")
        // A failed write leaves the old file and no temporary behind.
        do {
            let f = try AtomicFile(path: path)
            try f.write("partial")
            f.abort()
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old")
        XCTAssertThrowsError(try AtomicFile.write(path: path) { tmp in
            _ = FileManager.default.createFile(atPath: tmp, contents: Data("x".utf8))
            throw EdgeError("boom")
        })
        do { _ = try AtomicFile(path: path) }  // dropped without commit: removed by deinit
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out.json"])
        let f = try AtomicFile(path: path)
        try f.write("new")
        try f.commit()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out.json"])
        XCTAssertThrowsError(try AtomicFile(path: dir + "/missing/x.json"))
    }
}
