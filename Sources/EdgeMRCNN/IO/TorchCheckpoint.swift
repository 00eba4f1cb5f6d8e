// torch.save checkpoints (zip format and the legacy pre-1.6 format) -> a state dict of contiguous
// tensors. Floating tensors become F32 (from F32/F16/BF16/F64); integer tensors keep their dtype.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A state dict: name -> contiguous tensor. Contiguous, aligned F32 tensors point straight into the
/// mapped file; everything else is converted into buffers owned by this object.
public final class StateDict: TensorStore {
    public private(set) var names: [String] = []
    public var metadata: [String: String] = [:]
    private var entries: [String: TensorView] = [:]
    private var owned: [UnsafeMutableRawPointer] = []
    private var keepAlive: [AnyObject] = []

    public init() {}
    deinit { for p in owned { p.deallocate() } }

    public func tensor(_ name: String) -> TensorView? { entries[name] }
    public var count: Int { names.count }

    func retain(_ o: AnyObject) { keepAlive.append(o) }

    /// Adds a tensor whose memory is owned elsewhere (kept alive through `retain`).
    func addView(_ name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer) {
        if entries[name] == nil { names.append(name) }
        entries[name] = TensorView(name: name, dtype: dtype, shape: shape, data: data)
    }

    /// Allocates an owned buffer of `bytes` bytes for `name` (64-byte aligned) and registers it.
    func allocate(_ name: String, dtype: DType, shape: [Int], bytes: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        owned.append(p)
        addView(name, dtype: dtype, shape: shape, data: UnsafeRawPointer(p))
        return p
    }
}

public enum TorchCheckpoint {
    /// The 10 little-endian bytes of the legacy magic number 0x1950A86A20F9469CFC6C.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    public static func isZip(_ s: ByteSpan) -> Bool { s.hasPrefix(ZipArchive.localMagic) }
    public static func isLegacy(_ s: ByteSpan) -> Bool { s.hasPrefix([0x80, 0x02, 0x8A, 0x0A] + legacyMagic) }

    /// Loads a .pth file (zip or legacy) into a state dict.
    public static func load(path: String) throws -> StateDict {
        try load(file: try MappedFile(path: path))
    }

    /// Loads a mapped .pth file (zip or legacy) into a state dict (which keeps the mapping alive).
    public static func load(file: MappedFile) throws -> StateDict {
        let path = file.path
        let span = file.span
        let sd: StateDict
        if isZip(span) {
            sd = try loadZip(span)
        } else if isLegacy(span) {
            sd = try loadLegacy(span)
        } else {
            throw EdgeError(file: path, "not a torch checkpoint (neither a zip archive nor a legacy torch pickle)")
        }
        sd.retain(file)
        return sd
    }

    static func loadZip(_ span: ByteSpan) throws -> StateDict {
        let src = span.source
        let zip = try ZipArchive(span)
        guard let first = zip.entries.first else { throw EdgeError(file: src, "the zip archive is empty") }
        guard let slash = first.name.firstIndex(of: "/") else {
            throw EdgeError(file: src, "zip entry '\(first.name)' is not in a top folder (not a torch.save file)")
        }
        let top = String(first.name[..<slash])
        guard let pkl = zip.entry(top + "/data.pkl") else {
            throw EdgeError(file: src, "no '\(top)/data.pkl' in the zip archive (not a torch.save file)")
        }
        if let bo = zip.entry(top + "/byteorder") {
            let s = try zip.data(bo)
            let v = try s.string(0, s.count)
            if v != "little" { throw EdgeError(file: src, "byte order '\(v)' is not supported") }
        }
        let pspan = try zip.data(pkl)
        let (tensors, _) = try Pickle.load(pspan, what: "\(top)/data.pkl") { try findTensors($0, source: src) }
        let sd = StateDict()
        try materializeAll(tensors, into: sd, source: src) { ref in
            guard let e = zip.entry("\(top)/data/\(ref.key)") else {
                throw EdgeError(file: src, "storage '\(ref.key)' missing: no entry '\(top)/data/\(ref.key)'")
            }
            return try zip.data(e)
        }
        return sd
    }

