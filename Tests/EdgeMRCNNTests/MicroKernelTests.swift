// The direct micro-kernel tester of SelfTest (MicroKernelTester.swift), run by XCTest on this
// machine's ISAs (the same function `selftest` runs on aarch64 under qemu).
import EdgeMRCNN
import XCTest

final class MicroKernelTests: XCTestCase {
    func testInt8MicroKernelsAllISAs() throws { try MicroKernelTester.int8AllISAs() }
    func testInt8RequantisingMicroKernelsAllISAs() throws { try MicroKernelTester.int8RequantAllISAs() }
    func testFloatMicroKernelsAllISAs() throws { try MicroKernelTester.floatAllISAs() }
}
