import Foundation
import XCTest
@testable import EdgeMRCNN
import CShim

/// Keypoints: COCO keypoint AP against pycocotools 2.0.11, keypoint results JSON and overlays
/// (fixtures in Tests/Fixtures/keypoints, made by tools/make_keypoint_fixtures.py).
final class KeypointTests: XCTestCase {
    static func fixture(_ name: String) -> String { Shared.fixture("keypoints/" + name) }

    func numbers(_ j: JSON?) -> [Double] { j?.arrayValue?.compactMap { $0.doubleValue } ?? [] }

    // MARK: - eval

    func testKeypointAPMatchesPycocotools() throws {
        let gt = try COCODataset.load(path: KeypointTests.fixture("persons.json"))
        let exp = try JSON.load(path: KeypointTests.fixture("expected.json"))
        XCTAssertTrue(gt.annotations.contains { $0.isCrowd })
        XCTAssertTrue(gt.annotations.contains { !$0.isCrowd && $0.numKeypoints == 0 })
        for file in ["results.json", "results-kp-only.json"] {
            let res = try COCOResults.load(path: KeypointTests.fixture(file), gt: gt)
            let r = try COCOEval.evaluate(gt: gt, results: res, iouType: .keypoints)
            let want = numbers(exp[file]?["stats"])
            XCTAssertEqual(r.stats.count, 10)
            XCTAssertEqual(want.count, 10)
            for (i, (g, w)) in zip(r.stats, want).enumerated() {
                XCTAssertEqual(g, w, accuracy: 1e-12, "\(file) stat \(i) (\(r.names[i]))")
            }
            XCTAssertEqual(r.summaryLines.count, 10)
            XCTAssertEqual(r.summaryLines[3], " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets= 20 ] = "
                           + COCOEvalResult.fixed(want[3], 3))
            XCTAssertEqual(r.summaryLines[6], " Average Recall     (AR) @[ IoU=0.50      | area=   all | maxDets= 20 ] = "
                           + COCOEvalResult.fixed(want[6], 3))
        }
        // The two loadRes branches give different dt areas, hence a different APl here.
        XCTAssertNotEqual(numbers(exp["results.json"]?["stats"])[4], numbers(exp["results-kp-only.json"]?["stats"])[4])
    }

