import Foundation
import XCTest
@testable import EdgeMRCNN
#if canImport(Glibc)
import Glibc
#endif

/// Streamed output stage: masks pasted into one reusable buffer and RLE-encoded at once
/// (MaskPaster), RLE walked for overlays; same results as pasting full bitmaps.
final class StreamedOutputTests: XCTestCase {
    private struct LCG {
        var s: UInt64
        mutating func next() -> UInt64 { s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return s >> 33 }
        mutating func unit() -> Float { Float(next() % 1_000_000) / 1_000_000 }
    }

    /// A 28x28 probability map: a blob with noise, so thresholding gives several runs per column.
    private func probs(_ rng: inout LCG, m: Int = 28) -> [Float] {
        let cx = Float(m) * (0.3 + 0.4 * rng.unit()), cy = Float(m) * (0.3 + 0.4 * rng.unit())
        let r = Float(m) * (0.15 + 0.3 * rng.unit())
        var p = [Float](repeating: 0, count: m * m)
        for y in 0..<m {
            for x in 0..<m {
                let d = ((Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)).squareRoot()
                p[y * m + x] = min(max(1 - d / (2 * r) + 0.3 * (rng.unit() - 0.5), 0), 1)
            }
        }
        return p
    }

    /// MaskPaster's RLE equals the RLE of the bitmap Paste.mask gives (and of the full mask), for
    /// boxes of every kind, with one paster reused across masks of different sizes.
    func testPasterMatchesBitmapPaste() throws {
        var rng = LCG(s: 7)
        for (H, W) in [(1, 1), (17, 23), (120, 90), (301, 257)] {
            var boxes: [Float] = []
            var maps: [[Float]] = []
            for k in 0..<40 {
                let x1 = Float(W) * (1.4 * rng.unit() - 0.2), y1 = Float(H) * (1.4 * rng.unit() - 0.2)
                var bw = Float(W) * 1.2 * rng.unit(), bh = Float(H) * 1.2 * rng.unit()
                if k % 10 == 0 { bw = 0.3; bh = 0.2 }                       // tiny
                if k % 10 == 1 { boxes += [-5, -5, Float(W) + 5, Float(H) + 5]; maps.append(probs(&rng)); continue }  // whole image
                if k % 10 == 2 { boxes += [Float(W) + 10, 0, Float(W) + 50, 10]; maps.append(probs(&rng)); continue } // outside
                boxes += [x1, y1, x1 + bw, y1 + bh]
                maps.append(probs(&rng))
            }
            var paster = MaskPaster(boxes: boxes, size: 28, imageHeight: H, imageWidth: W)
            var largest = 0
            for i in 0..<maps.count {
                let b = Array(boxes[(4 * i)..<(4 * i + 4)])
                let region = maps[i].withUnsafeBufferPointer {
                    Paste.mask($0.baseAddress!, size: 28, box: b, imageHeight: H, imageWidth: W)
                }
                largest = max(largest, region.width * region.height)
                let streamed = maps[i].withUnsafeBufferPointer { paster.rle($0.baseAddress!, box: b) }
                XCTAssertEqual(streamed, RLE(region: region), "\(H)x\(W) box \(i) \(b)")
                var full = [UInt8](repeating: 0, count: H * W)
                for y in 0..<H { for x in 0..<W where region.contains(x: x, y: y) { full[y * W + x] = 1 } }
                XCTAssertEqual(streamed, RLE(rowMajor: full, height: H, width: W), "\(H)x\(W) box \(i)")
                XCTAssertEqual(streamed.rowMajorMask(), full)
            }
            XCTAssertEqual(paster.scratchBytes, largest, "scratch is the largest region")
        }
    }

    /// A paster made for small boxes still handles a bigger one (the buffer grows).
    func testPasterGrowsForUnplannedBox() {
        var rng = LCG(s: 3)
        let p = probs(&rng)
        var paster = MaskPaster(boxes: [1, 1, 3, 3], size: 28, imageHeight: 50, imageWidth: 60)
        let before = paster.scratchBytes
        let big: [Float] = [2, 3, 55, 47]
        let got = p.withUnsafeBufferPointer { paster.rle($0.baseAddress!, box: big) }
        let want = p.withUnsafeBufferPointer { RLE(region: Paste.mask($0.baseAddress!, size: 28, box: big, imageHeight: 50, imageWidth: 60)) }
        XCTAssertEqual(got, want)
        XCTAssertGreaterThan(paster.scratchBytes, before)
    }

