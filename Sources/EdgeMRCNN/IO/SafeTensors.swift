// safetensors: writer (64-byte aligned data buffer, big tensors first, __metadata__ first,
// atomic rename) and a memory-mapped reader with every layout check of the format.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Tensors of a safetensors file, memory-mapped (no copy unless a tensor is misaligned for its dtype).
public final class MappedTensorStore: TensorStore {
    public let path: String
    public let names: [String]
    public let metadata: [String: String]
    public let file: MappedFile
    private let views: [String: TensorView]
    private var owned: [UnsafeMutableRawPointer] = []

    deinit { for p in owned { p.deallocate() } }

    public func tensor(_ name: String) -> TensorView? { views[name] }

    /// Known safetensors dtype names that edge-mrcnn cannot hold.
    static let otherDTypes: Set<String> = ["F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
                                           "F8_E5M2FNUZ", "U16", "U32", "U64", "C64", "F4"]
    public static let maxHeader = 100_000_000

    /// Where each tensor of a safetensors file lies, after every check of the format.
    public struct Layout {
        public var metadata: [String: String]
        /// In header order; begin/end are offsets into the data section.
        public var tensors: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)]
        /// File offset of the data section.
        public var dataStart: Int
    }

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let span = file.span
        let layout = try MappedTensorStore.layout(span)
        let list = layout.tensors, dataStart = layout.dataStart
        var v: [String: TensorView] = [:]
        let base = span.raw.baseAddress
        for t in list {
            guard let base else {
                // An empty data section: every tensor has 0 elements.
                let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
                owned.append(p)
                v[t.name] = TensorView(name: t.name, dtype: t.dtype, shape: t.shape, data: UnsafeRawPointer(p))
                continue
            }
            var ptr = base + dataStart + t.begin
            if Int(bitPattern: ptr) % t.dtype.byteSize != 0 {
                let p = UnsafeMutableRawPointer.allocate(byteCount: max(t.end - t.begin, 1), alignment: 64)
                p.copyMemory(from: ptr, byteCount: t.end - t.begin)
                owned.append(p)
                ptr = UnsafeRawPointer(p)
            }
            v[t.name] = TensorView(name: t.name, dtype: t.dtype, shape: t.shape, data: ptr)
        }
        views = v
        names = list.map { $0.name }
        metadata = layout.metadata
    }

    /// Reads and checks the header of the safetensors bytes `span`: every tensor's bytes lie
    /// inside the span, and together they tile the data section exactly. Errors name span.source.
    public static func layout(_ span: ByteSpan) throws -> Layout {
        let path = span.source
        func fail(_ m: String) -> EdgeError { EdgeError(file: path, m) }
        guard span.count >= 8 else { throw fail("not a safetensors file: only \(span.count) bytes (the header length alone takes 8)") }
        let n64 = try span.u64(0)
        guard n64 <= UInt64(MappedTensorStore.maxHeader) else { throw fail("safetensors header length \(n64) is too large (limit 100000000)") }
        let n = Int(n64)
        guard n <= span.count - 8 else {
            throw fail("invalid safetensors header length \(n): the file has only \(span.count - 8) bytes after the length field")
        }
        let header: JSON
        do {
            header = try JSON.parse(UnsafeRawBufferPointer(rebasing: span.raw[8..<(8 + n)]), maxDepth: 64)
        } catch let e as EdgeError {
            throw fail("safetensors header: \(e.message)")
        }
        guard case .object(let items) = header else { throw fail("safetensors header is not a JSON object") }
        let dataStart = 8 + n
        let dataCount = span.count - dataStart
        var meta: [String: String] = [:]
        var seen = Set<String>()
        var list: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (key, v) in items {
            guard seen.insert(key).inserted else { throw fail("duplicate key '\(key)' in the safetensors header") }
            if key == "__metadata__" {
                guard case .object(let kv) = v else { throw fail("__metadata__ is not a JSON object") }
                for (mk, mv) in kv {
                    guard case .string(let s) = mv else { throw fail("__metadata__ value of '\(mk)' is not a string") }
                    meta[mk] = s
                }
                continue
            }
            guard case .object = v else { throw fail("tensor '\(key)': header entry is not an object") }
            guard let dts = v["dtype"]?.stringValue else { throw fail("tensor '\(key)': missing or non-string dtype") }
            guard let dt = DType(rawValue: dts) else {
                if MappedTensorStore.otherDTypes.contains(dts) { throw fail("tensor '\(key)': unsupported dtype \(dts)") }
                throw fail("tensor '\(key)': unknown dtype '\(dts)'")
            }
            guard let sh = v["shape"]?.arrayValue else { throw fail("tensor '\(key)': missing shape") }
            var shape: [Int] = []
            for d in sh {
                guard case .int(let x) = d, x >= 0 else { throw fail("tensor '\(key)': shape \(JSON.array(sh).serialized()) is invalid") }
                shape.append(x)
            }
            guard let offs = v["data_offsets"]?.arrayValue, offs.count == 2,
                  case .int(let b) = offs[0], case .int(let e) = offs[1], b >= 0, e >= b else {
                throw fail("tensor '\(key)': invalid data_offsets")
            }
            guard let numel = TorchCheckpoint.checkedProduct(shape),
                  case let (bytes, o) = numel.multipliedReportingOverflow(by: dt.byteSize), !o else {
                throw fail("tensor '\(key)': shape \(shape) overflows")
            }
            guard e - b == bytes else {
                throw fail("tensor '\(key)': data_offsets [\(b), \(e)] span \(e - b) bytes but \(dts) \(shape) needs \(bytes)")
            }
            list.append((key, dt, shape, b, e))
        }
        // Offsets must tile [0, dataCount) exactly.
        let sorted = list.sorted { $0.begin != $1.begin ? $0.begin < $1.begin : $0.end < $1.end }
        var expect = 0
        for t in sorted {
            guard t.begin == expect else {
                throw fail("tensor '\(t.name)': invalid offset \(t.begin) (expected \(expect)): "
                    + (t.begin < expect ? "overlaps the previous tensor" : "leaves a hole"))
            }
            expect = t.end
        }
        guard expect == dataCount else {
            if expect > dataCount {
                throw fail("safetensors data needs \(expect) bytes but the file holds \(dataCount) after the header (truncated?)")
            }
            throw fail("safetensors file not fully covered: \(dataCount - expect) trailing bytes after the last tensor")
        }
        return Layout(metadata: meta, tensors: list, dataStart: dataStart)
    }
}

