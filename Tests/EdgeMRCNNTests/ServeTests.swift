import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import EdgeMRCNN

// `edge-mrcnn serve` (issue 12). ServeParserTests: the pure HTTP head parser, multipart parser
// and DeepStack API pieces. ServeTests: the real server binary on a free port of 127.0.0.1,
// talked to over TCP (every loop bounded in count and time).

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

private func head(_ s: String, _ limits: HTTPLimits = HTTPLimits()) -> HTTPHeadResult { HTTPParser.parseHead(bytes(s), limits: limits) }

private func failedStatus(_ r: HTTPHeadResult) -> Int? {
    if case .failed(let e) = r { return e.status }
    return nil
}

private func completed(_ r: HTTPHeadResult, file: StaticString = #filePath, line: UInt = #line) -> (HTTPRequestHead, Int)? {
    if case .complete(let h, let n) = r { return (h, n) }
    XCTFail("not complete: \(r)", file: file, line: line)
    return nil
}

/// A multipart/form-data body as DeepStack's Python client (requests) builds it.
private func formBody(_ fields: [(name: String, filename: String?, data: [UInt8])], boundary: String) -> [UInt8] {
    var out: [UInt8] = []
    for f in fields {
        out += bytes("--\(boundary)\r\n")
        if let fn = f.filename {
            out += bytes("Content-Disposition: form-data; name=\"\(f.name)\"; filename=\"\(fn)\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        } else {
            out += bytes("Content-Disposition: form-data; name=\"\(f.name)\"\r\n\r\n")
        }
        out += f.data + bytes("\r\n")
    }
    out += bytes("--\(boundary)--\r\n")
    return out
}

final class ServeParserTests: XCTestCase {
    // MARK: HTTP heads

    func testSimpleGet() throws {
        let text = "GET /v1/status?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent:  curl/8 \r\n\r\nrest"
        guard let (h, n) = completed(head(text)) else { return }
        XCTAssertEqual(n, text.utf8.count - 4)
        XCTAssertEqual(h.method, "GET")
        XCTAssertEqual(h.path, "/v1/status")
        XCTAssertEqual(h.query, "x=1")
        XCTAssertEqual(h.minorVersion, 1)
        XCTAssertEqual(h.header("user-agent"), "curl/8")
        XCTAssertEqual(h.header("USER-AGENT"), "curl/8")
        XCTAssertNil(h.contentLength)
        XCTAssertTrue(h.keepAlive)
        XCTAssertFalse(h.expectContinue)
    }

    func testEveryPrefixOfAValidHeadIsIncomplete() {
        let text = "\r\nPOST /v1/vision/detection HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        let b = bytes(text)
        for k in 0..<b.count {
            XCTAssertEqual(HTTPParser.parseHead(Array(b[0..<k])), .incomplete, "prefix \(k)")
        }
        guard let (h, n) = completed(HTTPParser.parseHead(b)) else { return }
        XCTAssertEqual(n, b.count)
        XCTAssertEqual(h.contentLength, 10)
        XCTAssertTrue(h.expectContinue)
    }

    func testConnectionAndVersions() {
        XCTAssertEqual(completed(head("GET / HTTP/1.0\r\n\r\n"))?.0.keepAlive, false)
        XCTAssertEqual(completed(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))?.0.keepAlive, true)
        XCTAssertEqual(completed(head("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"))?.0.keepAlive, false)
        XCTAssertEqual(failedStatus(head("GET / HTTP/2.0\r\nHost: a\r\n\r\n")), 505)
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1x\r\nHost: a\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("GET / http/1.1\r\nHost: a\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\n\r\n")), 400, "HTTP/1.1 without Host")
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("GET * HTTP/1.1\r\nHost: a\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("GET  / HTTP/1.1\r\nHost: a\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("G(T / HTTP/1.1\r\nHost: a\r\n\r\n")), 400)
    }

    func testMalformedLinesAreRefused() {
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\nHost: a\n\n")), 400, "bare LF")
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\nHost : a\r\n\r\n")), 400, "space before colon")
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n")), 400, "obs-fold")
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n")), 400, "control byte")
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n")), 400, "bare CR")
        XCTAssertEqual(failedStatus(head("GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n")), 400)
        // Garbage is refused before the head ends.
        XCTAssertEqual(failedStatus(HTTPParser.parseHead([0x16, 0x03, 0x01, 0x00, 0xa5])), 400, "TLS hello")
        XCTAssertEqual(failedStatus(head("GET /\u{0}")), 400)
        XCTAssertEqual(failedStatus(head("GET /a\rb")), 400)
    }

    func testContentLength() {
        func cl(_ v: String) -> HTTPHeadResult { head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(v)\r\n\r\n") }
        XCTAssertEqual(completed(cl("12"))?.0.contentLength, 12)
        XCTAssertEqual(completed(cl("5, 5"))?.0.contentLength, 5)
        XCTAssertEqual(failedStatus(cl("5, 6")), 400)
        XCTAssertEqual(failedStatus(cl("+5")), 400)
        XCTAssertEqual(failedStatus(cl("-1")), 400)
        XCTAssertEqual(failedStatus(cl("1 2")), 400)
        XCTAssertEqual(failedStatus(cl("")), 400)
        XCTAssertEqual(failedStatus(cl("0x10")), 400)
        XCTAssertEqual(failedStatus(cl("9999999999999999999999")), 400)
        XCTAssertEqual(failedStatus(cl("\(HTTPLimits.defaultMaxBodyBytes + 1)")), 413)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")), 411)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")), 411)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")), 501)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")), 400)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n")), 417)
    }

    func testHeadLimits() {
        let limits = HTTPLimits(maxHeaderBytes: 256, maxHeaderCount: 4, maxBodyBytes: 1000)
        let long = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 300)
        XCTAssertEqual(failedStatus(head(long, limits)), 431, "no end in sight")
        XCTAssertEqual(failedStatus(head(long + "\r\n\r\n", limits)), 431)
        var many = "GET / HTTP/1.1\r\nHost: a\r\n"
        for i in 0..<5 { many += "X\(i): y\r\n" }
        XCTAssertEqual(failedStatus(head(many + "\r\n", limits)), 431)
        XCTAssertEqual(failedStatus(head(String(repeating: "\r\n", count: 200), limits)), 400)
        XCTAssertEqual(failedStatus(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", limits)), 413)
    }

    // MARK: multipart

    func testBoundaryFromContentType() throws {
        XCTAssertEqual(try Multipart.boundary(contentType: "multipart/form-data; boundary=abc"), bytes("abc"))
        XCTAssertEqual(try Multipart.boundary(contentType: "Multipart/Form-Data;BOUNDARY=\"a b:c\""), bytes("a b:c"))
        for (ct, status) in [(nil, 415), ("application/json", 415), ("multipart/form-data", 400),
                             ("multipart/form-data; boundary=", 400), ("multipart/form-data; boundary=a\u{1}", 400),
                             ("multipart/form-data; boundary=\(String(repeating: "x", count: 71))", 400)] as [(String?, Int)] {
            XCTAssertThrowsError(try Multipart.boundary(contentType: ct)) { XCTAssertEqual(($0 as? HTTPError)?.status, status, ct ?? "nil") }
        }
    }

    func testParseForm() throws {
        // Binary content with CR LF, "--" and a boundary prefix inside.
        let image: [UInt8] = [0xFF, 0xD8, 13, 10, 0x2D, 0x2D, 0x62, 13, 10, 0x2D, 0x2D, 0x42, 0x78, 0, 0xFF, 0xD9]
        let body = bytes("preamble\r\n") + formBody([("api_key", nil, bytes("k")), ("image", "image.jpg", image),
                                                    ("min_confidence", nil, bytes("0.3"))], boundary: "Bo") + bytes("epilogue")
        let parts = try Multipart.parse(body, boundary: bytes("Bo"))
        XCTAssertEqual(parts.map { $0.name }, ["api_key", "image", "min_confidence"])
        XCTAssertEqual(Array(body[parts[1].content]), image)
        XCTAssertEqual(parts[1].filename, "image.jpg")
        XCTAssertEqual(parts[1].contentType, "application/octet-stream")
        XCTAssertNil(parts[0].filename)
        XCTAssertEqual(Array(body[parts[2].content]), bytes("0.3"))
        XCTAssertEqual(try Multipart.parse(bytes("--b--"), boundary: bytes("b")), [])
        // No headers at all in a part is allowed by RFC 2046, but the form needs a name.
        XCTAssertThrowsError(try Multipart.parse(bytes("--b\r\n\r\nx\r\n--b--"), boundary: bytes("b")))
    }

    func testBadForms() {
        func status(_ body: String, maxParts: Int = Multipart.defaultMaxParts) -> Int? {
            do { _ = try Multipart.parse(bytes(body), boundary: bytes("b"), maxParts: maxParts); return nil }
            catch { return (error as? HTTPError)?.status }
        }
        let part = "Content-Disposition: form-data; name=\"image\"\r\n\r\nxx\r\n"
        XCTAssertNil(status("--b\r\n" + part + "--b--"))
        XCTAssertEqual(status("--b\r\n" + part), 400, "no closing boundary")
        XCTAssertEqual(status("--b\r\n" + part + "--b"), 400, "ends after a delimiter")
        XCTAssertEqual(status("--b\r\nContent-Disposition: form-data; name=\"image\"\r\nxx"), 400, "headers never end")
        XCTAssertEqual(status("no boundary at all"), 400)
        XCTAssertEqual(status("--bX\r\n" + part + "--b--"), 400, "boundary followed by garbage")
        XCTAssertEqual(status("--b\r\nContent-Type: image/jpeg\r\n\r\nxx\r\n--b--"), 400, "no Content-Disposition")
        XCTAssertEqual(status("--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nxx\r\n--b--"), 400)
        XCTAssertEqual(status("--b\r\nContent-Disposition: form-data\r\n\r\nxx\r\n--b--"), 400, "no name")
        XCTAssertEqual(status("--b\r\nBad Header\r\n\r\nxx\r\n--b--"), 400)
        XCTAssertEqual(status("--b\r\n" + part + "--b\r\n" + part + "--b\r\n" + part + "--b--", maxParts: 2), 400)
        XCTAssertEqual(status("--b\r\nX: " + String(repeating: "y", count: 9000) + "\r\n\r\n--b--"), 400)
    }

    func testParameters() {
        let p = Multipart.parameters("form-data; name=\"a;b\\\"c\"; filename=x.jpg ;flag")
        XCTAssertEqual(p.map { $0.name }, ["", "name", "filename", "flag"])
        XCTAssertEqual(p.map { $0.value }, ["form-data", "a;b\"c", "x.jpg", ""])
    }

    // MARK: DeepStack API

    func testRoutes() {
        let names = ["shapes", "other"]
        func r(_ m: String, _ p: String) -> ServeRoute { DeepStackAPI.route(method: m, path: p, modelNames: names, defaultModel: 1) }
        XCTAssertEqual(r("POST", "/v1/vision/detection"), .detect(model: 1))
        XCTAssertEqual(r("POST", "/v1/vision/detection/"), .detect(model: 1))
        XCTAssertEqual(r("POST", "/v1/vision/custom/shapes"), .detect(model: 0))
        XCTAssertEqual(r("GET", "/v1/vision/detection"), .methodNotAllowed(allow: "POST"))
        XCTAssertEqual(r("GET", "/v1/status"), .status)
        XCTAssertEqual(r("POST", "/v1/status"), .methodNotAllowed(allow: "GET"))
        XCTAssertEqual(r("GET", "/v1/status/ping"), .ping)
        XCTAssertEqual(r("POST", "/v1/vision/custom/list"), .customList)
        if case .notFound = r("POST", "/v1/vision/custom/nope") {} else { XCTFail() }
        if case .notFound = r("GET", "/") {} else { XCTFail() }
        if case .notFound = r("POST", "/v1/vision/custom/") {} else { XCTFail() }
    }

    private func request(_ fields: [(name: String, filename: String?, data: [UInt8])], apiKey: String?) throws -> DeepStackAPI.DetectionRequest {
        let body = formBody(fields, boundary: "zz")
        return try body.withUnsafeBytes {
            try DeepStackAPI.detectionRequest(body: $0, contentType: "multipart/form-data; boundary=zz", apiKey: apiKey)
        }
    }

    func testDetectionRequestFields() throws {
        let img = bytes("JPEGBYTES")
        let r = try request([("image", "a.jpg", img)], apiKey: nil)
        XCTAssertEqual(r.minConfidence, 0.4)
        XCTAssertEqual(r.image.count, img.count)
        XCTAssertEqual(try request([("min_confidence", nil, bytes(" 0.75 ")), ("image", "a.jpg", img)], apiKey: nil).minConfidence, 0.75)
        // The client sends an empty api_key when none is configured: ignored without --api-key.
        XCTAssertNoThrow(try request([("api_key", nil, []), ("image", "a.jpg", img)], apiKey: nil))
        XCTAssertNoThrow(try request([("api_key", nil, bytes("secret")), ("image", "a.jpg", img)], apiKey: "secret"))
        func status(_ f: [(name: String, filename: String?, data: [UInt8])], _ key: String?) -> Int? {
            do { _ = try request(f, apiKey: key); return nil } catch { return (error as? HTTPError)?.status }
        }
        XCTAssertEqual(status([("image", "a.jpg", img)], "secret"), 401)
        XCTAssertEqual(status([("api_key", nil, bytes("secreT")), ("image", "a.jpg", img)], "secret"), 401)
        XCTAssertEqual(status([("api_key", nil, bytes("secret1")), ("image", "a.jpg", img)], "secret"), 401)
        XCTAssertEqual(status([("min_confidence", nil, bytes("1.5")), ("image", "a.jpg", img)], nil), 400)
        XCTAssertEqual(status([("min_confidence", nil, bytes("nan")), ("image", "a.jpg", img)], nil), 400)
        XCTAssertEqual(status([("min_confidence", nil, bytes("abc")), ("image", "a.jpg", img)], nil), 400)
        XCTAssertEqual(status([("file", "a.jpg", img)], nil), 400)
        XCTAssertEqual(status([("image", "a.jpg", [])], nil), 400)
        XCTAssertTrue(DeepStackAPI.constantTimeEqual(bytes("abc"), bytes("abc")))
        XCTAssertFalse(DeepStackAPI.constantTimeEqual(bytes("abc"), bytes("abcd")))
        XCTAssertFalse(DeepStackAPI.constantTimeEqual([], bytes("a")))
    }

    func testDetectionResponseJSON() throws {
        let rle = RLE(rowMajor: [0, 1, 1, 0], height: 2, width: 2)
        let dets = [Detection(box: (1.9, 2.2, 10.99, 20.5), score: 0.5, label: 1, mask: rle),
                    Detection(box: (0, 0, 3, 4), score: 0.9, label: 2, mask: nil),
                    Detection(box: (5, 5, 6, 6), score: 0.3, label: 7, mask: nil),
                    Detection(box: (7, 7, 8, 8), score: 0.9, label: 1, mask: nil)]
        let text = try DeepStackAPI.detectionResponse(dets, classNames: ["bg", "circle", "square"], minConfidence: 0.4,
                                                      inferenceMs: 12, processMs: 15, moduleName: "edge-mrcnn m")
        let j = try JSON.parse(text)
        XCTAssertEqual(j["success"], .bool(true))
        XCTAssertEqual(j["count"]?.intValue, 3)
        XCTAssertEqual(j["inferenceMs"]?.intValue, 12)
        XCTAssertEqual(j["processMs"]?.intValue, 15)
        let p = j["predictions"]?.arrayValue ?? []
        XCTAssertEqual(p.compactMap { $0["label"]?.stringValue }, ["square", "circle", "circle"], "by confidence, ties in order")
        XCTAssertEqual(p.compactMap { $0["confidence"]?.doubleValue }, [0.9, 0.9, 0.5], "Float32 in its shortest form")
        XCTAssertEqual(p[2]["x_min"]?.intValue, 1)
        XCTAssertEqual(p[2]["y_min"]?.intValue, 2)
        XCTAssertEqual(p[2]["x_max"]?.intValue, 10)
        XCTAssertEqual(p[2]["y_max"]?.intValue, 20)
        XCTAssertEqual(p[2]["mask"]?["counts"]?.stringValue, rle.compressedString)
        XCTAssertEqual(p[2]["mask"]?["size"]?.arrayValue?.compactMap { $0.intValue }, [2, 2])
        XCTAssertNil(p[0]["mask"])
        let bad = [Detection(box: (.nan, 0, 1, 1), score: 0.9, label: 1, mask: nil)]
        XCTAssertThrowsError(try DeepStackAPI.detectionResponse(bad, classNames: [], minConfidence: 0, inferenceMs: 0, processMs: 0, moduleName: ""))
        let e = try JSON.parse(DeepStackAPI.errorResponse("a \"quoted\"\nline"))
        XCTAssertEqual(e["success"], .bool(false))
        XCTAssertEqual(e["error"]?.stringValue, "a \"quoted\"\nline")
    }

    func testResponseBytes() {
        let r = String(decoding: HTTPResponse.json(status: 404, body: "{}", keepAlive: false, extraHeaders: [("Allow", "GET")]), as: UTF8.self)
        XCTAssertEqual(r, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\nAllow: GET\r\n\r\n{}")
    }

    /// The hostile-request corpus (Tests/Fixtures/bad/http, tools/make_bad_http.py) never parses
    /// into a detection request.
    func testBadHTTPCorpusIsRefusedByTheParsers() throws {
        let dir = Shared.fixture("bad/http")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertGreaterThanOrEqual(files.count, 20)
        for f in files {
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f)))
            switch HTTPParser.parseHead(data) {
            case .failed, .incomplete: continue
            case .complete(let h, let n):
                // A complete head: the route, the form or the image must be refused.
                let body = Array(data[n...])
                if let cl = h.contentLength, body.count < cl { continue }   // the server waits, then 408
                let route = DeepStackAPI.route(method: h.method, path: h.path, modelNames: ["m"], defaultModel: 0)
                var refused = true
                if route == .detect(model: 0) {
                    do {
                        try body.withUnsafeBytes { b in
                            let req = try DeepStackAPI.detectionRequest(body: b, contentType: h.header("content-type"), apiKey: nil)
                            _ = try ServeImage.decode(UnsafeRawBufferPointer(rebasing: b[req.image]), limits: RunLimits(), weightBytes: 0)
                        }
                        refused = false
                    } catch {
                        XCTAssertTrue(error is HTTPError, "\(f): \(error)")
                    }
                }
                XCTAssertTrue(refused, "\(f) was accepted")
            }
        }
    }
}

