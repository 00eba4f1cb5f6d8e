import Foundation
import XCTest
@testable import EdgeMRCNN

final class RLETests: XCTestCase {
    private func mask(_ rows: [String]) -> (bits: [UInt8], h: Int, w: Int) {
        let h = rows.count, w = rows.first?.count ?? 0
        return (rows.flatMap { $0.map { $0 == "1" ? UInt8(1) : 0 } }, h, w)
    }

    // formats.md §5 example (a).
    func testExampleA() throws {
        let m = mask(["0110", "0110", "1001"])
        let rle = RLE(rowMajor: m.bits, height: m.h, width: m.w)
        XCTAssertEqual(rle.counts, [2, 3, 1, 2, 3, 1])
        XCTAssertEqual(rle.compressedString, "231O2O")
        let back = try RLE(height: 3, width: 4, compressed: "231O2O")
        XCTAssertEqual(back.counts, [2, 3, 1, 2, 3, 1])
        XCTAssertEqual(back.area, 6)
        XCTAssertEqual(back.rowMajorMask(), m.bits)
    }

    // formats.md §5 example (b): 100x100, rows 20..59, cols 10..29 set, as a region.
    func testExampleB() throws {
        let region = MaskRegion(x0: 10, y0: 20, width: 20, height: 40, imageWidth: 100, imageHeight: 100,
                                bits: [UInt8](repeating: 1, count: 800))
        let rle = RLE(region: region)
        var expected = [1020]
        for i in 0..<20 { expected += [40, i == 19 ? 7040 : 60] }
        XCTAssertEqual(rle.counts.count, 41)
        XCTAssertEqual(rle.counts, expected)
        let s = rle.compressedString
        XCTAssertEqual(s, "lo0" + "X1" + "l1" + String(repeating: "0", count: 37) + "Tj6")
        let back = try RLE(height: 100, width: 100, compressed: s)
        XCTAssertEqual(back.counts, expected)
        XCTAssertEqual(back.area, 800)
        XCTAssertTrue(back.bbox == (10, 20, 20, 40))
    }

    // formats.md §5 example (c).
    func testExampleC() throws {
        let rle = RLE(rowMajor: [1, 1, 1, 1], height: 2, width: 2)
        XCTAssertEqual(rle.counts, [0, 4])
        XCTAssertEqual(rle.compressedString, "04")
        XCTAssertEqual(try RLE(height: 2, width: 2, compressed: "04").counts, [0, 4])
    }

    func testEmptyAndDegenerate() throws {
        let empty = RLE(region: MaskRegion(x0: 0, y0: 0, width: 0, height: 0, imageWidth: 5, imageHeight: 7, bits: []))
        XCTAssertEqual(empty.counts, [35])
        XCTAssertEqual(empty.area, 0)
        XCTAssertTrue(empty.bbox == (0, 0, 0, 0))
        // A region partly outside the image is clipped.
        let r = MaskRegion(x0: -2, y0: 3, width: 4, height: 4, imageWidth: 3, imageHeight: 5,
                           bits: [UInt8](repeating: 1, count: 16))
        var full = [UInt8](repeating: 0, count: 15)
        for y in 3..<5 { for x in 0..<2 { full[y * 3 + x] = 1 } }
        XCTAssertEqual(RLE(region: r), RLE(rowMajor: full, height: 5, width: 3))
    }

    func testDecoderRejectsBadStrings() {
        XCTAssertThrowsError(try RLE(height: 2, width: 2, compressed: "0 4"))  // bad char
        XCTAssertThrowsError(try RLE(height: 2, width: 2, compressed: "05"))   // wrong sum
        XCTAssertThrowsError(try RLE(height: 2, width: 2, compressed: "0l"))   // ends inside a count
        XCTAssertThrowsError(try RLE(height: 2, width: 2, compressed: "O"))    // negative
    }

    /// Random regions: the region encoder equals the full-mask encoder; decode round-trips.
    func testRandomRegionsAgainstFullMask() throws {
        var rng = SeededRNG(seed: 0x5EED_0003)
        for iter in 0..<300 {
            let H = Int.random(in: 1...40, using: &rng), W = Int.random(in: 1...40, using: &rng)
            let x0 = Int.random(in: -5...W, using: &rng), y0 = Int.random(in: -5...H, using: &rng)
            let w = Int.random(in: 0...20, using: &rng), h = Int.random(in: 0...20, using: &rng)
            let p = Double.random(in: 0...1, using: &rng)
            let bits = (0..<(w * h)).map { _ in Double.random(in: 0..<1, using: &rng) < p ? UInt8(1) : 0 }
            let region = MaskRegion(x0: x0, y0: y0, width: w, height: h, imageWidth: W, imageHeight: H, bits: bits)
            var full = [UInt8](repeating: 0, count: H * W)
            for y in 0..<H { for x in 0..<W where region.contains(x: x, y: y) { full[y * W + x] = 1 } }
            let a = RLE(region: region)
            let b = RLE(rowMajor: full, height: H, width: W)
            XCTAssertEqual(a, b, "seed \(rng.seed) iteration \(iter)")
            XCTAssertEqual(a.counts.reduce(0, +), H * W)
            let back = try RLE(height: H, width: W, compressed: a.compressedString)
            XCTAssertEqual(back.counts, a.counts, "seed \(rng.seed) iteration \(iter)")
            XCTAssertEqual(back.rowMajorMask(), full, "seed \(rng.seed) iteration \(iter)")
            XCTAssertEqual(back.area, full.reduce(0) { $0 + Int($1) })
        }
    }

