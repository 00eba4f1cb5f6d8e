import Foundation
import XCTest
@testable import EdgeMRCNN

/// Helpers shared by the IO tests.
enum IOFix {
    static func path(_ name: String) -> String { Shared.fixture("io/" + name) }
    static func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path(name)))) }
    static func json(_ name: String) throws -> JSON {
        let b = try bytes(name)
        return try b.withUnsafeBytes { try JSON.parse($0) }
    }
    /// One folder per test process for the temporary files, removed when the process exits.
    static let tempDir: String = {
        let d = NSTemporaryDirectory() + "edge-mrcnn-io-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: IOFix.tempDir) }
        return d
    }()
    /// Writes `bytes` to a fresh temporary file and returns its path.
    static func temp(_ bytes: [UInt8], _ suffix: String = ".bin") throws -> String {
        let p = tempDir + "/\(UUID().uuidString)\(suffix)"
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
    static func floats(_ t: TensorView) -> [Float] { Array(UnsafeBufferPointer(start: t.floats, count: t.count)) }
    static func int64s(_ t: TensorView) -> [Int64] {
        Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Int64.self), count: t.count))
    }
}

func XCTAssertThrowsEdgeError(_ body: @autoclosure () throws -> Any, containing parts: [String],
                              file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an EdgeError containing \(parts)", file: file, line: line)
    } catch let e as EdgeError {
        for p in parts where !e.message.contains(p) {
            XCTFail("error '\(e.message)' does not contain '\(p)'", file: file, line: line)
        }
        XCTAssertFalse(e.message.contains("\n"), "error message has several lines", file: file, line: line)
    } catch {
        XCTFail("expected EdgeError, got \(error)", file: file, line: line)
    }
}

final class TorchCheckpointTests: XCTestCase {
    func checkAgainstExpected(_ sd: StateDict, _ expected: JSON) throws {
        guard case .object(let items) = expected else { return XCTFail("bad expected json") }
        XCTAssertEqual(sd.names, items.map { $0.0 })
        for (name, e) in items {
            guard let t = sd.tensor(name) else { XCTFail("missing \(name)"); continue }
            let shape = e["shape"]!.arrayValue!.map { $0.intValue! }
            XCTAssertEqual(t.shape, shape, name)
            let values = e["values"]!.arrayValue!
            if e["dtype"]!.stringValue! == "int64" {
                XCTAssertEqual(t.dtype, .i64, name)
                XCTAssertEqual(IOFix.int64s(t), values.map { Int64($0.intValue!) }, name)
            } else {
                XCTAssertEqual(t.dtype, .f32, name)
                XCTAssertEqual(IOFix.floats(t), values.map { Float($0.doubleValue!) }, name)
            }
        }
    }

    func testZipWithSeveralDTypesViewsSharedStorageAndScalars() throws {
        let sd = try TorchCheckpoint.load(path: IOFix.path("dtypes.pth"))
        try checkAgainstExpected(sd, try IOFix.json("expected.json")["dtypes"]!)
        XCTAssertEqual(sd.tensor("scalar")?.shape, [])
        XCTAssertEqual(IOFix.floats(sd.tensor("view")!), [0.5, 1.0, 2.5, 3.0, 4.5, 5.0])
    }

    func testLegacyFormat() throws {
        let sd = try TorchCheckpoint.load(path: IOFix.path("legacy.pth"))
        try checkAgainstExpected(sd, try IOFix.json("expected.json")["dtypes"]!)
    }

    func testNestedModelDict() throws {
        let sd = try TorchCheckpoint.load(path: IOFix.path("nested.pth"))
        try checkAgainstExpected(sd, try IOFix.json("expected.json")["nested"]!)
    }

    func testZipFromPythonZipfileWithoutPadding() throws {
        let sd = try TorchCheckpoint.load(path: IOFix.path("plainzip.pth"))
        XCTAssertEqual(IOFix.floats(sd.tensor("x")!), [1, 2, 3])
    }

