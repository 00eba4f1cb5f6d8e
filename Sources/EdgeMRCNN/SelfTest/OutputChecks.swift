// Self-test checks of the output area (see SelfTest.swift).

extension SelfTest {
    static var outputChecks: [SelfCheck] { [] }
}
