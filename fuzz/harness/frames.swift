// libFuzzer harness: the MJPEG frame splitter (JPEGFrameSplitter) that cuts `detect -`'s standard
// input into frames. Byte 0 picks the frame limit (64 B .. 16 KiB), byte 1 the chunk sizes the
// rest is fed in. Checks: every byte is consumed; the events do not depend on the chunking (fed
// whole, and in the chosen chunks, which include single bytes); every frame is a contiguous
// SOI ... EOI piece of the input within the limit; each error message is one non-empty line.
@testable import EdgeMRCNN

private func split(_ data: UnsafeRawBufferPointer, limit: Int, chunk: (Int) -> Int)
    -> [(event: JPEGFrameSplitter.Event, end: Int)] {
    var s = JPEGFrameSplitter(maxFrameBytes: limit)
    var out: [(JPEGFrameSplitter.Event, Int)] = []
    var pos = 0, k = 0
    while pos < data.count {
        let n = min(max(chunk(k), 1), data.count - pos)
        k += 1
        var c = UnsafeRawBufferPointer(rebasing: data[pos..<(pos + n)])
        var at = pos
        while !c.isEmpty {
            let (used, e) = s.feed(c)
            if used == 0 && e == nil { fatalError("feed made no progress") }
            if used > c.count { fatalError("feed consumed more than it was given") }
            at += used
            if let e = e { out.append((e, at)) }
            c = UnsafeRawBufferPointer(rebasing: c[used...])
        }
        pos += n
    }
    if let e = s.finish() { out.append((e, data.count)) }
    if s.finish() != nil { fatalError("finish reported twice") }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let limit = 64 << Int(data[0] % 9)
    let sizes = [1, 2, 3, 7, 64, 1000, 4096, 1 << 30]
    let pick = Int(data[1])
    let body = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    let whole = split(body, limit: limit) { _ in 1 << 30 }
    let chunked = split(body, limit: limit) { k in sizes[(pick + k * (pick | 1)) % sizes.count] }
    guard whole.map(\.event) == chunked.map(\.event) else {
        fatalError("events depend on the chunking")
    }
    for (e, end) in whole {
        switch e {
        case .frame(let f):
            guard f.count >= 4, f.count <= limit, f[0] == 0xFF, f[1] == 0xD8, f[f.count - 2] == 0xFF, f[f.count - 1] == 0xD9 else {
                fatalError("frame is not SOI ... EOI within the limit")
            }
            guard end >= f.count, f.elementsEqual(body[(end - f.count)..<end]) else { fatalError("frame is not a piece of the input") }
        case .error(let m):
            guard !m.isEmpty, !m.contains("\n") else { fatalError("bad error message") }
        }
    }
    return 0
}