    func testDeflatedEntryIsAClearError() {
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: IOFix.path("deflated.pth")),
                                 containing: ["deflated.pth", "compressed entries are not supported"])
    }

    func testShortStorage() {
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: IOFix.path("short.pth")),
                                 containing: ["short.pth", "shorter than declared"])
    }

    func testTorchvisionReferenceTrainingCheckpoint() throws {
        let sd = try TorchCheckpoint.load(path: IOFix.path("reference-ckpt.pth"))
        XCTAssertEqual(sd.names, ["weight", "bias"])
        XCTAssertEqual(sd.tensor("weight")?.shape, [2, 2])
    }

    func testWholeModulePickleIsRefused() {
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: IOFix.path("module.pth")),
                                 containing: ["module.pth", "unsupported pickle global 'torch.nn.modules.linear.Linear'", "state_dict"])
    }

    func testFlatZipAndUnsupportedDType() {
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: IOFix.path("flat.pth")), containing: ["flat.pth", "not in a top folder"])
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: IOFix.path("complex.pth")),
                                 containing: ["complex.pth", "tensor 'c'", "unsupported dtype ComplexFloatStorage"])
    }

    func testNotAZip() throws {
        let p = try IOFix.temp(Array("hello, this is not a checkpoint at all".utf8))
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: p), containing: [p, "not a torch checkpoint"])
        XCTAssertThrowsEdgeError(try ModelLoader.load(path: p), containing: [p, "not a model file"])
        XCTAssertThrowsEdgeError(try ModelLoader.load(path: "/nonexistent/x.pth"), containing: ["/nonexistent/x.pth", "cannot open"])
    }

    func testTruncatedZip() throws {
        let b = try IOFix.bytes("dtypes.pth")
        let p = try IOFix.temp(Array(b[0..<(b.count / 2)]))
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: p), containing: [p, "truncated"])
    }

    func testTruncatedLegacy() throws {
        let b = try IOFix.bytes("legacy.pth")
        let p = try IOFix.temp(Array(b[0..<(b.count - 10)]))
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: p), containing: [p, "truncated"])
    }

    func testMissingDataPkl() throws {
        var b = try IOFix.bytes("dtypes.pth")
        let needle = Array("dtypes/data.pkl".utf8)
        var i = 0
        while i + needle.count <= b.count {
            if Array(b[i..<(i + needle.count)]) == needle { b[i + needle.count - 1] = UInt8(ascii: "X") }
            i += 1
        }
        let p = try IOFix.temp(b)
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: p), containing: [p, "data.pkl"])
    }

    /// Every prefix of a checkpoint, and many corrupted copies, must throw (or load) but never crash.
    func testFuzzedCheckpointsNeverCrash() throws {
        for name in ["dtypes.pth", "legacy.pth"] {
            let b = try IOFix.bytes(name)
            let p = try IOFix.temp(b)
            for n in stride(from: 0, to: b.count, by: 7) {
                try Data(b[0..<n]).write(to: URL(fileURLWithPath: p))
                XCTAssertThrowsError(try TorchCheckpoint.load(path: p))
            }
            var rng = SeededRNG(seed: 0x5EED_0001)
            for _ in 0..<400 {
                var c = b
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    c[Int.random(in: 0..<c.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                try Data(c).write(to: URL(fileURLWithPath: p))
                _ = try? TorchCheckpoint.load(path: p)
            }
        }
    }
}

final class PickleTests: XCTestCase {
    func run(_ bytes: [UInt8], _ body: (PickleValue) throws -> Void = { _ in }) throws {
        try bytes.withUnsafeBytes { _ = try Pickle.load(ByteSpan($0, source: "test.pkl"), body) }
    }

    func testGeneralOpcodes() throws {
        // {'a': [1, -2, 3.5, None, True, 'x'], 'b': (300, 70000, 2**40)} with protocol 2 opcodes
        var b: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x28]
        b += [0x58, 1, 0, 0, 0, 0x61] + [0x5D, 0x71, 0x01, 0x28, 0x4B, 1, 0x4A] + [0xFE, 0xFF, 0xFF, 0xFF]
        b += [0x47] + withUnsafeBytes(of: (3.5 as Double).bitPattern.bigEndian) { Array($0) }
        b += [0x4E, 0x88, 0x8C, 1, 0x78, 0x65]
        b += [0x58, 1, 0, 0, 0, 0x62, 0x4D, 0x2C, 0x01, 0x4A, 0x70, 0x11, 0x01, 0x00, 0x8A, 6, 0, 0, 0, 0, 0, 1, 0x87]
        b += [0x75, 0x2E]
        try run(b) { v in
            guard case .dict(let d) = v, case .list(let l)? = d["a"], case .tuple(let t)? = d["b"] else { return XCTFail("\(v)") }
            XCTAssertEqual(l.items.count, 6)
            if case .int(let x) = l.items[1] { XCTAssertEqual(x, -2) } else { XCTFail() }
            if case .float(let x) = l.items[2] { XCTAssertEqual(x, 3.5) } else { XCTFail() }
            if case .int(let x) = t[2] { XCTAssertEqual(x, 1 << 40) } else { XCTFail() }
        }
    }

    /// Deep or cyclic structures must neither overflow the stack nor crash when released.
    func testDeepAndCyclicStructures() throws {
        // 100000 nested tuples: refused.
        var b: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 100_000) + [0x2E]
        XCTAssertThrowsEdgeError(try run(b), containing: ["nested deeper"])
        // A chain of 200000 lists built back to front through the memo, and a list that holds itself.
        let n = 200_000
        b = [0x80, 0x02]
        for i in 0..<n { b += [0x5D, 0x72] + withUnsafeBytes(of: UInt32(i).littleEndian) { Array($0) } + [0x30] }
        for i in stride(from: n - 1, to: 0, by: -1) {
            b += [0x6A] + withUnsafeBytes(of: UInt32(i - 1).littleEndian) { Array($0) }
            b += [0x6A] + withUnsafeBytes(of: UInt32(i).littleEndian) { Array($0) } + [0x61, 0x30]
        }
        b += [0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x30]
        b += [0x6A, 0, 0, 0, 0, 0x2E]
        try run(b) { v in
            guard case .list(let l) = v else { return XCTFail() }
            XCTAssertEqual(l.items.count, 1)
        }
    }

    func testUnsupportedGlobalIsNamed() {
        let b: [UInt8] = [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8) + [0x2E]
        XCTAssertThrowsEdgeError(try run(b), containing: ["test.pkl", "os.system"])
    }

    func testMalformedPickles() {
        XCTAssertThrowsEdgeError(try run([]), containing: ["test.pkl"])
        XCTAssertThrowsEdgeError(try run([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F]), containing: ["exceeds"])
        XCTAssertThrowsEdgeError(try run([0x80, 0x02, 0x6A, 9, 0, 0, 0, 0x2E]), containing: ["memo"])
        XCTAssertThrowsEdgeError(try run([0x80, 0x02, 0x74, 0x2E]), containing: ["MARK"])
        XCTAssertThrowsEdgeError(try run([0x80, 0x02, 0x73, 0x2E]), containing: ["underflow"])
        XCTAssertThrowsEdgeError(try run([0x80, 0x02, 0xFF]), containing: ["opcode 0xff"])
    }
}