    static func loadLegacy(_ span: ByteSpan) throws -> StateDict {
        let src = span.source
        let (_, p1) = try Pickle.load(span, start: 0, what: "legacy magic") { _ in () }
        let (proto, p2) = try Pickle.load(span, start: p1, what: "legacy protocol") { v -> Int? in
            if case .int(let i) = v { return i }
            return nil
        }
        guard proto == 1001 else { throw EdgeError(file: src, "unsupported legacy protocol version") }
        let (bigEndian, p3) = try Pickle.load(span, start: p2, what: "legacy sys_info") { v -> Bool in
            if case .dict(let d) = v, case .bool(false)? = d["little_endian"] { return true }
            return false
        }
        if bigEndian { throw EdgeError(file: src, "big-endian legacy checkpoints are not supported") }
        var elementSize: [String: Int] = [:]
        let (tensors, p4) = try Pickle.load(span, start: p3, what: "legacy object") { v -> [(String, TensorRef)] in
            // Element sizes of every storage in the object (an optimizer's too), to skip their data.
            var seen = Set<ObjectIdentifier>()
            func scan(_ v: PickleValue, _ depth: Int) {
                guard depth < 300 else { return }
                switch v {
                case .tensor(let t): elementSize[t.storage.key] = t.storage.type.elementSize
                case .storage(let s): elementSize[s.key] = s.type.elementSize
                case .dict(let d):
                    guard seen.insert(ObjectIdentifier(d)).inserted else { return }
                    for (_, x) in d.items { scan(x, depth + 1) }
                case .list(let l):
                    guard seen.insert(ObjectIdentifier(l)).inserted else { return }
                    for x in l.items { scan(x, depth + 1) }
                case .tuple(let t): for x in t { scan(x, depth + 1) }
                default: break
                }
            }
            scan(v, 0)
            return try findTensors(v, source: src)
        }
        let (keys, p5) = try Pickle.load(span, start: p4, what: "legacy storage keys") { v -> [String] in
            guard case .list(let keyList) = v else { throw EdgeError(file: src, "legacy storage key list is missing") }
            return try keyList.items.map { k in
                switch k {
                case .string(let s): return s
                case .int(let i): return String(i)
                default: throw EdgeError(file: src, "legacy storage key of type \(k.kind)")
                }
            }
        }
        var p = p5
        var blobs: [String: ByteSpan] = [:]
        for key in keys {
            let n = try span.u64(p, "element count of legacy storage '\(key)'"); p += 8
            let es = elementSize[key] ?? 0
            guard n <= UInt64(span.count) else { throw EdgeError(file: src, "legacy storage '\(key)' claims \(n) elements, more than the file holds") }
            if es == 0 {
                throw EdgeError(file: src, "legacy storage '\(key)' is not used by any tensor (its element size is unknown)")
            }
            let bytes = Int(n) * es
            blobs[key] = try span.slice(p, bytes, "data of legacy storage '\(key)'")
            p += bytes
        }
        let sd = StateDict()
        try materializeAll(tensors, into: sd, source: src) { ref in
            guard let b = blobs[ref.key] else { throw EdgeError(file: src, "legacy storage '\(ref.key)' has no data") }
            return b
        }
        return sd
    }

    /// Finds the state dict in the unpickled object (top level, or under "model"/"state_dict") and
    /// lists its tensors in order.
    static func findTensors(_ value: PickleValue, source: String) throws -> [(String, TensorRef)] {
        guard case .dict(var dict) = value else {
            throw EdgeError(file: source, "the checkpoint holds a \(value.kind), not a state dict")
        }
        func hasTensor(_ d: PickleDict) -> Bool {
            d.items.contains { if case .tensor = $0.value { return true }; return false }
        }
        if !hasTensor(dict) {
            var found = false
            for k in ["model", "state_dict", "model_state_dict", "model_state"] {
                if case .dict(let inner)? = dict[k], hasTensor(inner) { dict = inner; found = true; break }
            }
            if !found { throw EdgeError(file: source, "no tensors found in the checkpoint (expected a state dict, or one under 'model' or 'state_dict')") }
        }
        var out: [(String, TensorRef)] = []
        for (k, v) in dict.items {
            guard case .tensor(let t) = v, case .string(let name) = k else { continue }
            out.append((name, t))
        }
        return out
    }

