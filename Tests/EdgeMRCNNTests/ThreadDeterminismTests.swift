import XCTest
import CShim
@testable import EdgeMRCNN

/// The thread count must not change any result: detect (float and int8) at 1, 2 and 4 threads
/// gives byte-identical results JSON.
final class ThreadDeterminismTests: XCTestCase {
    override func tearDown() { em_set_num_threads(1) }

    func results(_ model: MaskRCNN, _ image: RGBImage, threads: Int) throws -> String {
        em_set_num_threads(Int32(threads))
        XCTAssertEqual(Int(em_num_threads()), threads)
        let dets = try model.detect(image)
        return try ResultsJSON.document([(imageId: 1, fileName: "x.jpg", detections: dets)],
                                        classNames: model.config.classNames)
    }

    func testDetectIsIdenticalAt1And2And4Threads() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let calib = try Shared.require("data/shapes-calib/images")
        let val = try Shared.require("data/shapes-val/images")
        let loaded = try ModelLoader.load(path: modelPath)
        let float = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        let image = try loadImage(path: try Calibration.imageFiles(in: val, log: { _ in })[0])

        em_set_num_threads(1)
        let cal = Calibrator(model: float)
        for f in try Calibration.imageFiles(in: calib, log: { _ in }).prefix(2) {
            try cal.add(try loadImage(path: f), name: f)
        }
        let q = try cal.quantizedModel(float: loaded.store, method: .percentile, source: modelPath)
        let int8 = try MaskRCNN(store: q, config: loaded.config, source: "calibrated in memory")
        XCTAssertEqual(int8.precision, "int8")

        for (name, model) in [("float", float), ("int8", int8)] {
            let one = try results(model, image, threads: 1)
            XCTAssertTrue(one.contains("\"segmentation\""), "\(name): expected detections with masks")
            for t in [2, 4] {
                let other = try results(model, image, threads: t)
                XCTAssertEqual(one, other, "\(name): results at \(t) threads differ from 1 thread")
            }
        }
    }

    func testSyntheticModelIsDeterministicAndTorchvisionShaped() throws {
        // the generator is pure arithmetic: fixed values for fixed seeds (the same on every CPU)
        var r = SplitMix64(seed: 0)
        XCTAssertEqual(r.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(SyntheticModel.log(1), 0)
        for x in [1e-300, 0.001, 0.3, 0.7071, 1.5, 2, 1000, 1e300] {
            XCTAssertEqual(SyntheticModel.log(x), Glibc.log(x), accuracy: abs(Glibc.log(x)) * 1e-15 + 1e-300)
        }
        var g = NormalSampler(seed: 7)
        var s = 0.0, s2 = 0.0
        let n = 200_000
        for _ in 0..<n { let v = g.next(); s += v; s2 += v * v }
        XCTAssertEqual(s / Double(n), 0, accuracy: 0.01)
        XCTAssertEqual(s2 / Double(n), 1, accuracy: 0.01)

        let img = SyntheticModel.noiseImage(height: 3, width: 2)
        XCTAssertEqual(img.pixels, SyntheticModel.noiseImage(height: 3, width: 2).pixels)
        XCTAssertNotEqual(img.pixels, SyntheticModel.noiseImage(height: 3, width: 2, seed: 1).pixels)

        // shapes and the torchvision initialisation scales of a few tensors
        let (store, config) = SyntheticModel.generate(seed: 0)
        XCTAssertEqual(config.numClasses, 91)
        XCTAssertEqual(config.minSize, 800); XCTAssertEqual(config.maxSize, 1333)
        try ModelLoader.validate(store, config: config, source: "synthetic")
        func std(_ n: String) -> Double {
            let t = store.tensor(n)!
            var a = 0.0
            for i in 0..<t.count { a += Double(t.floats[i]) * Double(t.floats[i]) }
            return (a / Double(t.count)).squareRoot()
        }
        XCTAssertEqual(std("backbone.body.layer1.0.conv2.weight"), (2.0 / (64 * 9)).squareRoot(), accuracy: 0.002)
        XCTAssertEqual(std("backbone.fpn.layer_blocks.0.weight"), (1.0 / (256 * 9)).squareRoot(), accuracy: 0.0005)  // U(±sqrt(3/fan_in))
        XCTAssertEqual(std("rpn.head.conv.weight"), 0.01, accuracy: 0.0002)
        XCTAssertEqual(std("roi_heads.box_head.fc7.weight"), 1 / (3.0 * 1024).squareRoot(), accuracy: 0.0002)
        XCTAssertEqual(std("roi_heads.mask_predictor.mask_fcn_logits.weight"), (2.0 / 91).squareRoot(), accuracy: 0.005)
        XCTAssertEqual(std("backbone.body.layer1.0.conv2.bias"), 0)
        // same seed -> same bytes
        let (again, _) = SyntheticModel.generate(seed: 0)
        for n in ["backbone.body.conv1.weight", "roi_heads.box_predictor.bbox_pred.bias"] {
            let a = store.tensor(n)!, b = again.tensor(n)!
            XCTAssertEqual(memcmp(a.data, b.data, a.byteCount), 0, n)
        }
    }

    func testWorkCountMatchesThePublishedFigures() {
        // peers.md: about 226 GMAC at 800x1088 with 100 masks (backbone 71, RPN 43, box head 14)
        let m = WorkCount.macs(height: 800, width: 1088, numClasses: 91)
        XCTAssertEqual(Double(m["backbone"]!) / 1e9, 71, accuracy: 1)
        XCTAssertEqual(Double(m["rpn"]!) / 1e9, 43, accuracy: 1)
        XCTAssertEqual(Double(m["roi_heads"]!) / 1e9, 14.4, accuracy: 0.5)
        XCTAssertEqual(Double(m.values.reduce(0, +)) / 1e9, 226, accuracy: 6)
    }
}

