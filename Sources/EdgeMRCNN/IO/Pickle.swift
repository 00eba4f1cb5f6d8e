// A small pickle virtual machine for what torch.save writes (protocol 2, plus the cheap parts of
// protocols 3-5). It never imports or calls anything: only a whitelist of globals is accepted and
// each is interpreted by this file (OrderedDict, tensor rebuild functions, typed storage classes).

/// A typed torch storage class (`torch.FloatStorage`, ...).
public struct TorchStorageType: Equatable {
    public let className: String
    /// nil for dtypes edge-mrcnn cannot hold (complex).
    public let dtype: DType?
    public let elementSize: Int

    static let all: [String: TorchStorageType] = {
        var m: [String: TorchStorageType] = [:]
        for (n, d, s) in [("DoubleStorage", DType.f64, 8), ("FloatStorage", .f32, 4), ("HalfStorage", .f16, 2),
                          ("BFloat16Storage", .bf16, 2), ("LongStorage", .i64, 8), ("IntStorage", .i32, 4),
                          ("ShortStorage", .i16, 2), ("CharStorage", .i8, 1), ("ByteStorage", .u8, 1),
                          ("BoolStorage", .bool, 1)] as [(String, DType, Int)] {
            m[n] = TorchStorageType(className: n, dtype: d, elementSize: s)
        }
        m["ComplexFloatStorage"] = TorchStorageType(className: "ComplexFloatStorage", dtype: nil, elementSize: 8)
        m["ComplexDoubleStorage"] = TorchStorageType(className: "ComplexDoubleStorage", dtype: nil, elementSize: 16)
        return m
    }()
}

/// A storage named by a persistent id: ('storage', class, key, location, numel[, view_metadata]).
public struct StorageRef {
    public let type: TorchStorageType
    public let key: String
    /// Elements in the storage (of the storage dtype).
    public let numel: Int
    /// Legacy views: element offset of this view inside the root storage `key`.
    public let viewOffset: Int
}

public struct TensorRef {
    public let storage: StorageRef
    public let offset: Int
    public let shape: [Int]
    public let stride: [Int]
}

public final class PickleList { public var items: [PickleValue] = [] }

public final class PickleDict {
    public private(set) var items: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]

    public func set(_ k: PickleValue, _ v: PickleValue) {
        if case .string(let s) = k {
            if let i = stringIndex[s] { items[i].value = v; return }
            stringIndex[s] = items.count
        }
        items.append((k, v))
    }
    public subscript(_ s: String) -> PickleValue? { stringIndex[s].map { items[$0].value } }
    func removeAll() { items = []; stringIndex = [:] }
}

/// Every list and dict made by one pickle run. Emptying them all (while the arena still holds them)
/// before they are released means no deinit ever recurses through a deep or cyclic container chain.
final class PickleArena {
    var lists: [PickleList] = []
    var dicts: [PickleDict] = []
    func list() -> PickleList { let l = PickleList(); lists.append(l); return l }
    func dict() -> PickleDict { let d = PickleDict(); dicts.append(d); return d }
    func clear() {
        for l in lists { l.items = [] }
        for d in dicts { d.removeAll() }
    }
}

public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for Int: little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(module: String, name: String)
    case storage(StorageRef)
    case tensor(TensorRef)

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let m, let n): return "\(m).\(n)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

