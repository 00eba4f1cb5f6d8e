// HTTP/1.1 request heads for `edge-mrcnn serve` (RFC 9110 / RFC 9112), parsed from the bytes a
// client sent: pure code, no I/O, so it is unit-tested and fuzzed (fuzz/harness/http.swift).
//
// Strict on purpose (the server sits on a board and may face anything on the network):
//   - lines end with CRLF; a bare CR or LF, any other control byte, obsolete line folding, a space
//     before the colon or a header line without one: 400;
//   - request line "METHOD SP /origin-form SP HTTP/1.x" (1.0 and 1.1; other versions 505);
//   - HTTP/1.1 needs exactly one Host header (RFC 9112 section 3.2: 400 otherwise);
//   - Content-Length: digits only, repeated values must agree, larger than the body limit: 413;
//   - Transfer-Encoding (chunked or anything else) is not supported: 411 for chunked (send a
//     Content-Length), 501 for other codings, 400 with a Content-Length too (request smuggling);
//   - the head (request line + headers) is at most `maxHeaderBytes`, `maxHeaderCount` fields: 431.
// An error is an HTTPError carrying the status the server answers with.

/// A request the server refuses: the HTTP status to answer with and a one-line reason.
public struct HTTPError: Error, Equatable, CustomStringConvertible {
    public let status: Int
    public let message: String
    public init(_ status: Int, _ message: String) { self.status = status; self.message = message }
    public var description: String { "\(status) \(message)" }
}

/// One header field as sent (the name lower-cased, the value without surrounding blanks).
public struct HTTPHeader: Equatable {
    public let name: String
    public let value: String
    public init(name: String, value: String) { self.name = name; self.value = value }
}

/// Limits of what a request may be; the server's flags set them.
public struct HTTPLimits: Equatable {
    /// Request line + headers + the blank line, in bytes.
    public var maxHeaderBytes: Int
    /// Header fields per request.
    public var maxHeaderCount: Int
    /// Content-Length above this is refused with 413 before any body byte is read.
    public var maxBodyBytes: Int

    public static let defaultMaxHeaderBytes = 16 << 10
    public static let defaultMaxHeaderCount = 64
    public static let defaultMaxBodyBytes = 10 << 20

    public init(maxHeaderBytes: Int = defaultMaxHeaderBytes, maxHeaderCount: Int = defaultMaxHeaderCount,
                maxBodyBytes: Int = defaultMaxBodyBytes) {
        self.maxHeaderBytes = maxHeaderBytes; self.maxHeaderCount = maxHeaderCount; self.maxBodyBytes = maxBodyBytes
    }
}

/// A parsed request head.
public struct HTTPRequestHead: Equatable {
    public var method: String
    /// The request target as sent ("/v1/vision/detection?x=1").
    public var target: String
    /// The target up to "?" (not percent-decoded: routes are plain ASCII).
    public var path: String
    /// What follows "?" ("" if nothing).
    public var query: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var headers: [HTTPHeader]
    /// The body length (nil: no Content-Length, so no body).
    public var contentLength: Int?
    /// Whether the client lets the connection stay open after the response.
    public var keepAlive: Bool
    /// "Expect: 100-continue": the client waits for an interim 100 before sending the body.
    public var expectContinue: Bool

    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name == n }?.value
    }
}

/// What the bytes received so far amount to.
public enum HTTPHeadResult: Equatable {
    /// The head is not complete yet (and nothing wrong so far): read more.
    case incomplete
    /// The head and its length in bytes (the body, if any, starts there).
    case complete(HTTPRequestHead, headLength: Int)
    /// The request is refused.
    case failed(HTTPError)
}