    static func materializeAll(_ tensors: [(String, TensorRef)], into sd: StateDict, source: String,
                               storage: (StorageRef) throws -> ByteSpan) throws {
        var cache: [String: ByteSpan] = [:]
        for (name, t) in tensors {
            let blob: ByteSpan
            if let c = cache[t.storage.key] { blob = c } else { blob = try storage(t.storage); cache[t.storage.key] = blob }
            try materialize(name: name, t, blob: blob, into: sd, source: source)
        }
    }

    static func checkedProduct(_ xs: [Int]) -> Int? {
        var n = 1
        for x in xs {
            guard x >= 0 else { return nil }
            let (r, o) = n.multipliedReportingOverflow(by: x)
            if o { return nil }
            n = r
        }
        return n
    }

    /// The most elements a broadcast (stride-0) tensor may expand to: 64 Mi (256 MB as F32),
    /// five times the largest tensor of the model (fc6, 12.8 M).
    public static let maxExpandedElements = 1 << 26

    static func materialize(name: String, _ t: TensorRef, blob: ByteSpan, into sd: StateDict, source: String) throws {
        let st = t.storage.type
        guard let inDType = st.dtype else { throw EdgeError(file: source, "tensor '\(name)' has unsupported dtype \(st.className)") }
        let es = st.elementSize
        // The whole storage (root storage for legacy views) must be present.
        let rootElems = t.storage.viewOffset + t.storage.numel
        guard let need = checkedProduct([rootElems, es]), blob.count >= need else {
            throw EdgeError(file: source, "storage '\(t.storage.key)' of tensor '\(name)' is shorter than declared "
                + "(\(blob.count) bytes, \(t.storage.numel) elements of \(es) bytes declared)")
        }
        guard let numel = checkedProduct(t.shape) else { throw EdgeError(file: source, "tensor '\(name)' has an invalid shape \(t.shape)") }
        let outDType: DType
        switch inDType {
        case .f64, .f32, .f16, .bf16: outDType = .f32
        default: outDType = inDType
        }
        // A stride-0 (broadcast) view may describe far more elements than its storage holds; it is
        // expanded in memory, so its size is bounded (a few bytes must not claim gigabytes).
        guard numel <= max(t.storage.numel, maxExpandedElements) else {
            throw EdgeError(file: source, "tensor '\(name)' has shape \(t.shape): \(numel) elements from a storage of "
                + "\(t.storage.numel) (broadcast views are limited to \(maxExpandedElements) elements)")
        }
        guard case let (outBytes, o) = numel.multipliedReportingOverflow(by: outDType.byteSize), !o else {
            throw EdgeError(file: source, "tensor '\(name)' has an invalid shape \(t.shape)")
        }
        if numel == 0 {
            _ = sd.allocate(name, dtype: outDType, shape: t.shape, bytes: 0)
            return
        }
        // Bounds: highest element index touched.
        guard t.offset >= 0 else { throw EdgeError(file: source, "tensor '\(name)' has a negative storage offset") }
        var maxIndex = t.offset
        for (d, s) in zip(t.shape, t.stride) {
            guard s >= 0 else { throw EdgeError(file: source, "tensor '\(name)' has a negative stride") }
            let (m, o1) = (d - 1).multipliedReportingOverflow(by: s)
            let (r, o2) = maxIndex.addingReportingOverflow(m)
            guard !o1, !o2 else { throw EdgeError(file: source, "tensor '\(name)' has strides that overflow") }
            maxIndex = r
        }
        guard maxIndex < t.storage.numel else {
            throw EdgeError(file: source, "tensor '\(name)' (offset \(t.offset), shape \(t.shape), stride \(t.stride)) "
                + "reaches element \(maxIndex) of a storage of \(t.storage.numel) elements")
        }
        guard let blobBase = blob.raw.baseAddress else { throw EdgeError(file: source, "storage of tensor '\(name)' is empty") }
        let base = blobBase + (t.storage.viewOffset + t.offset) * es

        // Row-major contiguous?
        var contiguous = true
        var expect = 1
        for i in stride(from: t.shape.count - 1, through: 0, by: -1) {
            if t.shape[i] != 1 && t.stride[i] != expect { contiguous = false; break }
            expect *= t.shape[i]
        }
        if contiguous && inDType == outDType {
            if Int(bitPattern: base) % es == 0 {
                sd.addView(name, dtype: outDType, shape: t.shape, data: UnsafeRawPointer(base))
            } else {
                let dst = sd.allocate(name, dtype: outDType, shape: t.shape, bytes: outBytes)
                dst.copyMemory(from: base, byteCount: outBytes)
            }
            return
        }
        let dst = sd.allocate(name, dtype: outDType, shape: t.shape, bytes: outBytes)
        if contiguous {
            convertRun(from: base, stride: 1, count: numel, inType: inDType, to: dst, outType: outDType)
            return
        }
        // Strided gather: innermost dimension as a run, odometer over the others.
        let rank = t.shape.count
        let inner = t.shape[rank - 1], innerStride = t.stride[rank - 1]
        var idx = [Int](repeating: 0, count: max(rank - 1, 0))
        var outPos = 0
        let runs = numel / max(inner, 1)
        for _ in 0..<runs {
            var off = 0
            for i in 0..<(rank - 1) { off += idx[i] * t.stride[i] }
            convertRun(from: base + off * es, stride: innerStride, count: inner, inType: inDType,
                       to: dst + outPos * outDType.byteSize, outType: outDType)
            outPos += inner
            var d = rank - 2
            while d >= 0 {
                idx[d] += 1
                if idx[d] < t.shape[d] { break }
                idx[d] = 0
                d -= 1
            }
        }
    }

