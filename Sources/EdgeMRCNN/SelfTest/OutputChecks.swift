// Self-test checks of the output area (see SelfTest.swift): the COCO RLE codec on the examples
// of notes/formats.md §5 (checked against pycocotools), the streamed paste -> RLE path and the
// results JSON writer.

extension SelfTest {
    static var outputChecks: [SelfCheck] {
        [
            SelfCheck("output.rle.example-a") {
                // h=3, w=4, rows 0110 / 0110 / 1001.
                let rle = RLE(rowMajor: [0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1], height: 3, width: 4)
                try expect(rle.counts == [2, 3, 1, 2, 3, 1], "counts \(rle.counts)")
                try expect(rle.compressedString == "231O2O", "string \(rle.compressedString)")
                let back = try RLE(height: 3, width: 4, compressed: "231O2O")
                try expect(back.counts == rle.counts && back.area == 6, "decoded \(back.counts)")
            },
            SelfCheck("output.rle.example-b") {
                // 100x100, rows 20..59 and columns 10..29 set, given as a mask region.
                let region = MaskRegion(x0: 10, y0: 20, width: 20, height: 40, imageWidth: 100, imageHeight: 100,
                                        bits: [UInt8](repeating: 1, count: 800))
                let rle = RLE(region: region)
                let s = rle.compressedString
                let want = "lo0X1l1" + String(repeating: "0", count: 37) + "Tj6"
                try expect(rle.counts.count == 41 && rle.counts.first == 1020 && rle.counts.last == 7040,
                           "counts \(rle.counts.prefix(4))... (\(rle.counts.count))")
                try expect(s == want, "string \(s)")
                let back = try RLE(height: 100, width: 100, compressed: s)
                let bb = back.bbox
                try expect(back.counts == rle.counts && back.area == 800, "decoded area \(back.area)")
                try expect(bb.x == 10 && bb.y == 20 && bb.w == 20 && bb.h == 40, "bbox \(bb)")
            },
            SelfCheck("output.rle.example-c") {
                let rle = RLE(rowMajor: [1, 1, 1, 1], height: 2, width: 2)
                try expect(rle.counts == [0, 4] && rle.compressedString == "04", "\(rle.counts) \(rle.compressedString)")
                try expect(try RLE(height: 2, width: 2, compressed: "04").counts == [0, 4], "decode 04")
            },
            SelfCheck("output.rle.region-vs-full") {
                // A deterministic pseudo-random region partly outside its image.
                var state: UInt32 = 12345
                func next() -> UInt32 { state = state &* 1_103_515_245 &+ 12345; return state >> 16 }
                let W = 23, H = 17
                let region = MaskRegion(x0: -3, y0: 5, width: 15, height: 19, imageWidth: W, imageHeight: H,
                                        bits: (0..<(15 * 19)).map { _ in UInt8(next() % 2) })
                var full = [UInt8](repeating: 0, count: W * H)
                for y in 0..<H { for x in 0..<W where region.contains(x: x, y: y) { full[y * W + x] = 1 } }
                let a = RLE(region: region), b = RLE(rowMajor: full, height: H, width: W)
                try expect(a == b, "region and full-mask encoders differ")
                let back = try RLE(height: H, width: W, compressed: a.compressedString)
                try expect(back.rowMajorMask() == full, "round trip differs")
            },
            SelfCheck("output.paste-streamed") {
                // detect's streamed paste (one reusable buffer, RLE at once) equals the bitmap paste,
                // with the buffer reused from a big mask for smaller ones.
                var probs = [Float](repeating: 0, count: 28 * 28)
                for y in 0..<28 { for x in 0..<28 { probs[y * 28 + x] = Float((x * 7 + y * 13) % 17) / 16 } }
                let boxes: [Float] = [-4, -3, 70, 45, 10, 5, 30.5, 22.25, 50, 30, 90, 90, 66, 1, 66.5, 1.5]
                let H = 41, W = 67
                var paster = MaskPaster(boxes: boxes, size: 28, imageHeight: H, imageWidth: W)
                for i in 0..<4 {
                    let b = Array(boxes[(4 * i)..<(4 * i + 4)])
                    let (got, want) = probs.withUnsafeBufferPointer { p in
                        (paster.rle(p.baseAddress!, box: b),
                         RLE(region: Paste.mask(p.baseAddress!, size: 28, box: b, imageHeight: H, imageWidth: W)))
                    }
                    try expect(got == want, "box \(i): streamed \(got.counts.prefix(6)) vs bitmap \(want.counts.prefix(6))")
                }
                try expect(paster.scratchBytes <= H * W, "buffer \(paster.scratchBytes) bytes")
            },
            SelfCheck("output.results-json") {
                // counts "32103" is what pycocotools.mask.encode gives for this mask.
                let region = MaskRegion(x0: 1, y0: 0, width: 2, height: 2, imageWidth: 4, imageHeight: 3, bits: [1, 1, 1, 1])
                let det = Detection(box: (1.5, 0, 3.25, 2), score: 0.97, label: 1, mask: region)
                let doc = try ResultsJSON.document([(imageId: 74646, fileName: "000000074646.jpg", detections: [det])],
                                                   classNames: ["__background__", "person"])
                let want = "[\n{\"image_id\":74646,\"file_name\":\"000000074646.jpg\",\"category_id\":1,"
                    + "\"category_name\":\"person\",\"bbox\":[1.5,0.0,1.75,2.0],\"score\":0.97,"
                    + "\"segmentation\":{\"size\":[3,4],\"counts\":\"32103\"}}\n]\n"
                try expect(doc == want, "got \(doc)")
                let bad = Detection(box: (0, 0, .nan, 1), score: 0.5, label: 1, mask: nil)
                var rejected = false
                do { _ = try ResultsJSON.document([(imageId: 1, fileName: "a.jpg", detections: [bad])], classNames: []) } catch { rejected = true }
                try expect(rejected, "NaN box was written")
                try expect(try ResultsJSON.document([], classNames: []) == "[]\n", "empty document")
            },
        ]
    }
}
