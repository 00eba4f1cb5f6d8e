import Foundation
import XCTest
@testable import EdgeMRCNN

/// Keypoint R-CNN against torchvision: the seeded keypointrcnn_resnet50_fpn state dict
/// (SeededCheckpoint, the values tools/make_arch_fixtures.py gives torchvision's builder) folded
/// as a .pth is, run on the fixtures' raw RGB; the top detections' boxes, scores and keypoints
/// compared with what torchvision recorded (Tests/Fixtures/arch/keypointrcnn_*). The keypoint
/// head costs ~3.7 GMAC per RoI, so the test keeps the top `top` detections.
final class KeypointParityTests: XCTestCase {
    static let images = ["shapes_777_00002", "shapes_777_00004"]
    static let top = 5

    func model() throws -> MaskRCNN {
        let sd = try SeededCheckpoint.stateDict(.keypointrcnnV1, numClasses: 2)
        let folded = try Fold.fold(sd, source: "seeded keypointrcnn")
        let cfg = ModelConfig(numClasses: 2, minSize: 256, maxSize: 416, architecture: .keypointrcnnV1)
        let m = try MaskRCNN(store: folded, config: cfg, source: "seeded keypointrcnn")
        m.maxDetections = KeypointParityTests.top
        return m
    }

    func testKeypointRCNNMatchesTorchvision() throws {
        let m = try model()
        XCTAssertTrue(m.network.hasKeypoints)
        var worst = (box: Float(0), score: Float(0), kp: Float(0), kpScore: Float(0))
        for name in KeypointParityTests.images {
            let fx = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
                Shared.fixture("arch/keypointrcnn_resnet50_fpn_v1_\(name).json")))) as! [String: Any]
            let orig = fx["orig_size"] as! [Int]
            let px = try Data(contentsOf: URL(fileURLWithPath: Shared.fixture("parity/\(name).rgb")))
            let dets = try m.detect(RGBImage(width: orig[1], height: orig[0], pixels: [UInt8](px)))
            let boxes = (fx["boxes"] as! [[Double]]), scores = fx["scores"] as! [Double]
            let kps = fx["keypoints"] as! [[[Double]]]
            XCTAssertEqual(dets.count, min(KeypointParityTests.top, scores.count), name)
            for (i, d) in dets.enumerated() {
                // matched by IoU among torchvision's detections (near-equal scores may swap)
                var best = -1, bestIoU = 0.0
                for (j, b) in boxes.enumerated() {
                    let iou = Self.iou([Double(d.box.0), Double(d.box.1), Double(d.box.2), Double(d.box.3)], b)
                    if iou > bestIoU { bestIoU = iou; best = j }
                }
                XCTAssertGreaterThan(bestIoU, 0.99, "\(name) detection \(i)")
                guard best >= 0 else { continue }
                let b = boxes[best]
                let db = [d.box.0, d.box.1, d.box.2, d.box.3]
                for c in 0..<4 { worst.box = max(worst.box, abs(db[c] - Float(b[c]))) }
                worst.score = max(worst.score, abs(d.score - Float(scores[best])))
                XCTAssertEqual(d.label, 1)
                guard let k = d.keypoints else { XCTFail("\(name) detection \(i) has no keypoints"); continue }
                XCTAssertEqual(k.count, 17)
                for (j, p) in k.enumerated() {
                    let t = kps[best][j]
                    worst.kp = max(worst.kp, ((p.x - Float(t[0])) * (p.x - Float(t[0])) + (p.y - Float(t[1])) * (p.y - Float(t[1]))).squareRoot())
                    // scores are heatmap logits (up to ~50 here): 1e-3 relative to max(1, |logit|)
                    worst.kpScore = max(worst.kpScore, abs(p.score - Float(t[2])) / max(1, abs(Float(t[2]))))
                }
            }
        }
        print("keypointrcnn vs torchvision (top \(KeypointParityTests.top)): box \(worst.box) px, score \(worst.score), "
              + "keypoints \(worst.kp) px, keypoint score (relative) \(worst.kpScore)")
        XCTAssertLessThanOrEqual(worst.box, 0.05)
        XCTAssertLessThanOrEqual(worst.score, 1e-3)
        XCTAssertLessThanOrEqual(worst.kp, 0.05)
        XCTAssertLessThanOrEqual(worst.kpScore, 1e-3)
    }

    static func iou(_ a: [Double], _ b: [Double]) -> Double {
        let iw = max(0, min(a[2], b[2]) - max(a[0], b[0])), ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let inter = iw * ih
        let u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return u > 0 ? inter / u : (a == b ? 1 : 0)
    }
}