public enum Pickle {
    public static var maxStack = 1 << 20
    public static var maxMemo = 1 << 22
    /// Tuples nested deeper than this are refused (their release would recurse).
    public static var maxTupleDepth: Int32 = 256

    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        // Inert containers in the checkpoints of torchvision's reference training scripts
        // ({"model", "optimizer", "lr_scheduler": {... Counter ...}, "args": Namespace, "epoch"}):
        // read as plain dicts, never called.
        "collections.Counter",
        "argparse.Namespace",
    ]

    /// Runs the pickle that starts at `start` in `span` and hands its value to `body`; returns what
    /// `body` returns and the offset just after STOP. Lists and dicts of the value are emptied once
    /// `body` returns: extract plain data (names, TensorRefs) inside `body`.
    public static func load<T>(_ span: ByteSpan, start: Int = 0, what: String = "pickle",
                               _ body: (PickleValue) throws -> T) throws -> (T, end: Int) {
        let arena = PickleArena()
        defer { arena.clear() }
        let (v, end) = try run(span, start: start, what: what, arena: arena)
        return (try body(v), end)
    }

    static func run(_ span: ByteSpan, start: Int, what: String, arena: PickleArena) throws -> (PickleValue, end: Int) {
        var stack: [PickleValue] = []
        var depths: [Int32] = []
        var marks: [Int] = []
        var memo: [Int: (PickleValue, Int32)] = [:]
        var p = start
        let src = span.source
        func fail(_ msg: String) -> EdgeError { EdgeError(file: src, "\(what): \(msg)") }

        var lastDepth: Int32 = 0
        func pop(_ op: String) throws -> PickleValue {
            guard let v = stack.popLast(), let d = depths.popLast() else { throw fail("stack underflow at \(op) (offset \(p - 1))") }
            if let m = marks.last, stack.count < m { throw fail("\(op) pops across a MARK (offset \(p - 1))") }
            lastDepth = d
            return v
        }
        func popMark(_ op: String) throws -> [PickleValue] {
            guard let m = marks.popLast() else { throw fail("\(op) without MARK (offset \(p - 1))") }
            guard m <= stack.count else { throw fail("corrupt MARK at \(op)") }
            let items = Array(stack[m...])
            lastDepth = depths[m...].max() ?? 0
            stack.removeSubrange(m...)
            depths.removeSubrange(m...)
            return items
        }
        func push(_ v: PickleValue, depth: Int32 = 0) throws {
            guard stack.count < maxStack else { throw fail("stack deeper than \(maxStack)") }
            guard depth <= maxTupleDepth else { throw fail("tuples nested deeper than \(maxTupleDepth) (offset \(p - 1))") }
            stack.append(v)
            depths.append(depth)
        }
        func read(_ n: Int) throws -> Int { try span.check(p, n, "\(what) argument"); let o = p; p += n; return o }
        func memoPut(_ i: Int) throws {
            guard let top = stack.last, let d = depths.last else { throw fail("memo store on an empty stack (offset \(p))") }
            if memo[i] == nil && memo.count >= maxMemo { throw fail("memo larger than \(maxMemo) entries") }
            memo[i] = (top, d)
        }
        func memoGet(_ i: Int) throws {
            guard let v = memo[i] else { throw fail("memo index \(i) not defined (offset \(p))") }
            try push(v.0, depth: v.1)
        }
        func str(_ len: Int) throws -> String { let o = try read(len); return try span.string(o, len) }
        func bytes(_ len: Int) throws -> [UInt8] { let o = try read(len); return Array(UnsafeRawBufferPointer(rebasing: span.raw[o..<(o + len)])) }
        func length(_ v: UInt64) throws -> Int {
            guard v <= UInt64(span.count) else { throw fail("length \(v) exceeds the data (offset \(p))") }
            return Int(v)
        }
        func line() throws -> String {
            var q = p
            while true {
                guard q < span.count, q - p < 1024 else { throw fail("unterminated GLOBAL line at offset \(p)") }
                if span.raw[q] == 0x0A { break }
                q += 1
            }
            let s = try span.string(p, q - p)
            p = q + 1
            return s
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            let full = "\(module).\(name)"
            if module == "torch", TorchStorageType.all[name] != nil { return .global(module: module, name: name) }
            guard allowedGlobals.contains(full) else {
                throw fail("unsupported pickle global '\(full)' (only state dicts of tensors are read: "
                    + "save with torch.save(model.state_dict(), path))")
            }
            return .global(module: module, name: name)
        }

        while true {
            let opAt = p
            let op = try span.u8(p, "\(what) opcode"); p += 1
            switch op {
            case 0x80: // PROTO
                let v = try span.u8(try read(1)); if v > 5 { throw fail("unsupported pickle protocol \(v)") }
            case 0x95: // FRAME
                _ = try read(8)
            case 0x2E: // STOP
                guard let v = stack.last else { throw fail("STOP with an empty stack") }
                return (v, p)
            case 0x63: // GLOBAL
                let m = try line(), n = try line()
                try push(try global(m, n))
            case 0x93: // STACK_GLOBAL
                let n = try pop("STACK_GLOBAL"), m = try pop("STACK_GLOBAL")
                guard case .string(let ns) = n, case .string(let ms) = m else { throw fail("STACK_GLOBAL needs two strings") }
                try push(try global(ms, ns))
            case 0x71: try memoPut(Int(try span.u8(try read(1))))          // BINPUT
            case 0x72: try memoPut(Int(try span.u32(try read(4))))         // LONG_BINPUT
            case 0x94: try memoPut(memo.count)                             // MEMOIZE
            case 0x68: try memoGet(Int(try span.u8(try read(1))))          // BINGET
            case 0x6A: try memoGet(Int(try span.u32(try read(4))))         // LONG_BINGET
            case 0x28: // MARK
                guard marks.count < maxStack else { throw fail("too many MARKs") }
                marks.append(stack.count)
            case 0x30: // POP (a MARK when nothing was pushed after it)
                if let m = marks.last, stack.count == m { marks.removeLast() } else { _ = try pop("POP") }
            case 0x31: _ = try popMark("POP_MARK")                          // POP_MARK
            case 0x32: // DUP
                guard let v = stack.last, let d = depths.last else { throw fail("DUP on an empty stack") }
                try push(v, depth: d)
            case 0x74: let t = try popMark("TUPLE"); try push(.tuple(t), depth: lastDepth + 1)   // TUPLE
            case 0x29: try push(.tuple([]), depth: 1)                                          // EMPTY_TUPLE
            case 0x85: let a = try pop("TUPLE1"); try push(.tuple([a]), depth: lastDepth + 1)
            case 0x86:
                let b = try pop("TUPLE2"); let db = lastDepth
                let a = try pop("TUPLE2"); try push(.tuple([a, b]), depth: max(db, lastDepth) + 1)
            case 0x87:
                let c = try pop("TUPLE3"); let dc = lastDepth
                let b = try pop("TUPLE3"); let db = lastDepth
                let a = try pop("TUPLE3"); try push(.tuple([a, b, c]), depth: max(dc, db, lastDepth) + 1)
            case 0x7D: try push(.dict(arena.dict()))                        // EMPTY_DICT
            case 0x5D: try push(.list(arena.list()))                        // EMPTY_LIST
            case 0x73: // SETITEM
                let v = try pop("SETITEM"), k = try pop("SETITEM")
                guard case .dict(let d) = stack.last else { throw fail("SETITEM on a \(stack.last?.kind ?? "nothing")") }
                d.set(k, v)
            case 0x75: // SETITEMS
                let items = try popMark("SETITEMS")
                guard case .dict(let d) = stack.last else { throw fail("SETITEMS on a \(stack.last?.kind ?? "nothing")") }
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                var i = 0
                while i < items.count { d.set(items[i], items[i + 1]); i += 2 }
            case 0x61: // APPEND
                let v = try pop("APPEND")
                guard case .list(let l) = stack.last else { throw fail("APPEND on a \(stack.last?.kind ?? "nothing")") }
                l.items.append(v)
            case 0x65: // APPENDS
                let items = try popMark("APPENDS")
                guard case .list(let l) = stack.last else { throw fail("APPENDS on a \(stack.last?.kind ?? "nothing")") }
                l.items.append(contentsOf: items)
            case 0x4A: try push(.int(Int(Int32(bitPattern: try span.u32(try read(4))))))   // BININT
            case 0x4B: try push(.int(Int(try span.u8(try read(1)))))                        // BININT1
            case 0x4D: try push(.int(Int(try span.u16(try read(2)))))                       // BININT2
            case 0x8A, 0x8B: // LONG1, LONG4
                let n = op == 0x8A ? Int(try span.u8(try read(1))) : try length(UInt64(try span.u32(try read(4))))
                let o = try read(n)
                if n == 0 { try push(.int(0)); break }
                if n <= 8 {
                    var v: UInt64 = 0
                    for i in 0..<n { v |= UInt64(span.raw[o + i]) << (8 * UInt64(i)) }
                    if n < 8 && span.raw[o + n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }
                    try push(.int(Int(Int64(bitPattern: v))))
                } else {
                    try push(.bigInt(Array(UnsafeRawBufferPointer(rebasing: span.raw[o..<(o + n)]))))
                }
            case 0x58: try push(.string(try str(try length(UInt64(try span.u32(try read(4)))))))   // BINUNICODE
            case 0x8C: try push(.string(try str(Int(try span.u8(try read(1))))))                   // SHORT_BINUNICODE
            case 0x8D: try push(.string(try str(try length(try span.u64(try read(8))))))           // BINUNICODE8
            case 0x54: // BINSTRING (protocol 1 str, signed length)
                let l = Int32(bitPattern: try span.u32(try read(4)))
                guard l >= 0 else { throw fail("negative BINSTRING length") }
                try push(.string(try str(Int(l))))
            case 0x55: try push(.string(try str(Int(try span.u8(try read(1))))))                   // SHORT_BINSTRING
            case 0x42: try push(.bytes(try bytes(try length(UInt64(try span.u32(try read(4)))))))  // BINBYTES
            case 0x43: try push(.bytes(try bytes(Int(try span.u8(try read(1))))))                  // SHORT_BINBYTES
            case 0x8E: try push(.bytes(try bytes(try length(try span.u64(try read(8))))))          // BINBYTES8
            case 0x4E: try push(.none)                                     // NONE
            case 0x88: try push(.bool(true))                               // NEWTRUE
            case 0x89: try push(.bool(false))                              // NEWFALSE
            case 0x47: // BINFLOAT, big-endian
                let bits = try span.u64(try read(8))
                try push(.float(Double(bitPattern: UInt64(bigEndian: bits))))
            case 0x52: // REDUCE
                let args = try pop("REDUCE"), fn = try pop("REDUCE")
                try push(try reduce(fn, args, arena, fail))
            case 0x81: // NEWOBJ: only argparse.Namespace, read as a dict (its BUILD state is dropped)
                _ = try pop("NEWOBJ")
                let cls = try pop("NEWOBJ")
                guard case .global("argparse", "Namespace") = cls else { throw fail("NEWOBJ of \(cls.kind) is not supported") }
                try push(.dict(arena.dict()))
            case 0x62: // BUILD
                let state = try pop("BUILD")
                guard let obj = stack.last else { throw fail("BUILD on an empty stack") }
                switch obj {
                case .dict, .tensor: break   // OrderedDict._metadata / parameter state: not needed
                default: throw fail("BUILD on a \(obj.kind) with a \(state.kind) state is not supported")
                }
            case 0x51: // BINPERSID
                let pid = try pop("BINPERSID")
                try push(.storage(try persistent(pid, fail)))
            default:
                let hex = String(op, radix: 16)
                throw fail("unsupported pickle opcode 0x\(hex.count < 2 ? "0" + hex : hex) at offset \(opAt)")
            }
        }
    }

    static func intArg(_ v: PickleValue) -> Int? { if case .int(let i) = v { return i }; return nil }

    static func intTuple(_ v: PickleValue) -> [Int]? {
        let items: [PickleValue]
        switch v {
        case .tuple(let t): items = t
        case .list(let l): items = l.items
        default: return nil
        }
        var out: [Int] = []
        for x in items { guard let i = intArg(x) else { return nil }; out.append(i) }
        return out
    }

    static func persistent(_ pid: PickleValue, _ fail: (String) -> EdgeError) throws -> StorageRef {
        guard case .tuple(let t) = pid, t.count >= 5, case .string("storage") = t[0] else {
            throw fail("unsupported persistent id (expected ('storage', type, key, location, numel))")
        }
        guard case .global(let m, let n) = t[1], m == "torch", let type = TorchStorageType.all[n] else {
            throw fail("persistent id names an unsupported storage type '\(t[1].kind)'")
        }
        let key: String
        switch t[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw fail("persistent id has a storage key of type \(t[2].kind)")
        }
        guard let numel = intArg(t[4]), numel >= 0 else { throw fail("storage '\(key)' has an invalid element count") }
        var viewOffset = 0
        if t.count >= 6, case .tuple(let vm) = t[5] {
            // Legacy view: (view_key, offset, view_size) inside root storage `key`.
            guard vm.count >= 3, let off = intArg(vm[1]), let size = intArg(vm[2]), off >= 0, size >= 0,
                  off <= numel, size <= numel - off else {
                throw fail("storage '\(key)' has an invalid view")
            }
            viewOffset = off
            return StorageRef(type: type, key: key, numel: size, viewOffset: viewOffset)
        }
        return StorageRef(type: type, key: key, numel: numel, viewOffset: viewOffset)
    }

    static func reduce(_ fn: PickleValue, _ args: PickleValue, _ arena: PickleArena, _ fail: (String) -> EdgeError) throws -> PickleValue {
        guard case .global(let m, let n) = fn else { throw fail("REDUCE calls a \(fn.kind), not a global") }
        guard case .tuple(let a) = args else { throw fail("REDUCE of \(m).\(n) with \(args.kind) arguments") }
        switch "\(m).\(n)" {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict with initial items is not supported") }
            return .dict(arena.dict())
        case "collections.Counter":
            let d = arena.dict()
            if let first = a.first, case .dict(let src) = first { for (k, v) in src.items { d.set(k, v) } }
            return .dict(d)
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let s) = a[0], let off = intArg(a[1]),
                  let size = intTuple(a[2]), let stride = intTuple(a[3]) else {
                throw fail("malformed _rebuild_tensor_v2 arguments")
            }
            guard size.count == stride.count else { throw fail("tensor size \(size) and stride \(stride) differ in rank") }
            guard size.count <= 16 else { throw fail("tensor of rank \(size.count) is not supported") }
            return .tensor(TensorRef(storage: s, offset: off, shape: size, stride: stride))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = a.first, case .tensor = first else { throw fail("malformed \(n) arguments") }
            return first
        default:
            throw fail("calling '\(m).\(n)' is not supported")
        }
    }
}
