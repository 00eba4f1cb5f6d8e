// The DeepStack / CodeProject.AI detection API as `edge-mrcnn serve` answers it: routes, the form
// fields of a detection request, and the JSON of the answers. Pure code (no sockets), unit-tested.
//
// Followed (read with the project's search tool):
//   - DeepStack docs, object detection (johnolafenwa/deepstack-docs src/object-detection/index.rst):
//     POST /v1/vision/detection, multipart field "image", optional "min_confidence"; answer
//     {"success": true, "predictions": [{"label", "confidence", "x_min", "y_min", "x_max",
//     "y_max"}]} with integer pixel coordinates and confidence in 0..1.
//   - DeepStack docs, security (src/security/index.rst): with an API key set, every detection
//     request carries the form field "api_key"; a wrong or missing key answers
//     {"success": false, "error": "Incorrect api key"}. (Here with status 401.)
//   - DeepStack Python client (robmarkcole/deepstack-python deepstack/core.py): posts
//     files={"image": bytes}, data={"api_key": key, "min_confidence": x} (an empty api_key when
//     none is configured) to /v1/vision/detection or /v1/vision/custom/<model>.
//   - CodeProject.AI API reference (codeproject/CodeProject.AI-Server docs/mkdocs/CodeProject.AI/
//     docs/api/api_reference.md): min_confidence default 0.4; "inferenceMs" and "processMs" in the
//     answer; custom models at POST /v1/vision/custom/<model-name>; POST /v1/vision/custom/list
//     -> {"success": true, "models": [...]}; server ping GET /v1/status/ping -> {"success": true}.
// Additions of edge-mrcnn: "count"; each prediction's "mask" (COCO compressed RLE, the same
// object as "segmentation" in the results JSON of `detect`); GET /v1/status (model, precision,
// kernel ISA, queue). Predictions are sorted by confidence, highest first (Frigate's DeepStack
// detector stops at the first one under its threshold).

/// What a request asks for.
public enum ServeRoute: Equatable {
    case status
    case ping
    case customList
    /// Detection with the model of this index.
    case detect(model: Int)
    case notFound(String)
    case methodNotAllowed(allow: String)
}

public enum DeepStackAPI {
    /// The default min_confidence (CodeProject.AI's documented default).
    public static let defaultMinConfidence: Float = 0.4

    /// The route of `method path`. `modelNames[i]` is served at /v1/vision/custom/<name>;
    /// /v1/vision/detection uses `defaultModel`.
    public static func route(method: String, path: String, modelNames: [String], defaultModel: Int) -> ServeRoute {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        func only(_ allowed: [String], _ r: ServeRoute) -> ServeRoute {
            allowed.contains(method) ? r : .methodNotAllowed(allow: allowed.joined(separator: ", "))
        }
        switch p {
        case "/v1/status": return only(["GET"], .status)
        case "/v1/status/ping": return only(["GET"], .ping)
        case "/v1/vision/detection": return only(["POST"], .detect(model: defaultModel))
        case "/v1/vision/custom/list": return only(["GET", "POST"], .customList)
        default: break
        }
        let prefix = "/v1/vision/custom/"
        if p.hasPrefix(prefix) {
            let name = String(p.dropFirst(prefix.count))
            if let i = modelNames.firstIndex(of: name) { return only(["POST"], .detect(model: i)) }
            return .notFound("no model named '\(printable(name))' (models: \(modelNames.joined(separator: ", ")))")
        }
        return .notFound("no such route: \(printable(String(p)))")
    }

    /// `s` cut to `limit` characters, control characters as '?' (for messages that quote a client).
    public static func printable(_ s: String, limit: Int = 100) -> String {
        var out = ""
        for (k, u) in s.unicodeScalars.enumerated() {
            if k >= limit { out += "..."; break }
            out.unicodeScalars.append(u.value < 0x20 || u.value == 0x7F ? "?" : u)
        }
        return out
    }

    /// The fields of a detection request.
    public struct DetectionRequest: Equatable {
        /// Where the image bytes lie in the body.
        public var image: Range<Int>
        public var minConfidence: Float
    }

