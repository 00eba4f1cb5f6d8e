import Foundation
import XCTest
@testable import EdgeMRCNN
#if canImport(Glibc)
import Glibc
#endif

/// JPEGFrameSplitter (the MJPEG frame state machine) and JPEGFrameReader (stdin pipe, in order
/// and with --drop-frames), on JPEG streams built here.
final class FrameSplitterTests: XCTestCase {
    typealias Event = JPEGFrameSplitter.Event

    /// Splits `data` feeding it in chunks of the given sizes (cycled); finish() at the end.
    static func split(_ data: [UInt8], chunks: [Int] = [1 << 20], maxFrameBytes: Int = 1 << 20) -> (events: [Event], skipped: Int) {
        var s = JPEGFrameSplitter(maxFrameBytes: maxFrameBytes)
        var events: [Event] = []
        var pos = 0, c = 0
        data.withUnsafeBytes { all in
            while pos < data.count {
                let n = min(max(chunks[c % chunks.count], 1), data.count - pos)
                c += 1
                var chunk = UnsafeRawBufferPointer(rebasing: all[pos..<(pos + n)])
                while !chunk.isEmpty {
                    let (used, e) = s.feed(chunk)
                    if let e = e { events.append(e) }
                    chunk = UnsafeRawBufferPointer(rebasing: chunk[used...])
                }
                pos += n
            }
        }
        if let e = s.finish() { events.append(e) }
        return (events, s.skippedBytes)
    }

