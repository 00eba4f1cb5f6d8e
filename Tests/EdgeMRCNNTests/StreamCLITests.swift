import Foundation
import XCTest
@testable import EdgeMRCNN

/// `detect -` (JPEG frames on standard input), `--jsonl`, `--classes-only / --mask-thresh /
/// --no-masks` and "no results file when every input failed", through the built CLI with the
/// shapes model of ../shared (converted once here) and shapes-val images.
final class StreamCLITests: XCTestCase {
    struct Run { let status: Int32; let out: String; let err: String; let crashed: Bool }

    var tmp = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CLITests.binary) else {
            XCTFail("edge-mrcnn binary not found at \(CLITests.binary) (swift build first)")
            throw XCTSkip("no binary")
        }
        signal(SIGPIPE, SIG_IGN)   // the CLI may close its standard input before all is written
        tmp = NSTemporaryDirectory() + "edge-stream-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if !tmp.isEmpty { try? FileManager.default.removeItem(atPath: tmp) }
    }

    /// Runs the CLI with `stdin` written to its standard input from another thread.
    static func run(_ args: [String], stdin: Data? = nil) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = args
        let o = Pipe(), r = Pipe(), i = Pipe()
        p.standardOutput = o; p.standardError = r
        if stdin != nil { p.standardInput = i } else { p.standardInput = FileHandle.nullDevice }
        try p.run()
        final class Box { var data = Data() }
        let errData = Box()
        let errThread = Thread { errData.data = r.fileHandleForReading.readDataToEndOfFile() }
        errThread.start()
        if let data = stdin {
            let w = i.fileHandleForWriting
            Thread {
                // the CLI may stop reading early (an error): ignore EPIPE by writing in pieces
                var off = 0
                while off < data.count {
                    let n = min(65536, data.count - off)
                    let rc = data[(data.startIndex + off)..<(data.startIndex + off + n)].withUnsafeBytes {
                        write(w.fileDescriptor, $0.baseAddress, n)
                    }
                    if rc <= 0 { break }
                    off += rc
                }
                try? w.close()
            }.start()
        }
        let od = o.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while errThread.isExecuting || !errThread.isFinished { usleep(1000) }
        return Run(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self),
                   err: String(decoding: errData.data, as: UTF8.self), crashed: p.terminationReason != .exit)
    }

    /// The float shapes model converted once (mapped by every run: fast to load).
    static var convertedModel: String?
    static func model() throws -> String {
        if let m = convertedModel, FileManager.default.fileExists(atPath: m) { return m }
        let pth = try Shared.require("models/shapes-r50fpn/model.pth")
        let out = NSTemporaryDirectory() + "edge-stream-model-\(getpid()).safetensors"
        let r = try run(["convert", pth, "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        convertedModel = out
        return out
    }

    override class func tearDown() {
        if let m = convertedModel { try? FileManager.default.removeItem(atPath: m) }
        convertedModel = nil
        super.tearDown()
    }

    static func valImage(_ k: Int) throws -> String {
        try Shared.require("data/shapes-val/images/shapes_777_0000\(k).jpg")
    }

    static func jsonLines(_ s: String) throws -> [[String: Any]] {
        try s.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
    }

    /// A detection without the keys that name the input (image_id, file_name).
    static func content(_ d: [String: Any]) -> NSDictionary {
        var c = d
        c["image_id"] = nil; c["file_name"] = nil
        return c as NSDictionary
    }

    /// Results JSON of `detect --json` on files, grouped by file name.
    func detectFiles(_ files: [String], _ extra: [String] = []) throws -> [String: [NSDictionary]] {
        let json = tmp + "/files-\(UInt32.random(in: 0...UInt32.max)).json"
        let r = try StreamCLITests.run(["detect", "--model", try StreamCLITests.model(), "--json", json] + extra + files)
        XCTAssertEqual(r.status, 0, r.err)
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]])
        var out: [String: [NSDictionary]] = [:]
        for f in files { out[(f as NSString).lastPathComponent] = [] }
        for d in arr { out[d["file_name"] as! String, default: []].append(StreamCLITests.content(d)) }
        return out
    }

    func detections(_ line: [String: Any]) -> [NSDictionary]? {
        (line["detections"] as? [[String: Any]])?.map(StreamCLITests.content)
    }

    /// Acceptance: `cat a.jpg b.jpg c.jpg | edge-mrcnn detect --model M --jsonl - -` prints three
    /// lines whose detections equal `detect --json` on the three files.
    func testFramesOnStdinEqualFiles() throws {
        let files = try (0..<3).map { try StreamCLITests.valImage($0) }
        let expected = try detectFiles(files)
        let stream = try files.reduce(Data()) { $0 + (try Data(contentsOf: URL(fileURLWithPath: $1))) }
        let r = try StreamCLITests.run(["detect", "--model", try StreamCLITests.model(), "--jsonl", "-", "-"], stdin: stream)
        XCTAssertFalse(r.crashed)
        XCTAssertEqual(r.status, 0, r.err)
        let lines = try StreamCLITests.jsonLines(r.out)
        XCTAssertEqual(lines.count, 3, r.out)
        for (k, l) in lines.enumerated() {
            XCTAssertEqual(l["frame"] as? Int, k + 1)
            XCTAssertEqual(l["file_name"] as? String, "-")
            XCTAssertNotNil(l["time_ms"] as? Double)
            let dets = try XCTUnwrap(detections(l))
            XCTAssertFalse(dets.isEmpty)
            XCTAssertEqual(dets, expected[(files[k] as NSString).lastPathComponent], "frame \(k + 1)")
            for d in (l["detections"] as? [[String: Any]]) ?? [] { XCTAssertEqual(d["image_id"] as? Int, k + 1) }
        }
        XCTAssertTrue(r.err.contains("standard input: 3 frames, 3 processed, 0 failed"), r.err)
        // without --jsonl the frames give the results JSON array on standard output
        let a = try StreamCLITests.run(["detect", "--model", try StreamCLITests.model(), "-"], stdin: stream)
        XCTAssertEqual(a.status, 0, a.err)
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(a.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(arr.count, expected.values.reduce(0) { $0 + $1.count })
    }

    /// Acceptance: a corrupt middle frame gives an error line, the third frame is still
    /// processed, exit status 1. Cut short (inside its data) and broken in its headers.
    func testCorruptMiddleFrame() throws {
        let files = try (0..<3).map { try StreamCLITests.valImage($0) }
        let expected = try detectFiles([files[0], files[2]])
        let data = try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let broken: [(String, Data)] = [
            ("cut short", data[1].prefix(data[1].count / 2)),
            ("garbage after SOI", Data([0xFF, 0xD8]) + Data("not a JPEG header".utf8) + data[1].suffix(100)),
            ("no image in it", Data([0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x04, 0x41, 0x42, 0xFF, 0xD9])),
        ]
        for (what, middle) in broken {
            let jsonl = tmp + "/out.jsonl"
            let r = try StreamCLITests.run(["detect", "--model", try StreamCLITests.model(), "--jsonl", jsonl, "-"],
                                           stdin: data[0] + middle + data[2])
            XCTAssertFalse(r.crashed, what)
            XCTAssertEqual(r.status, 1, "\(what): \(r.err)")
            let lines = try StreamCLITests.jsonLines(try String(contentsOfFile: jsonl, encoding: .utf8))
            XCTAssertEqual(lines.count, 3, what)
            XCTAssertEqual(lines.map { $0["frame"] as? Int }, [1, 2, 3], what)
            XCTAssertEqual(detections(lines[0]), expected[(files[0] as NSString).lastPathComponent], what)
            let msg = try XCTUnwrap(lines[1]["error"] as? String, what)
            XCTAssertTrue(msg.hasPrefix("frame 2: "), msg)
            XCTAssertNil(lines[1]["detections"])
            XCTAssertEqual(detections(lines[2]), expected[(files[2] as NSString).lastPathComponent], what)
            let errLines = r.err.split(separator: "\n").filter { $0.hasPrefix("edge-mrcnn: ") }
            XCTAssertEqual(errLines, ["edge-mrcnn: " + msg], "\(what): \(r.err)")
            XCTAssertTrue(r.err.contains("3 frames, 2 processed, 1 failed"), r.err)
        }
    }

    /// --jsonl for files and folders (one line per image, errors too); when every input failed
    /// --json leaves no file (exit 1) and standard output gets no array, while a JSON Lines file
    /// keeps its error lines.
    func testJSONLinesForFilesAndAllFailed() throws {
        let good = try StreamCLITests.valImage(3)
        let dir = tmp + "/imgs"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: good, toPath: dir + "/a.jpg")
        try Data("not a jpeg".utf8).write(to: URL(fileURLWithPath: dir + "/b.jpg"))
        let model = try StreamCLITests.model()
        let expected = try detectFiles([good])
        var r = try StreamCLITests.run(["detect", "--model", model, "--jsonl", tmp + "/o.jsonl", "--json", tmp + "/o.json", dir])
        XCTAssertEqual(r.status, 1, r.err)
        let lines = try StreamCLITests.jsonLines(try String(contentsOfFile: tmp + "/o.jsonl", encoding: .utf8))
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0]["file_name"] as? String, "a.jpg")
        XCTAssertEqual(detections(lines[0]), expected[(good as NSString).lastPathComponent])
        XCTAssertEqual(lines[1]["file_name"] as? String, "b.jpg")
        XCTAssertTrue((lines[1]["error"] as? String)?.hasPrefix(dir + "/b.jpg: ") ?? false, "\(lines[1])")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/o.json"))   // some succeeded: written

        let bad = dir + "/b.jpg"
        r = try StreamCLITests.run(["detect", "--model", model, "--json", tmp + "/all.json", "--jsonl", tmp + "/all.jsonl", bad, bad])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/all.json"), "a results file for zero images")
        XCTAssertTrue(r.err.contains("no results written to \(tmp)/all.json: every input failed"), r.err)
        let errs = try StreamCLITests.jsonLines(try String(contentsOfFile: tmp + "/all.jsonl", encoding: .utf8))
        XCTAssertEqual(errs.count, 2)
        XCTAssertTrue(errs.allSatisfy { $0["error"] != nil })
        r = try StreamCLITests.run(["detect", "--model", model, bad])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.out, "", "no results array on standard output when every input failed")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: tmp).contains { $0.contains(".tmp-") })
    }

    /// --mask-thresh, --no-masks, --classes-only: boxes and scores as without them, masks only
    /// where asked (the same masks), classes filtered.
    func testMaskAndClassOptions() throws {
        let image = try StreamCLITests.valImage(4)
        let name = (image as NSString).lastPathComponent
        let all = try XCTUnwrap(detectFiles([image])[name])
        XCTAssertTrue(all.contains { ($0["score"] as! Double) >= 0.5 } && all.contains { ($0["score"] as! Double) < 0.5 })
        func noMask(_ d: NSDictionary) -> NSDictionary { let m = d.mutableCopy() as! NSMutableDictionary; m["segmentation"] = nil; return m }

        let thresh = try XCTUnwrap(detectFiles([image], ["--mask-thresh", "0.5"])[name])
        XCTAssertEqual(thresh.count, all.count)
        for (a, t) in zip(all, thresh) {
            if (a["score"] as! Double) >= 0.5 { XCTAssertEqual(a, t) } else { XCTAssertEqual(noMask(a), t) }
        }
        let none = try XCTUnwrap(detectFiles([image], ["--no-masks", "--overlay-dir", tmp + "/ov"])[name])
        XCTAssertEqual(none, all.map(noMask))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/ov/" + name))

        let circles = try XCTUnwrap(detectFiles([image], ["--classes-only", "circle,triangle"])[name])
        XCTAssertEqual(circles, all.filter { ["circle", "triangle"].contains($0["category_name"] as! String) })
        XCTAssertFalse(circles.isEmpty)

        let model = try StreamCLITests.model()
        var r = try StreamCLITests.run(["detect", "--model", model, "--classes-only", "dog", image])
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertTrue(r.err.contains("no class 'dog'"), r.err)
        r = try StreamCLITests.run(["detect", "--model", model, "--no-masks", "--mask-thresh", "0.3", image])
        XCTAssertEqual(r.status, 2, r.err)
        r = try StreamCLITests.run(["detect", "--model", model, "--mask-thresh", "2", image])
        XCTAssertEqual(r.status, 2, r.err)
    }

    /// The hostile-input corpus as frames: each bad JPEG of Tests/Fixtures/bad/jpeg between two
    /// valid frames. No crash; the frames before and after it are processed; every error line
    /// names its frame; exit status 1 exactly when there is an error line. (Bytes that hold no
    /// SOI at all, e.g. a PNG or text, are no frame: skipped like multipart boundaries.)
    func testBadCorpusAsFrames() throws {
        let model = try StreamCLITests.model()
        let valid = Shared.fixture("bad/valid/")
        let first = try Data(contentsOf: URL(fileURLWithPath: valid + "one_by_one.jpg"))
        let last = try Data(contentsOf: URL(fileURLWithPath: valid + "grayscale.jpg"))
        let corpus = try BadInputCorpusTests.files("jpeg")
        XCTAssertGreaterThan(corpus.count, 10)
        for f in corpus {
            let name = (f as NSString).lastPathComponent
            let bad = try Data(contentsOf: URL(fileURLWithPath: f))
            // (a small network input keeps the many runs quick)
            let r = try StreamCLITests.run(["detect", "--model", model, "--min-size", "32", "--max-size", "48", "--jsonl", "-", "-"],
                                           stdin: first + bad + last)
            XCTAssertFalse(r.crashed, name)
            let lines = try StreamCLITests.jsonLines(r.out)
            XCTAssertGreaterThanOrEqual(lines.count, 2, name)
            XCTAssertEqual(lines.first?["frame"] as? Int, 1, name)
            XCTAssertNotNil(lines.first?["detections"], name)
            XCTAssertNotNil(lines.last?["detections"], "\(name): the frame after it was lost: \(r.err)")
            XCTAssertEqual(lines.last?["frame"] as? Int, lines.count, name)
            let errLines = r.err.split(separator: "\n").filter { $0.hasPrefix("edge-mrcnn: ") }
            let errors = lines.compactMap { $0["error"] as? String }
            XCTAssertEqual(errLines.map { String($0.dropFirst(12)) }, errors, name)
            for e in errors { XCTAssertTrue(e.hasPrefix("frame "), "\(name): \(e)") }
            XCTAssertEqual(r.status, errors.isEmpty ? 0 : 1, "\(name): \(r.err)")
            if !["empty_zero_bytes.jpg", "not_an_image_text.jpg", "not_an_image_html.jpeg", "png_named_jpg.jpg", "zeros_4k.jpg"].contains(name) {
                XCTAssertEqual(errors.count, 1, "\(name): \(r.err)")
            }
        }
    }

    /// SIGINT / SIGTERM end a camera stream cleanly: the frame in hand is finished, the results
    /// file is written, exit status 0. (Every wait is bounded.)
    func testSignalEndsTheStream() throws {
        let model = try StreamCLITests.model()
        let frame = try Data(contentsOf: URL(fileURLWithPath: try StreamCLITests.valImage(6)))
        for (mode, sig) in [([String](), "INT"), (["--drop-frames"], "TERM")] {
            let json = tmp + "/sig.json", jsonl = tmp + "/sig.jsonl"
            try? FileManager.default.removeItem(atPath: json); try? FileManager.default.removeItem(atPath: jsonl)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLITests.binary)
            p.arguments = ["detect", "--model", model, "--no-masks", "--json", json, "--jsonl", jsonl] + mode + ["-"]
            let input = Pipe(), err = Pipe()
            p.standardInput = input; p.standardOutput = FileHandle.nullDevice; p.standardError = err
            try p.run()
            input.fileHandleForWriting.write(frame)   // one frame; the pipe stays open
            var waited = 0.0
            while waited < 300, ((try? String(contentsOfFile: jsonl, encoding: .utf8)) ?? "").isEmpty, p.isRunning {
                usleep(100_000); waited += 0.1
            }
            XCTAssertTrue(p.isRunning, "\(mode): ended before the signal")
            if sig == "INT" { p.interrupt() } else { p.terminate() }
            waited = 0
            while p.isRunning && waited < 120 { usleep(100_000); waited += 0.1 }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); XCTFail("\(mode): still running after SIG\(sig)") }
            p.waitUntilExit()
            try? input.fileHandleForWriting.close()
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(p.terminationReason, .exit, "\(mode): \(e)")
            XCTAssertEqual(p.terminationStatus, 0, "\(mode): \(e)")
            XCTAssertTrue(e.contains("standard input: 1 frame, 1 processed, 0 failed") && e.contains("; stopped by a signal"), e)
            let arr = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]]
            XCTAssertFalse(arr?.isEmpty ?? true, "\(mode): the results file")
        }
    }

    func testStreamUsageMistakes() throws {
        let image = try StreamCLITests.valImage(0)
        for (args, what) in [(["-", image], "cannot be mixed"), ([image, "--drop-frames"], "--drop-frames applies"),
                             ([image, "--max-frame-mb", "2"], "--max-frame-mb applies"), (["-", "--annotations", "a.json"], "--annotations"),
                             (["-", "--max-frame-mb", "0"], "--max-frame-mb"), (["-", "--jsonl="], "--jsonl needs")] {
            let r = try StreamCLITests.run(["detect", "--model", "m.safetensors"] + args, stdin: Data())
            XCTAssertEqual(r.status, 2, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(what), "\(args): \(r.err)")
        }
        // an empty stream and a stream without any frame: one line, exit 1
        let model = try StreamCLITests.model()
        for input in [Data(), Data("--boundary\r\n\r\nno jpeg here".utf8)] {
            let r = try StreamCLITests.run(["detect", "--model", model, "--jsonl", "-", "-"], stdin: input)
            XCTAssertEqual(r.status, 1, r.err)
            XCTAssertEqual(r.out, "")
            XCTAssertTrue(r.err.contains("edge-mrcnn: standard input: no JPEG frame found (\(input.count) bytes read)"), r.err)
        }
    }

    /// A frame over --max-frame-mb is one error line and the next frame is processed; with
    /// --drop-frames the newest frame is always processed and drops are counted.
    func testOversizedFrameAndDropFrames() throws {
        let model = try StreamCLITests.model()
        // a noise image whose JPEG is over 1 MiB
        var rng: UInt32 = 1
        let w = 1000, h = 700
        let noise = RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { _ in rng = rng &* 1664525 &+ 1013904223; return UInt8(rng >> 24) })
        try writeJPEG(noise, path: tmp + "/big.jpg", quality: 100)
        let big = try Data(contentsOf: URL(fileURLWithPath: tmp + "/big.jpg"))
        XCTAssertGreaterThan(big.count, 1 << 20)
        let small = try Data(contentsOf: URL(fileURLWithPath: try StreamCLITests.valImage(5)))
        var r = try StreamCLITests.run(["detect", "--model", model, "--jsonl", "-", "--max-frame-mb", "1", "-"], stdin: big + small)
        XCTAssertEqual(r.status, 1, r.err)
        var lines = try StreamCLITests.jsonLines(r.out)
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue((lines[0]["error"] as? String)?.contains("larger than the limit of 1048576 bytes (--max-frame-mb)") ?? false, "\(lines[0])")
        XCTAssertNotNil(lines[1]["detections"])

        let frames = 6
        let stream = (0..<frames).reduce(Data()) { d, _ in d + small }
        r = try StreamCLITests.run(["detect", "--model", model, "--jsonl", "-", "--drop-frames", "--no-masks", "-"], stdin: stream)
        XCTAssertEqual(r.status, 0, r.err)
        lines = try StreamCLITests.jsonLines(r.out)
        XCTAssertEqual(lines.last?["frame"] as? Int, frames)
        let dropped = try XCTUnwrap(lines.last?["dropped"] as? Int)
        XCTAssertEqual(lines.count + dropped, frames)
        XCTAssertTrue(r.err.contains("standard input: \(frames) frames, \(lines.count) processed, 0 failed, \(dropped) dropped (--drop-frames)"), r.err)
    }
}
