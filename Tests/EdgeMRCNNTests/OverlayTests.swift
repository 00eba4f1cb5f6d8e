import Foundation
import XCTest
@testable import EdgeMRCNN

final class OverlayTests: XCTestCase {
    private func gray(_ w: Int, _ h: Int) -> RGBImage {
        RGBImage(width: w, height: h, pixels: [UInt8](repeating: 128, count: w * h * 3))
    }

    func testFontCoversPrintableASCII() {
        XCTAssertEqual(BitmapFont.rows.count, 95 * BitmapFont.glyphHeight)
        XCTAssertFalse((0..<5).contains { x in (0..<7).contains { y in BitmapFont.ink(32, x: x, y: y) } })
        for c in UInt8(33)...UInt8(126) {
            XCTAssertTrue((0..<5).contains { x in (0..<7).contains { y in BitmapFont.ink(c, x: x, y: y) } }, "glyph \(c) is blank")
        }
        XCTAssertEqual(BitmapFont.textWidth("ab"), 11)
    }

    func testLabelText() {
        XCTAssertEqual(Overlay.labelText(name: "circle", score: 0.971), "circle 0.97")
        XCTAssertEqual(Overlay.labelText(name: "x", score: 0.05), "x 0.05")
        XCTAssertEqual(Overlay.labelText(name: "x", score: 1), "x 1.00")
        XCTAssertEqual(Overlay.labelText(name: "x", score: .nan), "x 0.00")
    }

    func testDrawsInsideAndAtBorders() {
        let img = gray(50, 40)
        let mask = MaskRegion(x0: 10, y0: 25, width: 10, height: 10, imageWidth: 50, imageHeight: 40,
                              bits: [UInt8](repeating: 1, count: 100))
        let dets = [
            Detection(box: (10, 25, 20, 35), score: 0.9, label: 1, mask: mask),
            Detection(box: (-30, -30, 5, 5), score: 0.8, label: 2, mask: nil),          // top-left outside
            Detection(box: (45, 35, 500, 400), score: 0.7, label: 3, mask: nil),        // bottom-right outside
            Detection(box: (-100, 10, -50, 20), score: 0.9, label: 1, mask: nil),       // fully outside
            Detection(box: (.nan, 0, .infinity, 3), score: 0.9, label: 1, mask: nil),   // garbage
            Detection(box: (1e30, -1e30, 2e30, 1e30), score: 0.9, label: 99, mask: nil),
            Detection(box: (0, 0, 50, 40), score: 0.6, label: 1,                        // mask beyond the image
                      mask: MaskRegion(x0: 40, y0: 30, width: 20, height: 20, imageWidth: 50, imageHeight: 40,
                                       bits: [UInt8](repeating: 1, count: 400))),
            Detection(box: (1, 1, 2, 2), score: 0.1, label: 1, mask: nil),              // below minScore
        ]
        let out = Overlay.draw(img, detections: dets, classNames: ["bg", "circle", "a very long class name indeed"])
        XCTAssertEqual(out.pixels.count, img.pixels.count)
        XCTAssertNotEqual(out.pixels, img.pixels)
        // Alone, the first detection's mask pixel (15, 30) is tinted towards the class colour (230, 25, 75), not replaced.
        let one = Overlay.draw(img, detections: [dets[0]], classNames: ["bg", "circle"]).pixels
        let i = (30 * 50 + 15) * 3
        XCTAssertGreaterThan(one[i], 128)
        XCTAssertLessThan(one[i + 1], 128)
        XCTAssertGreaterThan(one[i + 1], 25)
        // The box outline is drawn in the class colour.
        let j = (30 * 50 + 10) * 3
        XCTAssertEqual(Array(one[j..<j + 3]), [230, 25, 75])
        // Tiny images and no detections.
        _ = Overlay.draw(gray(1, 1), detections: dets, classNames: [])
        XCTAssertEqual(Overlay.draw(img, detections: [], classNames: []).pixels, img.pixels)
    }

    func testWritesJPEGOverlay() throws {
        let dir = NSTemporaryDirectory() + "edge-overlay-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let img = gray(700, 300)  // > 600 px: font scale 2
        XCTAssertEqual(Overlay.fontScale(width: 700, height: 300), 2)
        let out = Overlay.draw(img, detections: [Detection(box: (600, 5, 699, 100), score: 0.93, label: 2, mask: nil)],
                               classNames: ["bg", "circle", "square"])
        let path = Overlay.outputPath(directory: dir, imagePath: "/some/where/pic.JPEG")
        XCTAssertEqual(path, dir + "/pic.jpg")
        try writeJPEG(out, path: path)
        let back = try loadImage(path: path)
        XCTAssertEqual(back.width, 700); XCTAssertEqual(back.height, 300)
        // An overlay never overwrites its own input.
        XCTAssertEqual(Overlay.outputPath(directory: dir, imagePath: path), dir + "/pic_overlay.jpg")
    }

    func testImageIOErrorsNameTheFile() throws {
        let dir = NSTemporaryDirectory() + "edge-imageio-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = dir + "/bad.jpg"
        _ = FileManager.default.createFile(atPath: bad, contents: Data("not a jpeg".utf8))
        XCTAssertThrowsError(try loadImage(path: bad)) { e in
            let m = (e as? EdgeError)?.message ?? ""
            XCTAssertTrue(m.hasPrefix(bad + ": "), m)
            XCTAssertFalse(m.contains("\n"))
        }
        XCTAssertThrowsError(try loadImage(path: dir + "/missing.jpg"))
        XCTAssertThrowsError(try writeJPEG(gray(4, 4), path: dir + "/no/such/dir.jpg"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["bad.jpg"])
    }
}
