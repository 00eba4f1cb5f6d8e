import XCTest
@testable import EdgeMRCNN

/// Tests on the real shapes checkpoint in ../shared (skipped when it is absent, except under CI=true).
final class ShapesModelIOTests: XCTestCase {
    func testStateDictAndFold() throws {
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        var t0 = Date()
        let sd = try TorchCheckpoint.load(path: path)
        let tLoad = Date().timeIntervalSince(t0)
        XCTAssertEqual(sd.count, 360)
        XCTAssertEqual(sd.names.first, "backbone.body.conv1.weight")
        XCTAssertEqual(sd.tensor("backbone.body.bn1.num_batches_tracked")?.dtype, .i64)
        XCTAssertEqual(sd.tensor("backbone.body.bn1.num_batches_tracked")?.shape, [])
        XCTAssertEqual(sd.tensor("backbone.body.conv1.weight")?.shape, [64, 3, 7, 7])
        XCTAssertEqual(sd.tensor("backbone.body.bn1.running_var")?.shape, [64])
        t0 = Date()
        let folded = try Fold.fold(sd, source: path)
        let tFold = Date().timeIntervalSince(t0)
        let spec = ModelSpec.tensors(numClasses: 4)
        XCTAssertEqual(folded.names.count, spec.count)
        for (n, s) in spec { XCTAssertEqual(folded.tensor(n)?.shape, s, n) }
        print("shapes model.pth: load \(tLoad) s, fold \(tFold) s (debug build)")
    }

    func testModelLoaderOnPth() throws {
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        let (store, config) = try ModelLoader.load(path: path, overrides: ModelOverrides(minSize: 256, maxSize: 416))
        XCTAssertEqual(config.numClasses, 4)
        XCTAssertEqual(config.minSize, 256)
        XCTAssertEqual(config.maxSize, 416)
        XCTAssertEqual(store.names.count, ModelSpec.tensors(numClasses: 4).count)
    }
}
