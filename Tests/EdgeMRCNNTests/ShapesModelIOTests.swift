import Foundation
import XCTest
@testable import EdgeMRCNN

/// A view of another store with keys renamed, removed or replaced (for error and rename tests).
final class PatchedStore: TensorStore {
    let base: TensorStore
    var rename: (String) -> String? = { $0 }     // base name -> visible name (nil = hidden)
    var replaced: [String: TensorView] = [:]
    private var keep: [[Float]] = []
    init(_ base: TensorStore) { self.base = base }
    var metadata: [String: String] { [:] }
    var names: [String] { base.names.compactMap(rename) }
    func tensor(_ name: String) -> TensorView? {
        if let r = replaced[name] { return r }
        for n in base.names where rename(n) == name { return base.tensor(n).map { TensorView(name: name, dtype: $0.dtype, shape: $0.shape, data: $0.data) } }
        return nil
    }
    func replace(_ name: String, shape: [Int], values: [Float]) {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        replaced[name] = TensorView(name: name, dtype: .f32, shape: shape, data: UnsafeRawPointer(p))
    }
}

/// Tests on the real shapes checkpoint in ../shared (skipped when it is absent, except under CI=true).
final class ShapesModelIOTests: XCTestCase {
    static var cached: StateDict?
    func stateDict() throws -> (StateDict, String) {
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        if let c = ShapesModelIOTests.cached { return (c, path) }
        let sd = try TorchCheckpoint.load(path: path)
        ShapesModelIOTests.cached = sd
        return (sd, path)
    }

    func testStateDictAndFold() throws {
        let (sd, path) = try stateDict()
        XCTAssertEqual(sd.count, 360)
        XCTAssertEqual(sd.names.first, "backbone.body.conv1.weight")
        XCTAssertEqual(sd.names.filter { $0.hasSuffix(".num_batches_tracked") }.count, 53)
        XCTAssertEqual(sd.tensor("backbone.body.bn1.num_batches_tracked")?.dtype, .i64)
        XCTAssertEqual(sd.tensor("backbone.body.bn1.num_batches_tracked")?.shape, [])
        XCTAssertEqual(sd.tensor("backbone.body.conv1.weight")?.shape, [64, 3, 7, 7])
        XCTAssertEqual(sd.tensor("backbone.body.bn1.running_var")?.shape, [64])
        let folded = try Fold.fold(sd, source: path)
        let spec = ModelSpec.tensors(numClasses: 4)
        XCTAssertEqual(folded.names, spec.map { $0.name })
        for (n, s) in spec { XCTAssertEqual(folded.tensor(n)?.shape, s, n) }

        // Compare with the folding done in torch by tools/make_io_fixtures.py.
        let ref = try IOFix.json("shapes-fold-reference.json")
        for (name, r) in ref.objectValue! {
            let t = try XCTUnwrap(folded.tensor(name), name)
            XCTAssertEqual(t.shape, r["shape"]!.arrayValue!.map { $0.intValue! }, name)
            let v = IOFix.floats(t).map(Double.init)
            let sum = v.reduce(0, +), abssum = v.reduce(0) { $0 + abs($1) }
            XCTAssertEqual(sum, r["sum"]!.doubleValue!, accuracy: 1e-5 * max(1, abssum), name)
            XCTAssertEqual(abssum, r["abssum"]!.doubleValue!, accuracy: 1e-6 * abssum, name)
            for (a, b) in zip(v.prefix(5), r["first"]!.arrayValue!) { XCTAssertEqual(a, b.doubleValue!, accuracy: 1e-6 * max(1, abs(a)), name) }
            for (a, b) in zip(v.suffix(3), r["last"]!.arrayValue!) { XCTAssertEqual(a, b.doubleValue!, accuracy: 1e-6 * max(1, abs(a)), name) }
        }
    }

