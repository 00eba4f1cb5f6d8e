import XCTest
@testable import EdgeMRCNN

final class KnownCheckpointTests: XCTestCase {
    func testSHA256KnownAnswers() {
        // FIPS 180-4 examples.
        XCTAssertEqual(Array("abc".utf8).withUnsafeBytes { KnownCheckpoints.sha256($0) },
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual([UInt8]().withUnsafeBytes { KnownCheckpoints.sha256($0) },
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        XCTAssertEqual(long.withUnsafeBytes { KnownCheckpoints.sha256($0) },
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testShapesCheckpointIsRecognised() throws {
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        let hex = try KnownCheckpoints.sha256(ofFile: path)
        let card = try XCTUnwrap(KnownCheckpoints.match(sha256: hex))
        XCTAssertEqual(card.minSize, 256)
        XCTAssertEqual(card.maxSize, 416)
        XCTAssertEqual(card.classNames.count, 4)
    }
}
