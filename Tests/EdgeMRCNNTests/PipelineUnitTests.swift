import XCTest
@testable import EdgeMRCNN

/// The pure pipeline stages: every self-test check of the pipeline area, one test each.
final class PipelineUnitTests: XCTestCase {
    private func run(_ name: String) throws {
        guard let c = SelfTest.pipelineChecks.first(where: { $0.name == name }) else {
            return XCTFail("no check \(name)")
        }
        XCTAssertNoThrow(try c.run())
    }

    func testTransformSizes() throws { try run("pipeline.transform-sizes") }
    func testAnchors() throws { try run("pipeline.anchors") }
    func testBoxCoder() throws { try run("pipeline.box-coder") }
    func testNMS() throws { try run("pipeline.nms") }
    func testLevelMapper() throws { try run("pipeline.level-mapper") }
    func testTopK() throws { try run("pipeline.topk") }

    func testBatchedNMSLargeUsesPerGroupPath() {
        // > 1000 boxes: per-group NMS then a score sort; identical boxes in two groups both survive.
        var boxes: [Float] = [], scores: [Float] = [], groups: [Int] = []
        for i in 0..<1100 {
            let x = Float(i % 550) * 20
            boxes += [x, 0, x + 10, 10]; scores.append(Float(i) / 1100); groups.append(i < 550 ? 0 : 1)
        }
        let keep = boxes.withUnsafeBufferPointer { b in scores.withUnsafeBufferPointer { s in
            Boxes.batchedNMS(boxes: b.baseAddress!, scores: s.baseAddress!, groups: groups, iouThreshold: 0.5)
        } }
        XCTAssertEqual(keep.count, 1100)
        XCTAssertEqual(keep.first, 1099)
        XCTAssertEqual(keep.last, 0)
    }
}
