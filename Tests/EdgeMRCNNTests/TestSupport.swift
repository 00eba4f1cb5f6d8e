import XCTest
@testable import EdgeMRCNN
#if canImport(Glibc)
import Glibc
#endif

/// Locates ../shared (the data and models that sit beside the repository) for tests.
/// EDGE_MRCNN_SHARED overrides; otherwise the `shared` folder beside the package root.
enum Shared {
    static let packageRoot: String = {
        // #filePath = <root>/Tests/EdgeMRCNNTests/TestSupport.swift
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static var root: String {
        if let e = getenv("EDGE_MRCNN_SHARED") { return String(cString: e) }
        var parts = packageRoot.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/shared"
    }

    static var isCI: Bool { getenv("CI").map { String(cString: $0) == "true" } ?? false }

    /// Path of `relative` inside shared/. When it is missing the test is skipped, except under
    /// CI=true, where a missing shared file is a failure.
    static func require(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = root + "/" + relative
        if access(path, R_OK) == 0 { return path }
        if isCI {
            XCTFail("missing \(path) (CI=true: shared data must be present)", file: file, line: line)
            throw XCTSkip("missing \(path)")
        }
        throw XCTSkip("missing \(path)")
    }

    /// A skip for a missing prerequisite (a fixture, the built binary) that must be there in CI:
    /// skipped locally, a recorded failure under CI=true. Returns the error to throw.
    static func missing(_ what: String, file: StaticString = #filePath, line: UInt = #line) -> XCTSkip {
        if isCI { XCTFail("\(what) (CI=true: this may not be skipped)", file: file, line: line) }
        return XCTSkip(what)
    }

    /// A path under Tests/Fixtures.
    static func fixture(_ relative: String) -> String { packageRoot + "/Tests/Fixtures/" + relative }
}

/// A seeded generator for the randomised tests (splitmix64), so a failure can be reproduced: the
/// seed is fixed in the test, and every failure message names it.
struct SeededRNG: RandomNumberGenerator {
    let seed: UInt64
    private var mix: SplitMix64
    init(seed: UInt64) { self.seed = seed; mix = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { mix.next() }
}
