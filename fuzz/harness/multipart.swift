// libFuzzer harness: the multipart/form-data parser of `edge-mrcnn serve` (Serve/Multipart.swift)
// and the detection form on top of it (DeepStackAPI.detectionRequest). Input: the boundary, a
// newline, then the body. Checks: parts lie inside the body, in order, each followed by a
// delimiter; the Content-Type route agrees with the direct one.
@testable import EdgeMRCNN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMultipart(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = UnsafeRawBufferPointer(start: data, count: size)
    guard let nl = all.firstIndex(of: 10), nl <= 80 else { return 0 }
    let boundary = Array(all[0..<nl])
    let body = UnsafeRawBufferPointer(rebasing: all[(nl + 1)...])
    let maxParts = Int(size % 7) + 1
    if let parts = try? Multipart.parse(body, boundary: boundary, maxParts: maxParts) {
        guard parts.count <= maxParts else { fatalError("more parts than allowed") }
        var last = 0
        let delim: [UInt8] = [13, 10, 0x2D, 0x2D] + boundary
        for p in parts {
            guard p.content.lowerBound >= last, p.content.upperBound <= body.count else { fatalError("part outside the body") }
            guard body.count - p.content.upperBound >= delim.count,
                  body[p.content.upperBound..<(p.content.upperBound + delim.count)].elementsEqual(delim) else {
                fatalError("part not followed by a delimiter")
            }
            // The content never contains the delimiter.
            if Multipart.find(delim, in: UnsafeRawBufferPointer(rebasing: body[..<p.content.upperBound]), from: p.content.lowerBound) != nil {
                fatalError("delimiter inside a part")
            }
            last = p.content.upperBound
        }
    }
    // Through the Content-Type header, when the boundary is a valid one.
    let ct = "multipart/form-data; boundary=\"" + String(decoding: boundary, as: UTF8.self) + "\""
    if let b = try? Multipart.boundary(contentType: ct) {
        if b != boundary, !boundary.contains(UInt8(ascii: "\"")), !boundary.contains(UInt8(ascii: "\\")) {
            fatalError("boundary changed on the way")
        }
        _ = try? DeepStackAPI.detectionRequest(body: body, contentType: ct, apiKey: size % 2 == 0 ? nil : "key")
    }
    _ = Multipart.parameters(String(decoding: boundary, as: UTF8.self))
    return 0
}