    /// The output stage's memory is one region buffer plus the RLEs: 100 whole-image masks at
    /// 800x1066 (85 MB as bitmaps) take one 0.85 MB buffer and a few hundred KB of runs.
    func testOutputStageMemoryIsOneMask() throws {
        let H = 800, W = 1066, n = 100
        var rng = LCG(s: 11)
        var maps: [Float] = []
        for _ in 0..<n { maps += probs(&rng) }
        var boxes: [Float] = []
        for i in 0..<n { boxes += [Float(i % 7), Float(i % 5), Float(W - i % 3), Float(H - i % 4)] }
        // Peak RSS growth of the stage: reset the high-water mark (Linux clear_refs 5), run, read VmHWM.
        func statusKB(_ key: String) -> Int? {
            guard let t = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
            for line in t.split(separator: "\n") where line.hasPrefix(key + ":") {
                return Int(line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
            }
            return nil
        }
        let canReset = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
        let rss0 = statusKB("VmRSS") ?? 0

        var paster = MaskPaster(boxes: boxes, size: 28, imageHeight: H, imageWidth: W)
        var rles: [RLE] = []
        maps.withUnsafeBufferPointer { mp in
            boxes.withUnsafeBufferPointer { bp in
                for i in 0..<n { rles.append(paster.rle(mp.baseAddress! + i * 784, box: bp.baseAddress! + 4 * i)) }
            }
        }
        let peakKB = (statusKB("VmHWM") ?? 0) - rss0

        // The same masks kept as region bitmaps (the old output stage), for comparison.
        _ = try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        let rss1 = statusKB("VmRSS") ?? 0
        var regions: [MaskRegion] = []
        maps.withUnsafeBufferPointer { mp in
            for i in 0..<n {
                let b = Array(boxes[(4 * i)..<(4 * i + 4)])
                regions.append(Paste.mask(mp.baseAddress! + i * 784, size: 28, box: b, imageHeight: H, imageWidth: W))
            }
        }
        let bitmapPeakKB = (statusKB("VmHWM") ?? 0) - rss1
        XCTAssertEqual(RLE(region: regions[n - 1]), rles[n - 1])
        regions = []
        XCTAssertLessThanOrEqual(paster.scratchBytes, H * W)
        let runBytes = rles.reduce(0) { $0 + $1.counts.count * MemoryLayout<Int>.stride }
        let bitmapBytes = n * H * W
        print("STREAMED OUTPUT: \(n) masks \(H)x\(W): region buffer \(paster.scratchBytes) B, RLE runs \(runBytes) B, "
              + "peak RSS growth \(canReset ? "\(peakKB) KB" : "n/a"); as bitmaps \(bitmapBytes) B, "
              + "peak RSS growth \(canReset ? "\(bitmapPeakKB) KB" : "n/a")")
        XCTAssertLessThan(runBytes, 8 << 20)
        XCTAssertGreaterThan(rles.reduce(0) { $0 + $1.area }, 0)
        // RSS says something only when the high-water mark can be reset and the process has no
        // freed memory to reuse (this test run alone): then the bitmaps show, and the streamed
        // stage must not. Otherwise the peak-RSS bound is not checked, and the test says so by
        // ending as skipped (the structural checks above have run).
        guard canReset else {
            throw XCTSkip("peak-RSS bound not checked: /proc/self/clear_refs is not writable here")
        }
        // Under AddressSanitizer (tools/sanitize.sh sets EDGE_MRCNN_SANITIZER) shadow memory,
        // redzones and the free quarantine grow the RSS (measured: 9.1 MB for the 3.9 MB of the
        // plain build), so the bound means nothing there; the plain test step checks it.
        if let s = getenv("EDGE_MRCNN_SANITIZER") {
            throw XCTSkip("peak-RSS bound not checked under the sanitizers (\(String(cString: s))): checked in the plain test step")
        }
        guard bitmapPeakKB > 40 << 10 else {
            throw XCTSkip("peak-RSS bound not checked: the bitmap comparison grew the peak RSS by only \(bitmapPeakKB) KB "
                + "(freed memory of earlier tests was reused; run StreamedOutputTests alone to measure)")
        }
        XCTAssertLessThan(peakKB, 8 << 10, "streamed output stage grew the peak RSS by \(peakKB) KB")
    }

    func testColumnRunsAndContains() throws {
        var rng = LCG(s: 5)
        for _ in 0..<200 {
            let H = Int(rng.next() % 12) + 1, W = Int(rng.next() % 12) + 1
            let p = rng.unit()
            let full = (0..<(H * W)).map { _ in rng.unit() < p ? UInt8(1) : 0 }
            let rle = RLE(rowMajor: full, height: H, width: W)
            var seen = [UInt8](repeating: 0, count: H * W)
            var lastX = -1, lastY = -1
            rle.forEachColumnRun { x, y0, y1 in
                XCTAssertTrue(x >= 0 && x < W && y0 >= 0 && y0 < y1 && y1 <= H)
                XCTAssertTrue(x > lastX || (x == lastX && y0 > lastY), "column-major order")
                lastX = x; lastY = y1
                for y in y0..<y1 { seen[y * W + x] += 1 }
            }
            XCTAssertEqual(seen, full)
            for y in 0..<H { for x in 0..<W { XCTAssertEqual(rle.contains(x: x, y: y), full[y * W + x] != 0) } }
            XCTAssertFalse(rle.contains(x: W, y: 0))
            XCTAssertFalse(rle.contains(x: -1, y: 0))
        }
        // Runs past the end and zero-length runs are tolerated.
        var n = 0
        RLE(height: 2, width: 2, counts: [1, 0, 0, 10]).forEachColumnRun { _, _, _ in n += 1 }
        XCTAssertEqual(n, 2)  // (0, 1..<2) and (1, 0..<2): clipped to the 4 pixels
    }

    /// Overlay tints exactly the pixels of the RLE, each once, clipped when its size differs.
    func testOverlayTintFromRLE() {
        let W = 37, H = 29
        var rng = LCG(s: 9)
        let img = RGBImage(width: W, height: H, pixels: (0..<(W * H * 3)).map { _ in UInt8(rng.next() % 256) })
        let full = (0..<(W * H)).map { _ in rng.unit() < 0.4 ? UInt8(1) : 0 }
        let rle = RLE(rowMajor: full, height: H, width: W)
        let style = OverlayStyle(maskAlpha: 0.5, boxThickness: 1, minScore: 0)
        // A box far outside the image, so only the tint shows (labels are kept inside the image:
        // compare away from the top-left label strip).
        let det = Detection(box: (-500, -500, -400, -400), score: 0.9, label: 1, mask: rle)
        let out = Overlay.draw(img, detections: [det], classNames: ["bg", "x"], style: style).pixels
        let c = Overlay.color(forLabel: 1)
        let a = Int((0.5 * 256 as Float).rounded()), na = 256 - a
        for y in 12..<H {
            for x in 0..<W {
                let i = (y * W + x) * 3
                if full[y * W + x] != 0 {
                    XCTAssertEqual(out[i], UInt8((Int(img.pixels[i]) * na + Int(c.r) * a + 128) >> 8))
                    XCTAssertEqual(out[i + 2], UInt8((Int(img.pixels[i + 2]) * na + Int(c.b) * a + 128) >> 8))
                } else {
                    XCTAssertEqual(Array(out[i..<i + 3]), Array(img.pixels[i..<i + 3]))
                }
            }
        }
        // A mask bigger than the image is clipped; a mask of a smaller image is drawn in its own frame.
        let big = RLE(height: H + 10, width: W + 10, counts: [0, (H + 10) * (W + 10)])
        let small = RLE(height: 3, width: 2, counts: [0, 6])
        let o2 = Overlay.draw(img, detections: [Detection(box: (-500, -500, -400, -400), score: 0.9, label: 1, mask: big)],
                              classNames: [], style: style).pixels
        XCTAssertEqual(o2.count, img.pixels.count)
        let o3 = Overlay.draw(img, detections: [Detection(box: (-500, -500, -400, -400), score: 0.9, label: 1, mask: small)],
                              classNames: [], style: style).pixels
        let far = ((H - 1) * W + W - 1) * 3
        XCTAssertEqual(Array(o3[far..<far + 3]), Array(img.pixels[far..<far + 3]))
    }
}