public enum SafeTensorsWriter {
    /// Writes the tensors `names` (default: all) of `store` with `metadata` to `path` (through a
    /// temporary file that is renamed at the end). Tensors whose byte size is a multiple of 64 come
    /// first, largest first, so every one of them starts on a 64-byte boundary of the file.
    public static func write(_ store: TensorStore, names: [String]? = nil, metadata: [String: String],
                             to path: String) throws {
        var views: [TensorView] = []
        for n in names ?? store.names {
            guard let t = store.tensor(n) else { throw EdgeError(file: path, "cannot write missing tensor '\(n)'") }
            views.append(t)
        }
        guard Set(views.map { $0.name }).count == views.count else { throw EdgeError(file: path, "duplicate tensor names") }
        views.sort { a, b in
            let ab = a.byteCount, bb = b.byteCount
            let a64 = ab % 64 == 0, b64 = bb % 64 == 0
            if a64 != b64 { return a64 }
            if ab != bb { return ab > bb }
            return a.name < b.name
        }
        var entries: [(String, JSON)] = []
        if !metadata.isEmpty {
            entries.append(("__metadata__", .object(metadata.keys.sorted().map { ($0, JSON.string(metadata[$0]!)) })))
        }
        var off = 0
        for t in views {
            let b = t.byteCount
            entries.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("data_offsets", .array([.int(off), .int(off + b)])),
            ])))
            off += b
        }
        var header: [UInt8] = []
        JSON.object(entries).write(to: &header)
        while (8 + header.count) % 64 != 0 { header.append(0x20) }

        // Output/AtomicFile: a temporary name, fsync, rename; removed on any error.
        let file = try AtomicFile(path: path)
        do {
            var len = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &len) { try file.write($0) }
            try header.withUnsafeBytes { try file.write($0) }
            for t in views where t.byteCount > 0 { try file.write(UnsafeRawBufferPointer(start: t.data, count: t.byteCount)) }
            try file.commit()
        } catch {
            file.abort()
            throw error
        }
    }
}
