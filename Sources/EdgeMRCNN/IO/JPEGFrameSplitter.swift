// Splits a byte stream of concatenated JPEG images (MJPEG as `rpicam-vid --codec mjpeg -o -` or
// `ffmpeg -f mjpeg -` write it, or `cat a.jpg b.jpg`) into frames, SOI ... EOI, as the bytes
// arrive. Bytes between frames (multipart boundaries and part headers of an HTTP MJPEG stream,
// padding) are skipped. A pure state machine: no I/O, memory bounded by one frame buffer.
//
// The JPEG structure is followed, not just searched for FF D9: after SOI come marker segments,
// each with a 16-bit length, whose payloads are skipped whole (an APPn payload, e.g. an EXIF
// thumbnail, may hold FF D8 / FF D9 bytes); after SOS's header comes entropy-coded data, in which
// 0xFF is always followed by 0x00 (byte stuffing), an RSTn marker, or a real marker: EOI ends
// the frame, any other marker (DHT, SOS, ... between the scans of a progressive image) starts a
// segment again. Damage is reported per frame, and the splitter resynchronises:
//   - a new SOI where a marker is expected or inside entropy data: the frame before was cut short;
//     it is reported and the new frame begins at once;
//   - a byte that cannot start a marker where one is expected, or a segment length below 2: the
//     frame is reported and the splitter looks for the next SOI;
//   - a frame longer than `maxFrameBytes`: reported as soon as it exceeds the limit; its bytes
//     are no longer kept, its structure is still followed to its EOI, then the next SOI is sought;
//   - the stream ends inside a frame: `finish()` reports it.
// Each SOI found gives exactly one event (a frame or an error), in stream order.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct JPEGFrameSplitter {
    public enum Event: Equatable {
        /// One whole JPEG image, SOI to EOI inclusive (whether it decodes is the decoder's business).
        case frame([UInt8])
        /// A frame that was damaged, cut short or too large; its bytes are dropped.
        case error(String)
    }

    private enum State: Equatable {
        case seekSOI          // outside a frame
        case markerStart      // in the headers: a marker's 0xFF is due
        case markerCode       // in the headers: after 0xFF (more 0xFF are fill bytes)
        case lengthHigh
        case lengthLow
        case payload          // skipping `remaining` bytes of a segment
        case entropy          // entropy-coded data after SOS's header
        case entropyFF        // entropy data: after 0xFF
    }

    /// The largest frame kept (SOI to EOI); a longer one is reported and skipped.
    public let maxFrameBytes: Int
    /// Bytes seen outside any frame (boundaries, headers, garbage).
    public private(set) var skippedBytes = 0
    /// Frames returned whole, and errors reported.
    public private(set) var frames = 0
    public private(set) var errors = 0

    private var state = State.seekSOI
    private var buffer: [UInt8] = []
    /// Bytes of the current frame so far (also while it is no longer kept).
    private var frameBytes = 0
    /// The current frame exceeded maxFrameBytes (already reported; its bytes are not kept).
    private var oversized = false
    private var sawFF = false          // seekSOI: the last byte was 0xFF
    private var marker: UInt8 = 0
    private var lengthHigh = 0
    private var remaining = 0
    private var pending: Event?

    /// The default limit of one frame: 16 MiB (a 4K MJPEG frame is a few MB).
    public static let defaultMaxFrameBytes = 16 << 20

    public init(maxFrameBytes: Int = JPEGFrameSplitter.defaultMaxFrameBytes) {
        self.maxFrameBytes = max(maxFrameBytes, 64)
    }

    /// True while a frame has begun and not ended.
    public var inFrame: Bool { state != .seekSOI }

    /// Consumes bytes of `data` from the start until one event is complete or the data is used
    /// up. Returns how many bytes were consumed and the event, if any; call again with the rest.
    public mutating func feed(_ data: UnsafeRawBufferPointer) -> (consumed: Int, event: Event?) {
        guard let raw = data.baseAddress, data.count > 0 else { return (0, nil) }
        let base = raw.assumingMemoryBound(to: UInt8.self)
        let n = data.count
        var i = 0
        while i < n {
            switch state {
            case .seekSOI:
                if sawFF {
                    let b = base[i]
                    i += 1
                    if b == 0xD8 {
                        sawFF = false
                        skippedBytes -= 1   // the 0xFF belongs to the frame
                        beginFrame()
                    } else if b != 0xFF {
                        sawFF = false
                        skippedBytes += 1
                    } else {
                        skippedBytes += 1
                    }
                } else if let p = memchr(base + i, 0xFF, n - i) {
                    let j = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                    skippedBytes += j + 1 - i
                    i = j + 1
                    sawFF = true
                } else {
                    skippedBytes += n - i
                    i = n
                }
            case .markerStart:
                let b = base[i]
                i += 1
                if b == 0xFF {
                    store(base + i - 1, 1)
                    state = .markerCode
                } else {
                    fail("corrupt frame: expected a marker after \(frameBytes) bytes, found byte 0x\(hex(b))")
                }
            case .markerCode:
                let b = base[i]
                i += 1
                switch b {
                case 0xFF:
                    store(base + i - 1, 1)   // fill byte
                case 0xD8:
                    restart()
                case 0xD9:
                    store(base + i - 1, 1)
                    endFrame()
                case 0xD0...0xD7, 0x01:
                    store(base + i - 1, 1)   // RSTn, TEM: no length
                    state = .markerStart
                case 0x00:
                    fail("corrupt frame: invalid marker 0xFF00 after \(frameBytes) bytes")
                default:
                    store(base + i - 1, 1)
                    marker = b
                    state = .lengthHigh
                }
            case .lengthHigh:
                lengthHigh = Int(base[i])
                store(base + i, 1)
                i += 1
                state = .lengthLow
            case .lengthLow:
                let length = lengthHigh << 8 | Int(base[i])
                store(base + i, 1)
                i += 1
                if length < 2 {
                    fail("corrupt frame: marker 0xFF\(hex(marker)) has length \(length) after \(frameBytes) bytes")
                } else {
                    remaining = length - 2
                    state = .payload
                    if remaining == 0 { endSegment() }
                }
            case .payload:
                let k = min(remaining, n - i)
                store(base + i, k)
                i += k
                remaining -= k
                if remaining == 0 { endSegment() }
            case .entropy:
                if let p = memchr(base + i, 0xFF, n - i) {
                    let j = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                    store(base + i, j + 1 - i)
                    i = j + 1
                    state = .entropyFF
                } else {
                    store(base + i, n - i)
                    i = n
                }
            case .entropyFF:
                let b = base[i]
                i += 1
                switch b {
                case 0x00, 0xD0...0xD7:
                    store(base + i - 1, 1)   // stuffed 0xFF, RSTn
                    state = .entropy
                case 0xFF:
                    store(base + i - 1, 1)   // fill byte
                case 0xD9:
                    store(base + i - 1, 1)
                    endFrame()
                case 0xD8:
                    restart()
                default:
                    store(base + i - 1, 1)   // a marker segment between scans
                    marker = b
                    state = .lengthHigh
                }
            }
            if let e = pending {
                pending = nil
                return (i, e)
            }
        }
        return (n, nil)
    }

    /// The end of the stream: an unfinished frame is reported (once); the splitter is then reset.
    public mutating func finish() -> Event? {
        defer {
            state = .seekSOI; sawFF = false; oversized = false; frameBytes = 0
            buffer = []
        }
        guard state != .seekSOI, !oversized else { return nil }
        errors += 1
        return .error("the stream ended inside a frame after \(frameBytes) bytes (no end-of-image marker)")
    }

    // MARK: - steps

    private mutating func beginFrame() {
        buffer.removeAll(keepingCapacity: true)
        buffer.append(0xFF); buffer.append(0xD8)
        frameBytes = 2
        oversized = false
        state = .markerStart
    }

    /// Keeps `k` bytes of the current frame, or reports the frame once it exceeds the limit.
    private mutating func store(_ p: UnsafePointer<UInt8>, _ k: Int) {
        if k <= 0 { return }
        frameBytes += k
        if oversized { return }
        if frameBytes > maxFrameBytes {
            oversized = true
            buffer = []   // the memory goes back at once
            errors += 1
            pending = .error("frame larger than the limit of \(maxFrameBytes) bytes (--max-frame-mb); skipped to the next frame")
            return
        }
        buffer.append(contentsOf: UnsafeBufferPointer(start: p, count: k))
    }

    private mutating func endSegment() {
        state = marker == 0xDA ? .entropy : .markerStart
    }

    private mutating func endFrame() {
        if !oversized {
            frames += 1
            let cap = buffer.count
            pending = .frame(buffer)
            buffer = []
            buffer.reserveCapacity(cap)
        }
        oversized = false
        frameBytes = 0
        state = .seekSOI
    }

    /// A new SOI inside a frame: the frame is cut short; the new one starts here.
    private mutating func restart() {
        if !oversized {
            errors += 1
            pending = .error("truncated frame: a new frame began after \(frameBytes - 1) bytes, before this one's end-of-image marker")
        }
        beginFrame()
    }

    private mutating func fail(_ message: String) {
        if !oversized {
            errors += 1
            pending = .error(message)
        }
        buffer.removeAll(keepingCapacity: true)
        oversized = false
        frameBytes = 0
        state = .seekSOI
        sawFF = false
    }

    private func hex(_ b: UInt8) -> String {
        let s = String(b, radix: 16, uppercase: true)
        return s.count < 2 ? "0" + s : s
    }
}