extension CLITests {
    func testBenchFlags() throws {
        for (args, what) in [(["bench"], "--model FILE (or --synthetic-coco) is required"),
                             (["bench", "--synthetic-coco", "--model", "m.safetensors"], "not both"),
                             (["bench", "--synthetic-coco", "--int8", "--float"], "--int8 or --float"),
                             (["bench", "--model", "m.safetensors", "--int8"], "--synthetic-coco only"),
                             (["bench", "--synthetic-coco", "--size", "0x5"], "--size")] {
            let r = try run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(what), "\(args): \(r.err)")
        }
        XCTAssertTrue(try run(["--help"]).out.contains("default: online CPUs"))
    }

    /// The whole --synthetic-coco path (child process, mapped file, JSON) on a tiny input.
    func testBenchSyntheticFloatSmall() throws {
        let model = tmp + "/synthetic.safetensors"
        let r = try run(["--threads", "2", "bench", "--synthetic-coco", "--float", "--size", "60x80", "--min-size", "64",
                         "--max-size", "96", "--runs", "1", "--warmup", "0", "--json", "--save-model", model,
                         "--save-detections", tmp + "/d.json"])
        XCTAssertEqual(r.status, 0, r.err)
        let j = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        XCTAssertEqual(j?["precision"] as? String, "float32")
        XCTAssertEqual(j?["threads"] as? Int, 2)
        XCTAssertEqual(j?["detections"] as? Int, 100, r.err)
        let stages = (j?["stages_median_s"] as? [String: Any]).map { Set($0.keys) }
        XCTAssertEqual(stages, ["preprocess", "backbone", "fpn", "rpn", "roi_heads", "masks", "paste"])
        XCTAssertNotNil((j?["stages_gmac"] as? [String: Any])?["masks"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: model))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/d.json"))
        let info = try run(["info", model])
        XCTAssertTrue(info.out.contains("classes: 91"), info.out)
    }
}
