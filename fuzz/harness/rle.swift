// libFuzzer harness: the COCO RLE decoder (compressed counts strings), the RLE helpers (area,
// bbox, full mask, re-encoding) and the polygon rasteriser. Bytes 0-1: height and width (0-63);
// byte 2 selects the mode; the rest is the counts string or polygon coordinates.
@testable import EdgeMRCNN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRLE(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 3 else { return 0 }
    let h = Int(data[0] & 63), w = Int(data[1] & 63)
    let body = UnsafeRawBufferPointer(start: data + 3, count: size - 3)
    if data[2] & 1 == 0 {
        let s = String(decoding: body, as: UTF8.self)
        guard let r = try? RLE(height: h, width: w, compressed: s) else { return 0 }
        guard r.counts.reduce(0, +) == h * w, r.counts.allSatisfy({ $0 >= 0 }) else { fatalError("invalid RLE accepted") }
        let b = r.bbox
        // Canonical runs (no empty run after the first) give a box inside the image; with empty
        // runs the box may reach one column past the image, exactly as pycocotools' rleToBbox.
        if !r.counts.dropFirst().contains(0) {
            guard b.x >= 0, b.y >= 0, b.x + b.w <= max(w, 1), b.y + b.h <= max(h, 1) else { fatalError("bbox outside the image") }
        }
        let m = r.rowMajorMask()
        guard m.count == h * w, m.reduce(0, { $0 + Int($1) }) == r.area else { fatalError("mask area mismatch") }
        // Canonical re-encoding decodes to the same runs.
        guard let again = try? RLE(height: h, width: w, compressed: r.compressedString), again.counts == r.counts else {
            fatalError("compressed round trip")
        }
        _ = MaskOps.merge([r, again], intersect: data[2] & 2 != 0)
    } else {
        // Polygons: coordinates in half pixels from -32 (one byte each), or with bit 2 of the
        // mode byte, 16-bit ones in tenths of a pixel from -50 (long edges: slow, so rarer).
        var xy: [Double] = []
        var i = 0
        let wide = data[2] & 4 != 0
        while i + (wide ? 1 : 0) < body.count && xy.count < (wide ? 16 : 64) {
            if wide {
                xy.append(Double(Int(body[i]) | Int(body[i + 1]) << 8) / 10 - 50)
                i += 2
            } else {
                xy.append(Double(body[i]) / 2 - 32)
                i += 1
            }
        }
        guard xy.count >= 6 else { return 0 }
        if xy.count % 2 == 1 { xy.removeLast() }
        guard let r = try? MaskOps.rleFromPolygon(xy, height: h, width: w) else { return 0 }
        guard r.counts.reduce(0, +) == h * w else { fatalError("polygon RLE does not cover the image") }
        _ = r.bbox
    }
    return 0
}