final class SafeTensorsTests: XCTestCase {
    func testReadsFileWrittenByPythonSafetensors() throws {
        let s = try MappedTensorStore(path: IOFix.path("python.safetensors"))
        XCTAssertEqual(s.metadata["note"], "made by safetensors 0.8.0")
        let exp = try IOFix.json("python-safetensors-expected.json")
        guard case .object(let items) = exp else { return XCTFail() }
        XCTAssertEqual(Set(s.names), Set(items.map { $0.0 }))
        for (name, e) in items {
            let t = s.tensor(name)!
            XCTAssertEqual(t.shape, e["shape"]!.arrayValue!.map { $0.intValue! }, name)
            let values = e["values"]!.arrayValue!.map { $0.doubleValue! }
            switch t.dtype {
            case .f32: XCTAssertEqual(IOFix.floats(t).map(Double.init), values, name)
            case .i64: XCTAssertEqual(IOFix.int64s(t).map(Double.init), values, name)
            case .f16:
                let h = UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: UInt16.self), count: t.count)
                XCTAssertEqual(h.map { Double(TorchCheckpoint.halfToFloat($0)) }, values, name)
            default: XCTFail("unexpected dtype \(t.dtype)")
            }
        }
    }

    /// Our writer's output reads back identically; the same file is checked by hand with Python's
    /// safetensors: `tools/make_io_fixtures.py --check-ours /tmp/edge-mrcnn-io-roundtrip.safetensors`.
    func testWriterRoundTrip() throws {
        let exp = try IOFix.json("roundtrip-expected.json")
        let store = OwnedTensorStore()
        guard case .object(let tensors) = exp["tensors"]! else { return XCTFail() }
        for (name, e) in tensors.reversed() {
            store.addFloats(name, shape: e["shape"]!.arrayValue!.map { $0.intValue! },
                            e["values"]!.arrayValue!.map { Float($0.doubleValue!) })
        }
        var meta: [String: String] = [:]
        for (k, v) in exp["metadata"]!.objectValue! { meta[k] = v.stringValue! }
        let path = "/tmp/edge-mrcnn-io-roundtrip.safetensors"
        try SafeTensorsWriter.write(store, metadata: meta, to: path)
        let back = try MappedTensorStore(path: path)
        XCTAssertEqual(back.metadata, meta)
        XCTAssertEqual(Set(back.names), Set(store.names))
        let fileBase = Int(bitPattern: back.file.bytes.baseAddress!)
        let n = Int(try back.file.span.u64(0))
        XCTAssertEqual((8 + n) % 64, 0)
        XCTAssertEqual(back.file.bytes[8], UInt8(ascii: "{"))
        for name in store.names {
            let a = store.tensor(name)!, b = back.tensor(name)!
            XCTAssertEqual(a.shape, b.shape)
            XCTAssertEqual(IOFix.floats(a), IOFix.floats(b))
            if a.byteCount % 64 == 0 { XCTAssertEqual((Int(bitPattern: b.data) - fileBase) % 64, 0, name) }
        }
        // The header's first entry is __metadata__, then tensors in offset order (big first).
        let header = try back.file.span.string(8, n)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"format\":\"edge-mrcnn-test\",\"note\":\"round trip\"},\"big\":"), header)
    }

    func writeHeader(_ json: String, data: [UInt8], length: UInt64? = nil) throws -> String {
        let h = Array(json.utf8)
        var b = withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { Array($0) }
        b += h + data
        return try IOFix.temp(b, ".safetensors")
    }

    func testHeaderChecks() throws {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let eight = [UInt8](repeating: 0, count: 8)
        XCTAssertNoThrow(try MappedTensorStore(path: try writeHeader(ok, data: eight)))
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(ok, data: eight, length: 1000)),
                                 containing: ["invalid safetensors header length 1000"])
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(ok, data: eight, length: 1 << 40)),
                                 containing: ["too large"])
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try IOFix.temp([1, 2, 3])), containing: ["only 3 bytes"])
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(overlap, data: [UInt8](repeating: 0, count: 12))),
                                 containing: ["tensor 'b'", "overlaps"])
        let hole = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(hole, data: [UInt8](repeating: 0, count: 12))),
                                 containing: ["hole"])
        let unknown = #"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(unknown, data: eight)), containing: ["unknown dtype 'F33'"])
        let f8 = #"{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(f8, data: eight)), containing: ["unsupported dtype F8_E4M3"])
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(ok, data: eight + [0])), containing: ["not fully covered"])
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(ok, data: [0, 0, 0])), containing: ["truncated"])
        let size = #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(size, data: eight)), containing: ["needs 12"])
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader("{\"a\":", data: [])), containing: ["invalid JSON"])
        let meta = #"{"__metadata__":{"x":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertThrowsEdgeError(try MappedTensorStore(path: try writeHeader(meta, data: eight)), containing: ["not a string"])
    }

    func testFuzzedHeadersNeverCrash() throws {
        let b = try IOFix.bytes("python.safetensors")
        let p = try IOFix.temp(b)
        for n in 0..<b.count {
            try Data(b[0..<n]).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try MappedTensorStore(path: p))
        }
        var rng = SeededRNG(seed: 0x5EED_0002)
        for _ in 0..<500 {
            var c = b
            c[Int.random(in: 0..<min(c.count, 200), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            try Data(c).write(to: URL(fileURLWithPath: p))
            _ = try? MappedTensorStore(path: p)
        }
    }
}

