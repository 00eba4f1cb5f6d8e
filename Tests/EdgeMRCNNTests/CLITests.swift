import Foundation
import XCTest

/// Runs the built edge-mrcnn binary (it sits next to the test bundle) on error cases: each must
/// end with a non-zero exit status and a clear one-line message, never a crash.
final class CLITests: XCTestCase {
    struct Run { let status: Int32; let out: String; let err: String; let crashed: Bool }

    static let binary: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let dir = (exe as NSString).deletingLastPathComponent
        return dir + "/edge-mrcnn"
    }()

    var tmp = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CLITests.binary) else {
            XCTFail("edge-mrcnn binary not found at \(CLITests.binary) (swift build first)")
            throw XCTSkip("no binary")
        }
        tmp = NSTemporaryDirectory() + "edge-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if !tmp.isEmpty { try? FileManager.default.removeItem(atPath: tmp) }
    }

    func run(_ args: [String], env: [String: String] = [:]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        let o = Pipe(), r = Pipe()
        p.standardOutput = o; p.standardError = r
        try p.run()
        let od = o.fileHandleForReading.readDataToEndOfFile()
        let ed = r.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self),
                   err: String(decoding: ed, as: UTF8.self), crashed: p.terminationReason != .exit)
    }

    private func lines(_ s: String) -> [String] { s.split(separator: "\n").map(String.init) }

    /// A usage mistake: exit 2, "edge-mrcnn: <message>" and the usage line.
    private func assertUsage(_ r: Run, contains what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.crashed, file: file, line: line)
        XCTAssertEqual(r.status, 2, r.err, file: file, line: line)
        let l = lines(r.err)
        XCTAssertEqual(l.count, 2, r.err, file: file, line: line)
        XCTAssertTrue(l.first?.hasPrefix("edge-mrcnn: ") ?? false, r.err, file: file, line: line)
        XCTAssertTrue(l.first?.contains(what) ?? false, r.err, file: file, line: line)
        XCTAssertTrue(l.last?.hasPrefix("usage: edge-mrcnn") ?? false, r.err, file: file, line: line)
    }

    /// An error: exit 1 and exactly one line "edge-mrcnn: ...".
    private func assertError(_ r: Run, contains what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.crashed, file: file, line: line)
        XCTAssertEqual(r.status, 1, r.err, file: file, line: line)
        let l = lines(r.err)
        XCTAssertEqual(l.count, 1, r.err, file: file, line: line)
        XCTAssertTrue(l.first?.hasPrefix("edge-mrcnn: ") ?? false, r.err, file: file, line: line)
        XCTAssertTrue(r.err.contains(what), r.err, file: file, line: line)
    }

    private func writeFile(_ name: String, _ data: Data) -> String {
        let p = tmp + "/" + name
        _ = FileManager.default.createFile(atPath: p, contents: data)
        return p
    }

    func testHelpAndVersion() throws {
        let h = try run(["--help"])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(h.out.contains("detect"))
        XCTAssertEqual(try run(["detect", "--help"]).status, 0)
        let v = try run(["--version"])
        XCTAssertEqual(v.status, 0)
        XCTAssertTrue(v.out.hasPrefix("edge-mrcnn "))
    }

    func testUsageMistakes() throws {
        assertUsage(try run([]), contains: "no command")
        assertUsage(try run(["frobnicate"]), contains: "unknown command 'frobnicate'")
        assertUsage(try run(["--bogus"]), contains: "unknown option '--bogus'")
        assertUsage(try run(["detect", "--bogus", "x"]), contains: "unknown option '--bogus'")
        assertUsage(try run(["detect", "x.jpg"]), contains: "--model is required")
        assertUsage(try run(["detect", "--model", "m"]), contains: "no images")
        assertUsage(try run(["detect", "--model", "m", "--score-thresh", "lots", "x"]), contains: "--score-thresh expects a number")
        assertUsage(try run(["detect", "--model", "m", "--min-size=-3", "x"]), contains: "--min-size")
        assertUsage(try run(["detect", "--model"]), contains: "needs a value")
        assertUsage(try run(["--threads", "0", "selftest"]), contains: "--threads")
        assertUsage(try run(["convert", "in.pth"]), contains: "-o")
        assertUsage(try run(["info"]), contains: "no model file")
    }

    func testMissingModelFile() throws {
        let img = writeFile("a.jpg", Data("x".utf8))
        let missing = tmp + "/missing.safetensors"
        let json = tmp + "/out.json"
        assertError(try run(["detect", "--model", missing, "--json", json, img]), contains: missing)
        XCTAssertFalse(FileManager.default.fileExists(atPath: json))
        assertError(try run(["info", missing]), contains: missing)
        assertError(try run(["convert", missing, "-o", tmp + "/o.safetensors"]), contains: missing)
    }

    func testBadModelFile() throws {
        let model = writeFile("bad.safetensors", Data("this is not a model".utf8))
        let img = writeFile("a.jpg", Data("x".utf8))
        let json = tmp + "/out.json"
        assertError(try run(["detect", "--model", model, "--json", json, img]), contains: model)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).sorted(), ["a.jpg", "bad.safetensors"])
    }

    func testMissingImageAndEmptyFolder() throws {
        let model = writeFile("m.safetensors", Data("x".utf8))
        let empty = tmp + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        _ = writeFile("empty/notes.txt", Data("x".utf8))
        assertError(try run(["detect", "--model", model, empty]), contains: "\(empty): no .jpg or .jpeg images")
        assertError(try run(["detect", "--model", model, tmp + "/nope.jpg"]), contains: "nope.jpg: no such file")
    }

    func testBadAnnotations() throws {
        let model = writeFile("m.safetensors", Data("x".utf8))
        let img = writeFile("a.jpg", Data("x".utf8))
        let ann = writeFile("ann.json", Data("{\"images\": [".utf8))
        assertError(try run(["detect", "--model", model, "--annotations", ann, img]), contains: ann)
    }

    /// Corrupt and truncated JPEGs: with a model that loads, they are reported (one line each,
    /// naming the file) and skipped, the good image's results are still written, exit status 1.
    /// While the model cannot be loaded yet, the run must still fail cleanly.
    func testCorruptAndTruncatedJPEG() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let valDir = try Shared.require("data/shapes-val/images")
        let first = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: valDir).filter { $0.hasSuffix(".jpg") }.sorted().first)
        let good = try Data(contentsOf: URL(fileURLWithPath: valDir + "/" + first))
        let dir = tmp + "/imgs"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = writeFile("imgs/1_good.jpg", good)
        _ = writeFile("imgs/2_truncated.jpg", good.prefix(good.count / 3))
        _ = writeFile("imgs/3_corrupt.JPG", Data("garbage, not a JPEG at all".utf8))
        _ = writeFile("imgs/4_empty.jpeg", Data())
        let json = tmp + "/out.json"
        let ov = tmp + "/ov"
        let r = try run(["detect", "--model", modelPath, "--min-size", "256", "--max-size", "416", "--json", json,
                         "--overlay-dir", ov, dir])
        XCTAssertFalse(r.crashed)
        XCTAssertEqual(r.status, 1, r.err)
        let errLines = lines(r.err).filter { $0.hasPrefix("edge-mrcnn: ") }
        if r.err.contains("not built yet") {
            XCTAssertEqual(lines(r.err).count, 1, r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: json))
            return
        }
        for bad in ["2_truncated.jpg", "3_corrupt.JPG", "4_empty.jpeg"] {
            XCTAssertEqual(errLines.filter { $0.contains(dir + "/" + bad + ": ") }.count, 1, r.err)
        }
        XCTAssertTrue(r.err.contains("[1/4] 1_good.jpg: "), r.err)
        XCTAssertTrue(r.err.contains("3 of 4 images failed"), r.err)
        let arr = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]]
        XCTAssertNotNil(arr)
        XCTAssertTrue(arr?.allSatisfy { $0["file_name"] as? String == "1_good.jpg" } ?? false)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ov + "/1_good.jpg"))
    }

    /// Without --json the results go to standard output; --annotations supplies image_id.
    func testResultsOnStdoutWithAnnotationIds() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let ann = try Shared.require("data/shapes-val/annotations.json")
        let image = try Shared.require("data/shapes-val/images/shapes_777_00005.jpg")
        let r = try run(["detect", "--model", modelPath, "--min-size", "256", "--max-size", "416",
                         "--annotations", ann, "--score-thresh", "0.3", image])
        XCTAssertFalse(r.crashed)
        XCTAssertEqual(r.status, 0, r.err)
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]], r.out)
        XCTAssertFalse(arr.isEmpty)
        for d in arr {
            XCTAssertEqual(d["image_id"] as? Int, 6)  // its id in annotations.json (not its position, 1)
            XCTAssertEqual(d["file_name"] as? String, "shapes_777_00005.jpg")
            XCTAssertGreaterThanOrEqual(d["score"] as? Double ?? 0, 0.3)
            let seg = try XCTUnwrap(d["segmentation"] as? [String: Any])
            XCTAssertNotNil(seg["counts"] as? String)
        }
        XCTAssertTrue(r.err.contains("[1/1] shapes_777_00005.jpg: "), r.err)
    }

    /// `selftest` must pass: every check ok, "N passed, 0 failed", exit 0 (and it must say which
    /// ISAs its kernel checks ran on).
    func testSelfTest() throws {
        let r = try run(["selftest"])
        XCTAssertFalse(r.crashed)
        let out = lines(r.out)
        let last = out.last ?? ""
        XCTAssertTrue(last.hasSuffix(" passed, 0 failed"), r.out)
        XCTAssertEqual(r.status, 0, r.out)
        XCTAssertEqual(out.filter { $0.hasPrefix("FAIL ") }, [], r.out)
        XCTAssertTrue(out.contains { $0.hasPrefix("ISAs tested: scalar") }, r.out)
        let passed = Int(last.split(separator: " ").first ?? "") ?? -1
        XCTAssertEqual(passed, out.filter { $0.hasPrefix("ok   ") }.count, r.out)
        XCTAssertGreaterThanOrEqual(passed, 30, r.out)
    }

    func testForcedUnsupportedISAIsReported() throws {
        let r = try run(["info", tmp + "/missing.safetensors"], env: ["EDGE_MRCNN_ISA": "no-such-isa"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("EDGE_MRCNN_ISA=no-such-isa"), r.err)
    }
}
