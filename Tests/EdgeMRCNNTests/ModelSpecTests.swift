import XCTest
@testable import EdgeMRCNN

final class ModelSpecTests: XCTestCase {
    func testTensorCountMatchesTorchvisionLayout() {
        // torchvision maskrcnn_resnet50_fpn: 53 convs in the body (each with BN) + 8 FPN + 3 RPN
        // + 4 box + 4 mask head + 2 mask predictor = 74 weight/bias pairs.
        let t = ModelSpec.tensors(numClasses: 4)
        XCTAssertEqual(t.count, 2 * (53 + 8 + 3 + 4 + 4 + 2))
        XCTAssertEqual(Set(t.map { $0.name }).count, t.count)
    }
}
