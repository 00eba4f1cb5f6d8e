import XCTest
import Foundation
@testable import EdgeMRCNN

/// The architecture family's layer tables against torchvision's state-dict keys
/// (Tests/Fixtures/arch/keys.json, tools/make_arch_fixtures.py), key recognition, the model
/// file's `arch` metadata.
final class ArchitectureTests: XCTestCase {
    static func keys() throws -> [String: [(String, [Int])]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Shared.fixture("arch/keys.json")))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: [[Any]]]
        return obj.mapValues { $0.map { ($0[0] as! String, $0[1] as! [Int]) } }
    }

    /// Every torchvision tensor (num_batches_tracked aside) is read by the fold with the shape the
    /// description expects, and nothing else is read.
    func testTablesReadExactlyTorchvisionsKeys() throws {
        let all = try ArchitectureTests.keys()
        XCTAssertEqual(Set(all.keys), Set(Architecture.allCases.map { $0.rawValue }))
        for (name, list) in all {
            let arch = Architecture(rawValue: name)!
            let shapes = Dictionary(uniqueKeysWithValues: list)
            XCTAssertEqual(try Architecture.recognise { shapes[$0] != nil }, arch, name)
            XCTAssertEqual(try Architecture.recognise { $0.hasPrefix("module.") && shapes[String($0.dropFirst(7))] != nil }, arch)
            let k = shapes[Network.classScoreWeight]![0]
            let net = try Network.build(arch, numClasses: k)
            XCTAssertEqual(net.hasKeypoints, arch.hasKeypoints)
            if arch.hasKeypoints { XCTAssertEqual(net.numKeypoints, 17) }
            var read: [String: [Int]] = [:]
            for l in net.weightLayers {
                let src = l.sourcePrefixes.first { shapes[$0 + ".weight"] != nil } ?? l.sourcePrefixes[0]
                read[src + ".weight"] = l.weightShape
                if let bn = l.batchNorm {
                    XCTAssertEqual(src, l.sourcePrefixes[0])
                    for s in ["weight", "bias", "running_mean", "running_var"] { read[bn + "." + s] = [l.cout] }
                } else {
                    read[src + ".bias"] = [l.cout]
                }
            }
            XCTAssertEqual(Set(read.keys), Set(shapes.keys), "\(name): keys read vs torchvision's")
            for (key, shape) in read { XCTAssertEqual(shapes[key], shape, "\(name): \(key)") }
            XCTAssertEqual(net.hasMasks, arch.hasMasks)
            XCTAssertEqual(QuantSpec(net).layers.count, net.weightLayers.count)
        }
        XCTAssertThrowsError(try Architecture.recognise { $0 == "backbone.body.conv1.weight" })
    }

    func testLayerCountsAndWork() throws {
        // v1 74 weight layers; faster v1 without the 6 mask layers; v2: + 1 RPN conv, box head
        // 4 convs + 1 FC instead of 2 FCs
        let counts: [Architecture: Int] = [.maskrcnnV1: 74, .fasterrcnnV1: 68, .maskrcnnV2: 78, .fasterrcnnV2: 72]
        for (a, n) in counts {
            let net = try Network.build(a, numClasses: 91)
            XCTAssertEqual(net.weightLayers.count, n, a.rawValue)
            let macs = WorkCount.macs(height: 800, width: 1088, network: net)
            XCTAssertEqual(macs["masks"] ?? 0 > 0, a.hasMasks, a.rawValue)
        }
        // v1's count is unchanged by the family
        XCTAssertEqual(WorkCount.macs(height: 800, width: 1088, numClasses: 91),
                       WorkCount.macs(height: 800, width: 1088, network: .maskRCNNResNet50FPN(numClasses: 91)))
        // v2's box head: 4 x 3x3 256->256 on 7x7 + FC 12544->1024, per RoI
        let v2 = WorkCount.layerMACs(height: 800, width: 1088, network: try Network.build(.fasterrcnnV2, numClasses: 91),
                                     proposals: 1)
        XCTAssertEqual(v2["roi_heads.box_head.0"], 256 * 256 * 9 * 49)
        XCTAssertEqual(v2["roi_heads.box_head.5"], 12544 * 1024)
        XCTAssertEqual(Architecture.named("fasterrcnn_v2"), .fasterrcnnV2)
        XCTAssertEqual(Architecture.named("maskrcnn_resnet50_fpn"), .maskrcnnV1)
        XCTAssertEqual(Architecture.named("fasterrcnn_resnet50_fpn_v1"), .fasterrcnnV1)
        XCTAssertNil(Architecture.named("retinanet"))
    }

    func testMetadataRecordsTheArchitecture() throws {
        let c = ModelConfig(numClasses: 91, architecture: .fasterrcnnV2)
        let m = c.metadata()
        XCTAssertEqual(m["arch"], "fasterrcnn_resnet50_fpn_v2")
        XCTAssertEqual(try ModelConfig(metadata: m, source: "x").architecture, .fasterrcnnV2)
        // files without `arch` (none written so) and v1 files read as maskrcnn v1
        var old = m; old["arch"] = nil
        XCTAssertEqual(try ModelConfig(metadata: old, source: "x").architecture, .maskrcnnV1)
        XCTAssertEqual(ModelConfig(numClasses: 4).metadata()["arch"], "maskrcnn_resnet50_fpn_v1")
        var bad = m; bad["arch"] = "retinanet_resnet50_fpn"
        XCTAssertThrowsError(try ModelConfig(metadata: bad, source: "x")) { e in
            XCTAssertTrue("\(e)".contains("architecture 'retinanet_resnet50_fpn' is not supported"), "\(e)")
        }
        XCTAssertEqual(ModelConfig(numClasses: 2, architecture: .keypointrcnnV1).classNames, ["__background__", "person"])
    }

    func testPublishedCheckpointsAreKnown() {
        let want: [(String, Architecture)] = [("bf2d0c1e", .maskrcnnV1), ("258fb6c6", .fasterrcnnV1),
                                              ("73cbd019", .maskrcnnV2), ("dd69338a", .fasterrcnnV2),
                                              ("fc266e95", .keypointrcnnV1)]
        for (prefix, arch) in want {
            let c = KnownCheckpoints.match(sha256: prefix + String(repeating: "0", count: 56))
            XCTAssertEqual(c?.architecture, arch, prefix)
            XCTAssertEqual(c?.minSize, 800); XCTAssertEqual(c?.maxSize, 1333)
            XCTAssertEqual(c?.classNames.count, arch.hasKeypoints ? 2 : 91)
        }
        // COCO cards equal the defaults: no hashing needed for them
        XCTAssertFalse(ModelLoader.knownCheckpointCouldApply(numClasses: 91, architecture: .maskrcnnV2))
        XCTAssertFalse(ModelLoader.knownCheckpointCouldApply(numClasses: 2, architecture: .keypointrcnnV1))
        // a card applies only to its own architecture
        let card = KnownCheckpoints.match(sha256: "dd69338a" + String(repeating: "0", count: 56))
        XCTAssertNil(ModelLoader.checkpointConfig(numClasses: 91, architecture: .maskrcnnV1, known: card).known)
    }
}