    /// Converts `count` elements read at `stride` (elements) from `src` into contiguous `dst`.
    static func convertRun(from src: UnsafeRawPointer, stride: Int, count: Int, inType: DType,
                           to dst: UnsafeMutableRawPointer, outType: DType) {
        let es = inType.byteSize
        switch (inType, outType) {
        case (.f32, .f32):
            let o = dst.assumingMemoryBound(to: Float.self)
            for i in 0..<count { o[i] = src.loadUnaligned(fromByteOffset: i * stride * 4, as: Float.self) }
        case (.f64, .f32):
            let o = dst.assumingMemoryBound(to: Float.self)
            for i in 0..<count { o[i] = Float(src.loadUnaligned(fromByteOffset: i * stride * 8, as: Double.self)) }
        case (.f16, .f32):
            let o = dst.assumingMemoryBound(to: Float.self)
            for i in 0..<count { o[i] = halfToFloat(src.loadUnaligned(fromByteOffset: i * stride * 2, as: UInt16.self)) }
        case (.bf16, .f32):
            let o = dst.assumingMemoryBound(to: Float.self)
            for i in 0..<count {
                o[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * stride * 2, as: UInt16.self)) << 16)
            }
        default:
            if stride == 1 {
                dst.copyMemory(from: src, byteCount: count * es)
            } else {
                for i in 0..<count { (dst + i * es).copyMemory(from: src + i * stride * es, byteCount: es) }
            }
        }
    }

    /// IEEE half -> single, exact (subnormals, infinities and NaN included).
    @inline(__always) static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            // zero or subnormal: mant * 2^-24
            let v = Float(mant) * (1.0 / 16_777_216.0)
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }
}
