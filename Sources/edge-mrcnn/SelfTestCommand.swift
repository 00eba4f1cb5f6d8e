// `edge-mrcnn selftest`: the built-in checks (the only tests that run on the target board).
import EdgeMRCNN

let selfTestCommand = Command(
    name: "selftest",
    summary: "run the built-in checks (kernels, model I/O, pipeline, output, eval)",
    usage: "usage: edge-mrcnn selftest",
    details: "",
    spec: ArgSpec(),
    run: runSelfTest)

func runSelfTest(_ a: ParsedArgs) throws -> Int32 {
    guard a.positionals.isEmpty else { throw UsageError("selftest takes no arguments") }
    printOut(kernelDescription() + "\n")
    printOut("ISAs tested: \(SelfTest.isasTested.joined(separator: " "))"
        + (SelfTest.requiredISAs.isEmpty ? "" : " (required: \(SelfTest.requiredISAs.joined(separator: " ")))") + "\n")
    var passed = 0, failed = 0
    for check in SelfTest.all {
        do {
            try check.run()
            passed += 1
            printOut("ok   \(check.name)\n")
        } catch {
            failed += 1
            let msg = (error as? EdgeError)?.message ?? String(describing: error)
            printOut("FAIL \(check.name): \(oneLine(msg))\n")
        }
    }
    printOut("\(passed) passed, \(failed) failed\n")
    return failed == 0 ? 0 : 1
}
