import Foundation
import XCTest

/// Runs the built CLI on every file of the hostile-input corpus (Tests/Fixtures/bad, made by
/// tools/make_bad_inputs.py) with the subcommand that reads it. Each bad file must give exit
/// status 1, no signal, exactly one error line "edge-mrcnn: <file>: <problem>" on stderr (progress
/// lines such as "reading ..." or the closing "N of M images failed" are not errors about the
/// file), and no partial output: no temporary file, no overlay, no model file; a results JSON is
/// either absent or complete. The unusual-but-valid images in bad/valid must succeed.
final class BadInputCorpusTests: XCTestCase {
    struct Run { let status: Int32; let out: String; let err: String; let crashed: Bool }

    static let corpus = Shared.fixture("bad")
    var tmp = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CLITests.binary) else {
            XCTFail("edge-mrcnn binary not found at \(CLITests.binary) (swift build first)")
            throw XCTSkip("no binary")
        }
        tmp = NSTemporaryDirectory() + "edge-bad-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if !tmp.isEmpty { try? FileManager.default.removeItem(atPath: tmp) }
    }

    func run(_ args: [String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = args
        let o = Pipe(), r = Pipe()
        p.standardOutput = o; p.standardError = r
        try p.run()
        // stderr is small; read stdout on this thread and stderr after (no pipe can fill up).
        let od = o.fileHandleForReading.readDataToEndOfFile()
        let ed = r.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self),
                   err: String(decoding: ed, as: UTF8.self), crashed: p.terminationReason != .exit)
    }

    static func files(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: corpus + "/" + folder).sorted().map { corpus + "/" + folder + "/" + $0 }
    }

    /// Every regular file under `dir`, recursively (relative paths).
    func filesUnder(_ dir: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let f = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + f, isDirectory: &isDir), !isDir.boolValue { out.append(f) }
        }
        return out.sorted()
    }

    /// Exit 1, no signal, one error line naming `file`, nothing partial left in tmp.
    func assertRefused(_ r: Run, file: String, allowed: Set<String> = [], _ line: UInt = #line) {
        let name = (file as NSString).lastPathComponent
        XCTAssertFalse(r.crashed, "\(name): terminated by a signal\n\(r.err)", line: line)
        XCTAssertEqual(r.status, 1, "\(name): \(r.err)", line: line)
        let errLines = r.err.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { $0.hasPrefix("edge-mrcnn: ") && !$0.hasSuffix(" failed") }
        XCTAssertEqual(errLines.count, 1, "\(name): expected one error line:\n\(r.err)", line: line)
        if let l = errLines.first {
            XCTAssertTrue(l.hasPrefix("edge-mrcnn: \(file): "), "\(name): the error does not name the file: \(l)", line: line)
            XCTAssertGreaterThan(l.count, "edge-mrcnn: \(file): ".count + 5, "\(name): no problem stated: \(l)", line: line)
            XCTAssertFalse(l.contains { $0.asciiValue.map { $0 < 0x20 } ?? false }, "\(name): control character in \(l)", line: line)
        }
        for f in filesUnder(tmp) where !allowed.contains(f) {
            if f.contains(".tmp-") { XCTFail("\(name): temporary file \(f) left behind", line: line); continue }
            if f == "out.json" {
                // A results file written for zero good images must be complete: an empty list.
                let text = (try? String(contentsOfFile: tmp + "/" + f, encoding: .utf8)) ?? ""
                XCTAssertEqual(text, "[]\n", "\(name): partial results file", line: line)
                continue
            }
            XCTFail("\(name): output file \(f) left behind", line: line)
        }
        for f in filesUnder(tmp) where !allowed.contains(f) { try? FileManager.default.removeItem(atPath: tmp + "/" + f) }
        try? FileManager.default.removeItem(atPath: tmp + "/ov")
    }

    func testCorpusSize() throws {
        var n = 0
        for d in ["jpeg", "pth", "safetensors", "coco"] { n += try BadInputCorpusTests.files(d).count }
        XCTAssertGreaterThanOrEqual(n, 30)
        var bytes = 0
        for d in ["jpeg", "valid", "pth", "safetensors", "coco"] {
            for f in try BadInputCorpusTests.files(d) { bytes += (try FileManager.default.attributesOfItem(atPath: f)[.size] as? Int) ?? 0 }
        }
        XCTAssertLessThan(bytes, 1 << 20)
    }

    /// Bad checkpoints: `convert` refuses them and writes no model file.
    func testBadCheckpoints() throws {
        for f in try BadInputCorpusTests.files("pth") {
            assertRefused(try run(["convert", f, "-o", tmp + "/model.safetensors"]), file: f)
        }
    }

    /// Bad model files: `detect` refuses them before touching any image or output.
    func testBadModelFiles() throws {
        let image = BadInputCorpusTests.corpus + "/valid/one_by_one.jpg"
        for f in try BadInputCorpusTests.files("safetensors") {
            let r = try run(["detect", "--model", f, "--json", tmp + "/out.json", "--overlay-dir", tmp + "/ov", image])
            assertRefused(r, file: f)
            XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/out.json"), f)
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        }
    }

    /// `info` validates what it describes, as detect does: every bad model file and checkpoint is
    /// refused (exit 1, one line naming the file) and nothing about it is printed.
    func testInfoRefusesBadModelFiles() throws {
        for f in try BadInputCorpusTests.files("safetensors") + BadInputCorpusTests.files("pth") {
            let r = try run(["info", f])
            assertRefused(r, file: f)
            XCTAssertEqual(r.out, "", "\((f as NSString).lastPathComponent): info described a file it refused")
        }
    }

    /// Bad annotations / results: `eval` refuses them and writes no metrics or results file.
    func testBadCOCOFiles() throws {
        let c = BadInputCorpusTests.corpus + "/coco"
        let empty = tmp + "/empty-results.json"
        try "[]\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let refs = c + "/references_image_file_not_present.json"
        for f in try BadInputCorpusTests.files("coco") {
            let name = (f as NSString).lastPathComponent
            let args: [String]
            var named = f
            if name.hasPrefix("results_") {
                args = ["eval", "--annotations", refs, "--results", f, "--metrics-json", tmp + "/m.json"]
            } else if f == refs {
                // Valid annotations whose image file is not in --images: refused before the model loads.
                args = ["eval", "--annotations", f, "--model", c + "/../pth/not_a_zip_text.pth", "--images", c,
                        "--json", tmp + "/r.json", "--metrics-json", tmp + "/m.json"]
                named = c
            } else {
                args = ["eval", "--annotations", f, "--results", empty, "--metrics-json", tmp + "/m.json"]
            }
            assertRefused(try run(args), file: named, allowed: ["empty-results.json"])
        }
    }

    /// The float model converted once for the image tests (mapped by every run: fast to load).
    static var convertedModel: String?
    func floatModel() throws -> String {
        if let m = BadInputCorpusTests.convertedModel, FileManager.default.fileExists(atPath: m) { return m }
        let pth = try Shared.require("models/shapes-r50fpn/model.pth")
        let out = NSTemporaryDirectory() + "edge-bad-model-\(getpid()).safetensors"
        let r = try run(["convert", pth, "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        BadInputCorpusTests.convertedModel = out
        return out
    }

    override class func tearDown() {
        if let m = convertedModel { try? FileManager.default.removeItem(atPath: m) }
        convertedModel = nil
        super.tearDown()
    }

    /// Bad images: `detect` reports each in one line and writes no overlay; the results file it
    /// writes for zero good images is the complete empty list.
    func testBadImages() throws {
        let model = try floatModel()
        for f in try BadInputCorpusTests.files("jpeg") {
            let r = try run(["detect", "--model", model, "--json", tmp + "/out.json", "--overlay-dir", tmp + "/ov", f])
            assertRefused(r, file: f)
            XCTAssertTrue(r.err.contains("1 of 1 image failed"), r.err)
        }
        let bomb = BadInputCorpusTests.corpus + "/jpeg/bomb_declares_60000x60000.jpg"
        let r = try run(["detect", "--model", model, bomb])
        XCTAssertTrue(r.err.contains("60000x60000") && r.err.contains("--max-pixels"), r.err)
    }

    /// Unusual but valid images (grayscale, Adobe CMYK, progressive, 1x1, 4:4:4, restart markers,
    /// 3x200) are decoded and run.
    func testValidUnusualImages() throws {
        let model = try floatModel()
        let files = try BadInputCorpusTests.files("valid")
        XCTAssertGreaterThanOrEqual(files.count, 5)
        let r = try run(["detect", "--model", model, "--json", tmp + "/out.json", "--overlay-dir", tmp + "/ov"] + files)
        XCTAssertFalse(r.crashed)
        XCTAssertEqual(r.status, 0, r.err)
        for (k, f) in files.enumerated() {
            let name = (f as NSString).lastPathComponent
            XCTAssertTrue(r.err.contains("[\(k + 1)/\(files.count)] \(name): "), r.err)
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/ov/" + (name as NSString).deletingPathExtension + ".jpg"), name)
        }
        let arr = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/out.json"))) as? [[String: Any]]
        XCTAssertNotNil(arr)
    }

    /// Limits: --max-pixels and --max-memory refuse an image before decoding it (one line, exit
    /// 1); --max-detections caps the results; bad limit values are usage errors.
    func testLimits() throws {
        let model = try floatModel()
        let image = BadInputCorpusTests.corpus + "/valid/grayscale.jpg"   // 48x32
        var r = try run(["detect", "--model", model, "--max-pixels", "1000", "--json", tmp + "/out.json", image])
        assertRefused(r, file: image)
        XCTAssertTrue(r.err.contains("48x32 = 1536 pixels exceeds the limit of 1000 (--max-pixels)"), r.err)
        r = try run(["detect", "--model", model, "--max-memory", "64", "--json", tmp + "/out.json", image])
        assertRefused(r, file: image)
        XCTAssertTrue(r.err.contains("(--max-memory)") && r.err.contains("weights "), r.err)
        r = try run(["detect", "--model", model, "--max-detections", "3", "--score-thresh", "0", image])
        XCTAssertEqual(r.status, 0, r.err)
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(arr.count, 3)
        XCTAssertEqual(try run(["detect", "--model", model, "--max-detections", "0", image]).status, 2)
        XCTAssertEqual(try run(["detect", "--model", model, "--max-memory", "lots", image]).status, 2)
        XCTAssertEqual(try run(["detect", "--model", model, "--max-pixels", "-1", image]).status, 2)
    }

    /// An int8 model calibrated here by the CLI (`calibrate` on two shapes-calib images).
    func int8Model() throws -> String {
        let float = try floatModel()
        let calib = try Shared.require("data/shapes-calib/images")
        let names = try FileManager.default.contentsOfDirectory(atPath: calib).filter { $0.hasSuffix(".jpg") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 2)
        let dir = tmp + "/calib"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for n in names.prefix(2) { try FileManager.default.createSymbolicLink(atPath: dir + "/" + n, withDestinationPath: calib + "/" + n) }
        let out = tmp + "/int8.safetensors"
        let r = try run(["calibrate", "--model", float, "--images", dir, "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        let info = try run(["info", out])
        XCTAssertTrue(info.out.contains("precision: int8"), info.out + info.err)
        return out
    }

    /// Determinism (not correctness: the runs are compared with each other): the same model and
    /// image give byte-identical JSON on repeated runs, float and int8 (calibrated in the test).
    func testDeterministicJSON() throws {
        let image = try Shared.require("data/shapes-val/images/shapes_777_00005.jpg")
        let models = [try floatModel(), try int8Model()]
        for m in models {
            var outputs: [Data] = []
            for k in 0..<3 {
                let out = tmp + "/det-\(k).json"
                let r = try run(["detect", "--model", m, "--json", out, image])
                XCTAssertEqual(r.status, 0, r.err)
                outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
            }
            XCTAssertGreaterThan(outputs[0].count, 10)
            XCTAssertEqual(outputs[0], outputs[1], m)
            XCTAssertEqual(outputs[0], outputs[2], m)
        }
    }
}
