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
        let (store, config) = try SyntheticModel.generate(seed: 0)
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
        let (again, _) = try SyntheticModel.generate(seed: 0)
        for n in ["backbone.body.conv1.weight", "roi_heads.box_predictor.bbox_pred.bias"] {
            let a = store.tensor(n)!, b = again.tensor(n)!
            XCTAssertEqual(memcmp(a.data, b.data, a.byteCount), 0, n)
        }
    }

    /// WorkCount (the GMAC figures bench prints) equals a count made here independently from
    /// torchvision's layer shapes: exact integers, at 800x1088 (an 800x1066 image padded to a
    /// multiple of 32), 1000 box-head RoIs and 100 masks. README: 229.0 GMAC per image.
    func testWorkCountEqualsTheLayerShapeArithmetic() {
        let H = 800, W = 1088, k = 91
        // ResNet-50 body (torchvision v1.5: stride on the 3x3), conv1 to layer4, no fc.
        var backbone = 0
        var h = (H + 6 - 7) / 2 + 1, w = (W + 6 - 7) / 2 + 1
        backbone += 3 * 64 * 49 * h * w
        h = (h + 2 - 3) / 2 + 1; w = (w + 2 - 3) / 2 + 1
        var cin = 64
        var levels: [(c: Int, hw: Int)] = []
        for (width, blocks, stride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
            for b in 0..<blocks {
                let s = b == 0 ? stride : 1
                backbone += cin * width * h * w
                let ho = (h + 2 - 3) / s + 1, wo = (w + 2 - 3) / s + 1
                backbone += width * width * 9 * ho * wo + width * width * 4 * ho * wo
                if b == 0 { backbone += cin * width * 4 * ho * wo }
                h = ho; w = wo; cin = width * 4
            }
            levels.append((cin, h * w))
        }
        // FPN: a 1x1 lateral and a 3x3 output conv per level (256 channels); P6 is a max pool.
        let fpn = levels.reduce(0) { $0 + $1.c * 256 * $1.hw + 256 * 256 * 9 * $1.hw }
        // RPN head on P2..P6 (P6: ceil of half of P5): 3x3 conv 256->256, 3 objectness + 12 deltas.
        let p6 = ((h + 1) / 2) * ((w + 1) / 2)
        let positions = levels.reduce(0) { $0 + $1.hw } + p6
        let rpn = positions * (256 * 256 * 9 + 256 * 3 + 256 * 12)
        // Box head on 1000 RoIs: fc6 (256x7x7 -> 1024), fc7, class scores and box deltas.
        let roiHeads = 1000 * (256 * 49 * 1024 + 1024 * 1024 + 1024 * k + 1024 * 4 * k)
        // Mask head on 100 detections: four 3x3 convs at 14x14, the 2x2 stride-2 deconv, 1x1 logits
        // at 28x28 of the predicted label only (what is computed; torchvision computes all k).
        let masks = 100 * (4 * 256 * 256 * 9 * 196 + 196 * 256 * 256 * 4 + 784 * 256 * 1)
        let m = WorkCount.macs(height: H, width: W, numClasses: k)
        XCTAssertEqual(m["backbone"], backbone)
        XCTAssertEqual(m["fpn"], fpn)
        XCTAssertEqual(m["rpn"], rpn)
        XCTAssertEqual(m["roi_heads"], roiHeads)
        XCTAssertEqual(m["masks"], masks)
        XCTAssertEqual(Set(m.keys), ["backbone", "fpn", "rpn", "roi_heads", "masks"])
        XCTAssertEqual(backbone + fpn + rpn + roiHeads + masks, 228_982_028_544)
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
                         "--save-detections", tmp + "/d.json", "--layers"])
        XCTAssertEqual(r.status, 0, r.err)
        let j = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        XCTAssertEqual(j?["precision"] as? String, "float32")
        XCTAssertEqual(j?["threads"] as? Int, 2)
        XCTAssertEqual(j?["detections"] as? Int, 100, r.err)
        let stages = (j?["stages_median_s"] as? [String: Any]).map { Set($0.keys) }
        XCTAssertEqual(stages, ["preprocess", "backbone", "fpn", "rpn", "roi_heads", "masks", "paste"])
        XCTAssertNotNil((j?["stages_gmac"] as? [String: Any])?["masks"])
        // --layers: every weight layer of the network once, in the order they ran, with its MACs
        let layers = (j?["layers"] as? [[String: Any]]) ?? []
        let names = layers.compactMap { $0["name"] as? String }
        XCTAssertEqual(names.count, Network.maskRCNNResNet50FPN(numClasses: 91).weightLayers.count, "\(names)")
        XCTAssertEqual(Set(names).count, names.count)
        XCTAssertEqual(names.first, "backbone.body.conv1")
        XCTAssertTrue(layers.allSatisfy { ($0["median_s"] as? Double ?? -1) >= 0 })
        XCTAssertGreaterThan(layers.first { $0["name"] as? String == "rpn.head.conv" }?["gmac"] as? Double ?? 0, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: model))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/d.json"))
        let info = try run(["info", model])
        XCTAssertTrue(info.out.contains("classes: 91"), info.out)
    }
}
