// The file_name -> id map of a COCO annotations file ("images": [{"id":..,"file_name":..}, ...]).
// A minimal JSON scanner that validates the syntax, skips everything else without building it,
// and so reads even the 450 MB instances_train2017.json with little memory beyond the file bytes.
// (Core/JSON.swift, the io helper's general reader, was not on main when this was written.)

public enum COCOImageIndex {
    public static func load(path: String) throws -> [String: Int] {
        let bytes = try LocalFile.readBytes(path)
        do {
            return try parse(bytes)
        } catch let e as ScanError {
            throw EdgeError(file: path, e.message)
        }
    }

    /// Parses the bytes of an annotations file.
    public static func parse(_ bytes: [UInt8]) throws -> [String: Int] {
        var s = Scanner(bytes: bytes)
        var map: [String: Int] = [:]
        var sawImages = false
        try s.ws()
        try s.expect(UInt8(ascii: "{"), "the file is not a JSON object")
        try s.ws()
        if s.peek() == UInt8(ascii: "}") {
            s.pos += 1
        } else {
            while true {
                try s.ws()
                let key = try s.string()
                try s.ws()
                try s.expect(UInt8(ascii: ":"), "expected ':'")
                try s.ws()
                if key == "images" {
                    sawImages = true
                    try parseImages(&s, into: &map)
                } else {
                    try s.skipValue(depth: 0)
                }
                try s.ws()
                if s.peek() == UInt8(ascii: ",") { s.pos += 1; continue }
                try s.expect(UInt8(ascii: "}"), "expected ',' or '}'")
                break
            }
        }
        try s.ws()
        if s.pos != s.bytes.count { throw ScanError(message: "unexpected text after the JSON value at byte \(s.pos)") }
        if !sawImages { throw ScanError(message: "no \"images\" list (not a COCO annotations file)") }
        return map
    }

    private static func parseImages(_ s: inout Scanner, into map: inout [String: Int]) throws {
        try s.expect(UInt8(ascii: "["), "\"images\" is not a list")
        try s.ws()
        if s.peek() == UInt8(ascii: "]") { s.pos += 1; return }
        var index = 0
        while true {
            try s.ws()
            try s.expect(UInt8(ascii: "{"), "images[\(index)] is not an object")
            var id: Int?
            var name: String?
            try s.ws()
            if s.peek() == UInt8(ascii: "}") {
                s.pos += 1
            } else {
                while true {
                    try s.ws()
                    let key = try s.string()
                    try s.ws()
                    try s.expect(UInt8(ascii: ":"), "expected ':'")
                    try s.ws()
                    if key == "id" {
                        id = try s.integer()
                    } else if key == "file_name" {
                        name = try s.string()
                    } else {
                        try s.skipValue(depth: 0)
                    }
                    try s.ws()
                    if s.peek() == UInt8(ascii: ",") { s.pos += 1; continue }
                    try s.expect(UInt8(ascii: "}"), "expected ',' or '}'")
                    break
                }
            }
            guard let i = id, let n = name else {
                throw ScanError(message: "images[\(index)] lacks an integer \"id\" or a \"file_name\"")
            }
            map[n] = i
            // Also index by base name, so "val2017/x.jpg" style names match plain file names.
            let base = OutputPaths.baseName(n)
            if base != n && map[base] == nil { map[base] = i }
            index += 1
            try s.ws()
            if s.peek() == UInt8(ascii: ",") { s.pos += 1; continue }
            try s.expect(UInt8(ascii: "]"), "expected ',' or ']' in \"images\"")
            break
        }
    }

    struct ScanError: Error { let message: String }

    struct Scanner {
        let bytes: [UInt8]
        var pos = 0

        func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

        mutating func ws() throws {
            while pos < bytes.count {
                let c = bytes[pos]
                if c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { pos += 1 } else { break }
            }
        }

        mutating func expect(_ c: UInt8, _ what: String) throws {
            guard pos < bytes.count else { throw ScanError(message: "\(what) (the file ends early)") }
            guard bytes[pos] == c else { throw ScanError(message: "\(what) at byte \(pos)") }
            pos += 1
        }

