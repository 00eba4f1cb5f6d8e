// libFuzzer harness: the HTTP request head parser of `edge-mrcnn serve` (Serve/HTTPParser.swift),
// then, for a complete head, the route and the detection form read from what follows it
// (DeepStackAPI.detectionRequest: multipart parser, api_key, min_confidence). The input is the
// raw bytes a client sends. Byte 0's low bits pick small or default limits.
@testable import EdgeMRCNN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    let small = size > 0 && data[0] & 3 == 1
    let limits = small ? HTTPLimits(maxHeaderBytes: 256, maxHeaderCount: 8, maxBodyBytes: 4096) : HTTPLimits()
    switch HTTPParser.parseHead(buf, limits: limits) {
    case .incomplete:
        // Nothing wrong so far, and no complete head: after the leading empty lines (skipped),
        // the head limit is not reached yet.
        var start = 0
        while start + 1 < size && data[start] == 13 && data[start + 1] == 10 { start += 2 }
        if start > limits.maxHeaderBytes || size - start > limits.maxHeaderBytes { fatalError("incomplete beyond the head limit") }
    case .failed(let e):
        guard (400...599).contains(e.status), !e.message.isEmpty else { fatalError("bad error \(e)") }
    case .complete(let head, let n):
        guard n > 0, n <= size, n <= 2 * limits.maxHeaderBytes + 2 else { fatalError("head length \(n) of \(size)") }
        guard head.path.hasPrefix("/"), !head.method.isEmpty, head.minorVersion == 0 || head.minorVersion == 1 else {
            fatalError("accepted a bad request line")
        }
        if let cl = head.contentLength, cl < 0 || cl > limits.maxBodyBytes { fatalError("Content-Length \(cl) accepted") }
        guard head.headers.count <= limits.maxHeaderCount else { fatalError("too many headers accepted") }
        // The head alone parses the same (it never depends on the bytes after it).
        guard HTTPParser.parseHead(UnsafeRawBufferPointer(rebasing: buf[0..<n]), limits: limits) == .complete(head, headLength: n) else {
            fatalError("head depends on the bytes after it")
        }
        _ = DeepStackAPI.route(method: head.method, path: head.path, modelNames: ["a", "b"], defaultModel: 0)
        let body = UnsafeRawBufferPointer(rebasing: buf[n...])
        if let r = try? DeepStackAPI.detectionRequest(body: body, contentType: head.header("content-type"),
                                                    apiKey: data[0] & 4 == 0 ? nil : "k") {
            guard r.image.lowerBound >= 0, r.image.upperBound <= body.count, !r.image.isEmpty,
                  r.minConfidence >= 0, r.minConfidence <= 1 else { fatalError("bad detection request") }
        }
    }
    return 0
}
