// JPEG bytes received over HTTP -> RGBImage, with the limits `detect` applies to files: pixels
// and memory checked from the header before any pixel is decoded (checkImageLimits' rules).
import CShim

public enum ServeImage {
    /// Decodes the JPEG in `bytes`. Errors are HTTPErrors: 400 for bytes that are not a JPEG we
    /// can decode, 413 for an image over the pixel or memory limit.
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: RunLimits, weightBytes: Int) throws -> RGBImage {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count > 0 else {
            throw HTTPError(400, "the image is empty")
        }
        var err = [CChar](repeating: 0, count: 512)
        var w: Int32 = 0, h: Int32 = 0
        let rc0 = err.withUnsafeMutableBufferPointer { em_jpeg_size_mem(base, bytes.count, &w, &h, $0.baseAddress, Int32($0.count)) }
        if rc0 != 0 { throw HTTPError(400, "the image is not a JPEG that can be read: " + message(err, "cannot read the JPEG header")) }
        let (px, o) = Int(w).multipliedReportingOverflow(by: Int(h))
        if o || px > limits.maxPixels {
            throw HTTPError(413, "image too large: \(w)x\(h) = \(px) pixels exceeds the limit of \(limits.maxPixels) (--max-pixels)")
        }
        if let limit = limits.effectiveMemoryLimit {
            let plan = MemoryPlan.estimate(width: Int(w), height: Int(h), weightBytes: weightBytes)
            if plan.total > limit {
                throw HTTPError(413, "image \(w)x\(h) needs \(MemoryPlan.megabytes(plan.imageBytes)) decoded, more than the "
                                + "memory limit of \(MemoryPlan.megabytes(limit)) allows with the weights")
            }
        }
        var rgb: UnsafeMutablePointer<UInt8>?
        var dw: Int32 = 0, dh: Int32 = 0
        let rc = err.withUnsafeMutableBufferPointer {
            em_jpeg_decode_mem(base, bytes.count, max(limits.maxPixels, 0), &rgb, &dw, &dh, $0.baseAddress, Int32($0.count))
        }
        defer { if let p = rgb { em_free(p) } }
        if rc != 0 { throw HTTPError(400, "the image cannot be decoded: " + message(err, "cannot decode the JPEG")) }
        guard let p = rgb, dw > 0, dh > 0 else { throw HTTPError(400, "the decoder returned no pixels") }
        let n = Int(dw) * Int(dh) * 3
        return RGBImage(width: Int(dw), height: Int(dh), pixels: [UInt8](UnsafeBufferPointer(start: p, count: n)))
    }

    static func message(_ buf: [CChar], _ fallback: String) -> String {
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        var s = String(decoding: bytes, as: UTF8.self)
        s = String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
        while s.hasSuffix(" ") { s.removeLast() }
        return s.isEmpty ? fallback : s
    }
}
