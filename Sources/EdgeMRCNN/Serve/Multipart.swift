// multipart/form-data bodies (RFC 7578 on RFC 2046 section 5.1) for `edge-mrcnn serve`: the form
// DeepStack clients post (`requests.post(url, files={"image": ...}, data={...})`, `curl -F`).
// Pure code, no I/O: unit-tested and fuzzed (fuzz/harness/multipart.swift). Parts are returned as
// byte ranges into the body, so an uploaded image is never copied.
//
//   body     := preamble? "--" boundary transport-padding CRLF part (CRLF "--" boundary ...)*
//               CRLF "--" boundary "--" epilogue?
//   part     := (header CRLF)* CRLF content
// A body without its closing delimiter, a part whose headers never end, a part without
// `Content-Disposition: form-data; name=...`, or more than `maxParts` parts: HTTPError 400.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One form field: its name, the file name and content type when sent as a file, and where its
/// content lies in the body.
public struct MultipartPart: Equatable {
    public var name: String
    public var filename: String?
    public var contentType: String?
    public var content: Range<Int>
    public init(name: String, filename: String?, contentType: String?, content: Range<Int>) {
        self.name = name; self.filename = filename; self.contentType = contentType; self.content = content
    }
}

public enum Multipart {
    public static let defaultMaxParts = 32
    public static let defaultMaxPartHeaderBytes = 8 << 10

    /// The boundary of a `multipart/form-data; boundary=...` Content-Type (415 for another media
    /// type, 400 for a missing or invalid boundary).
    public static func boundary(contentType: String?) throws -> [UInt8] {
        guard let ct = contentType else {
            throw HTTPError(415, "no Content-Type: send the image as multipart/form-data (field \"image\")")
        }
        let params = parameters(ct)
        guard let mediaType = params.first?.value.lowercased(), mediaType == "multipart/form-data" else {
            throw HTTPError(415, "Content-Type must be multipart/form-data (field \"image\")")
        }
        guard let b = params.dropFirst().first(where: { $0.name == "boundary" })?.value else {
            throw HTTPError(400, "multipart/form-data without a boundary")
        }
        let bytes = Array(b.utf8)
        guard (1...70).contains(bytes.count), bytes.last != 0x20, bytes.allSatisfy(isBoundaryChar) else {
            throw HTTPError(400, "invalid multipart boundary")
        }
        return bytes
    }

