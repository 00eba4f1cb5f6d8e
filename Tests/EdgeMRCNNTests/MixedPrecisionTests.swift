import Foundation
import XCTest
@testable import EdgeMRCNN

/// An int8 model file whose layers differ in precision (`calibrate --keep-float`): the executor
/// runs each layer at the file's precision and converts at the boundaries.
final class MixedPrecisionTests: XCTestCase {
    func testKeepFloatPatterns() throws {
        let net = Network.maskRCNNResNet50FPN(numClasses: 4)
        XCTAssertEqual(try net.weightLayers(matching: ["backbone.body.conv1"]), ["backbone.body.conv1"])
        XCTAssertEqual(try net.weightLayers(matching: ["roi_heads.mask_predictor.*"]),
                       ["roi_heads.mask_predictor.conv5_mask", "roi_heads.mask_predictor.mask_fcn_logits"])
        XCTAssertEqual(try net.weightLayers(matching: ["*"]).count, 74)
        XCTAssertEqual(try net.weightLayers(matching: ["backbone.body.layer*.0.downsample"]).count, 4)
        // ops without weights are not layers one can keep in float; unknown names are errors
        XCTAssertThrowsError(try net.weightLayers(matching: ["backbone.body.maxpool"]))
        XCTAssertThrowsError(try net.weightLayers(matching: ["backbone.body.conv9"])) {
            XCTAssertTrue(($0 as? EdgeError)?.message.contains("names no weight layer") == true, "\($0)")
        }
    }

    func testLayersKeptInFloat() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let calib = try Shared.require("data/shapes-calib/images")
        let val = try Shared.require("data/shapes-val/images")
        let loaded = try ModelLoader.load(path: modelPath)
        let float = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        let cal = Calibrator(model: float)
        for f in try Calibration.imageFiles(in: calib, log: { _ in }).prefix(2) {
            try cal.add(try loadImage(path: f), name: (f as NSString).lastPathComponent)
        }
        let d = NSTemporaryDirectory() + "mixed-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: d) }
        let net = Network.maskRCNNResNet50FPN(numClasses: 4)
        func model(_ keep: [String], _ name: String) throws -> MaskRCNN {
            let q = try cal.quantizedModel(float: loaded.store, method: .percentile,
                                           floatLayers: Dictionary(uniqueKeysWithValues: keep.map { ($0, "test") }),
                                           source: modelPath)
            try SafeTensorsWriter.write(q, metadata: q.metadata, to: d + "/" + name)
            let r = try ModelLoader.load(path: d + "/" + name)
            return try MaskRCNN(store: r.store, config: r.config, source: name)
        }
        let keep = ["backbone.body.conv1", "roi_heads.mask_predictor.mask_fcn_logits"]
        let mixed = try model(keep, "mixed.safetensors")
        let int8 = try model([], "int8.safetensors")
        let allFloat = try model(net.weightLayers.map { $0.name }, "all-float.safetensors")

        XCTAssertEqual(mixed.precision, "int8 (2 of 74 layers float)")
        XCTAssertEqual(mixed.layerPrecisions.filter { $0.precision == "float32" }.map { $0.name }, keep)
        XCTAssertEqual(allFloat.precision, "float32")
        // `info` lists each layer with its precision
        let text = try ModelConverter.describe(path: d + "/mixed.safetensors")
        func listed(_ name: String) -> String? {
            text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.first { $0.first == name }?[1]
        }
        XCTAssertEqual(listed("backbone.body.conv1"), "float32", text)
        XCTAssertEqual(listed("backbone.body.layer1.0.conv1"), "int8", text)
        XCTAssertEqual(listed("roi_heads.mask_predictor.mask_fcn_logits"), "float32", text)
        XCTAssertTrue(text.contains("float layers: backbone.body.conv1 (test)"), text)

        let image = try loadImage(path: try Calibration.imageFiles(in: val, log: { _ in })[0])
        let fd = try float.detect(image), md = try mixed.detect(image), qd = try int8.detect(image)

        // An int8 file whose every layer is float quantises no activation: exactly the float model.
        let ad = try allFloat.detect(image)
        XCTAssertEqual(ad.count, fd.count)
        for (a, f) in zip(ad, fd) {
            XCTAssertTrue(a.box == f.box && a.score == f.score && a.label == f.label && a.mask == f.mask)
        }

        // The mixed file against the float reference, with the tolerance int8 itself meets on this
        // model (QuantTests): the top detection same label with box IoU > 0.9, every float detection
        // scoring > 0.5 matched by a same-label one with box IoU > 0.75 and mask IoU > 0.7.
        func best(_ f: Detection, in ds: [Detection]) -> Detection? {
            ds.filter { $0.label == f.label }.max { iou($0.box, f.box) < iou($1.box, f.box) }
        }
        XCTAssertFalse(fd.isEmpty)
        XCTAssertGreaterThan(best(fd[0], in: md).map { iou($0.box, fd[0].box) } ?? 0, 0.9)
        for f in fd where f.score > 0.5 {
            guard let m = best(f, in: md) else { XCTFail("no same-label detection for \(f.label) \(f.score)"); continue }
            XCTAssertGreaterThan(iou(m.box, f.box), 0.75, "label \(f.label) score \(f.score)")
            func xywh(_ b: (Float, Float, Float, Float)) -> (Double, Double, Double, Double) {
                (Double(b.0), Double(b.1), Double(b.2 - b.0), Double(b.3 - b.1))
            }
            XCTAssertGreaterThan(MaskOps.maskIoU(m.mask!, f.mask!, crowd: false, dtBox: xywh(m.box), gtBox: xywh(f.box)),
                                 0.7, "mask of label \(f.label)")
        }
        // and the float layers did run: the mixed results are not the all-int8 ones
        XCTAssertFalse(md.count == qd.count && zip(md, qd).allSatisfy { $0.box == $1.box && $0.score == $1.score },
                       "keeping two layers in float changed nothing")
    }

    func iou(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float)) -> Float {
        let ix = max(0, min(a.2, b.2) - max(a.0, b.0)), iy = max(0, min(a.3, b.3) - max(a.1, b.1))
        let u = (a.2 - a.0) * (a.3 - a.1) + (b.2 - b.0) * (b.3 - b.1) - ix * iy
        return u > 0 ? ix * iy / u : 0
    }
}