final class JSONTests: XCTestCase {
    func testRoundTrip() throws {
        let text = #"{"a":[1,-2,3.5,1e-05,true,false,null],"b":{"c":"x\"y\\z\n\u0001é😀"},"d":[]}"#
        let v = try JSON.parse(text)
        XCTAssertEqual(v["b"]?["c"]?.stringValue, "x\"y\\z\n\u{1}é😀")
        XCTAssertEqual(try JSON.parse(v.serialized()), v)
        XCTAssertEqual(v.serialized(), text)
        XCTAssertEqual(try JSON.parse(#""\ud83d\ude00""#).stringValue, "😀")
    }

    func testNumbers() throws {
        XCTAssertEqual(JSON.float(0.1).serialized(), "0.1")
        XCTAssertEqual(JSON.double(0.1).serialized(), "0.1")
        XCTAssertEqual(JSON.float(3).serialized(), "3")
        XCTAssertEqual(JSON.double(.nan).serialized(), "null")
        XCTAssertEqual(JSON.double(1e300).serialized(), "1e+300")
        for x in [0.1, 1.0 / 3, 123456.789, 5e-324, -2.5e-8] {
            XCTAssertEqual(try JSON.parse(JSON.double(x).serialized()).doubleValue, x)
        }
        XCTAssertEqual(try JSON.parse("12345678901").intValue, 12345678901)
    }

    func testLoadFileAndErrorsNameIt() throws {
        let p = try IOFix.temp(Array(#"{"images":[{"id":1,"w":640}],"x":-12345678901234567890}"#.utf8), ".json")
        let j = try JSON.load(path: p)
        XCTAssertEqual(j["images"]?.arrayValue?.first?["w"]?.intValue, 640)
        XCTAssertEqual(j["x"]?.doubleValue, -12345678901234567890.0)
        let bad = try IOFix.temp(Array(#"{"a": [1, 2,, 3]}"#.utf8), ".json")
        XCTAssertThrowsEdgeError(try JSON.load(path: bad), containing: [bad, "invalid JSON at byte 12"])
    }

    func testStrictErrors() {
        for bad in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"\u{01}\"", "tru", "[1] x", "{'a':1}", "\"\\x\"",
                    "\"\\ud800\"", "NaN"] {
            XCTAssertThrowsEdgeError(try JSON.parse(bad), containing: ["invalid JSON at byte"])
        }
        XCTAssertThrowsEdgeError(try JSON.parse(String(repeating: "[", count: 10000)), containing: ["nesting"])
    }
}

final class ModelConfigMetadataTests: XCTestCase {
    func testRoundTrip() throws {
        var c = ModelConfig(numClasses: 4, classNames: ["__background__", "circle", "sq,uare", "tri\"angle"], minSize: 256, maxSize: 416)
        c.imageStd = [0.25, 0.5, 1]
        let m = c.metadata()
        XCTAssertEqual(m["format"], "edge-mrcnn")
        XCTAssertEqual(m["image_mean"], "0.485,0.456,0.406")
        XCTAssertEqual(try ModelConfig(metadata: m, source: "x"), c)
        var bad = m
        bad["num_classes"] = "5"
        XCTAssertThrowsEdgeError(try ModelConfig(metadata: bad, source: "x.safetensors"), containing: ["x.safetensors", "class_names"])
        bad = m
        bad["format"] = nil
        XCTAssertThrowsEdgeError(try ModelConfig(metadata: bad, source: "x.safetensors"), containing: ["'format' is missing"])
    }
}

final class IoSelfCheckTests: XCTestCase {
    func testIoSelfChecksPass() {
        XCTAssertEqual(SelfTest.ioChecks.count, 4)
        for c in SelfTest.ioChecks { XCTAssertNoThrow(try c.run(), c.name) }
    }
}

final class Zip64Tests: XCTestCase {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8((v >> (8 * $0)) & 0xFF) } }

    /// A zip whose central directory gives sizes and offsets only through ZIP64 extra fields,
    /// with a ZIP64 end record and locator, read back through the torch loader.
    func testZip64ExtraFields() throws {
        let src = try MappedFile(path: IOFix.path("plainzip.pth"))
        let zin = try ZipArchive(src.span)
        var files: [(String, [UInt8])] = []
        for e in zin.entries {
            let d = try zin.data(e)
            files.append((e.name.replacingOccurrences(of: "foo/", with: "z64/"), Array(d.raw)))
        }
        var out: [UInt8] = []
        var central: [UInt8] = []
        for (name, data) in files {
            let off = out.count
            let n = Array(name.utf8)
            out += le32(0x04034B50) + le16(45) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
            out += le32(data.count) + le32(data.count) + le16(n.count) + le16(0) + n + data
            let extra = le16(1) + le16(24) + le64(data.count) + le64(data.count) + le64(off)
            central += le32(0x02014B50) + le16(45) + le16(45) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
            central += le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) + le16(n.count) + le16(extra.count) + le16(0)
            central += le16(0) + le16(0) + le32(0) + le32(0xFFFF_FFFF) + n + extra
        }
        let cdOff = out.count
        out += central
        let z64 = out.count
        out += le32(0x06064B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
        out += le64(files.count) + le64(files.count) + le64(central.count) + le64(cdOff)
        out += le32(0x07064B50) + le32(0) + le64(z64) + le32(1)
        out += le32(0x06054B50) + le16(0) + le16(0) + le16(0xFFFF) + le16(0xFFFF) + le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) + le16(0)
        let p = try IOFix.temp(out, ".pth")
        let sd = try TorchCheckpoint.load(path: p)
        XCTAssertEqual(IOFix.floats(sd.tensor("x")!), [1, 2, 3])
        // A lying zip64 record offset is an error, not a crash.
        var bad = out
        let loc = out.count - 22 - 20
        bad.replaceSubrange((loc + 8)..<(loc + 16), with: le64(1 << 40))
        XCTAssertThrowsEdgeError(try TorchCheckpoint.load(path: try IOFix.temp(bad, ".pth")), containing: ["zip64"])
    }
}