    /// The region encoder on larger regions with long runs, any nonzero byte as set, and a region
    /// taller than 4096 rows, against the plain full-mask encoder.
    func testRegionEncoderBlocksAndTallRegions() throws {
        var rng = SeededRNG(seed: 0x5EED_0004)
        let values: [UInt8] = [1, 2, 128, 255]
        for (H, W, w, h) in [(90, 70, 50, 60), (33, 100, 90, 33), (4200, 6, 5, 4150)] {
            for iter in 0..<4 {
                let x0 = Int.random(in: -3...3, using: &rng), y0 = Int.random(in: -3...3, using: &rng)
                let p = [0.02, 0.5, 0.97, 1.0][iter]
                var bits = [UInt8](repeating: 0, count: w * h)
                var on = false
                for i in 0..<(w * h) {   // runs of random length, set bytes of any nonzero value
                    if Double.random(in: 0..<1, using: &rng) < 0.05 { on = Double.random(in: 0..<1, using: &rng) < p }
                    if on || p == 1.0 { bits[i] = values[Int.random(in: 0..<values.count, using: &rng)] }
                }
                let region = MaskRegion(x0: x0, y0: y0, width: w, height: h, imageWidth: W, imageHeight: H, bits: bits)
                var full = [UInt8](repeating: 0, count: H * W)
                for y in 0..<H { for x in 0..<W where region.contains(x: x, y: y) { full[y * W + x] = 1 } }
                XCTAssertEqual(RLE(region: region), RLE(rowMajor: full, height: H, width: W), "\(H)x\(W) region \(w)x\(h) #\(iter)")
            }
        }
    }

    /// Large counts and large negative differences survive the codec.
    func testLargeCountsRoundTrip() throws {
        let counts = [123_456_789, 1, 5_000_000, 300_000_000, 2, 0, 7]
        let total = counts.reduce(0, +)
        let rle = RLE(height: 1, width: total, counts: counts)
        XCTAssertEqual(try RLE(height: 1, width: total, compressed: rle.compressedString).counts, counts)
    }

    /// Byte identity with pycocotools.mask.encode (fixtures from tools/make_rle_fixtures.py).
    func testPycocotoolsFixtures() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Shared.fixture("rle/masks.json")))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 8)
        for c in cases {
            let name = c["name"] as! String
            let rows = c["rows"] as! [String]
            let h = c["height"] as! Int, w = c["width"] as! Int
            let m = mask(rows)
            XCTAssertEqual(m.h, h); XCTAssertEqual(m.w, w)
            // Encode through the region path, with the region being the tight bbox (or empty).
            var minX = w, minY = h, maxX = -1, maxY = -1
            for y in 0..<h { for x in 0..<w where m.bits[y * w + x] != 0 {
                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
            } }
            var region = MaskRegion(x0: 0, y0: 0, width: 0, height: 0, imageWidth: w, imageHeight: h, bits: [])
            if maxX >= 0 {
                let rw = maxX - minX + 1, rh = maxY - minY + 1
                var bits = [UInt8](repeating: 0, count: rw * rh)
                for y in 0..<rh { for x in 0..<rw { bits[y * rw + x] = m.bits[(y + minY) * w + x + minX] } }
                region = MaskRegion(x0: minX, y0: minY, width: rw, height: rh, imageWidth: w, imageHeight: h, bits: bits)
            }
            let expected = c["counts"] as! String
            XCTAssertEqual(RLE(region: region).compressedString, expected, name)
            XCTAssertEqual(RLE(rowMajor: m.bits, height: h, width: w).compressedString, expected, name)
            let back = try RLE(height: h, width: w, compressed: expected)
            XCTAssertEqual(back.area, c["area"] as! Int, name)
            let bb = (c["bbox"] as! [Double]).map { Int($0) }
            let got = back.bbox
            XCTAssertEqual([got.x, got.y, got.w, got.h], bb, name)
            XCTAssertEqual(back.rowMajorMask(), m.bits, name)
        }
    }

    /// torchvision + pycocotools masks of the parity fixtures (Tests/Fixtures/parity, when present):
    /// decoding and re-encoding through a tight mask region gives the same string.
    func testParityFixtureMasksReencode() throws {
        let dir = Shared.fixture("parity")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw Shared.missing("no parity fixtures in \(dir)")
        }
        var n = 0
        for name in names.sorted() where name.hasPrefix("shapes_") && name.hasSuffix(".json") {
            let d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))) as? [String: Any]
            for r in (d?["masks_rle"] as? [[String: Any]]) ?? [] {
                let size = try XCTUnwrap(r["size"] as? [Int]), counts = try XCTUnwrap(r["counts"] as? String)
                let rle = try RLE(height: size[0], width: size[1], compressed: counts)
                let full = rle.rowMajorMask()
                let bb = rle.bbox
                var bits = [UInt8](repeating: 0, count: bb.w * bb.h)
                for y in 0..<bb.h { for x in 0..<bb.w { bits[y * bb.w + x] = full[(y + bb.y) * size[1] + x + bb.x] } }
                let region = MaskRegion(x0: bb.x, y0: bb.y, width: bb.w, height: bb.h,
                                        imageWidth: size[1], imageHeight: size[0], bits: bits)
                XCTAssertEqual(RLE(region: region).compressedString, counts, name)
                n += 1
            }
        }
        if n == 0 { throw Shared.missing("no masks in the parity fixtures in \(dir)") }
    }
}
