// Self-test checks of the stream area (see SelfTest.swift): the MJPEG frame splitter, the frame
// reader's thread (dropping mode) on a pipe, JSON Lines and DetectOptions. No files needed.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension SelfTest {
    /// A JPEG-structured frame (not decodable): APP0 whose payload holds FF D9, a scan with a
    /// stuffed byte, an RST marker and fill bytes, a DHT between two scans.
    static func syntheticFrame(_ tag: UInt8) -> [UInt8] {
        let sos: [UInt8] = [0xFF, 0xDA, 0x00, 0x03, tag]
        let entropy: [UInt8] = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD3, tag]
        return [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9] + sos + entropy + [0xFF, 0xC4, 0x00, 0x04, 0xFF, 0xD8]
            + sos + entropy + [0xFF, 0xD9]
    }

    static func splitAll(_ data: [UInt8], limit: Int = 4096, chunk: Int) -> [JPEGFrameSplitter.Event] {
        var s = JPEGFrameSplitter(maxFrameBytes: limit)
        var out: [JPEGFrameSplitter.Event] = []
        data.withUnsafeBytes { all in
            var pos = 0
            while pos < all.count {
                let (used, e) = s.feed(UnsafeRawBufferPointer(rebasing: all[pos..<min(pos + chunk, all.count)]))
                pos += used
                if let e = e { out.append(e) }
            }
        }
        if let e = s.finish() { out.append(e) }
        return out
    }

    static var streamChecks: [SelfCheck] {
        [
            SelfCheck("stream: MJPEG frame splitter (boundaries, markers in APP payloads, cut and oversized frames)") {
                let a = syntheticFrame(1), b = syntheticFrame(2)
                let boundary = Array("--frame\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
                let stream = boundary + a + Array("\r\n".utf8) + boundary + Array(b.prefix(30)) + a + b
                let big = Array(a[0..<2]) + [0xFF, 0xFE, 0x10, 0x02] + [UInt8](repeating: 0xFF, count: 4096) + Array(a[2...])
                for chunk in [1, 5, 1 << 20] {
                    let ev = splitAll(stream, chunk: chunk)
                    try expect(ev.count == 4 && ev[0] == .frame(a) && ev[2] == .frame(a) && ev[3] == .frame(b), "split \(chunk): \(ev.count) events")
                    guard case .error(let m) = ev[1] else { throw EdgeError("check failed: cut frame not reported") }
                    try expect(m.contains("truncated"), m)
                    let ov = splitAll(big + b, limit: 1024, chunk: chunk)
                    try expect(ov.count == 2 && ov[1] == .frame(b), "oversized frame then a good one (\(chunk))")
                }
                let tail = splitAll(a + Array(b.prefix(10)), chunk: 7)
                try expect(tail.count == 2, "stream ending inside a frame")
            },
            SelfCheck("stream: frame reader thread (--drop-frames) on a pipe") {
                var fds: [Int32] = [0, 0]
                try expect(pipe(&fds) == 0, "pipe")
                var data: [UInt8] = []
                for k in 0..<8 { data += k == 3 ? [0xFF, 0xD8, 0x00] : syntheticFrame(UInt8(k)) }
                let n = data.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
                close(fds[1])
                defer { close(fds[0]) }
                try expect(n == data.count, "pipe write")
                let reader = try JPEGFrameReader(fd: fds[0], maxFrameBytes: 4096, dropFrames: true)
                var numbers: [Int] = [], errors = 0
                while let it = reader.next() {
                    numbers.append(it.number)
                    if case .error = it { errors += 1 }
                }
                try expect(numbers == numbers.sorted() && numbers.last == 8 && errors == 1, "items \(numbers)")
                try expect(numbers.count - errors + reader.dropped == 7 && reader.framesSeen == 8, "dropped \(reader.dropped)")
            },
            SelfCheck("stream: JSON Lines and detect options") {
                let d = Detection(box: (1, 2, 4, 6), score: 0.5, label: 2, mask: nil)
                let line = try JSONLines.detections(frame: 3, fileName: "-", imageId: 3, timeMs: 12.25, detections: [d],
                                                    classNames: ["bg", "a", "b"])
                try expect(line == "{\"frame\":3,\"file_name\":\"-\",\"time_ms\":12.3,\"detections\":[{\"image_id\":3,\"file_name\":\"-\",\"category_id\":2,\"category_name\":\"b\",\"bbox\":[1.0,2.0,3.0,4.0],\"score\":0.5}]}\n", line)
                try expect(JSONLines.error(frame: 4, fileName: "x.jpg", message: "bad \"x\"") == "{\"frame\":4,\"file_name\":\"x.jpg\",\"error\":\"bad \\\"x\\\"\"}\n", "error line")
                var det: (boxes: [Float], scores: [Float], labels: [Int]) = ((0..<12).map(Float.init), [0.9, 0.6, 0.2], [1, 2, 1])
                let sel = DetectOptions(classesOnly: [1], maskThresh: 0.5).apply(to: &det)
                try expect(det.labels == [1, 1] && det.boxes == [0, 1, 2, 3, 8, 9, 10, 11], "class filter")
                try expect(sel.slot == [0, nil] && sel.boxes == [0, 1, 2, 3], "mask selection")
                try expect(try DetectOptions.labels(classList: "b,1", classNames: ["bg", "a", "b"]) == [1, 2], "class names")
            },
        ]
    }
}
