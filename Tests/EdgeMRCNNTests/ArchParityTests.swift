import XCTest
import Foundation
@testable import EdgeMRCNN

/// Parity with torchvision for the architecture family on seeded weights: the state dict that
/// tools/make_arch_fixtures.py filled and saved (torch.save) is regenerated in memory
/// (SeededCheckpoint), folded by the path a .pth takes (Fold) and run on the raw RGB of two
/// shapes-val images; compared with that script's fixtures (Tests/Fixtures/arch) with the
/// tolerances of ParityTests: proposals IoU-matched (>= 99% within 0.05 px), detections matched
/// by IoU > 0.9 and label, boxes within 0.05 px, scores within 1e-3, masks IoU >= 0.99.
/// One model per architecture per test (generated in about a second), one test per architecture.
final class ArchParityTests: XCTestCase {
    static func index() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Shared.fixture("arch/index.json")))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func model(_ arch: Architecture) throws -> MaskRCNN {
        let ix = try index()
        let k = ix["num_classes"] as! Int
        let sd = try SeededCheckpoint.stateDict(arch, numClasses: k, seed: UInt64(ix["seed"] as! Int))
        var config = ModelConfig(numClasses: k, minSize: ix["min_size"] as! Int, maxSize: ix["max_size"] as! Int,
                                 architecture: arch)
        XCTAssertEqual(try Fold.architecture(sd, source: "seeded"), arch)
        config.architecture = try Fold.architecture(sd, source: "seeded")
        let folded = try Fold.fold(sd, source: "seeded", metadata: config.metadata())
        return try MaskRCNN(store: folded, config: config, source: "seeded \(arch.rawValue)")
    }

    func run(_ arch: Architecture) throws {
        let ix = try ArchParityTests.index()
        let model = try ArchParityTests.model(arch)
        for img in ix["images"] as! [String] {
            let url = URL(fileURLWithPath: Shared.fixture("arch/\(arch.rawValue)_\(img).json"))
            let fx = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as! [String: Any]
            try compare(model, fx, label: "\(arch.rawValue) \(img)")
        }
    }

    func compare(_ model: MaskRCNN, _ fx: [String: Any], label: String) throws {
        let orig = fx["orig_size"] as! [Int]
        let raw = try Data(contentsOf: URL(fileURLWithPath: Shared.fixture(fx["raw_rgb"] as! String)))
        let image = RGBImage(width: orig[1], height: orig[0], pixels: [UInt8](raw))
        let trace = PipelineTrace(captureTensors: true)
        let dets = try model.detect(image, trace: trace)
        let s = trace.sizes!
        XCTAssertEqual([s.resizedHeight, s.resizedWidth], fx["resized_size"] as! [Int], label)
        XCTAssertEqual([s.paddedHeight, s.paddedWidth], fx["padded_size"] as! [Int], label)

        // FPN samples: 1e-4 relative to the level's max |x|
        let fpn = fx["fpn"] as! [String: [String: Any]]
        var worstFPN = 0.0
        for (i, key) in ["0", "1", "2", "3", "pool"].enumerated() {
            let f = fpn[key]!, m = trace.fpn[i]
            XCTAssertEqual([m.channels, m.height, m.width], f["shape"] as! [Int], "\(label) fpn \(key)")
            let maxAbs = (f["max_abs"] as! NSNumber).doubleValue
            for (j, v) in zip(f["indices"] as! [Int], (f["values"] as! [NSNumber]).map { $0.doubleValue }) where j < m.count {
                worstFPN = max(worstFPN, abs(Double(m.pointer[j]) - v) / maxAbs)
            }
        }
        XCTAssertLessThanOrEqual(worstFPN, 1e-4, "\(label): FPN samples")

        // proposals, IoU-matched
        let refProps = (fx["proposals"] as! [[NSNumber]]).map { $0.map { $0.floatValue } }
        let ours = stride(from: 0, to: trace.proposals.count, by: 4).map { Array(trace.proposals[$0..<($0 + 4)]) }
        var matched = 0
        for r in refProps {
            var best: Float = 0, bestBox: [Float] = []
            for o in ours { let v = Boxes.iou(r, o); if v > best { best = v; bestBox = o } }
            if best > 0.9, zip(r, bestBox).map({ abs($0 - $1) }).max()! <= 0.05 { matched += 1 }
        }
        XCTAssertEqual(ours.count, refProps.count, "\(label): proposal count")
        XCTAssertGreaterThanOrEqual(Double(matched), 0.99 * Double(refProps.count), "\(label): proposals within 0.05 px")

        // detections
        let refBoxes = (fx["boxes"] as! [[NSNumber]]).map { $0.map { $0.floatValue } }
        let refScores = (fx["scores"] as! [NSNumber]).map { $0.floatValue }
        let refLabels = fx["labels"] as! [Int]
        let refRLE = fx["masks_rle"] as? [[String: Any]]
        XCTAssertEqual(refRLE != nil, model.network.hasMasks, label)
        var used = Set<Int>()
        var worstBox: Float = 0, worstScore: Float = 0, worstIoU = 1.0
        for (j, rb) in refBoxes.enumerated() {
            var best: Float = 0, bi = -1
            for (i, d) in dets.enumerated() where !used.contains(i) && d.label == refLabels[j] {
                let v = Boxes.iou(rb, [d.box.0, d.box.1, d.box.2, d.box.3])
                if v > best { best = v; bi = i }
            }
            guard bi >= 0, best > 0.9 else {
                XCTAssertLessThan(refScores[j], 0.05 + 1e-3, "\(label): torchvision detection \(j) (score \(refScores[j])) unmatched")
                continue
            }
            used.insert(bi)
            let d = dets[bi]
            let bd = zip(rb, [d.box.0, d.box.1, d.box.2, d.box.3]).map { abs($0 - $1) }.max()!
            worstBox = max(worstBox, bd); worstScore = max(worstScore, abs(d.score - refScores[j]))
            XCTAssertLessThanOrEqual(bd, 0.05, "\(label): detection \(j) box")
            XCTAssertLessThanOrEqual(abs(d.score - refScores[j]), 1e-3, "\(label): detection \(j) score")
            if let refRLE {
                let rle = refRLE[j], size = rle["size"] as! [Int]
                let ref = try RLE(height: size[0], width: size[1], compressed: rle["counts"] as! String).rowMajorMask()
                let o = d.mask?.rowMajorMask() ?? [UInt8](repeating: 0, count: ref.count)
                var inter = 0, uni = 0
                for q in 0..<ref.count {
                    if ref[q] != 0 && o[q] != 0 { inter += 1 }
                    if ref[q] != 0 || o[q] != 0 { uni += 1 }
                }
                let iou = uni == 0 ? 1.0 : Double(inter) / Double(uni)
                worstIoU = min(worstIoU, iou)
                XCTAssertGreaterThanOrEqual(iou, 0.99, "\(label): detection \(j) mask IoU")
            } else {
                XCTAssertNil(d.mask, "\(label): a box-only model gave a mask")
            }
        }
        for (i, d) in dets.enumerated() where !used.contains(i) {
            XCTAssertLessThan(d.score, 0.05 + 1e-3, "\(label): our detection \(i) (score \(d.score)) unmatched")
        }
        print("ARCH PARITY \(label): FPN max rel diff \(worstFPN); proposals \(ours.count) vs \(refProps.count), "
              + "\(matched) matched; detections \(dets.count) vs \(refBoxes.count): max box diff \(worstBox) px, "
              + "max score diff \(worstScore)" + (model.network.hasMasks ? ", min mask IoU \(worstIoU)" : ", no masks"))
    }

    func testFasterRCNNv1() throws { try run(.fasterrcnnV1) }
    func testMaskRCNNv2() throws { try run(.maskrcnnV2) }
    func testFasterRCNNv2() throws { try run(.fasterrcnnV2) }
    // maskrcnn v1: ParityTests (a trained model); its seeded fixtures are made with
    // `tools/make_arch_fixtures.py --arch maskrcnn_resnet50_fpn_v1` when wanted (not committed).
}