    /// computeOks per image: dts by score (stable, top 20) x gts in file order.
    func testOKSMatchesPycocotools() throws {
        let gt = try COCODataset.load(path: KeypointTests.fixture("persons.json"))
        let exp = try JSON.load(path: KeypointTests.fixture("expected.json"))
        let res = try COCOResults.load(path: KeypointTests.fixture("results.json"), gt: gt)
        let sigmas = COCOEvalParams(iouType: .keypoints).kptOksSigmas
        var checked = 0, zeroKps = 0
        for (img, m) in exp["results.json"]?["oks"]?.objectValue ?? [] {
            let id = Int(img)!
            let g = gt.annotations.filter { $0.imageId == id }
            let d0 = res.filter { $0.imageId == id }
            let order = (0..<d0.count).sorted { d0[$0].score > d0[$1].score || (d0[$0].score == d0[$1].score && $0 < $1) }
            let d = order.prefix(20).map { d0[$0] }
            let rows = m.arrayValue!
            XCTAssertEqual(rows.count, d.count, "image \(id)")
            for (i, row) in rows.enumerated() {
                let want = numbers(row)
                XCTAssertEqual(want.count, g.count)
                for (j, w) in want.enumerated() {
                    if g[j].keypoints!.enumerated().allSatisfy({ $0.offset % 3 != 2 || $0.element == 0 }) { zeroKps += 1 }
                    let o = COCOEval.oks(dt: d[i].keypoints!, gt: g[j].keypoints!, gtBox: g[j].bbox!, gtArea: g[j].area, sigmas: sigmas)
                    XCTAssertEqual(o, w, accuracy: 1e-12, "image \(id) dt \(i) gt \(j)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 50)
        XCTAssertGreaterThan(zeroKps, 0, "no pair with a GT without labelled keypoints (the box-extension path)")
    }

    func testKeypointAPErrors() throws {
        let gt = try COCODataset.load(path: KeypointTests.fixture("persons.json"))
        let bad = try COCOResults.parse(try JSON.parse(#"[{"image_id":1,"category_id":1,"score":0.5,"keypoints":[1,2,1,3,4,1]}]"#),
                                        gt: gt, source: "r.json")
        XCTAssertEqual(bad[0].bbox.map { [$0.0, $0.1, $0.2, $0.3] }, [1, 2, 2, 2])  // loadRes' keypoints branch
        XCTAssertEqual(bad[0].area, 4)
        XCTAssertThrowsError(try COCOEval.evaluate(gt: gt, results: bad, iouType: .keypoints)) {
            XCTAssertTrue(($0 as? EdgeError)?.message.contains("has 2 keypoints, keypoint AP needs 17") ?? false, "\($0)")
        }
        XCTAssertThrowsError(try COCOResults.parse(try JSON.parse(#"[{"image_id":1,"category_id":1,"score":0.5,"keypoints":[1,2]}]"#),
                                                   gt: gt, source: "r.json"))
        let boxes = try COCOResults.parse(try JSON.parse(#"[{"image_id":1,"category_id":1,"score":0.5,"bbox":[1,2,3,4]}]"#),
                                          gt: gt, source: "r.json")
        XCTAssertThrowsError(try COCOEval.evaluate(gt: gt, results: boxes, iouType: .keypoints)) {
            XCTAssertTrue(($0 as? EdgeError)?.message.contains("no \"keypoints\"") ?? false, "\($0)")
        }
    }

    /// `eval --results` picks keypoints when the results have them (auto), or by --iou-type.
    func testEvalCLIScoresKeypoints() throws {
        let exp = try JSON.load(path: KeypointTests.fixture("expected.json"))
        let ap = COCOEvalResult.fixed(numbers(exp["results.json"]?["stats"])[0] * 100, 2)
        let metrics = NSTemporaryDirectory() + "kpt-metrics-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: metrics) }
        let r = try runBinary(["eval", "--annotations", KeypointTests.fixture("persons.json"),
                                           "--results", KeypointTests.fixture("results.json"), "--metrics-json", metrics])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("Evaluate annotation type *keypoints*"), r.out)
        XCTAssertTrue(r.out.contains("keypoint AP \(ap)"), r.out)
        let m = try JSON.load(path: metrics)
        XCTAssertEqual(numbers(m["keypoints"]?["stats"]).count, 10)
        XCTAssertNotNil(m["keypoints"]?["APm"])
        let k = try runBinary(["eval", "--annotations", KeypointTests.fixture("persons.json"),
                                           "--results", KeypointTests.fixture("results-kp-only.json"), "--iou-type", "keypoints"])
        XCTAssertEqual(k.status, 0, k.err)
        XCTAssertFalse(k.out.contains("*bbox*"), k.out)
        XCTAssertEqual(k.out.split(separator: "\n").filter { $0.contains("maxDets= 20") }.count, 10, k.out)
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

    // MARK: - output

    func testResultsJSONCarriesKeypoints() throws {
        let kps = (0..<17).map { Keypoint(x: Float($0) + 0.5, y: 2 * Float($0), score: Float($0) - 3) }
        let d = Detection(box: (1, 2, 40, 60), score: 0.75, label: 1, mask: nil, keypoints: kps)
        let text = try ResultsJSON.object(d, imageId: 3, fileName: "p3.jpg", categoryName: "person")
        let j = try JSON.parse(text)
        let k = numbers(j["keypoints"])
        XCTAssertEqual(k.count, 51)
        XCTAssertEqual(Array(k[0..<6]), [0.5, 0, 1, 1.5, 2, 1])
        XCTAssertEqual(numbers(j["keypoints_scores"]).count, 17)
        XCTAssertNil(j["segmentation"])
        let gt = try COCODataset.load(path: KeypointTests.fixture("persons.json"))
        let r = try COCOResults.parseOne(j, index: 0, bboxBranch: true, gt: gt, source: "x")
        XCTAssertEqual(r.keypoints?.count, 51)
        XCTAssertEqual(r.area, 39 * 58)
        let bad = Detection(box: (1, 2, 40, 60), score: 0.75, label: 1, mask: nil,
                            keypoints: [Keypoint(x: .nan, y: 0, score: 0)])
        XCTAssertThrowsError(try ResultsJSON.object(bad, imageId: 3, fileName: "p3.jpg", categoryName: "person"))
        let line = try JSONLines.detections(frame: 1, fileName: "p3.jpg", imageId: 3, timeMs: 1, detections: [d], classNames: [])
        XCTAssertTrue(line.contains("\"keypoints\":[0.5,0.0,1,1.5,2.0,1,"), line)
    }

    func testOverlayDrawsKeypointsAndSkeleton() {
        let w = 64, h = 64
        let img = RGBImage(width: w, height: h, pixels: [UInt8](repeating: 0, count: w * h * 3))
        var kps = (0..<17).map { Keypoint(x: 10 + Float($0 % 4) * 12, y: 24 + Float($0 / 4) * 9, score: 5) }
        kps[0].score = 1  // below keypointMinScore: not drawn
        kps[16] = Keypoint(x: .infinity, y: -1e30, score: 9)  // garbage: skipped, no crash
        kps[15] = Keypoint(x: -1e9, y: 1e9, score: 9)  // far outside: clipped
        let d = Detection(box: (2, 2, 62, 62), score: 0.9, label: 1, mask: nil, keypoints: kps)
        let out = Overlay.draw(img, detections: [d], classNames: ["__background__", "person"])
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(out.pixels[(y * w + x) * 3..<(y * w + x) * 3 + 3]) }
        let c = Overlay.color(forLabel: 1)
        XCTAssertEqual(px(22, 24), [c.r, c.g, c.b])     // keypoint 1 (left_eye) centre
        XCTAssertEqual(px(10, 24), [0, 0, 0])           // nose: score too low
        // left_shoulder (5) -> left_hip (11): (22, 33) -> (46, 42); its midpoint is on the line.
        XCTAssertEqual(px(34, 37), [c.r, c.g, c.b])
        XCTAssertEqual(px(56, 28), [0, 0, 0])
        XCTAssertEqual(COCOKeypoints.names.count, 17)
        XCTAssertEqual(COCOKeypoints.skeleton.count, 19)
    }

    // MARK: - decoding (torchvision's heatmaps_to_keypoints and the predictor's upsampling)

    func floats(_ name: String) throws -> [Float] {
        let d = try Data(contentsOf: URL(fileURLWithPath: KeypointTests.fixture(name)))
        return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testDecodeMatchesTorchvision() throws {
        let meta = try JSON.load(path: KeypointTests.fixture("decode.json"))
        let R = meta["rois"]!.intValue!, K = meta["keypoints"]!.intValue!, H = meta["height"]!.intValue!, W = meta["width"]!.intValue!
        let all = try floats("decode.bin")
        XCTAssertEqual(all.count, R * K * H * W + R * 4 + R * K * 2 + R * K)
        let maps = Array(all[0..<(R * K * H * W)])
        var o = R * K * H * W
        let rois = Array(all[o..<(o + 4 * R)]); o += 4 * R
        let xy = Array(all[o..<(o + 2 * R * K)]); o += 2 * R * K
        let scores = Array(all[o..<(o + R * K)])
        var maxDist: Float = 0, maxScore: Float = 0
        for r in 0..<R {
            let box = (rois[4 * r], rois[4 * r + 1], rois[4 * r + 2], rois[4 * r + 3])
            var scratch = [Float](repeating: 0, count: KeypointDecode.scratchCount(mapHeight: H, roiWidth: box.2 - box.0))
            var out = [Keypoint](repeating: Keypoint(x: 0, y: 0, score: 0), count: K)
            maps.withUnsafeBufferPointer { m in
                KeypointDecode.decode(maps: m.baseAddress! + r * K * H * W, keypoints: K, height: H, width: W, box: box,
                                      scratch: &scratch, into: &out)
            }
            for k in 0..<K {
                let dx = out[k].x - xy[(r * K + k) * 2], dy = out[k].y - xy[(r * K + k) * 2 + 1]
                maxDist = max(maxDist, (dx * dx + dy * dy).squareRoot())
                maxScore = max(maxScore, abs(out[k].score - scores[r * K + k]))
                XCTAssertEqual(out[k].x, xy[(r * K + k) * 2], accuracy: 1e-4, "roi \(r) keypoint \(k) x")
                XCTAssertEqual(out[k].y, xy[(r * K + k) * 2 + 1], accuracy: 1e-4, "roi \(r) keypoint \(k) y")
                XCTAssertEqual(out[k].score, scores[r * K + k], accuracy: 1e-4, "roi \(r) keypoint \(k) score")
            }
        }
        print("keypoint decoding vs torchvision: max distance \(maxDist) px, max score difference \(maxScore)")
    }

    /// The fixture's ConvTranspose2d(4x4, stride 2, padding 1) output (checked against a direct
    /// sum here) and its bilinear x2 upsampling (KeypointDecode.upsample2x).
    func testDeconvAndUpsampleMatchTorch() throws {
        let m = try JSON.load(path: KeypointTests.fixture("deconv.json"))
        let n = m["n"]!.intValue!, cin = m["cin"]!.intValue!, cout = m["cout"]!.intValue!, h = m["height"]!.intValue!, w = m["width"]!.intValue!
        let all = try floats("deconv.bin")
        var o = 0
        func take(_ c: Int) -> [Float] { defer { o += c }; return Array(all[o..<(o + c)]) }
        let x = take(n * cin * h * w), wt = take(cin * cout * 16), b = take(cout)
        let y = take(n * cout * 4 * h * w), up = take(n * cout * 16 * h * w)
        XCTAssertEqual(o, all.count)
        // Direct transposed convolution: out[co, 2i - 1 + ky, 2j - 1 + kx] += x[ci, i, j] * w[ci, co, ky, kx].
        for im in 0..<n {
            var ref = [Double](repeating: 0, count: cout * 4 * h * w)
            for co in 0..<cout { for p in 0..<(4 * h * w) { ref[co * 4 * h * w + p] = Double(b[co]) } }
            for ci in 0..<cin { for i in 0..<h { for j in 0..<w {
                let v = Double(x[((im * cin + ci) * h + i) * w + j])
                for co in 0..<cout { for ky in 0..<4 { for kx in 0..<4 {
                    let oy = 2 * i - 1 + ky, ox = 2 * j - 1 + kx
                    if oy < 0 || ox < 0 || oy >= 2 * h || ox >= 2 * w { continue }
                    ref[(co * 2 * h + oy) * 2 * w + ox] += v * Double(wt[((ci * cout + co) * 4 + ky) * 4 + kx])
                } } }
            } } }
            for p in 0..<(cout * 4 * h * w) { XCTAssertEqual(Float(ref[p]), y[im * cout * 4 * h * w + p], accuracy: 1e-5) }
        }
        // The float kernels of the new op (GEMM + scatter-add, and the reference) on the same data.
        for im in 0..<n {
            let xi = Array(x[(im * cin * h * w)..<((im + 1) * cin * h * w)])
            let want = Array(y[(im * cout * 4 * h * w)..<((im + 1) * cout * 4 * h * w)])
            var fast = [Float](repeating: .nan, count: want.count), ref = fast
            var scratch = [UInt8](repeating: 0, count: em_deconv4x4s2p1_f32_scratch_bytes(Int32(cin), Int32(h), Int32(w), Int32(cout)))
            scratch.withUnsafeMutableBytes {
                em_deconv4x4s2p1_f32(xi, Int32(cin), Int32(h), Int32(w), wt, b, Int32(cout), &fast, $0.baseAddress)
            }
            em_deconv4x4s2p1_f32_ref(xi, Int32(cin), Int32(h), Int32(w), wt, b, Int32(cout), &ref)
            for i in 0..<want.count {
                XCTAssertEqual(fast[i], want[i], accuracy: 1e-5, "fast \(i)")
                XCTAssertEqual(ref[i], want[i], accuracy: 1e-5, "ref \(i)")
            }
        }
        var got = [Float](repeating: 0, count: up.count)
        y.withUnsafeBufferPointer { s in
            got.withUnsafeMutableBufferPointer { d in
                KeypointDecode.upsample2x(s.baseAddress!, channels: n * cout, height: 2 * h, width: 2 * w, into: d.baseAddress!)
            }
        }
        var maxd: Float = 0
        for i in 0..<up.count { maxd = max(maxd, abs(got[i] - up[i])) }
        XCTAssertLessThanOrEqual(maxd, 1e-6)
        print("bilinear x2 vs torch: max difference \(maxd)")
    }

    /// The int8 transposed convolution: the selftest's cases (reference = int64 formula, every ISA
    /// and thread count bit-identical to the reference).
    func testInt8Deconv4x4MatchesReference() throws {
        for c in QKernelCheck.deconv4Cases { try QKernelCheck.deconv4(c) }
        XCTAssertEqual(LayerOp.deconv4x4s2p1.hasWeights, true)
    }
}
