// A small JSON value with a strict, depth-limited parser and a compact serializer.
// Objects keep their key order. Numbers: integers that fit Int parse as .int, the rest as .double;
// .float is for writing Float values in their shortest round-trip form.

public enum JSON: Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case float(Float)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.int(let x), .int(let y)): return x == y
        default:
            if let x = a.doubleValue, let y = b.doubleValue { return x == y }
            return false
        }
    }

    // MARK: accessors

    public subscript(key: String) -> JSON? {
        if case .object(let kv) = self { return kv.first { $0.0 == key }?.1 }
        return nil
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d): return d == d.rounded() && abs(d) < 9.0e15 ? Int(d) : nil
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .float(let f): return Double(f)
        default: return nil
        }
    }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [(String, JSON)]? { if case .object(let o) = self { return o }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    // MARK: serializer

    /// Compact JSON text. Non-finite numbers (not representable in JSON) are written as null.
    public func serialized() -> String {
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d): JSON.writeNumber(d.isFinite ? JSON.shortest(d) : nil, &out)
        case .float(let f): JSON.writeNumber(f.isFinite ? JSON.shortest(f) : nil, &out)
        case .string(let s): JSON.writeString(s, &out)
        case .array(let a):
            out.append(0x5B)
            for (i, v) in a.enumerated() { if i > 0 { out.append(0x2C) }; v.write(to: &out) }
            out.append(0x5D)
        case .object(let kv):
            out.append(0x7B)
            for (i, (k, v)) in kv.enumerated() {
                if i > 0 { out.append(0x2C) }
                JSON.writeString(k, &out); out.append(0x3A); v.write(to: &out)
            }
            out.append(0x7D)
        }
    }

    static func writeNumber(_ s: String?, _ out: inout [UInt8]) {
        out.append(contentsOf: (s ?? "null").utf8)
    }

    /// Shortest round-trip text: Swift's description, with an integral ".0" dropped.
    static func shortest<T: BinaryFloatingPoint & LosslessStringConvertible>(_ v: T) -> String {
        var s = v.description
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }

    static func writeString(_ s: String, _ out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(0x6E)
            case 0x0D: out.append(0x5C); out.append(0x72)
            case 0x09: out.append(0x5C); out.append(0x74)
            case 0x08: out.append(0x5C); out.append(0x62)
            case 0x0C: out.append(0x5C); out.append(0x66)
            case 0..<0x20:
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    // MARK: parser

    /// A byte for an error message: 'c' when printable ASCII, else its hex value (never a control
    /// character, which would break the one-line message).
    static func describeByte(_ c: UInt8) -> String {
        let hex = String(c, radix: 16, uppercase: true)
        return c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x" + (hex.count < 2 ? "0" : "") + hex
    }

    /// Parses the JSON file at `path` (memory-mapped); errors name the file.
    public static func load(path: String, maxDepth: Int = 512) throws -> JSON {
        let f = try MappedFile(path: path)
        do {
            return try parse(f.bytes, maxDepth: maxDepth)
        } catch let e as EdgeError {
            throw EdgeError(file: path, e.message)
        }
    }

    public static func parse(_ text: String, maxDepth: Int = 512) throws -> JSON {
        var copy = text
        return try copy.withUTF8 { try parse(UnsafeRawBufferPointer($0), maxDepth: maxDepth) }
    }

    /// Parses exactly one JSON value (surrounding whitespace allowed). Errors: EdgeError
    /// "invalid JSON at byte N: ..." (callers add the file name).
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 512) throws -> JSON {
        var p = Parser(b: bytes, maxDepth: maxDepth)
        p.skipWS()
        let v = try p.value(depth: 0)
        p.skipWS()
        if p.i < bytes.count { throw p.err("unexpected data after the value") }
        return v
    }

    struct Parser {
        let b: UnsafeRawBufferPointer
        let maxDepth: Int
        var i = 0

        init(b: UnsafeRawBufferPointer, maxDepth: Int) { self.b = b; self.maxDepth = maxDepth }

        func err(_ m: String) -> EdgeError { EdgeError("invalid JSON at byte \(i): \(m)") }

        mutating func skipWS() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ word: String, _ v: JSON) throws -> JSON {
            for c in word.utf8 {
                guard i < b.count, b[i] == c else { throw err("invalid literal (expected '\(word)')") }
                i += 1
            }
            return v
        }

        mutating func value(depth: Int) throws -> JSON {
            guard depth < maxDepth else { throw err("nesting deeper than \(maxDepth)") }
            guard i < b.count else { throw err("unexpected end of input") }
            switch b[i] {
            case 0x7B: // {
                i += 1
                var kv: [(String, JSON)] = []
                skipWS()
                if i < b.count, b[i] == 0x7D { i += 1; return .object(kv) }
                while true {
                    skipWS()
                    guard i < b.count, b[i] == 0x22 else { throw err("expected a string key") }
                    let k = try string()
                    skipWS()
                    guard i < b.count, b[i] == 0x3A else { throw err("expected ':'") }
                    i += 1
                    skipWS()
                    kv.append((k, try value(depth: depth + 1)))
                    skipWS()
                    guard i < b.count else { throw err("unexpected end of input in an object") }
                    if b[i] == 0x2C { i += 1; continue }
                    if b[i] == 0x7D { i += 1; return .object(kv) }
                    throw err("expected ',' or '}'")
                }
            case 0x5B: // [
                i += 1
                var a: [JSON] = []
                skipWS()
                if i < b.count, b[i] == 0x5D { i += 1; return .array(a) }
                while true {
                    skipWS()
                    a.append(try value(depth: depth + 1))
                    skipWS()
                    guard i < b.count else { throw err("unexpected end of input in an array") }
                    if b[i] == 0x2C { i += 1; continue }
                    if b[i] == 0x5D { i += 1; return .array(a) }
                    throw err("expected ',' or ']'")
                }
            case 0x22: return .string(try string())
            case 0x74: return try literal("true", .bool(true))
            case 0x66: return try literal("false", .bool(false))
            case 0x6E: return try literal("null", .null)
            case 0x2D, 0x30...0x39: return try number()
            default: throw err("unexpected character \(JSON.describeByte(b[i]))")
            }
        }

        mutating func number() throws -> JSON {
            let start = i
            var isInt = true
            if b[i] == 0x2D { i += 1 }
            guard i < b.count, b[i] >= 0x30 && b[i] <= 0x39 else { throw err("invalid number") }
            if b[i] == 0x30 {
                i += 1
                if i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { throw err("leading zero in a number") }
            } else {
                while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            }
            if i < b.count, b[i] == 0x2E {
                isInt = false; i += 1
                guard i < b.count, b[i] >= 0x30 && b[i] <= 0x39 else { throw err("digit expected after '.'") }
                while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            }
            if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
                isInt = false; i += 1
                if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
                guard i < b.count, b[i] >= 0x30 && b[i] <= 0x39 else { throw err("digit expected in exponent") }
                while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            }
            if isInt && i - start <= 18 {
                // Fast path: at most 18 digits always fits Int.
                var j = start, neg = false, v = 0
                if b[j] == 0x2D { neg = true; j += 1 }
                while j < i { v = v &* 10 &+ Int(b[j] &- 0x30); j += 1 }
                return .int(neg ? -v : v)
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if isInt, let v = Int(text) { return .int(v) }
            guard let d = Double(text) else { throw err("invalid number '\(text)'") }
            return .double(d)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw err("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: throw err("invalid hex digit in \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1 // opening quote
            var out: [UInt8] = []
            var runStart = i
            while true {
                guard i < b.count else { throw err("unterminated string") }
                let c = b[i]
                if c == 0x22 {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[runStart..<i]))
                    i += 1
                    break
                }
                if c < 0x20 { throw err("control character in a string") }
                if c != 0x5C { i += 1; continue }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[runStart..<i]))
                i += 1
                guard i < b.count else { throw err("unterminated escape") }
                let e = b[i]; i += 1
                switch e {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x2F: out.append(0x2F)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var u = try hex4()
                    if u >= 0xD800 && u < 0xDC00 {
                        guard i + 6 <= b.count, b[i] == 0x5C, b[i + 1] == 0x75 else { throw err("unpaired surrogate") }
                        i += 2
                        let lo = try hex4()
                        guard lo >= 0xDC00 && lo < 0xE000 else { throw err("invalid low surrogate") }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if u >= 0xDC00 && u < 0xE000 {
                        throw err("unpaired surrogate")
                    }
                    guard let scalar = Unicode.Scalar(u) else { throw err("invalid code point") }
                    out.append(contentsOf: String(Character(scalar)).utf8)
                default: throw err("invalid escape after '\\': \(JSON.describeByte(e))")
                }
                runStart = i
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw err("invalid UTF-8 in a string") }
            return s
        }
    }
}