        mutating func string() throws -> String {
            try expect(UInt8(ascii: "\""), "expected a string")
            var out: [UInt8] = []
            while true {
                guard pos < bytes.count else { throw ScanError(message: "unterminated string") }
                let c = bytes[pos]; pos += 1
                if c == UInt8(ascii: "\"") { break }
                if c < 0x20 { throw ScanError(message: "control character in a string at byte \(pos - 1)") }
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard pos < bytes.count else { throw ScanError(message: "unterminated string") }
                let e = bytes[pos]; pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5c)
                case UInt8(ascii: "/"): out.append(0x2f)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if v >= 0xD800 && v < 0xDC00, pos + 1 < bytes.count,
                       bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        pos += 2
                        let lo = try hex4()
                        if lo >= 0xDC00 && lo < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) }
                    }
                    let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw ScanError(message: "bad escape in a string at byte \(pos - 1)")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        private mutating func hex4() throws -> UInt32 {
            guard pos + 4 <= bytes.count else { throw ScanError(message: "truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[pos]; pos += 1
                let d: UInt32
                switch c {
                case 48...57: d = UInt32(c - 48)
                case 65...70: d = UInt32(c - 55)
                case 97...102: d = UInt32(c - 87)
                default: throw ScanError(message: "bad \\u escape at byte \(pos - 1)")
                }
                v = v * 16 + d
            }
            return v
        }

        /// An integer (a number without fraction; "123.0" is accepted when integral).
        mutating func integer() throws -> Int {
            let start = pos
            try skipNumber()
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            if let i = Int(text) { return i }
            if let d = Double(text), d == d.rounded(), abs(d) < 9e15 { return Int(d) }
            throw ScanError(message: "expected an integer image id, got \(text) at byte \(start)")
        }

        mutating func skipNumber() throws {
            let start = pos
            if peek() == UInt8(ascii: "-") { pos += 1 }
            var digits = 0
            while let c = peek(), (c >= 48 && c <= 57) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e")
                || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                if c >= 48 && c <= 57 { digits += 1 }
                pos += 1
            }
            if digits == 0 { throw ScanError(message: "expected a value at byte \(start)") }
        }

        mutating func literal(_ word: String) throws {
            for c in word.utf8 {
                guard pos < bytes.count, bytes[pos] == c else { throw ScanError(message: "bad literal at byte \(pos)") }
                pos += 1
            }
        }

        mutating func skipValue(depth: Int) throws {
            guard depth < 512 else { throw ScanError(message: "JSON nested too deeply") }
            guard let c = peek() else { throw ScanError(message: "expected a value (the file ends early)") }
            switch c {
            case UInt8(ascii: "\""):
                // Skip a string without decoding it.
                pos += 1
                while true {
                    guard pos < bytes.count else { throw ScanError(message: "unterminated string") }
                    let b = bytes[pos]; pos += 1
                    if b == UInt8(ascii: "\"") { break }
                    if b == UInt8(ascii: "\\") { pos += 1 }
                }
            case UInt8(ascii: "{"):
                pos += 1
                try ws()
                if peek() == UInt8(ascii: "}") { pos += 1; return }
                while true {
                    try ws()
                    try skipValue(depth: depth + 1)  // the key (a string)
                    try ws()
                    try expect(UInt8(ascii: ":"), "expected ':'")
                    try ws()
                    try skipValue(depth: depth + 1)
                    try ws()
                    if peek() == UInt8(ascii: ",") { pos += 1; continue }
                    try expect(UInt8(ascii: "}"), "expected ',' or '}'")
                    break
                }
            case UInt8(ascii: "["):
                pos += 1
                try ws()
                if peek() == UInt8(ascii: "]") { pos += 1; return }
                while true {
                    try ws()
                    try skipValue(depth: depth + 1)
                    try ws()
                    if peek() == UInt8(ascii: ",") { pos += 1; continue }
                    try expect(UInt8(ascii: "]"), "expected ',' or ']'")
                    break
                }
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try skipNumber()
            }
        }
    }
}