    /// bchars of RFC 2046: digits, letters, "'()+_,-./:=?" and space.
    static func isBoundaryChar(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("'()+_,-./:=? ".utf8).contains(c)
        }
    }

    /// The parts of `body`, in order.
    public static func parse(_ body: UnsafeRawBufferPointer, boundary: [UInt8], maxParts: Int = defaultMaxParts,
                             maxPartHeaderBytes: Int = defaultMaxPartHeaderBytes) throws -> [MultipartPart] {
        guard !boundary.isEmpty else { throw HTTPError(400, "invalid multipart boundary") }
        let n = body.count
        // "\r\n--boundary": the delimiter inside the body. The first one may start the body.
        let delim: [UInt8] = [13, 10, 0x2D, 0x2D] + boundary
        var pos: Int   // just after a delimiter
        if n >= delim.count - 2 && body.starts(with: delim[2...]) {
            pos = delim.count - 2
        } else {
            guard let d = find(delim, in: body, from: 0) else {
                throw HTTPError(400, "multipart body without its boundary")
            }
            pos = d + delim.count
        }
        var parts: [MultipartPart] = []
        while true {
            // After a delimiter: "--" ends the body; else optional padding and CRLF.
            if pos + 2 <= n && body[pos] == 0x2D && body[pos + 1] == 0x2D { return parts }
            while pos < n && (body[pos] == 0x20 || body[pos] == 0x09) { pos += 1 }
            guard pos + 2 <= n else { throw HTTPError(400, "multipart body ends before its closing boundary") }
            guard body[pos] == 13 && body[pos + 1] == 10 else {
                throw HTTPError(400, "malformed multipart delimiter line")
            }
            pos += 2
            if parts.count >= maxParts { throw HTTPError(400, "more than \(maxParts) parts in the multipart body") }
            // Part headers up to an empty line (none at all: the empty line comes first).
            var headers: [(String, String)] = []
            if pos + 2 <= n && body[pos] == 13 && body[pos + 1] == 10 {
                pos += 2
            } else {
                let searchEnd = min(n, pos + maxPartHeaderBytes)
                guard let e = find([13, 10, 13, 10], in: UnsafeRawBufferPointer(rebasing: body[..<searchEnd]), from: pos) else {
                    if searchEnd - pos >= maxPartHeaderBytes { throw HTTPError(400, "multipart part headers too long") }
                    throw HTTPError(400, "multipart body ends inside the headers of a part")
                }
                headers = try partHeaders(UnsafeRawBufferPointer(rebasing: body[pos..<e]))
                pos = e + 4
            }
            // Content up to the next delimiter.
            guard let d = find(delim, in: body, from: pos) else {
                throw HTTPError(400, "multipart body ends before its closing boundary")
            }
            parts.append(try makePart(headers, content: pos..<d))
            pos = d + delim.count
        }
    }

    public static func parse(_ body: [UInt8], boundary: [UInt8], maxParts: Int = defaultMaxParts) throws -> [MultipartPart] {
        try body.withUnsafeBytes { try parse($0, boundary: boundary, maxParts: maxParts) }
    }

    /// The header lines of one part: "Name: value" separated by CRLF.
    static func partHeaders(_ b: UnsafeRawBufferPointer) throws -> [(String, String)] {
        var out: [(String, String)] = []
        var p = 0
        let n = b.count
        while p < n {
            var e = p
            while e < n && !(b[e] == 13 && e + 1 < n && b[e + 1] == 10) { e += 1 }
            var c = p
            while c < e && HTTPParser.isToken(b[c]) { c += 1 }
            guard c > p, c < e, b[c] == UInt8(ascii: ":") else { throw HTTPError(400, "malformed multipart part header") }
            for k in (c + 1)..<e where (b[k] < 0x20 && b[k] != 0x09) || b[k] == 0x7F {
                throw HTTPError(400, "control character in a multipart part header")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: b[p..<c]), as: UTF8.self).lowercased()
            let value = String(decoding: UnsafeRawBufferPointer(rebasing: b[(c + 1)..<e]), as: UTF8.self).serveTrimmed(" \t")
            out.append((name, value))
            if out.count > 16 { throw HTTPError(400, "too many multipart part headers") }
            p = e + 2
        }
        return out
    }

    static func makePart(_ headers: [(String, String)], content: Range<Int>) throws -> MultipartPart {
        guard let cd = headers.first(where: { $0.0 == "content-disposition" })?.1 else {
            throw HTTPError(400, "multipart part without Content-Disposition")
        }
        let params = parameters(cd)
        guard params.first?.value.lowercased() == "form-data" else {
            throw HTTPError(400, "multipart part is not form-data")
        }
        guard let name = params.dropFirst().first(where: { $0.name == "name" })?.value else {
            throw HTTPError(400, "multipart part without a field name")
        }
        let filename = params.dropFirst().first(where: { $0.name == "filename" })?.value
        let ct = headers.first(where: { $0.0 == "content-type" })?.1
        return MultipartPart(name: name, filename: filename, contentType: ct, content: content)
    }

    /// A header value "value; a=b; c="d e"" as [(name: "", value: "value"), ("a", "b"), ("c", "d e")]
    /// (parameter names lower-cased; quoted strings unescaped).
    public static func parameters(_ v: String) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        let u = Array(v.utf8)
        var i = 0
        func skipBlanks() { while i < u.count && (u[i] == 0x20 || u[i] == 0x09) { i += 1 } }
        // The leading value up to ";".
        var s = i
        while i < u.count && u[i] != UInt8(ascii: ";") { i += 1 }
        out.append(("", String(decoding: u[s..<i], as: UTF8.self).serveTrimmed(" \t")))
        while i < u.count {
            i += 1   // ";"
            skipBlanks()
            s = i
            while i < u.count && u[i] != UInt8(ascii: "=") && u[i] != UInt8(ascii: ";") { i += 1 }
            let name = String(decoding: u[s..<i], as: UTF8.self).serveTrimmed(" \t").lowercased()
            var value = ""
            if i < u.count && u[i] == UInt8(ascii: "=") {
                i += 1
                skipBlanks()
                if i < u.count && u[i] == UInt8(ascii: "\"") {
                    i += 1
                    var bytes: [UInt8] = []
                    while i < u.count && u[i] != UInt8(ascii: "\"") {
                        if u[i] == UInt8(ascii: "\\") && i + 1 < u.count { i += 1 }
                        bytes.append(u[i])
                        i += 1
                    }
                    if i < u.count { i += 1 }   // closing quote
                    value = String(decoding: bytes, as: UTF8.self)
                    while i < u.count && u[i] != UInt8(ascii: ";") { i += 1 }
                } else {
                    s = i
                    while i < u.count && u[i] != UInt8(ascii: ";") { i += 1 }
                    value = String(decoding: u[s..<i], as: UTF8.self).serveTrimmed(" \t")
                }
            }
            if !name.isEmpty { out.append((name, value)) }
        }
        return out
    }

    /// The first index >= `from` where `needle` starts in `hay`: memchr to each occurrence of the
    /// first byte, then memcmp. Linear for the needles used here: "\r\n--boundary" has no other CR
    /// (bchars exclude it), so a partial match never overlaps the next candidate; "\r\n\r\n" is short.
    static func find(_ needle: [UInt8], in hay: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from >= 0, !needle.isEmpty, let base = hay.baseAddress, hay.count - from >= needle.count else { return nil }
        let last = hay.count - needle.count   // the last possible start
        return needle.withUnsafeBytes { nb -> Int? in
            var i = from
            while i <= last {
                guard let hit = memchr(base + i, Int32(needle[0]), last - i + 1) else { return nil }
                let k = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + k, nb.baseAddress!, needle.count) == 0 { return k }
                i = k + 1
            }
            return nil
        }
    }
}

/// The fields of a multipart form by name (the first part of each name counts).
public struct MultipartForm {
    public let parts: [MultipartPart]
    public init(parts: [MultipartPart]) { self.parts = parts }
    public func part(_ name: String) -> MultipartPart? { parts.first { $0.name == name } }
}
