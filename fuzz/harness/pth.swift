// libFuzzer harness: the .pth reader (zip + pickle + tensor views), from bytes in memory (heap
// memory, so AddressSanitizer sees any read outside the input). Every tensor view of a loaded
// state dict is read end to end.
@testable import EdgeMRCNN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPth(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let span = ByteSpan(UnsafeRawBufferPointer(start: data, count: size), source: "fuzz.pth")
    var sd: StateDict?
    do {
        if TorchCheckpoint.isZip(span) {
            sd = try TorchCheckpoint.loadZip(span)
        } else if TorchCheckpoint.isLegacy(span) {
            sd = try TorchCheckpoint.loadLegacy(span)
        } else {
            // The pickle machine on its own.
            _ = try Pickle.load(span) { v in v.kind }
        }
    } catch is EdgeError {
        return 0
    } catch {
        fatalError("non-EdgeError thrown: \(error)")
    }
    guard let sd else { return 0 }
    var acc: UInt8 = 0
    for name in sd.names {
        guard let t = sd.tensor(name) else { fatalError("listed tensor missing") }
        let n = t.byteCount
        let bytes = UnsafeRawBufferPointer(start: t.data, count: n)
        if n > 0 { acc ^= bytes[0] ^ bytes[n - 1] }
        if n > 0 && n <= 1 << 16 { for b in bytes { acc &+= b } }
    }
    _ = try? Fold.numClasses(sd, source: "fuzz.pth")
    if acc == 0x5A && sd.names.isEmpty { fatalError() }
    return 0
}