// MARK: - the server over TCP

/// A reply read from a socket: the status (nil if the connection closed without one) and body.
struct HTTPReply {
    var status: Int?
    var headers: [String: String] = [:]
    var body: [UInt8] = []
    var json: JSON? { try? JSON.parse(String(decoding: body, as: UTF8.self)) }
}

enum TCPClient {
    /// A connected socket to 127.0.0.1:port (nil if the connection is refused).
    static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = in_port_t(UInt16(port)).bigEndian
        sa.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); return nil }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    @discardableResult
    static func send(_ fd: Int32, _ data: [UInt8]) -> Bool {
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, data.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// Reads one response (head + Content-Length body) within `timeout` seconds.
    static func read(_ fd: Int32, timeout: Double = 120) -> HTTPReply {
        var buf: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var reply = HTTPReply()
        var bodyStart: Int?
        var need = Int.max
        while Date() < deadline {
            if bodyStart == nil, let r = find(buf, bytes("\r\n\r\n")) {
                let lines = String(decoding: buf[0..<r], as: UTF8.self).components(separatedBy: "\r\n")
                let parts = lines[0].split(separator: " ")
                if parts.count >= 2 { reply.status = Int(parts[1]) }
                for l in lines.dropFirst() {
                    if let c = l.firstIndex(of: ":") {
                        reply.headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
                    }
                }
                if reply.status == 100 {   // interim answer: the real one follows
                    buf.removeFirst(r + 4); reply = HTTPReply(); continue
                }
                bodyStart = r + 4
                need = Int(reply.headers["content-length"] ?? "") ?? Int.max
            }
            if let s = bodyStart, buf.count - s >= need { reply.body = Array(buf[s..<(s + need)]); return reply }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = max(1, Int32(deadline.timeIntervalSinceNow * 1000))
            if poll(&p, 1, left) <= 0 { break }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n <= 0 { break }
            buf += chunk[0..<n]
        }
        if let s = bodyStart { reply.body = Array(buf[min(s, buf.count)...]) }
        return reply
    }

    /// True if the peer closed the connection within `timeout` seconds (data before is dropped).
    static func closedByPeer(_ fd: Int32, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n <= 0 { return true }
        }
        return false
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }

    /// One request on a fresh connection, then its reply.
    static func exchange(port: Int, _ request: [UInt8], timeout: Double = 120) -> HTTPReply {
        guard let fd = connect(port: port) else { return HTTPReply() }
        defer { close(fd) }
        send(fd, request)
        return read(fd, timeout: timeout)
    }

    /// `exchange`, again (at most 50 times, 0.1 s apart) while the answer is the 503 of a full
    /// connection table: a reader may not have let go of the previous connection yet.
    static func exchangeWhenFree(port: Int, _ request: [UInt8], timeout: Double = 120) -> HTTPReply {
        var r = exchange(port: port, request, timeout: timeout)
        for _ in 0..<50 where r.status == 503 && (r.json?["error"]?.stringValue ?? "").hasPrefix("too many connections") {
            usleep(100_000)
            r = exchange(port: port, request, timeout: timeout)
        }
        return r
    }

    static func detectionRequest(path: String = "/v1/vision/detection", fields: [(name: String, filename: String?, data: [UInt8])],
                                 boundary: String = "edgeMRCNNtestBoundary", keepAlive: Bool = false) -> [UInt8] {
        let body = formBody(fields, boundary: boundary)
        return bytes("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=\(boundary)\r\n"
                     + "Content-Length: \(body.count)\r\n\(keepAlive ? "" : "Connection: close\r\n")\r\n") + body
    }
}

