// Self-test checks of the io area (see SelfTest.swift).

extension SelfTest {
    static var ioChecks: [SelfCheck] { [] }
}
