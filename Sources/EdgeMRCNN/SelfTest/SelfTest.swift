// Built-in checks that run wherever the binary runs (on aarch64 there is no XCTest):
// `edge-mrcnn selftest`. Each area of the code base registers its checks in its own file under
// SelfTest/ by extending `SelfTest.all`.

public struct SelfCheck {
    public let name: String
    public let run: () throws -> Void
    public init(_ name: String, _ run: @escaping () throws -> Void) { self.name = name; self.run = run }
}

public enum SelfTest {
    /// All registered checks, grouped by area. Add a new area by adding its list here.
    public static var all: [SelfCheck] {
        isaChecks + kernelChecks + microKernelChecks + qkernelChecks + ioChecks + pipelineChecks + outputChecks + evalChecks + quantChecks
            + streamChecks
    }

    /// A failed expectation inside a check.
    public static func expect(_ cond: Bool, _ what: @autoclosure () -> String) throws {
        if !cond { throw EdgeError("check failed: \(what())") }
    }
}
