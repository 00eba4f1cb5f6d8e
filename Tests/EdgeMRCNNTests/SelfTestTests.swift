import XCTest
@testable import EdgeMRCNN

/// The built-in checks of `edge-mrcnn selftest` (the only checks that run on the aarch64 board),
/// run in-process area by area, so a failing check fails a named XCTest here too: the byte-exact
/// results-JSON and RLE checks, COCOeval on a tiny case, the quantisation checks, the kernels
/// against their C references, the pickle reader refusing os.system. CLITests.testSelfTest runs
/// the same list through the binary and requires "N passed, 0 failed".
final class SelfTestTests: XCTestCase {
    private func run(_ checks: [SelfCheck], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(checks.isEmpty, "no checks in this area", file: file, line: line)
        for c in checks {
            do { try c.run() } catch {
                XCTFail("\(c.name): \((error as? EdgeError)?.message ?? String(describing: error))", file: file, line: line)
            }
        }
    }

    func testISAChecks() { run(SelfTest.isaChecks) }
    func testKernelChecks() { run(SelfTest.kernelChecks) }
    func testMicroKernelChecks() { run(SelfTest.microKernelChecks) }
    func testQKernelChecks() { run(SelfTest.qkernelChecks) }
    func testIOChecks() { run(SelfTest.ioChecks) }
    func testPipelineChecks() { run(SelfTest.pipelineChecks) }
    func testOutputChecks() { run(SelfTest.outputChecks) }
    func testEvalChecks() { run(SelfTest.evalChecks) }
    func testQuantChecks() { run(SelfTest.quantChecks) }
    func testStreamChecks() { run(SelfTest.streamChecks) }

    /// Every registered check belongs to one of the areas above (a new area must be added here).
    func testEveryAreaIsCovered() {
        let areas = SelfTest.isaChecks + SelfTest.kernelChecks + SelfTest.microKernelChecks + SelfTest.qkernelChecks + SelfTest.ioChecks
            + SelfTest.pipelineChecks + SelfTest.outputChecks + SelfTest.evalChecks + SelfTest.quantChecks + SelfTest.streamChecks
        XCTAssertEqual(areas.map(\.name), SelfTest.all.map(\.name))
    }
}
