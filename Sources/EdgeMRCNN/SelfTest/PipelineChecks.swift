// Self-test checks of the pipeline area (see SelfTest.swift).

extension SelfTest {
    static var pipelineChecks: [SelfCheck] { [] }
}