public enum HTTPParser {
    /// Parses the request head at the start of `buf` (leading empty lines are skipped, as RFC
    /// 9112 section 2.2 allows). A request line that is already complete is checked at once, so
    /// garbage is refused without waiting for the end of a head that may never come.
    public static func parseHead(_ buf: UnsafeRawBufferPointer, limits: HTTPLimits = HTTPLimits()) -> HTTPHeadResult {
        let n = buf.count
        // Skip empty lines before the request line (bounded by the head limit).
        var start = 0
        while start + 1 < n && buf[start] == 13 && buf[start + 1] == 10 { start += 2 }
        if start > limits.maxHeaderBytes { return .failed(HTTPError(400, "too many empty lines before the request line")) }
        if start + 1 == n && buf[start] == 13 { return .incomplete }
        // The end of the head: the first CRLFCRLF after the request line.
        let limitEnd = min(n, start + limits.maxHeaderBytes)
        var headEnd = -1   // index of the blank line's CRLF
        var firstLineEnd = -1
        var i = start
        while i + 1 < limitEnd {
            if buf[i] == 13 && buf[i + 1] == 10 {
                if firstLineEnd < 0 { firstLineEnd = i }
                if i + 3 < n && buf[i + 2] == 13 && buf[i + 3] == 10 { headEnd = i + 2; break }
            }
            i += 1
        }
        if firstLineEnd < 0 {
            // No complete request line yet: refuse early what can never become one.
            for k in start..<limitEnd {
                let c = buf[k]
                // (no CRLF in range: a CR is either the last byte so far or a bare CR)
                if c == 13 { if k + 1 < limitEnd { return .failed(HTTPError(400, "malformed request line")) }; continue }
                if c < 0x20 || c >= 0x7F { return .failed(HTTPError(400, "malformed request line")) }
            }
        } else if case .failure(let e) = parseRequestLine(buf, start, firstLineEnd) {
            return .failed(e)
        }
        if headEnd < 0 {
            if n - start >= limits.maxHeaderBytes {
                return .failed(HTTPError(431, "request head larger than \(limits.maxHeaderBytes) bytes"))
            }
            return .incomplete
        }
        if headEnd + 2 - start > limits.maxHeaderBytes {
            return .failed(HTTPError(431, "request head larger than \(limits.maxHeaderBytes) bytes"))
        }
        switch parseComplete(buf, start: start, firstLineEnd: firstLineEnd, headEnd: headEnd, limits: limits) {
        case .success(let head): return .complete(head, headLength: headEnd + 2)
        case .failure(let e): return .failed(e)
        }
    }

    public static func parseHead(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPHeadResult {
        bytes.withUnsafeBytes { parseHead($0, limits: limits) }
    }

    // MARK: - pieces

    /// tchar of RFC 9110 section 5.6.2.
    @inline(__always) static func isToken(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    struct RequestLine { var method: String; var target: String; var minor: Int }

    static func parseRequestLine(_ b: UnsafeRawBufferPointer, _ s: Int, _ e: Int) -> Result<RequestLine, HTTPError> {
        // METHOD
        var i = s
        while i < e && isToken(b[i]) { i += 1 }
        if i == s || i >= e || b[i] != 0x20 { return .failure(HTTPError(400, "malformed request line")) }
        let method = String(decoding: UnsafeRawBufferPointer(rebasing: b[s..<i]), as: UTF8.self)
        if i - s > 32 { return .failure(HTTPError(501, "unknown method")) }
        i += 1
        // TARGET: visible ASCII up to the next space.
        let t0 = i
        while i < e && b[i] > 0x20 && b[i] < 0x7F { i += 1 }
        if i == t0 || i >= e || b[i] != 0x20 { return .failure(HTTPError(400, "malformed request line")) }
        if b[t0] != UInt8(ascii: "/") {
            return .failure(HTTPError(400, "the request target must be a path starting with '/'"))
        }
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: b[t0..<i]), as: UTF8.self)
        i += 1
        // VERSION: HTTP/d.d
        let v = UnsafeRawBufferPointer(rebasing: b[i..<e])
        let prefix: [UInt8] = Array("HTTP/".utf8)
        guard v.count == 8, v.prefix(5).elementsEqual(prefix), v[6] == UInt8(ascii: "."),
              (0x30...0x39).contains(v[5]), (0x30...0x39).contains(v[7]) else {
            return .failure(HTTPError(400, "malformed request line"))
        }
        guard v[5] == UInt8(ascii: "1"), v[7] == UInt8(ascii: "0") || v[7] == UInt8(ascii: "1") else {
            return .failure(HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported"))
        }
        return .success(RequestLine(method: method, target: target, minor: Int(v[7] - 0x30)))
    }

    static func parseComplete(_ b: UnsafeRawBufferPointer, start: Int, firstLineEnd: Int, headEnd: Int,
                              limits: HTTPLimits) -> Result<HTTPRequestHead, HTTPError> {
        let rl: RequestLine
        switch parseRequestLine(b, start, firstLineEnd) {
        case .success(let r): rl = r
        case .failure(let e): return .failure(e)
        }
        var headers: [HTTPHeader] = []
        var p = firstLineEnd + 2
        while p < headEnd {
            // One line: p ..< lineEnd (CRLF at lineEnd).
            var lineEnd = p
            while !(b[lineEnd] == 13 && b[lineEnd + 1] == 10) { lineEnd += 1 }
            if b[p] == 0x20 || b[p] == 0x09 { return .failure(HTTPError(400, "obsolete header line folding")) }
            var c = p
            while c < lineEnd && isToken(b[c]) { c += 1 }
            if c == p || c >= lineEnd || b[c] != UInt8(ascii: ":") {
                return .failure(HTTPError(400, "malformed header line"))
            }
            var v0 = c + 1, v1 = lineEnd
            for k in v0..<v1 {
                let ch = b[k]
                if (ch < 0x20 && ch != 0x09) || ch == 0x7F { return .failure(HTTPError(400, "control character in a header value")) }
            }
            while v0 < v1 && (b[v0] == 0x20 || b[v0] == 0x09) { v0 += 1 }
            while v1 > v0 && (b[v1 - 1] == 0x20 || b[v1 - 1] == 0x09) { v1 -= 1 }
            if headers.count >= limits.maxHeaderCount {
                return .failure(HTTPError(431, "more than \(limits.maxHeaderCount) header fields"))
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: b[p..<c]), as: UTF8.self).lowercased()
            let value = String(decoding: UnsafeRawBufferPointer(rebasing: b[v0..<v1]), as: UTF8.self)
            headers.append(HTTPHeader(name: name, value: value))
            p = lineEnd + 2
        }
        return interpret(rl, headers, limits)
    }

