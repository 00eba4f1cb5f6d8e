// libFuzzer harness: the safetensors header reader and layout checks (MappedTensorStore.layout)
// on bytes in memory, then the model metadata (ModelConfig) of the header. Every tensor's byte
// range is read to show it lies inside the input.
@testable import EdgeMRCNN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let span = ByteSpan(raw, source: "fuzz.safetensors")
    let layout: MappedTensorStore.Layout
    do {
        layout = try MappedTensorStore.layout(span)
    } catch is EdgeError {
        return 0
    } catch {
        fatalError("non-EdgeError thrown: \(error)")
    }
    var acc: UInt8 = 0
    for t in layout.tensors {
        guard t.begin >= 0, t.end >= t.begin, layout.dataStart + t.end <= size else { fatalError("tensor outside the file") }
        if t.end > t.begin { acc ^= raw[layout.dataStart + t.begin] ^ raw[layout.dataStart + t.end - 1] }
    }
    if let c = try? ModelConfig(metadata: layout.metadata, source: "fuzz.safetensors") {
        if c.numClasses < 2 || c.classNames.count != c.numClasses || c.minSize <= 0 || c.maxSize <= 0 { fatalError("bad config accepted") }
    }
    if acc == 1 && layout.tensors.isEmpty { fatalError() }
    return 0
}
