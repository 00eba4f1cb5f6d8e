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
    func testPostC() throws { try run("pipeline.post-c") }

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

    /// The greedy path with a limit (torchvision's keep[:k]) equals per-group NMS cut to k, on
    /// heavily overlapping random boxes with tied scores.
    func testBatchedNMSWithLimitEqualsPerGroupPrefix() {
        var state: UInt64 = 12345
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        for (n, g) in [(1500, 1), (3000, 7), (5000, 90)] {
            var boxes: [Float] = [], scores: [Float] = [], groups: [Int] = []
            for _ in 0..<n {
                let x = next() * 300, y = next() * 200, w = 5 + next() * 80, h = 5 + next() * 80
                boxes += [x, y, x + w, y + h]
                scores.append(Float(Int(next() * 200)) / 200)   // many ties
                groups.append(Int(next() * Float(g)))
            }
            let full = boxes.withUnsafeBufferPointer { b in scores.withUnsafeBufferPointer { s in
                Boxes.batchedNMS(boxes: b.baseAddress!, scores: s.baseAddress!, groups: groups, iouThreshold: 0.5)
            } }
            for limit in [1, 100, 1000, n] {
                let cut = boxes.withUnsafeBufferPointer { b in scores.withUnsafeBufferPointer { s in
                    Boxes.batchedNMS(boxes: b.baseAddress!, scores: s.baseAddress!, groups: groups, iouThreshold: 0.5,
                                     limit: limit)
                } }
                XCTAssertEqual(cut, Array(full.prefix(limit)), "n \(n) groups \(g) limit \(limit)")
            }
        }
    }
}