    /// Reads a detection request's form: the "image" file, "min_confidence" (default 0.4, a number
    /// in 0...1) and, when the server has an API key, "api_key" (401 unless it matches).
    public static func detectionRequest(body: UnsafeRawBufferPointer, contentType: String?, apiKey: String?,
                                        maxParts: Int = Multipart.defaultMaxParts) throws -> DetectionRequest {
        let boundary = try Multipart.boundary(contentType: contentType)
        let form = MultipartForm(parts: try Multipart.parse(body, boundary: boundary, maxParts: maxParts))
        func text(_ p: MultipartPart) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: body[p.content]), as: UTF8.self)
        }
        if let key = apiKey {
            let sent = form.part("api_key").map { Array(UnsafeRawBufferPointer(rebasing: body[$0.content])) } ?? []
            if !constantTimeEqual(sent, Array(key.utf8)) { throw HTTPError(401, "Incorrect api key") }
        }
        var minConfidence = defaultMinConfidence
        if let p = form.part("min_confidence") {
            let s = text(p).serveTrimmed(" \t\r\n")
            guard s.utf8.count <= 32, let v = Float(s), v.isFinite, v >= 0, v <= 1 else {
                throw HTTPError(400, "min_confidence must be a number between 0 and 1, got '\(printable(s))'")
            }
            minConfidence = v
        }
        guard let image = form.part("image") else {
            throw HTTPError(400, "no image: send the JPEG as the multipart form field \"image\"")
        }
        if image.content.isEmpty { throw HTTPError(400, "the image field is empty") }
        return DetectionRequest(image: image.content, minConfidence: minConfidence)
    }

    /// Compares without an early exit at the first differing byte.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = a.count ^ b.count
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0, y = i < b.count ? b[i] : 0
            diff |= Int(x ^ y)
        }
        return diff == 0
    }

    /// Detections in the order of the answer: confidence, highest first (ties keep their order).
    public static func sorted(_ dets: [Detection]) -> [Detection] {
        dets.enumerated().sorted { a, b in
            a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset
        }.map { $0.element }
    }

    /// A pixel coordinate as DeepStack gives it: the integer part (boxes are inside the image, so
    /// never negative).
    static func pixel(_ v: Float, _ what: String) throws -> Int {
        guard v.isFinite, abs(v) < 1e9 else { throw EdgeError("detection \(what) is \(v)") }
        return Int(v)
    }

    /// One prediction object.
    public static func prediction(_ d: Detection, classNames: [String]) throws -> String {
        let (x1, y1, x2, y2) = d.box
        var s = "{\"label\":\(ResultsJSON.string(ResultsJSON.categoryName(d.label, classNames: classNames)))"
        s += ",\"confidence\":\(try ResultsJSON.number(d.score, what: "score"))"
        s += ",\"x_min\":\(try pixel(x1, "x_min")),\"y_min\":\(try pixel(y1, "y_min"))"
        s += ",\"x_max\":\(try pixel(x2, "x_max")),\"y_max\":\(try pixel(y2, "y_max"))"
        if let rle = d.mask {
            s += ",\"mask\":{\"size\":[\(rle.height),\(rle.width)],\"counts\":\(ResultsJSON.string(rle.compressedString))}"
        }
        return s + "}"
    }

    /// The answer to a detection request: the detections scoring at least `minConfidence`,
    /// highest first.
    public static func detectionResponse(_ dets: [Detection], classNames: [String], minConfidence: Float,
                                         inferenceMs: Int, processMs: Int, moduleName: String) throws -> String {
        let kept = sorted(dets.filter { $0.score >= minConfidence })
        var s = "{\"success\":true,\"predictions\":["
        for (k, d) in kept.enumerated() {
            if k > 0 { s += "," }
            s += try prediction(d, classNames: classNames)
        }
        s += "],\"count\":\(kept.count),\"inferenceMs\":\(inferenceMs),\"processMs\":\(processMs)"
        s += ",\"moduleName\":\(ResultsJSON.string(moduleName)),\"command\":\"detect\"}"
        return s
    }

    /// {"success": false, "error": message}
    public static func errorResponse(_ message: String) -> String {
        "{\"success\":false,\"error\":\(ResultsJSON.string(message))}"
    }

    /// {"success": true, "models": [...]}
    public static func modelListResponse(_ names: [String]) -> String {
        "{\"success\":true,\"models\":[" + names.map { ResultsJSON.string($0) }.joined(separator: ",") + "]}"
    }
}

/// An HTTP/1.1 response as bytes.
public enum HTTPResponse {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }

    /// A complete response with a JSON body.
    public static func json(status: Int, body: String, keepAlive: Bool, extraHeaders: [(String, String)] = []) -> [UInt8] {
        var h = "HTTP/1.1 \(status) \(reason(status))\r\n"
        h += "Content-Type: application/json\r\n"
        h += "Content-Length: \(body.utf8.count)\r\n"
        h += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n"
        for (k, v) in extraHeaders { h += "\(k): \(v)\r\n" }
        h += "\r\n"
        return Array(h.utf8) + Array(body.utf8)
    }

    /// The answer to an HTTPError: {"success": false, "error": ...}, connection closed.
    public static func error(_ e: HTTPError, extraHeaders: [(String, String)] = []) -> [UInt8] {
        json(status: e.status, body: DeepStackAPI.errorResponse(e.message), keepAlive: false, extraHeaders: extraHeaders)
    }
}