    func testOldKeyNamesAndFrozenBatchNormFoldTheSame() throws {
        let (sd, path) = try stateDict()
        let p = PatchedStore(sd)
        p.rename = { n in
            if n.hasSuffix(".num_batches_tracked") { return nil }          // FrozenBatchNorm2d
            var s = n
            if s.hasPrefix("rpn.head.conv.0.0.") { s = "rpn.head.conv." + s.dropFirst("rpn.head.conv.0.0.".count) }
            for i in 0..<4 {
                let newP = "roi_heads.mask_head.\(i).0.", oldP = "roi_heads.mask_head.mask_fcn\(i + 1)."
                if s.hasPrefix(newP) { s = oldP + s.dropFirst(newP.count) }
                for kind in ["inner_blocks", "layer_blocks"] {
                    let a = "backbone.fpn.\(kind).\(i).0.", b = "backbone.fpn.\(kind).\(i)."
                    if s.hasPrefix(a) { s = b + s.dropFirst(a.count) }
                }
            }
            return "module." + s                                           // DataParallel prefix too
        }
        XCTAssertNotNil(p.tensor("module.rpn.head.conv.weight"))
        let a = try Fold.fold(sd, source: path), b = try Fold.fold(p, source: path)
        XCTAssertEqual(a.names, b.names)
        for n in a.names {
            XCTAssertEqual(IOFix.floats(a.tensor(n)!), IOFix.floats(b.tensor(n)!), n)
        }
    }

    func testBackboneConvBiasIsFoldedToo() throws {
        let (sd, path) = try stateDict()
        let p = PatchedStore(sd)
        p.replace("backbone.body.conv1.bias", shape: [64], values: [Float](repeating: 0.5, count: 64))
        let a = try Fold.fold(sd, source: path), b = try Fold.fold(p, source: path)
        let s = IOFix.floats(a.tensor("backbone.body.conv1.weight")!)
        XCTAssertEqual(s, IOFix.floats(b.tensor("backbone.body.conv1.weight")!))
        let w = IOFix.floats(sd.tensor("backbone.body.bn1.weight")!), rv = IOFix.floats(sd.tensor("backbone.body.bn1.running_var")!)
        let ba = IOFix.floats(a.tensor("backbone.body.conv1.bias")!), bb = IOFix.floats(b.tensor("backbone.body.conv1.bias")!)
        for c in 0..<64 {
            XCTAssertEqual(bb[c] - ba[c], 0.5 * w[c] / (rv[c] + 1e-5).squareRoot(), accuracy: 1e-5 * max(1, abs(ba[c])))
        }
    }

    func testFoldErrors() throws {
        let (sd, path) = try stateDict()
        let missing = PatchedStore(sd)
        missing.rename = { $0 == "backbone.body.layer2.1.bn2.running_var" ? nil : $0 }
        XCTAssertThrowsEdgeError(try Fold.fold(missing, source: path),
                                 containing: [path, "missing tensor 'backbone.body.layer2.1.bn2.running_var'"])
        let shape = PatchedStore(sd)
        shape.replace("roi_heads.box_head.fc7.bias", shape: [1000], values: [Float](repeating: 0, count: 1000))
        XCTAssertThrowsEdgeError(try Fold.fold(shape, source: path),
                                 containing: [path, "'roi_heads.box_head.fc7.bias'", "[1000]", "[1024]"])
        let nan = PatchedStore(sd)
        var v = IOFix.floats(sd.tensor("rpn.head.bbox_pred.bias")!)
        v[5] = .nan
        nan.replace("rpn.head.bbox_pred.bias", shape: [12], values: v)
        XCTAssertThrowsEdgeError(try Fold.fold(nan, source: path), containing: [path, "'rpn.head.bbox_pred.bias'", "non-finite", "element 5"])
        let inf = PatchedStore(sd)
        var w = IOFix.floats(sd.tensor("backbone.body.layer3.0.conv2.weight")!)
        w[1234] = -.infinity
        inf.replace("backbone.body.layer3.0.conv2.weight", shape: [256, 256, 3, 3], values: w)
        XCTAssertThrowsEdgeError(try Fold.fold(inf, source: path), containing: ["backbone.body.layer3.0.conv2.weight", "non-finite"])
        XCTAssertThrowsEdgeError(try Fold.numClasses(OwnedTensorStore(), source: "x.pth"),
                                 containing: ["x.pth", "missing tensor 'roi_heads.box_predictor.cls_score.weight'"])
    }

