import XCTest
@testable import edge_mrcnn

final class ArgsTests: XCTestCase {
    let spec = ArgSpec(values: ["model", "json", "min-size", "score-thresh"], bools: ["help"], aliases: ["o": "json", "h": "help"])

    func testValuesBothSpellingsAndPositionals() throws {
        let a = try parseArgs(["a.jpg", "--model", "m.safetensors", "--json=out.json", "b", "--min-size", "256",
                               "--score-thresh=-0.5", "-o", "x.json", "--", "--not-a-flag"], spec: spec)
        XCTAssertEqual(a.positionals, ["a.jpg", "b", "--not-a-flag"])
        XCTAssertEqual(a.string("model"), "m.safetensors")
        XCTAssertEqual(a.values["json"], ["out.json", "x.json"])
        XCTAssertEqual(a.string("json"), "x.json")
        XCTAssertEqual(try a.int("min-size"), 256)
        XCTAssertEqual(try a.float("score-thresh"), -0.5)
        XCTAssertNil(a.string("nothing"))
        XCTAssertEqual(try parseArgs(["-"], spec: spec).positionals, ["-"])
        XCTAssertEqual(try parseArgs(["--json="], spec: spec).string("json"), "")
        XCTAssertTrue(try parseArgs(["-h"], spec: spec).bools.contains("help"))
    }

    func testErrors() {
        XCTAssertThrowsError(try parseArgs(["--bogus"], spec: spec)) { XCTAssertEqual($0 as? UsageError, UsageError("unknown option '--bogus'")) }
        XCTAssertThrowsError(try parseArgs(["--bogus=1"], spec: spec)) { XCTAssertEqual($0 as? UsageError, UsageError("unknown option '--bogus'")) }
        XCTAssertThrowsError(try parseArgs(["-x"], spec: spec))
        XCTAssertThrowsError(try parseArgs(["--model"], spec: spec)) { XCTAssertEqual($0 as? UsageError, UsageError("option '--model' needs a value")) }
        XCTAssertThrowsError(try parseArgs(["--help=yes"], spec: spec))
    }

    func testNumberValidation() throws {
        func parsed(_ v: String) throws -> ParsedArgs { try parseArgs(["--min-size", v, "--score-thresh", v], spec: spec) }
        XCTAssertThrowsError(try parsed("abc").int("min-size")) { XCTAssertEqual($0 as? UsageError, UsageError("--min-size expects an integer, got 'abc'")) }
        XCTAssertThrowsError(try parsed("1.5").int("min-size"))
        XCTAssertThrowsError(try parsed("0").int("min-size", in: 1...10)) { XCTAssertEqual($0 as? UsageError, UsageError("--min-size must be between 1 and 10, got 0")) }
        XCTAssertThrowsError(try parsed("0").int("min-size", in: 1...Int.max)) { XCTAssertEqual($0 as? UsageError, UsageError("--min-size must be at least 1, got 0")) }
        XCTAssertThrowsError(try parsed("nan").float("score-thresh"))
        XCTAssertThrowsError(try parsed("inf").float("score-thresh"))
        XCTAssertThrowsError(try parsed("1.5").float("score-thresh", in: 0...1))
        XCTAssertThrowsError(try parsed("").float("score-thresh"))
        XCTAssertEqual(try parsed("0.25").float("score-thresh", in: 0...1), 0.25)
        XCTAssertThrowsError(try ParsedArgs().requiredString("model")) { XCTAssertEqual($0 as? UsageError, UsageError("--model is required")) }
    }

    func testFormatFixed() {
        XCTAssertEqual(formatFixed(0.4249, 2), "0.42")
        XCTAssertEqual(formatFixed(12.0, 2), "12.00")
        XCTAssertEqual(formatFixed(0.005, 1), "0.0")
        XCTAssertEqual(formatFixed(-1.25, 1), "-1.3")
    }
}
