// JPEG images held in memory (frames of a stream): header probe and decode through the C wrapper
// (CShim/io/jpeg.c), with the same limits and one-line errors as the file readers in ImageIO.swift
// and Runtime/Limits.swift; errors name `name` (e.g. "frame 12").
import CShim

/// Width and height from the frame header of the JPEG in `bytes` (no pixel decoded).
public func jpegSize(bytes: [UInt8], name: String) throws -> (width: Int, height: Int) {
    var w: Int32 = 0, h: Int32 = 0
    var err = [CChar](repeating: 0, count: 512)
    let rc = bytes.withUnsafeBufferPointer { b in
        err.withUnsafeMutableBufferPointer { e in em_jpeg_size_mem(b.baseAddress, b.count, &w, &h, e.baseAddress, Int32(e.count)) }
    }
    if rc != 0 { throw EdgeError(file: name, jpegMemoryMessage(err, fallback: "cannot read the JPEG header")) }
    return (Int(w), Int(h))
}

/// Checks the JPEG in `bytes` against the limits from its header alone, as
/// `checkImageLimits(path:...)` does for a file.
public func checkImageLimits(bytes: [UInt8], name: String, limits: RunLimits, weightBytes: Int) throws {
    let (w, h) = try jpegSize(bytes: bytes, name: name)
    try checkImageLimits(name: name, width: w, height: h, limits: limits, weightBytes: weightBytes)
}

/// Decodes the JPEG in `bytes` into RGB; more than `maxPixels` pixels are refused before decoding.
public func decodeJPEG(bytes: [UInt8], name: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
    var rgb: UnsafeMutablePointer<UInt8>?
    var w: Int32 = 0, h: Int32 = 0
    var err = [CChar](repeating: 0, count: 512)
    let rc = bytes.withUnsafeBufferPointer { b in
        err.withUnsafeMutableBufferPointer { e in
            em_jpeg_decode_mem(b.baseAddress, b.count, max(maxPixels, 0), &rgb, &w, &h, e.baseAddress, Int32(e.count))
        }
    }
    defer { if let p = rgb { em_free(p) } }
    if rc != 0 { throw EdgeError(file: name, jpegMemoryMessage(err, fallback: "cannot decode the JPEG")) }
    guard let p = rgb, w > 0, h > 0 else { throw EdgeError(file: name, "the decoder returned no pixels") }
    return RGBImage(width: Int(w), height: Int(h), pixels: [UInt8](UnsafeBufferPointer(start: p, count: Int(w) * Int(h) * 3)))
}

private func jpegMemoryMessage(_ buf: [CChar], fallback: String) -> String {
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    var s = String(String(decoding: bytes, as: UTF8.self).map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    while s.hasSuffix(" ") { s.removeLast() }
    return s.isEmpty ? fallback : s
}
