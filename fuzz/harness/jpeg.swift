// libFuzzer harness: the JPEG wrapper (CShim/io/jpeg.c) through its C API, as ImageIO calls it:
// header probe (em_jpeg_size_mem) and full decode (em_jpeg_decode_mem) with a pixel limit.
import CShim

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var err = [CChar](repeating: 0, count: 256)
    var w: Int32 = 0, h: Int32 = 0
    let probe = err.withUnsafeMutableBufferPointer { em_jpeg_size_mem(data, size, &w, &h, $0.baseAddress, 256) }
    var rgb: UnsafeMutablePointer<UInt8>?
    var dw: Int32 = 0, dh: Int32 = 0
    // 4 Mpx keeps a unit fast; the limit itself is checked before any pixel is decoded.
    let rc = err.withUnsafeMutableBufferPointer { em_jpeg_decode_mem(data, size, 1 << 22, &rgb, &dw, &dh, $0.baseAddress, 256) }
    if rc == 0 {
        guard let p = rgb, dw > 0, dh > 0, Int(dw) * Int(dh) <= 1 << 22 else { fatalError("decode succeeded without pixels") }
        guard probe == 0, w == dw, h == dh else { fatalError("header probe disagrees with the decoder") }
        // Touch the first and last byte: ASan checks the buffer is as large as promised.
        var s = Int(p[0])
        s &+= Int(p[Int(dw) * Int(dh) * 3 - 1])
        if s < 0 { fatalError() }
        em_free(p)
    } else if rgb != nil {
        fatalError("failed decode returned pixels")
    }
    if err.last != 0 { fatalError("error message not terminated") }
    return 0
}
