// JPEG frames from a file descriptor (standard input: a camera pipe), split by JPEGFrameSplitter
// as the bytes arrive and numbered 1, 2, ... in stream order (a damaged frame keeps its number).
//
// Two modes:
//   - in order (default): `next()` reads until the next frame is complete. While the caller
//     works on a frame nothing is read, so a producer writing faster simply blocks on the pipe.
//   - dropping (`dropFrames`): a reader thread (pthreads) reads all the time; of the frames that
//     wait while the caller works only the newest is kept, the older ones are dropped and
//     counted. Error reports are kept (up to `maxPendingErrors`, then counted as lost).
// Memory: the splitter's frame buffer (at most maxFrameBytes), plus in dropping mode one waiting
// frame, plus the frame the caller holds: at most 3 frames, however long the stream.
// Stopping: a signal handler may set `JPEGFrameReader.stopFlag.pointee = 1` (SIGINT/SIGTERM
// installed without SA_RESTART): the stream then ends after the frame in hand, as at end of
// input, and a frame being read is dropped without an error (`stopped` tells).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public final class JPEGFrameReader {
    public enum Item: Equatable {
        case frame(number: Int, bytes: [UInt8])
        case error(number: Int, message: String)

        public var number: Int {
            switch self { case .frame(let n, _), .error(let n, _): return n }
        }
    }

    public let dropFrames: Bool
    private let pump: Pump

    /// Set to non-zero (from a signal handler) to end the stream early; see the file comment.
    /// Allocated once, never freed, so that a handler only stores to it.
    public static let stopFlag: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    static var stopRequested: Bool { stopFlag.pointee != 0 }

    /// True when the stream ended because of stopFlag.
    public var stopped: Bool {
        if let s = shared { return s.counts().stopped }
        return pump.stopped
    }
    private let shared: Shared?

    /// Reads `fd` (not closed here). With `dropFrames` the reader thread starts at once.
    public init(fd: Int32, maxFrameBytes: Int = JPEGFrameSplitter.defaultMaxFrameBytes, dropFrames: Bool = false) throws {
        self.dropFrames = dropFrames
        pump = Pump(fd: fd, maxFrameBytes: maxFrameBytes)
        if dropFrames {
            let s = Shared(pump: pump)
            shared = s
            try s.start()
        } else {
            shared = nil
        }
    }

    /// The next frame or error report in stream order; nil at the end of the stream.
    public func next() -> Item? {
        if let s = shared { return s.take() }
        return pump.next()
    }

    /// Frames dropped because newer ones arrived while the caller worked (dropping mode).
    public var dropped: Int { shared?.counts().dropped ?? 0 }
    /// Error reports lost because too many were waiting (dropping mode).
    public var lostErrors: Int { shared?.counts().lostErrors ?? 0 }
    /// Frames found so far (whole or damaged).
    public var framesSeen: Int { shared?.counts().seen ?? pump.number }
    /// A read error that ended the stream early (nil: it ended normally or has not ended).
    public var readError: String? {
        if let s = shared { return s.counts().readError }
        return pump.readError
    }
    /// Bytes outside any frame (multipart boundaries, part headers, garbage); exact once ended.
    public var skippedBytes: Int { shared?.counts().skipped ?? pump.splitter.skippedBytes }

    /// Error reports kept while the caller works, in dropping mode.
    public static let maxPendingErrors = 256

    // MARK: - reading

    /// read(2) + the splitter: one item at a time, in order.
    final class Pump {
        let fd: Int32
        var splitter: JPEGFrameSplitter
        private var buf: UnsafeMutableRawBufferPointer
        private var start = 0, end = 0
        private(set) var ended = false
        private(set) var number = 0
        private(set) var readError: String?
        private(set) var stopped = false

        init(fd: Int32, maxFrameBytes: Int) {
            self.fd = fd
            splitter = JPEGFrameSplitter(maxFrameBytes: maxFrameBytes)
            buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        }

        deinit { buf.deallocate() }

        func next() -> Item? {
            while !ended {
                if JPEGFrameReader.stopRequested {
                    ended = true; stopped = true
                    return nil
                }
                if start < end {
                    let (used, event) = splitter.feed(UnsafeRawBufferPointer(rebasing: buf[start..<end]))
                    start += used
                    if let e = event { return item(e) }
                    continue
                }
                let n = read(fd, buf.baseAddress, buf.count)
                if n > 0 {
                    start = 0; end = n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    if n < 0 { readError = "read failed: " + String(cString: strerror(errno)) }
                    ended = true
                    if let e = splitter.finish() { return item(e) }
                }
            }
            return nil
        }

        private func item(_ e: JPEGFrameSplitter.Event) -> Item {
            number += 1
            switch e {
            case .frame(let bytes): return .frame(number: number, bytes: bytes)
            case .error(let message): return .error(number: number, message: message)
            }
        }
    }

    /// The reader thread's side and the caller's side of dropping mode, under one mutex.
    final class Shared {
        let pump: Pump
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private var latest: Item?                 // the newest waiting frame
        private var errors: [Item] = []           // waiting error reports, in order
        private var ended = false
        private var dropped = 0, lostErrors = 0, seen = 0, skipped = 0
        private var readError: String?
        private var stopped = false

        init(pump: Pump) {
            self.pump = pump
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(cond, nil)
        }

        deinit {
            pthread_cond_destroy(cond); pthread_mutex_destroy(mutex)
            cond.deallocate(); mutex.deallocate()
        }

        func start() throws {
            // The thread holds its own reference; it is detached (it may sit in read(2) when the
            // caller stops early, and ends with the process then).
            let ctx = Unmanaged.passRetained(self).toOpaque()
            var tid = pthread_t()
            // SIGINT / SIGTERM go to the caller's thread, which waits for frames with a timeout
            // and sees stopFlag; the reader thread starts with them blocked.
            var block = sigset_t(), old = sigset_t()
            sigemptyset(&block); sigaddset(&block, SIGINT); sigaddset(&block, SIGTERM)
            pthread_sigmask(SIG_BLOCK, &block, &old)
            defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
            let rc = pthread_create(&tid, nil, { arg in
                let s = Unmanaged<JPEGFrameReader.Shared>.fromOpaque(arg!).takeRetainedValue()
                s.run()
                return nil
            }, ctx)
            if rc != 0 {
                Unmanaged<Shared>.fromOpaque(ctx).release()
                throw EdgeError("cannot start the frame reader thread: " + String(cString: strerror(rc)))
            }
            pthread_detach(tid)
        }

        private func run() {
            while let it = pump.next() {
                pthread_mutex_lock(mutex)
                switch it {
                case .frame:
                    if latest != nil { dropped += 1 }
                    latest = it
                case .error:
                    if errors.count < JPEGFrameReader.maxPendingErrors { errors.append(it) } else { lostErrors += 1 }
                }
                seen = pump.number
                skipped = pump.splitter.skippedBytes
                pthread_cond_signal(cond)
                pthread_mutex_unlock(mutex)
            }
            pthread_mutex_lock(mutex)
            ended = true
            seen = pump.number
            skipped = pump.splitter.skippedBytes
            readError = pump.readError
            stopped = stopped || pump.stopped
            pthread_cond_signal(cond)
            pthread_mutex_unlock(mutex)
        }

        /// The oldest waiting item (an error report before a newer frame); waits for one.
        func take() -> Item? {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            while latest == nil && errors.isEmpty && !ended {
                if JPEGFrameReader.stopRequested {
                    // the reader thread may sit in read(2): it is left there (detached)
                    ended = true; stopped = true
                    return nil
                }
                var ts = timespec()
                clock_gettime(CLOCK_REALTIME, &ts)
                ts.tv_nsec += 100_000_000
                if ts.tv_nsec >= 1_000_000_000 { ts.tv_sec += 1; ts.tv_nsec -= 1_000_000_000 }
                _ = pthread_cond_timedwait(cond, mutex, &ts)
            }
            if JPEGFrameReader.stopRequested {
                ended = true; stopped = true
                return nil
            }
            if let e = errors.first, latest == nil || e.number < latest!.number {
                errors.removeFirst()
                return e
            }
            if let f = latest {
                latest = nil
                return f
            }
            return nil
        }

        func counts() -> (dropped: Int, lostErrors: Int, seen: Int, readError: String?, skipped: Int, stopped: Bool) {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return (dropped, lostErrors, seen, readError, skipped, stopped)
        }
    }
}
