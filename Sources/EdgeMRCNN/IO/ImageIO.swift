// JPEG in and out through the C wrapper (CShim/io/jpeg.c); C errors become one-line EdgeErrors
// that name the file.
import CShim

/// Images larger than this are refused unless the caller allows more (`--max-pixels`).
public let defaultMaxPixels = 100_000_000

/// Decodes a JPEG file into RGB. Images with more than `maxPixels` pixels are refused before
/// their pixels are decoded.
public func loadImage(path: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
    var rgb: UnsafeMutablePointer<UInt8>?
    var w: Int32 = 0, h: Int32 = 0
    var err = [CChar](repeating: 0, count: 512)
    let rc = err.withUnsafeMutableBufferPointer { e in
        em_jpeg_decode_file(path, max(maxPixels, 0), &rgb, &w, &h, e.baseAddress, Int32(e.count))
    }
    defer { if let p = rgb { em_free(p) } }
    if rc != 0 { throw EdgeError(file: path, cMessage(err, fallback: "cannot decode the JPEG")) }
    guard let p = rgb, w > 0, h > 0 else { throw EdgeError(file: path, "the decoder returned no pixels") }
    let n = Int(w) * Int(h) * 3
    let pixels = [UInt8](UnsafeBufferPointer(start: p, count: n))
    return RGBImage(width: Int(w), height: Int(h), pixels: pixels)
}

/// Encodes `image` as a baseline JPEG at `path` (written to a temporary name, then renamed).
public func writeJPEG(_ image: RGBImage, path: String, quality: Int = 90) throws {
    guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
        throw EdgeError(file: path, "cannot write an empty image")
    }
    try AtomicFile.write(path: path) { tmp in
        var err = [CChar](repeating: 0, count: 512)
        let rc = image.pixels.withUnsafeBufferPointer { px in
            err.withUnsafeMutableBufferPointer { e in
                em_jpeg_encode_file(tmp, px.baseAddress, Int32(image.width), Int32(image.height),
                                    Int32(min(max(quality, 1), 100)), e.baseAddress, Int32(e.count))
            }
        }
        if rc != 0 { throw EdgeError(file: path, cMessage(err, fallback: "cannot write the JPEG")) }
    }
}

/// The C message as one line, without a repeated path prefix.
private func cMessage(_ buf: [CChar], fallback: String) -> String {
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    var s = String(decoding: bytes, as: UTF8.self)
    s = String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    while s.hasSuffix(" ") { s.removeLast() }
    return s.isEmpty ? fallback : s
}
