import Foundation
import XCTest
@testable import EdgeMRCNN
@testable import edge_mrcnn

/// The detect loop with a stand-in detector: bad images are skipped, the rest written.
final class DetectLoopTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "edge-loop-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp + "/imgs", withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    private func fakeDetections(_ im: RGBImage) -> [Detection] {
        let region = MaskRegion(x0: 2, y0: 3, width: 10, height: 8, imageWidth: im.width, imageHeight: im.height,
                                bits: [UInt8](repeating: 1, count: 80))
        return [Detection(box: (2, 3, 12, 11), score: 0.9, label: 1, mask: region),
                Detection(box: (-5, -5, Float(im.width + 5), 20), score: 0.3, label: 2, mask: nil)]
    }

    func testBadImagesAreSkipped() throws {
        let img = RGBImage(width: 40, height: 30, pixels: (0..<(40 * 30 * 3)).map { UInt8($0 % 251) })
        try writeJPEG(img, path: tmp + "/imgs/000000000042.jpg")
        try writeJPEG(img, path: tmp + "/imgs/b.JPEG")
        let good = try Data(contentsOf: URL(fileURLWithPath: tmp + "/imgs/b.JPEG"))
        // cut inside the entropy-coded data (the last 10 bytes: some scan data and the EOI marker)
        _ = FileManager.default.createFile(atPath: tmp + "/imgs/c_truncated.jpg", contents: good.prefix(good.count - 10))
        _ = FileManager.default.createFile(atPath: tmp + "/imgs/d_corrupt.jpg", contents: Data("nope".utf8))
        _ = FileManager.default.createFile(atPath: tmp + "/imgs/e.txt", contents: Data("ignored".utf8))
        let images = try expandImageArguments([tmp + "/imgs"])
        XCTAssertEqual(images.map { OutputPaths.baseName($0) }, ["000000000042.jpg", "b.JPEG", "c_truncated.jpg", "d_corrupt.jpg"])

        let json = tmp + "/out.json"
        let opts = DetectRunOptions(jsonPath: json, overlayDir: tmp + "/ov", maxPixels: 1_000_000,
                                    overlayStyle: OverlayStyle(minScore: 0.2), classNames: ["bg", "circle", "square"],
                                    resolver: ImageIdResolver())
        var calls = 0
        let failed = try processImages(images, opts) { im in calls += 1; return self.fakeDetections(im) }
        // The truncated and the corrupt file fail: a JPEG truncated in its scan data is refused,
        // never decoded with a grey bottom (CShim/io/jpeg.c turns libjpeg's "premature end of
        // data" warning into an error).
        XCTAssertEqual(failed, 2)
        XCTAssertEqual(calls, 2, "the detector ran on the two good images only")
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]])
        XCTAssertEqual(arr.count, 2 * calls)
        XCTAssertEqual(arr[0]["image_id"] as? Int, 42)
        XCTAssertEqual(arr[2]["image_id"] as? Int, 2)
        XCTAssertEqual(arr[2]["file_name"] as? String, "b.JPEG")
        XCTAssertEqual(arr[1]["bbox"] as? [Double], [-5, -5, 50, 25])
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/ov/000000000042.jpg"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/ov/b.jpg"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/ov/d_corrupt.jpg"))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: tmp).contains { $0.contains(".tmp-") })
    }

    func testDetectorErrorsAreSkippedAndUnwritableOutputIsFatal() throws {
        let img = RGBImage(width: 16, height: 16, pixels: [UInt8](repeating: 90, count: 16 * 16 * 3))
        try writeJPEG(img, path: tmp + "/imgs/a.jpg")
        try writeJPEG(img, path: tmp + "/imgs/b.jpg")
        let images = try expandImageArguments([tmp + "/imgs"])
        var opts = DetectRunOptions(jsonPath: tmp + "/out.json", overlayDir: nil, maxPixels: 100,
                                    overlayStyle: OverlayStyle(), classNames: [], resolver: ImageIdResolver())
        // Both images exceed max-pixels: both fail, and no results file is left (an empty list
        // would read as "no detections").
        XCTAssertEqual(try processImages(images, opts) { _ in [] }, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/out.json"))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: tmp).contains { $0.contains(".tmp-") })
        opts.maxPixels = 1000
        var first = true
        let failed = try processImages(images, opts) { im in
            if first { first = false; throw EdgeError("the detector failed") }
            return self.fakeDetections(im)
        }
        XCTAssertEqual(failed, 1)
        let arr = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/out.json"))) as? [[String: Any]]
        XCTAssertEqual(arr?.count, 2)
        // Overlays of images with the same base name in two folders do not overwrite each other.
        try FileManager.default.createDirectory(atPath: tmp + "/imgs2", withIntermediateDirectories: true)
        try writeJPEG(img, path: tmp + "/imgs2/a.jpg")
        opts.overlayDir = tmp + "/ov"
        XCTAssertEqual(try processImages([tmp + "/imgs/a.jpg", tmp + "/imgs2/a.jpg"], opts) { self.fakeDetections($0) }, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp + "/ov").sorted(), ["a.jpg", "a_2.jpg"])
        opts.overlayDir = nil
        opts.jsonPath = tmp + "/no/such/dir/out.json"
        XCTAssertThrowsError(try processImages(images, opts) { _ in [] })
    }
}
