import XCTest
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

    /// A path under Tests/Fixtures.
    static func fixture(_ relative: String) -> String { packageRoot + "/Tests/Fixtures/" + relative }
}
