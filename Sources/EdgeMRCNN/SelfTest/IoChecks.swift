// Self-test checks of the io area (see SelfTest.swift): no files needed.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension SelfTest {
    static var ioChecks: [SelfCheck] {
        [
            SelfCheck("io: pickle VM on a small torch-like pickle") {
                // OrderedDict() with one item 'w' -> _rebuild_tensor_v2(storage '0', 1, (2,), (1,), False, OrderedDict())
                var b: [UInt8] = [0x80, 0x02, 0x63] + Array("collections\nOrderedDict\n".utf8) + [0x71, 0x00, 0x29, 0x52]
                b += [0x58, 1, 0, 0, 0, UInt8(ascii: "w"), 0x63] + Array("torch._utils\n_rebuild_tensor_v2\n".utf8)
                b += [0x28, 0x28, 0x58, 7, 0, 0, 0] + Array("storage".utf8) + [0x63] + Array("torch\nFloatStorage\n".utf8)
                b += [0x58, 1, 0, 0, 0, UInt8(ascii: "0"), 0x58, 3, 0, 0, 0] + Array("cpu".utf8) + [0x4B, 3, 0x74, 0x51]
                b += [0x4B, 1, 0x4B, 2, 0x85, 0x4B, 1, 0x85, 0x89, 0x68, 0x00, 0x29, 0x52, 0x74, 0x52, 0x73, 0x2E]
                let t = try b.withUnsafeBytes { raw in
                    try Pickle.load(ByteSpan(raw, source: "selftest.pkl")) { v -> TensorRef in
                        guard case .dict(let d) = v, case .tensor(let t)? = d["w"] else { throw EdgeError("check failed: pickle gave \(v.kind)") }
                        return t
                    }.0
                }
                try expect(t.storage.key == "0" && t.storage.numel == 3 && t.offset == 1 && t.shape == [2] && t.stride == [1],
                           "pickle tensor fields")
                let sd = StateDict()
                let storage: [Float] = [10, 20, 30]
                try storage.withUnsafeBytes { raw in
                    try TorchCheckpoint.materialize(name: "w", t, blob: ByteSpan(raw, source: "selftest"), into: sd, source: "selftest")
                    let w = sd.tensor("w")!
                    try expect(w.floats[0] == 20 && w.floats[1] == 30, "tensor view with storage offset")
                }
                // A pickle naming the global os.system must be refused by the reader, with an error
                // naming it. (The outcome is recorded first and checked after the do/catch, so this
                // check's own failure cannot be mistaken for the reader's refusal.)
                let bad: [UInt8] = [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8) + [0x2E]
                var refusal: String? = nil
                do {
                    _ = try bad.withUnsafeBytes { try Pickle.load(ByteSpan($0, source: "selftest.pkl")) { _ in () } }
                } catch let e as EdgeError {
                    refusal = e.message
                }
                try expect(refusal != nil, "the pickle global os.system was accepted")
                try expect(refusal!.contains("unsupported pickle global 'os.system'"),
                           "os.system refused with an unexpected message: \(refusal!)")
            },
            SelfCheck("io: safetensors write + read round trip") {
                let s = OwnedTensorStore()
                s.addFloats("a", shape: [2, 8], (0..<16).map { Float($0) * 0.5 })
                s.addFloats("b", shape: [3], [1, -2, 3])
                s.addFloats("c", shape: [], [7])
                let path = "/tmp/edge-mrcnn-selftest-\(getpid()).safetensors"
                defer { unlink(path) }
                try SafeTensorsWriter.write(s, metadata: ["k": "v"], to: path)
                let r = try MappedTensorStore(path: path)
                try expect(r.metadata == ["k": "v"], "metadata round trip")
                for n in ["a", "b", "c"] {
                    let x = s.tensor(n)!, y = r.tensor(n)!
                    try expect(x.shape == y.shape, "shape of \(n)")
                    for i in 0..<x.count { try expect(x.floats[i] == y.floats[i], "value \(i) of \(n)") }
                }
                try expect((Int(bitPattern: r.tensor("a")!.data) - Int(bitPattern: r.file.bytes.baseAddress!)) % 64 == 0,
                           "64-byte alignment")
            },
            SelfCheck("io: JSON round trip") {
                let text = #"{"a":[1,-2,0.1,1e-05,true,null],"s":"q\"\\\n\u0001é"}"#
                let v = try JSON.parse(text)
                try expect(v.serialized() == text, "JSON serialization: \(v.serialized())")
                try expect(JSON.float(0.1).serialized() == "0.1", "shortest float")
                var refusal: String? = nil
                do { _ = try JSON.parse("[1,]") } catch let e as EdgeError { refusal = e.message }
                try expect(refusal?.contains("invalid JSON") ?? false, "[1,] accepted or refused oddly: \(refusal ?? "accepted")")
            },
            SelfCheck("io: config metadata round trip") {
                let c = ModelConfig(numClasses: 3, classNames: ["bg", "a,b", "c\"d"], minSize: 320, maxSize: 512)
                try expect(try ModelConfig(metadata: c.metadata(), source: "selftest") == c, "config metadata")
            },
        ]
    }
}