    /// Small real JPEGs of different kinds (baseline from the encoder, and the corpus' valid
    /// ones: progressive with DHT between scans, restart markers, grayscale, CMYK).
    static func sampleJPEGs() throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        let tmp = NSTemporaryDirectory() + "edge-split-\(getpid()).jpg"
        defer { unlink(tmp) }
        for (w, h) in [(40, 30), (7, 5)] {
            let img = RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { UInt8(($0 * 37) % 251) })
            try writeJPEG(img, path: tmp)
            out.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: tmp))))
        }
        for name in ["progressive.jpg", "with_restart_markers.jpg", "grayscale.jpg", "cmyk_adobe.jpg", "one_by_one.jpg"] {
            out.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: Shared.fixture("bad/valid/" + name)))))
        }
        return out
    }

    func testConcatenatedFramesAnyChunking() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        let stream = jpegs.flatMap { $0 }
        for chunks in [[1 << 20], [1], [2, 3], [7], [4096], [1, 100, 13, 2, 999]] {
            let (events, skipped) = FrameSplitterTests.split(stream, chunks: chunks)
            XCTAssertEqual(events, jpegs.map { .frame($0) }, "chunks \(chunks)")
            XCTAssertEqual(skipped, 0)
        }
        // every frame decodes to the same image as the file
        for j in jpegs { XCTAssertNoThrow(try decodeJPEG(bytes: j, name: "frame")) }
    }

    func testMultipartBoundariesAndGarbageBetweenFrames() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        var stream: [UInt8] = Array("HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\n\r\n".utf8)
        var outside = stream.count
        for j in jpegs {
            let head = Array("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: \(j.count)\r\n\r\n".utf8) + [0xFF, 0xFF, 0x00]
            stream += head + j + Array("\r\n".utf8)
            outside += head.count + 2
        }
        stream += [0xFF]   // a lone 0xFF at the very end
        outside += 1
        for chunks in [[1 << 20], [1], [5]] {
            let (events, skipped) = FrameSplitterTests.split(stream, chunks: chunks)
            XCTAssertEqual(events, jpegs.map { .frame($0) })
            XCTAssertEqual(skipped, outside)
        }
    }

    /// An APP1 segment whose payload holds a whole JPEG (an EXIF thumbnail: FF D8 ... FF D9) and
    /// an APP segment with FF D9 / FF D8 bytes: the payloads are skipped whole, one frame results.
    func testMarkersInsideAppSegments() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        let thumb = jpegs[1]
        var payload: [UInt8] = Array("Exif\0\0".utf8) + thumb + [0xFF, 0xD9, 0xFF, 0xD8, 0xFF]
        payload += [UInt8](repeating: 0xFF, count: 3)
        let app1: [UInt8] = [0xFF, 0xE1, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 0xFF)] + payload
        let com: [UInt8] = [0xFF, 0xFE, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD8]
        let main = jpegs[0]
        let framed = Array(main[0..<2]) + app1 + com + Array(main[2...])
        let stream = framed + jpegs[2]
        for chunks in [[1 << 20], [1], [3]] {
            XCTAssertEqual(FrameSplitterTests.split(stream, chunks: chunks).events, [.frame(framed), .frame(jpegs[2])])
        }
        XCTAssertNoThrow(try decodeJPEG(bytes: framed, name: "frame"))
    }

    /// Fill bytes before markers, stuffed 0xFF00 and RSTn in entropy data, and a DHT between the
    /// scans of a progressive image do not end a frame; only EOI does.
    func testEntropyDataRules() throws {
        let head: [UInt8] = [0xFF, 0xD8, 0xFF, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9]  // APP0 with payload FF D9
        let sos: [UInt8] = [0xFF, 0xDA, 0x00, 0x03, 0x01]
        let entropy: [UInt8] = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD3, 0x00]
        let dht: [UInt8] = [0xFF, 0xC4, 0x00, 0x05, 0xFF, 0xD9, 0x00]
        let frame = head + sos + entropy + dht + sos + entropy + [0xFF, 0xFF, 0xD9]
        let (events, _) = FrameSplitterTests.split(frame + frame, chunks: [1])
        XCTAssertEqual(events, [.frame(frame), .frame(frame)])
    }

    func testTruncatedFrameThenGoodOne() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        let a = jpegs[0], b = jpegs[3], c = jpegs[2]
        for cut in [2, 3, 20, b.count / 2, b.count - 3] {   // (20: at a segment boundary)
            let stream = a + Array(b.prefix(cut)) + c
            let events = FrameSplitterTests.split(stream, chunks: [1 << 20]).events
            XCTAssertEqual(events.count, 3, "cut \(cut)")
            XCTAssertEqual(events.first, .frame(a))
            if case .error(let m)? = events.dropFirst().first {
                XCTAssertTrue(m.contains("truncated") || m.contains("corrupt"), m)
            } else {
                XCTFail("cut \(cut): \(events)")
            }
            XCTAssertEqual(events.last, .frame(c), "cut \(cut)")
        }
    }

    func testCorruptHeadersResyncAtNextSOI() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        let good = jpegs[2]
        let bad: [[UInt8]] = [
            [0xFF, 0xD8] + Array("garbage, not a marker".utf8),       // no marker after SOI
            [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0x00],                // segment length 1
            [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00],                      // segment length 0
            [0xFF, 0xD8, 0xFF, 0x00, 0x12],                            // FF00 in the headers
        ]
        for b in bad {
            let events = FrameSplitterTests.split(b + good, chunks: [1 << 20]).events
            XCTAssertEqual(events.count, 2, "\(b)")
            guard case .error? = events.first else { return XCTFail("\(b): \(events)") }
            XCTAssertEqual(events.last, .frame(good))
        }
        // A lone EOI and bytes that never form an SOI are no frame at all.
        XCTAssertEqual(FrameSplitterTests.split([0xFF, 0xD9, 0xFF, 0x00, 0xD8, 0xFF] + good).events, [.frame(good)])
        // Repeated SOIs: each cut-short frame is one error, then the good frame.
        let many = [UInt8](repeating: 0, count: 10).flatMap { _ in [UInt8(0xFF), 0xD8] } + good
        let ev = FrameSplitterTests.split(many).events
        XCTAssertEqual(ev.count, 11)
        XCTAssertEqual(ev.last, .frame(good))
    }

    func testStreamEndsInsideAFrame() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        let events = FrameSplitterTests.split(jpegs[0] + Array(jpegs[1].prefix(100))).events
        XCTAssertEqual(events.count, 2)
        XCTAssertEqual(events.first, .frame(jpegs[0]))
        guard case .error(let m)? = events.last else { return XCTFail("\(events)") }
        XCTAssertTrue(m.contains("ended inside a frame after 100 bytes"), m)
        XCTAssertTrue(FrameSplitterTests.split([]).events.isEmpty)
    }

    /// A frame over the limit: one error as soon as it passes the limit, no more memory kept,
    /// and the frames after it (even one embedded in its APP segment) are not mistaken.
    func testOversizedFrame() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        let small = jpegs[2]
        // a big frame: a long COM segment holding an SOI ... EOI, then a valid image's rest
        var payload = [UInt8](repeating: 0x41, count: 3000)
        payload.replaceSubrange(100..<(100 + small.count), with: small)
        let com: [UInt8] = [0xFF, 0xFE, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 0xFF)] + payload
        let big = Array(jpegs[0][0..<2]) + com + Array(jpegs[0][2...])
        for chunks in [[1 << 20], [1], [64]] {
            let events = FrameSplitterTests.split(small + big + small, chunks: chunks, maxFrameBytes: 2048).events
            XCTAssertEqual(events.count, 3, "\(chunks)")
            XCTAssertEqual(events.first, .frame(small))
            guard case .error(let m)? = events.dropFirst().first else { return XCTFail("\(events)") }
            XCTAssertTrue(m.contains("larger than the limit of 2048 bytes"), m)
            XCTAssertEqual(events.last, .frame(small))
        }
        // just at the limit is fine
        XCTAssertEqual(FrameSplitterTests.split(big, maxFrameBytes: big.count).events, [.frame(big)])
        // an oversized frame that never ends: one error, nothing at the end
        let ev = FrameSplitterTests.split(Array(big.prefix(2500)), maxFrameBytes: 2048).events
        XCTAssertEqual(ev.count, 1)
    }

    /// Random streams of good, cut and garbage pieces: every event sequence is independent of how
    /// the bytes were chunked, and every frame is a contiguous SOI ... EOI piece of the input.
    func testChunkingNeverMatters() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        var rng: UInt64 = 12345
        func rand(_ n: Int) -> Int { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return Int((rng >> 33) % UInt64(n)) }
        for _ in 0..<40 {
            var stream: [UInt8] = []
            for _ in 0..<(1 + rand(6)) {
                let j = jpegs[rand(jpegs.count)]
                switch rand(4) {
                case 0: stream += j.prefix(rand(j.count))
                case 1: stream += (0..<rand(50)).map { _ in UInt8(rand(256)) }
                default: stream += j
                }
            }
            let whole = FrameSplitterTests.split(stream, maxFrameBytes: 1000).events
            XCTAssertEqual(FrameSplitterTests.split(stream, chunks: [1], maxFrameBytes: 1000).events, whole)
            XCTAssertEqual(FrameSplitterTests.split(stream, chunks: [1 + rand(9), 1 + rand(200)], maxFrameBytes: 1000).events, whole)
            for case .frame(let f) in whole {
                XCTAssertEqual(Array(f.prefix(2)), [0xFF, 0xD8])
                XCTAssertEqual(Array(f.suffix(2)), [0xFF, 0xD9])
                XCTAssertLessThanOrEqual(f.count, 1000)
            }
        }
    }

    // MARK: - the reader on a pipe

    private func pipeReader(_ data: [UInt8], dropFrames: Bool, maxFrameBytes: Int = 1 << 20) throws -> (JPEGFrameReader, Thread) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let (r, w) = (fds[0], fds[1])
        let writer = Thread {
            data.withUnsafeBytes { b in
                var off = 0
                while off < b.count {
                    let n = write(w, b.baseAddress! + off, min(b.count - off, 3000))
                    if n <= 0 { break }
                    off += n
                }
            }
            close(w)
        }
        writer.start()
        return (try JPEGFrameReader(fd: r, maxFrameBytes: maxFrameBytes, dropFrames: dropFrames), writer)
    }

    func testReaderInOrder() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        // (cut inside its entropy data; a frame cut inside a header segment would take the next
        // frame's first bytes as the rest of that segment, and that frame with it)
        let stream = jpegs[0] + Array(jpegs[1].dropLast(10)) + jpegs[2] + Array("--b\r\n".utf8) + jpegs[3]
        let (reader, _) = try pipeReader(stream, dropFrames: false)
        var items: [JPEGFrameReader.Item] = []
        while let it = reader.next() { items.append(it) }
        XCTAssertEqual(items.count, 4)
        XCTAssertEqual(items[0], .frame(number: 1, bytes: jpegs[0]))
        XCTAssertEqual(items[1].number, 2)
        if case .frame = items[1] { XCTFail("the cut frame is an error") }
        XCTAssertEqual(items[2], .frame(number: 3, bytes: jpegs[2]))
        XCTAssertEqual(items[3], .frame(number: 4, bytes: jpegs[3]))
        XCTAssertEqual(reader.framesSeen, 4)
        XCTAssertEqual(reader.dropped, 0)
        XCTAssertNil(reader.readError)
        XCTAssertEqual(reader.skippedBytes, 5)
    }

    /// Dropping mode while the caller is slow: frame numbers only increase, every error report and
    /// the newest frame arrive, and taken + dropped = all frames.
    func testReaderDropsOlderFramesWhileBusy() throws {
        let jpegs = try FrameSplitterTests.sampleJPEGs()
        var stream: [UInt8] = []
        var kinds: [Bool] = []   // true: a good frame
        for k in 0..<60 {
            if k % 7 == 3 { stream += [0xFF, 0xD8, 0x00]; kinds.append(false) } else { stream += jpegs[k % jpegs.count]; kinds.append(true) }
        }
        let (reader, _) = try pipeReader(stream, dropFrames: true)
        var items: [JPEGFrameReader.Item] = []
        while let it = reader.next() {
            items.append(it)
            usleep(2000)   // a slow consumer
        }
        XCTAssertEqual(items.map(\.number), items.map(\.number).sorted())
        XCTAssertEqual(Set(items.map(\.number)).count, items.count)
        XCTAssertEqual(items.last?.number, 60)
        let errors = items.filter { if case .error = $0 { return true } else { return false } }
        XCTAssertEqual(errors.map(\.number), kinds.indices.filter { !kinds[$0] }.map { $0 + 1 })
        XCTAssertEqual(items.count - errors.count + reader.dropped, kinds.filter { $0 }.count)
        for case .frame(let n, let bytes) in items { XCTAssertEqual(bytes, jpegs[(n - 1) % jpegs.count]) }
        XCTAssertEqual(reader.framesSeen, 60)
    }

    // MARK: - JSON Lines and detect options

    func testJSONLines() throws {
        let region = MaskRegion(x0: 1, y0: 1, width: 2, height: 2, imageWidth: 4, imageHeight: 3, bits: [1, 1, 0, 1])
        let dets = [Detection(box: (1, 1, 3, 3), score: 0.9, label: 1, mask: region),
                    Detection(box: (0, 0, 2, 1), score: 0.25, label: 2, mask: nil)]
        let line = try JSONLines.detections(frame: 3, fileName: "a \"b\".jpg", imageId: 7, timeMs: 12.345, detections: dets,
                                            classNames: ["bg", "circle", "square"], extra: [("dropped", "2")])
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(obj["frame"] as? Int, 3)
        XCTAssertEqual(obj["file_name"] as? String, "a \"b\".jpg")
        XCTAssertEqual(obj["time_ms"] as? Double, 12.3)
        XCTAssertEqual(obj["dropped"] as? Int, 2)
        let d = try XCTUnwrap(obj["detections"] as? [[String: Any]])
        let doc = try ResultsJSON.document([(imageId: 7, fileName: "a \"b\".jpg", detections: dets)], classNames: ["bg", "circle", "square"])
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(doc.utf8)) as? [[String: Any]])
        XCTAssertEqual(d as NSArray, arr as NSArray)
        XCTAssertNil(d[1]["segmentation"])
        let err = JSONLines.error(frame: 4, fileName: "-", message: "frame 4: bad\nthing")
        let e = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(err.utf8)) as? [String: Any])
        XCTAssertEqual(e["error"] as? String, "frame 4: bad\nthing")
        XCTAssertEqual(err.filter { $0 == "\n" }.count, 1)
    }

    func testDetectOptions() throws {
        let names = ["__background__", "circle", "square", "triangle"]
        XCTAssertEqual(try DetectOptions.labels(classList: "circle, triangle", classNames: names), [1, 3])
        XCTAssertEqual(try DetectOptions.labels(classList: "2", classNames: names), [2])
        XCTAssertThrowsError(try DetectOptions.labels(classList: "dog", classNames: names)) {
            XCTAssertTrue(($0 as? EdgeError)?.message.contains("no class 'dog' (its classes: circle, square, triangle)") ?? false, "\($0)")
        }
        XCTAssertThrowsError(try DetectOptions.labels(classList: "circle,", classNames: names))
        XCTAssertThrowsError(try DetectOptions.labels(classList: "__background__", classNames: names))
        XCTAssertThrowsError(try DetectOptions.labels(classList: "4", classNames: names))

        let boxes: [Float] = (0..<20).map(Float.init)
        let full: (boxes: [Float], scores: [Float], labels: [Int]) = (boxes, [0.9, 0.7, 0.5, 0.3, 0.1], [1, 2, 1, 3, 1])
        var det = full
        var sel = DetectOptions.all.apply(to: &det)
        XCTAssertEqual(det.labels, full.labels)
        XCTAssertEqual(sel.slot, [0, 1, 2, 3, 4])
        XCTAssertEqual(sel.boxes, boxes)
        det = full
        sel = DetectOptions(classesOnly: [1], maskThresh: 0.5).apply(to: &det)
        XCTAssertEqual(det.labels, [1, 1, 1])
        XCTAssertEqual(det.scores, [0.9, 0.5, 0.1])
        XCTAssertEqual(det.boxes, [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19])
        XCTAssertEqual(sel.slot, [0, 1, nil])
        XCTAssertEqual(sel.boxes, [0, 1, 2, 3, 8, 9, 10, 11])
        XCTAssertEqual(sel.labels, [1, 1])
        XCTAssertEqual(sel.pick(det.boxes), sel.boxes)
        det = full
        sel = DetectOptions(masks: false).apply(to: &det)
        XCTAssertEqual(det.labels.count, 5)
        XCTAssertEqual(sel.count, 0)
        XCTAssertEqual(sel.slot, [nil, nil, nil, nil, nil])
    }
}