/// The server binary running on a free port.
final class ServerProcess {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    init(_ args: [String], tmp: String, name: String) throws {
        logPath = tmp + "/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0"] + args
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait (at most 180 s: the model is loaded first) for "listening on http://127.0.0.1:PORT".
        for _ in 0..<1800 {
            let text = log
            if let r = text.range(of: "listening on http://127.0.0.1:") {
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                if let p = Int(digits) { port = p; return }
            }
            if !process.isRunning { break }
            usleep(100_000)
        }
        stop()
        throw NSError(domain: "ServeTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "server did not start:\n\(log)"])
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then waits (at most 120 s; SIGKILL after) and returns the exit status.
    @discardableResult
    func stop() -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<1200 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); return nil }
        process.waitUntilExit()
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// GET /v1/status/ping answers {"success": true}.
    func answersPing() -> Bool {
        let r = TCPClient.exchangeWhenFree(port: port, bytes("GET /v1/status/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), timeout: 60)
        return r.status == 200 && r.json?["success"] == .bool(true)
    }
}

final class ServeTests: XCTestCase {
    var tmp = ""
    var servers: [ServerProcess] = []

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CLITests.binary) else {
            XCTFail("edge-mrcnn binary not found at \(CLITests.binary) (swift build first)")
            throw XCTSkip("no binary")
        }
        tmp = NSTemporaryDirectory() + "edge-serve-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for s in servers { s.stop() }
        servers = []
        if !tmp.isEmpty { try? FileManager.default.removeItem(atPath: tmp) }
    }

    func start(_ args: [String], name: String = "server") throws -> ServerProcess {
        let s = try ServerProcess(args, tmp: tmp, name: name)
        servers.append(s)
        return s
    }

    func image(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Shared.require("data/shapes-val/images/" + name))))
    }

    /// `detect --json` on `path` with `--score-thresh` as the results JSON array.
    func detectJSON(model: String, path: String, scoreThresh: String) throws -> [JSON] {
        let out = tmp + "/detect-\(UInt32.random(in: 0...UInt32.max)).json"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = ["detect", "--model", model, "--json", out, "--score-thresh", scoreThresh, path]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return try JSON.load(path: out).arrayValue ?? []
    }

    /// The predictions equal `detect --json` on the same image: same labels, scores, integer boxes
    /// and masks, sorted by confidence.
    func assertSamePredictions(_ reply: HTTPReply, _ expected: [JSON], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(reply.status, 200, String(decoding: reply.body, as: UTF8.self), file: file, line: line)
        guard let j = reply.json, let preds = j["predictions"]?.arrayValue else { return XCTFail("no predictions", file: file, line: line) }
        XCTAssertEqual(j["success"], .bool(true), file: file, line: line)
        XCTAssertEqual(j["count"]?.intValue, preds.count, file: file, line: line)
        XCTAssertNotNil(j["inferenceMs"]?.intValue, file: file, line: line)
        XCTAssertNotNil(j["processMs"]?.intValue, file: file, line: line)
        let scores = preds.compactMap { $0["confidence"]?.doubleValue }
        XCTAssertEqual(scores, scores.sorted(by: >), "sorted by confidence", file: file, line: line)
        // detect lists by score too (torchvision order); match them one to one.
        let exp = expected.sorted { ($0["score"]?.doubleValue ?? 0) > ($1["score"]?.doubleValue ?? 0) }
        XCTAssertEqual(preds.count, exp.count, file: file, line: line)
        XCTAssertGreaterThan(preds.count, 0, "the test image should have detections", file: file, line: line)
        for (p, e) in zip(preds, exp) {
            XCTAssertEqual(p["label"]?.stringValue, e["category_name"]?.stringValue, file: file, line: line)
            XCTAssertEqual(p["confidence"]?.doubleValue, e["score"]?.doubleValue, file: file, line: line)
            let b = e["bbox"]?.arrayValue?.compactMap { $0.doubleValue } ?? []
            guard b.count == 4 else { XCTFail("bbox", file: file, line: line); continue }
            // bbox is x, y, w, h of Float32 corners; recompute the corners the way the server has them.
            XCTAssertEqual(p["x_min"]?.intValue, Int(Float(b[0])), file: file, line: line)
            XCTAssertEqual(p["y_min"]?.intValue, Int(Float(b[1])), file: file, line: line)
            // (x + w may differ from the corner by a rounding step of Float32.)
            XCTAssertEqual(Double(p["x_max"]?.intValue ?? -9), Double(Int(Float(b[0]) + Float(b[2]))), accuracy: 1, file: file, line: line)
            XCTAssertEqual(Double(p["y_max"]?.intValue ?? -9), Double(Int(Float(b[1]) + Float(b[3]))), accuracy: 1, file: file, line: line)
            XCTAssertEqual(p["mask"]?["counts"]?.stringValue, e["segmentation"]?["counts"]?.stringValue, file: file, line: line)
            XCTAssertEqual(p["mask"]?["size"], e["segmentation"]?["size"], file: file, line: line)
        }
    }

    /// Valid requests (plain, keep-alive, custom route, min_confidence) give what `detect` gives.
    func testPredictionsMatchDetect() throws {
        let model = try Shared.require("models/shapes-r50fpn/model.pth")
        let s = try start(["--model", model, "--model", "second=" + model])
        let names = ["shapes_777_00005.jpg", "shapes_777_00000.jpg"]
        for name in names {
            let path = try Shared.require("data/shapes-val/images/" + name)
            let expected = try detectJSON(model: model, path: path, scoreThresh: "0.4")
            let r = TCPClient.exchange(port: s.port, TCPClient.detectionRequest(fields: [("image", name, try image(name))]))
            assertSamePredictions(r, expected)
        }
        // Two requests on one keep-alive connection, the second on the custom route with a lower
        // min_confidence; with an Expect: 100-continue head on the first.
        let path = try Shared.require("data/shapes-val/images/" + names[0])
        let low = try detectJSON(model: model, path: path, scoreThresh: "0.1")
        guard let fd = TCPClient.connect(port: s.port) else { return XCTFail("connect") }
        defer { close(fd) }
        var req = TCPClient.detectionRequest(fields: [("image", "x.jpg", try image(names[0]))], keepAlive: true)
        let headEnd = TCPClient.find(req, bytes("\r\n\r\n"))! + 2
        req.insert(contentsOf: bytes("Expect: 100-continue\r\n"), at: headEnd)
        TCPClient.send(fd, Array(req[0..<(headEnd + 24)]))   // the head; the body after the 100
        var interim = [UInt8](repeating: 0, count: 25)
        var got = 0
        for _ in 0..<100 where got < 25 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 { let n = interim.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, 25 - got, 0) }; if n <= 0 { break }; got += n }
        }
        XCTAssertEqual(String(decoding: interim[0..<got], as: UTF8.self), "HTTP/1.1 100 Continue\r\n\r\n")
        TCPClient.send(fd, Array(req[(headEnd + 24)...]))
        let r1 = TCPClient.read(fd)
        XCTAssertEqual(r1.headers["connection"], "keep-alive")
        assertSamePredictions(r1, try detectJSON(model: model, path: path, scoreThresh: "0.4"))
        TCPClient.send(fd, TCPClient.detectionRequest(path: "/v1/vision/custom/second",
                                                      fields: [("min_confidence", nil, bytes("0.1")), ("image", "x.jpg", try image(names[0]))]))
        assertSamePredictions(TCPClient.read(fd), low)
        // Status and list.
        let st = TCPClient.exchange(port: s.port, bytes("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertEqual(st.status, 200)
        XCTAssertEqual(st.json?["models"]?.arrayValue?.compactMap { $0["name"]?.stringValue }, ["model", "second"])
        XCTAssertEqual(st.json?["models"]?.arrayValue?.first?["precision"]?.stringValue, "float32")
        XCTAssertNotNil(st.json?["isa"]?.stringValue)
        let list = TCPClient.exchange(port: s.port, bytes("POST /v1/vision/custom/list HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(list.json?["models"]?.arrayValue?.compactMap { $0.stringValue }, ["model", "second"])
        XCTAssertEqual(s.stop(), 0)
    }

    /// Hostile requests each get an error status or a closed connection, and the server answers
    /// a valid request afterwards.
    func testHostileRequests() throws {
        let model = try Shared.require("models/shapes-r50fpn/model.pth")
        let s = try start(["--model", model, "--api-key", "sesame", "--read-timeout", "1", "--max-body-mb", "1",
                           "--max-header-kb", "4", "--max-connections", "4", "--queue", "1"])
        let good = try image("shapes_777_00005.jpg")
        let okFields: [(name: String, filename: String?, data: [UInt8])] = [("api_key", nil, bytes("sesame")), ("image", "a.jpg", good)]
        let okRequest = TCPClient.detectionRequest(fields: okFields)
        let body = formBody(okFields, boundary: "b0")
        let ct = "Content-Type: multipart/form-data; boundary=b0\r\n"
        var cases: [(String, [UInt8], Set<Int>)] = [
            ("no Content-Length", bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\(ct)\r\n") + body, [411]),
            ("Content-Length too small", bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\(ct)Content-Length: 100\r\n\r\n") + body, [400]),
            ("chunked", bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\(ct)Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"), [411]),
            ("boundary that never ends", bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\(ct)Content-Length: \(body.count - 8)\r\n\r\n") + body[0..<(body.count - 8)], [400]),
            ("not an image", TCPClient.detectionRequest(fields: [("api_key", nil, bytes("sesame")), ("image", "a.jpg", bytes("GIF89a not a jpeg"))]), [400]),
            ("truncated JPEG", TCPClient.detectionRequest(fields: [("api_key", nil, bytes("sesame")), ("image", "a.jpg", Array(good[0..<200]))]), [400]),
            ("oversized body", bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\(ct)Content-Length: 2000000\r\n\r\n") + body, [413]),
            ("wrong api key", TCPClient.detectionRequest(fields: [("api_key", nil, bytes("open")), ("image", "a.jpg", good)]), [401]),
            ("no api key", TCPClient.detectionRequest(fields: [("image", "a.jpg", good)]), [401]),
            ("not multipart", bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: \(good.count)\r\n\r\n") + good, [415]),
            ("unknown route", bytes("GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"), [404]),
            ("unknown model", TCPClient.detectionRequest(path: "/v1/vision/custom/nope", fields: okFields), [404]),
            ("wrong method", bytes("DELETE /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\r\n"), [405]),
            ("huge header", bytes("GET /v1/status HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "a", count: 5000))\r\n\r\n"), [431]),
            ("garbage", (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 7919) }, [400]),
            ("HTTP/2 preface", bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), [400, 505]),
        ]
        // The hostile-request corpus too, twice (with what follows: over 200 hostile requests).
        let dir = Shared.fixture("bad/http")
        for pass in 1...2 {
            for f in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() {
                cases.append(("corpus \(f) (pass \(pass))", [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))), []))
            }
        }
        var errors = 0, closed = 0
        for (what, req, statuses) in cases {
            let r = TCPClient.exchangeWhenFree(port: s.port, req, timeout: 30)
            if let st = r.status {
                XCTAssertGreaterThanOrEqual(st, 400, "\(what): \(String(decoding: r.body, as: UTF8.self))")
                if !statuses.isEmpty { XCTAssertTrue(statuses.contains(st), "\(what): status \(st)") }
                XCTAssertEqual(r.json?["success"], .bool(false), what)
                XCTAssertNotNil(r.json?["error"]?.stringValue, what)
                errors += 1
            } else {
                XCTAssertTrue(statuses.isEmpty, "\(what): connection closed without an answer")
                closed += 1
            }
        }
        print("ServeTests: \(cases.count) hostile requests: \(errors) error answers, \(closed) closed without one")
        XCTAssertGreaterThanOrEqual(errors, cases.count * 9 / 10)
        XCTAssertTrue(s.answersPing(), s.log)

        // A client that stops sending: inside the head, inside the body -> 408 or close, within
        // the read timeout (1 s here).
        for partial in [bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n"),
                        bytes("POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\n\(ct)Content-Length: \(body.count)\r\n\r\n") + body[0..<100]] {
            guard let fd = TCPClient.connect(port: s.port) else { XCTFail("connect"); continue }
            TCPClient.send(fd, partial)
            let r = TCPClient.read(fd, timeout: 20)
            XCTAssertTrue(r.status == 408 || r.status == nil, "\(String(describing: r.status))")
            close(fd)
        }
        // An idle connection that never sends anything is closed after the read timeout.
        if let fd = TCPClient.connect(port: s.port) {
            XCTAssertTrue(TCPClient.closedByPeer(fd, timeout: 20))
            close(fd)
        }

        // Many connections at once (more than --max-connections 4): each one beyond is answered
        // 503 or closed; none hangs.
        var fds: [Int32] = []
        for _ in 0..<20 { if let fd = TCPClient.connect(port: s.port) { fds.append(fd) } }
        var busy = 0
        for fd in fds.suffix(10) {
            let r = TCPClient.read(fd, timeout: 20)
            if r.status == 503 { busy += 1 } else { XCTAssertNil(r.status) }
        }
        XCTAssertGreaterThan(busy, 0, "no 503 for connections beyond the limit")
        for fd in fds { close(fd) }

        // A full queue (--queue 1): of three detection requests sent at once, one runs, one
        // waits, the third is answered 503 at once (unless the first was already done).
        XCTAssertTrue(s.answersPing(), s.log)
        var statuses: [Int?] = []
        var conns: [Int32] = []
        for _ in 0..<3 { if let fd = TCPClient.connect(port: s.port) { TCPClient.send(fd, okRequest); conns.append(fd) } }
        for fd in conns { statuses.append(TCPClient.read(fd, timeout: 120).status); close(fd) }
        XCTAssertTrue(statuses.allSatisfy { $0 == 200 || $0 == 503 }, "\(statuses)")
        XCTAssertTrue(statuses.contains(200), "\(statuses)")

        // Still alive and answering a valid request.
        XCTAssertTrue(s.answersPing(), s.log)
        let r = TCPClient.exchangeWhenFree(port: s.port, okRequest)
        XCTAssertEqual(r.status, 200, String(decoding: r.body, as: UTF8.self))
        XCTAssertEqual(s.stop(), 0, s.log)
    }

    /// SIGTERM (then SIGINT) while a detection runs and another waits: the running one is
    /// answered, the server exits 0; SIGPIPE (a client gone before its answer) does not kill it.
    func testCleanShutdownAndVanishingClients() throws {
        let model = try Shared.require("models/shapes-r50fpn/model.pth")
        let s = try start(["--model", model, "--quiet"])
        let req = TCPClient.detectionRequest(fields: [("image", "a.jpg", try image("shapes_777_00005.jpg"))])
        // Clients that post and leave before the answer (the server then writes to a closed socket).
        for _ in 0..<3 {
            if let fd = TCPClient.connect(port: s.port) { TCPClient.send(fd, req); close(fd) }
        }
        XCTAssertTrue(s.answersPing())
        var conns: [Int32] = []
        for _ in 0..<2 { if let fd = TCPClient.connect(port: s.port) { TCPClient.send(fd, req); conns.append(fd) } }
        usleep(300_000)
        kill(s.process.processIdentifier, SIGTERM)
        usleep(100_000)
        kill(s.process.processIdentifier, SIGINT)   // a second signal while stopping changes nothing
        for fd in conns {
            let r = TCPClient.read(fd, timeout: 120)
            XCTAssertTrue(r.status == nil || r.status == 200 || r.status == 503, "\(String(describing: r.status))")
            close(fd)
        }
        XCTAssertEqual(s.stop(), 0, s.log)
        XCTAssertTrue(s.log.contains("stopped after"), s.log)
        XCTAssertNil(TCPClient.connect(port: s.port).map { close($0) }, "still listening after SIGTERM")
    }

    /// Usage mistakes of serve are refused before any model is loaded.
    func testServeUsageMistakes() throws {
        func run(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLITests.binary)
            p.arguments = ["serve"] + args
            let e = Pipe()
            p.standardError = e
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let d = e.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: d, as: UTF8.self))
        }
        XCTAssertEqual(try run([]).0, 2)
        XCTAssertEqual(try run(["--model", "a.pth", "--model", "b.pth"]).0, 2)
        XCTAssertEqual(try run(["--model", "x=a.pth", "--model", "x=b.pth"]).0, 2)
        XCTAssertEqual(try run(["--model", "a.pth", "--port", "70000"]).0, 2)
        XCTAssertEqual(try run(["--model", "a.pth", "--queue", "0"]).0, 2)
        let missing = try run(["--model", tmp + "/missing.pth"])
        XCTAssertEqual(missing.0, 1)
        XCTAssertTrue(missing.1.contains("no such model file"), missing.1)
    }
}