    func testKnownCheckpointSuppliesSizesAndNames() throws {
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        var notices: [String] = []
        let (_, c) = try ModelLoader.load(path: path, notice: { notices.append($0) })
        XCTAssertEqual(c, ModelConfig(numClasses: 4, classNames: ["__background__", "circle", "square", "triangle"], minSize: 256, maxSize: 416))
        XCTAssertEqual(notices.count, 1)
        XCTAssertTrue(notices.first?.contains("recognised checkpoint: shapes-r50fpn") ?? false, "\(notices)")
        let (_, c2) = try ModelLoader.load(path: path, overrides: ModelOverrides(minSize: 800, maxSize: 1333, classList: "a,b,c"))
        XCTAssertEqual(c2, ModelConfig(numClasses: 4, classNames: ["__background__", "a", "b", "c"]))
        XCTAssertTrue(try ModelConverter.describe(path: path).contains("known checkpoint: shapes-r50fpn"))
        let (_, c4) = try ModelLoader.load(path: path, overrides: ModelOverrides(recognizeKnownCheckpoints: false))
        XCTAssertEqual(c4, ModelConfig(numClasses: 4))
        XCTAssertTrue(ModelLoader.knownCheckpointCouldApply(numClasses: 4))
        XCTAssertFalse(ModelLoader.knownCheckpointCouldApply(numClasses: 91))   // the COCO card equals the defaults
        XCTAssertFalse(ModelLoader.knownCheckpointCouldApply(numClasses: 7))
        // A checkpoint that is not known gets torchvision's defaults.
        let (c3, k3) = ModelLoader.checkpointConfig(numClasses: 91, known: nil)
        XCTAssertNil(k3)
        XCTAssertEqual(c3.classNames, ModelConfig.cocoCategoryNames)
        XCTAssertEqual(c3.minSize, 800)
    }

    /// convert -> safetensors -> load gives the same folded tensors and the config; the file is
    /// checked by hand with `tools/make_io_fixtures.py --check-ours /tmp/edge-mrcnn-shapes-test.safetensors --shapes-folded`.
    func testConvertAndLoadSafetensors() throws {
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        let out = "/tmp/edge-mrcnn-shapes-test.safetensors"
        var messages: [String] = []
        let ov = ModelOverrides(minSize: 256, maxSize: 416, classList: "circle,square,triangle")
        try ModelConverter.convert(input: path, output: out, overrides: ov) { messages.append($0) }
        XCTAssertEqual(messages.count, 3)
        let (st, config) = try ModelLoader.load(path: out)
        XCTAssertTrue(st is MappedTensorStore)
        XCTAssertEqual(config, ModelConfig(numClasses: 4, classNames: ["__background__", "circle", "square", "triangle"], minSize: 256, maxSize: 416))
        let (pth, pconfig) = try ModelLoader.load(path: path, overrides: ov)
        XCTAssertEqual(pconfig, config)
        XCTAssertEqual(st.names.count, pth.names.count)
        for n in pth.names {
            XCTAssertEqual(IOFix.floats(st.tensor(n)!), IOFix.floats(pth.tensor(n)!), n)
        }
        // Overrides still apply to a model file.
        let (_, c2) = try ModelLoader.load(path: out, overrides: ModelOverrides(minSize: 300))
        XCTAssertEqual(c2.minSize, 300)
        XCTAssertEqual(c2.maxSize, 416)
        XCTAssertThrowsEdgeError(try ModelLoader.load(path: out, overrides: ModelOverrides(classList: "a,b")), containing: ["--classes"])

        let info = try ModelConverter.describe(path: out)
        XCTAssertTrue(info.contains("precision: float32"), info)
        XCTAssertTrue(info.contains("tensors: 148"), info)
        XCTAssertTrue(info.contains("classes: 4 (__background__, circle, square, triangle)"), info)
        let pinfo = try ModelConverter.describe(path: path)
        XCTAssertTrue(pinfo.contains("state dict tensors: 360"), pinfo)
        XCTAssertTrue(pinfo.contains("BatchNorm2d"), pinfo)
    }
}
