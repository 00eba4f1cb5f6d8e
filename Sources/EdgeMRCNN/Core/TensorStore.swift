// Named tensors, wherever they live: a memory-mapped safetensors file, or buffers owned in memory
// (a .pth checkpoint converted on the fly). The model reads its weights through this protocol.

public enum DType: String, CaseIterable, Sendable {
    // Names as safetensors spells them.
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// A read-only view of one contiguous, row-major tensor. The memory belongs to the store that
/// handed it out and lives as long as that store.
public struct TensorView {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer

    public init(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.data = data
    }

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

    /// The elements as Float32; only valid for dtype f32.
    public var floats: UnsafePointer<Float> {
        precondition(dtype == .f32, "\(name) is \(dtype.rawValue), not F32")
        return data.assumingMemoryBound(to: Float.self)
    }
}

public protocol TensorStore: AnyObject {
    /// Tensor names in a stable order.
    var names: [String] { get }
    /// String metadata (safetensors `__metadata__`).
    var metadata: [String: String] { get }
    func tensor(_ name: String) -> TensorView?
}

extension TensorStore {
    /// The tensor `name`, which must exist, be F32 and have `shape`; a clear error otherwise.
    public func floatTensor(_ name: String, shape: [Int], source: String) throws -> TensorView {
        guard let t = tensor(name) else { throw EdgeError(file: source, "missing tensor '\(name)'") }
        guard t.dtype == .f32 else {
            throw EdgeError(file: source, "tensor '\(name)' has dtype \(t.dtype.rawValue), expected F32")
        }
        guard t.shape == shape else {
            throw EdgeError(file: source, "tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return t
    }
}

/// Tensors held in memory (owned buffers), in insertion order.
public final class OwnedTensorStore: TensorStore {
    private var order: [String] = []
    private var storage: [String: (dtype: DType, shape: [Int], buffer: UnsafeMutableRawPointer)] = [:]
    public var metadata: [String: String]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }
    deinit { for (_, v) in storage { v.buffer.deallocate() } }

    public var names: [String] { order }

    public func tensor(_ name: String) -> TensorView? {
        guard let e = storage[name] else { return nil }
        return TensorView(name: name, dtype: e.dtype, shape: e.shape, data: UnsafeRawPointer(e.buffer))
    }

    /// Adds (or replaces) a tensor by copying `bytes`.
    public func add(_ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) {
        let n = shape.reduce(1, *) * dtype.byteSize
        precondition(bytes.count == n, "byte count of \(name) does not match its shape")
        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 64)
        if n > 0 { buf.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        if let old = storage[name] { old.buffer.deallocate() } else { order.append(name) }
        storage[name] = (dtype, shape, buf)
    }

    public func addFloats(_ name: String, shape: [Int], _ values: [Float]) {
        values.withUnsafeBytes { add(name, dtype: .f32, shape: shape, bytes: $0) }
    }
}
