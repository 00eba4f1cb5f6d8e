// Self-test checks of the kernel area (see SelfTest.swift).

extension SelfTest {
    static var kernelChecks: [SelfCheck] { [] }
}