    /// Comma-separated list elements of a header value, trimmed, lower-cased, empty ones dropped.
    static func listElements(_ v: String) -> [String] {
        v.split(separator: ",").map { $0.serveTrimmed(" \t").lowercased() }.filter { !$0.isEmpty }
    }

    static func interpret(_ rl: RequestLine, _ headers: [HTTPHeader], _ limits: HTTPLimits) -> Result<HTTPRequestHead, HTTPError> {
        var contentLength: Int?
        var hosts = 0
        var te: [String] = []
        var connection: [String] = []
        var expect: String?
        for h in headers {
            switch h.name {
            case "content-length":
                for part in h.value.split(separator: ",", omittingEmptySubsequences: false) {
                    let s = part.serveTrimmed(" \t")
                    guard !s.isEmpty, s.utf8.count <= 18, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int(s) else {
                        return .failure(HTTPError(400, "invalid Content-Length"))
                    }
                    if let old = contentLength, old != v { return .failure(HTTPError(400, "conflicting Content-Length values")) }
                    contentLength = v
                }
            case "host": hosts += 1
            case "transfer-encoding": te += listElements(h.value)
            case "connection": connection += listElements(h.value)
            case "expect":
                if expect != nil { return .failure(HTTPError(400, "more than one Expect header")) }
                expect = h.value.lowercased()
            default: break
            }
        }
        if rl.minor == 1 && hosts != 1 {
            return .failure(HTTPError(400, hosts == 0 ? "HTTP/1.1 request without a Host header" : "more than one Host header"))
        }
        if !te.isEmpty || headers.contains(where: { $0.name == "transfer-encoding" }) {
            if contentLength != nil { return .failure(HTTPError(400, "both Transfer-Encoding and Content-Length")) }
            if rl.minor == 0 { return .failure(HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")) }
            if te.last == "chunked" {
                return .failure(HTTPError(411, "chunked request bodies are not supported: send the body with a Content-Length"))
            }
            return .failure(HTTPError(501, "unsupported Transfer-Encoding"))
        }
        if let cl = contentLength, cl > limits.maxBodyBytes {
            return .failure(HTTPError(413, "request body of \(cl) bytes exceeds the limit of \(limits.maxBodyBytes) bytes"))
        }
        var expectContinue = false
        if let e = expect {
            guard e == "100-continue" else { return .failure(HTTPError(417, "unsupported Expect value")) }
            expectContinue = rl.minor == 1
        }
        let keepAlive = rl.minor == 1 ? !connection.contains("close") : connection.contains("keep-alive")
        var path = rl.target, query = ""
        if let q = rl.target.firstIndex(of: "?") {
            path = String(rl.target[..<q])
            query = String(rl.target[rl.target.index(after: q)...])
        }
        return .success(HTTPRequestHead(method: rl.method, target: rl.target, path: path, query: query,
                                        minorVersion: rl.minor, headers: headers, contentLength: contentLength,
                                        keepAlive: keepAlive, expectContinue: expectContinue))
    }
}

extension Substring {
    /// The substring without leading and trailing characters of `set`.
    func serveTrimmed(_ set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    func serveTrimmed(_ set: String) -> String { Substring(self).serveTrimmed(set) }
}
