// The HTTP server of `edge-mrcnn serve` on POSIX sockets and pthreads (no Foundation, Dispatch or
// NIO: the static aarch64 binary has none of them).
//
//   accept thread   poll(listening socket, wake pipe); a connection beyond --max-connections
//                   is answered 503 at once and closed.
//   reader threads  --max-connections of them; each serves one connection at a time: reads the
//                   head (HTTPParser) and the Content-Length body within --read-timeout, parses
//                   the form (Multipart, DeepStackAPI), queues a detection job and writes the answer.
//                   Status, ping and model list are answered here without queueing.
//   main thread     the ONE worker: takes jobs in arrival order from a queue of at most --queue waiting jobs
//                   (a full queue answers 503 at once: memory never piles up), decodes the JPEG
//                   and runs the model (one instance per model file, its arena reused).
// Every error answer closes the connection (its body may not have been read). SIGTERM / SIGINT
// write to a wake pipe that every poll watches: the server stops accepting, the job running
// finishes, jobs still queued are answered 503, idle connections are closed, threads are joined,
// and `serve` returns 0. SIGPIPE is ignored (main.swift) and every send uses MSG_NOSIGNAL.
#if canImport(Glibc)
import Glibc
#endif
import CShim
import EdgeMRCNN

struct ServeConfig {
    var host = "127.0.0.1"
    var port = 5000
    var apiKey: String?
    var http = HTTPLimits()
    var readTimeout: Double = 30
    var maxConnections = 8
    var queueLength = 4
    var limits = RunLimits()
    var quiet = false
}

/// A loaded model and what the status route says about it (fixed at startup).
struct ServedModel {
    let name: String
    let file: String
    let model: MaskRCNN
    let precision: String
    let classNames: [String]
}

/// A detection waiting for (or done by) the worker.
final class ServeJob {
    let model: Int
    let body: [UInt8]
    let request: DeepStackAPI.DetectionRequest
    // Set by the worker, read by the reader once `done` (both under the server mutex).
    var status = 0
    var response = ""
    var summary = ""
    var done = false
    init(model: Int, body: [UInt8], request: DeepStackAPI.DetectionRequest) {
        self.model = model; self.body = body; self.request = request
    }
}

/// The wake pipe's write end, for the signal handler (set before the handler is installed).
private var serveSignalFd: Int32 = -1

final class DeepStackServer {
    let config: ServeConfig
    let models: [ServedModel]
    let defaultModel: Int

    private let mutex = ServeMutex()
    private let jobReady = ServeCondition()
    private let jobDone = ServeCondition()
    private let connReady = ServeCondition()
    // Under `mutex`:
    private var jobs: [ServeJob] = []
    private var pendingConnections: [Int32] = []
    private var busyReaders = 0
    private var stopping = false
    private var requestsServed = 0
    private var rejectedBusy = 0

    private var listenFd: Int32 = -1
    private var wakeRead: Int32 = -1
    private var wakeWrite: Int32 = -1
    private let startTime = monotonicSeconds()

    init(config: ServeConfig, models: [ServedModel], defaultModel: Int) {
        self.config = config; self.models = models; self.defaultModel = defaultModel
    }

    // MARK: - setup and the accept loop

    /// Binds, serves until SIGTERM/SIGINT, shuts down cleanly. Throws for setup errors.
    func run() throws {
        var p: [Int32] = [0, 0]
        guard pipe(&p) == 0 else { throw EdgeError("cannot create a pipe: \(errnoText())") }
        wakeRead = p[0]; wakeWrite = p[1]
        for fd in p { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(wakeWrite, F_SETFL, fcntl(wakeWrite, F_GETFL) | O_NONBLOCK)
        let actualPort = try bindAndListen()
        serveSignalFd = wakeWrite
        signal(SIGTERM, serveStopHandler)
        signal(SIGINT, serveStopHandler)

        // The model runs on this (the main) thread, as in `detect`: its allocations come from
        // the main malloc arena that loading the model used, so serving needs no more memory
        // than one detect run. Accepting moves to a thread of its own.
        var threads: [pthread_t] = []
        for _ in 0..<config.maxConnections {
            threads.append(try startThread(stackBytes: 1 << 20) { [unowned self] in self.readerLoop() })
        }
        let hostText = config.host.contains(":") ? "[\(config.host)]" : config.host
        let modelText = models.enumerated().map { i, m in
            "\(m.name) (\(m.precision)\(i == defaultModel ? ", /v1/vision/detection" : ""))"
        }.joined(separator: ", ")
        printErr("edge-mrcnn serve: listening on http://\(hostText):\(actualPort) (models: \(modelText); kernels: "
                 + "\(String(cString: em_isa_name(em_isa_current()))), \(em_num_threads()) threads)")

        threads.append(try startThread(stackBytes: 1 << 20) { [unowned self] in
            self.acceptLoop()
            // Shut down: no new connections; wake every thread.
            close(self.listenFd)
            self.mutex.locked {
                self.stopping = true
                self.jobReady.broadcast()
                self.connReady.broadcast()
            }
        })
        workerLoop()   // returns once stopping, with every queued job answered
        for t in threads { joinThread(t) }
        for fd in pendingConnections { close(fd) }
        // The handlers stay (the wake pipe stays open): a second SIGTERM while the process
        // exits must not turn a clean stop into death by signal.
        printErr("edge-mrcnn serve: stopped after \(requestsServed) request\(requestsServed == 1 ? "" : "s")")
    }

    private func errnoText() -> String { String(cString: strerror(errno)) }

    /// Opens the listening socket on --host/--port; returns the port (the one chosen for port 0).
    private func bindAndListen() throws -> Int {
        var host = config.host
        if host == "localhost" { host = "127.0.0.1" }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var a4 = in_addr(), a6 = in6_addr()
        let family: Int32
        if inet_pton(AF_INET, host, &a4) == 1 { family = AF_INET }
        else if inet_pton(AF_INET6, host, &a6) == 1 { family = AF_INET6 }
        else { throw UsageError("--host must be a numeric IPv4 or IPv6 address or localhost, got '\(config.host)'") }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw EdgeError("cannot create a socket: \(errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let port = in_port_t(UInt16(config.port)).bigEndian
        var rc: Int32
        if family == AF_INET {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET); sa.sin_port = port; sa.sin_addr = a4
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        } else {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6); sa.sin6_port = port; sa.sin6_addr = a6
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        if rc != 0 {
            let msg = errnoText()
            close(fd)
            throw EdgeError("cannot listen on \(config.host) port \(config.port): \(msg)")
        }
        guard listen(fd, 64) == 0 else {
            let msg = errnoText()
            close(fd)
            throw EdgeError("cannot listen on \(config.host) port \(config.port): \(msg)")
        }
        listenFd = fd
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let raw: UInt16 = withUnsafePointer(to: &ss) { p in
            family == AF_INET ? p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
                              : p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
        }
        return Int(UInt16(bigEndian: raw))
    }

    private func acceptLoop() {
        while true {
            var fds = [pollfd(fd: listenFd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let r = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), -1) }
            if r < 0 {
                if errno == EINTR { continue }
                printErr("edge-mrcnn serve: poll failed: \(errnoText()); stopping")
                return
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents & Int16(POLLIN) == 0 { continue }
            let c = accept(listenFd, nil, nil)
            if c >= 0 { _ = fcntl(c, F_SETFD, FD_CLOEXEC) }
            if c < 0 {
                // EMFILE and friends: wait a little instead of spinning.
                if errno != EINTR && errno != EAGAIN && errno != ECONNABORTED { usleep(20_000) }
                continue
            }
            var tv = timeval(tv_sec: Int(config.readTimeout.rounded(.up)), tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let accepted: Bool = mutex.locked {
                if busyReaders + pendingConnections.count >= config.maxConnections { rejectedBusy += 1; return false }
                pendingConnections.append(c)
                connReady.signal()
                return true
            }
            if !accepted {
                // Answer without waiting: never block the accept loop on a client.
                let e = HTTPError(503, "too many connections (--max-connections \(config.maxConnections)); try again")
                let bytes = HTTPResponse.error(e, extraHeaders: [("Retry-After", "1")])
                _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                log("- (connection) 503 too many connections")
                close(c)
            }
        }
    }

    // MARK: - the worker

    private func workerLoop() {
        while true {
            mutex.lock()
            while jobs.isEmpty && !stopping { jobReady.wait(mutex) }
            if jobs.isEmpty { mutex.unlock(); return }
            let job = jobs.removeFirst()
            let shuttingDown = stopping
            mutex.unlock()
            if shuttingDown {
                job.status = 503
                job.response = DeepStackAPI.errorResponse("the server is shutting down")
                job.summary = "shutting down"
            } else {
                runJob(job)
            }
            mutex.locked {
                job.done = true
                jobDone.broadcast()
            }
        }
    }

    private func runJob(_ job: ServeJob) {
        let t0 = monotonicSeconds()
        let m = models[job.model]
        do {
            let image = try job.body.withUnsafeBytes {
                try ServeImage.decode(UnsafeRawBufferPointer(rebasing: $0[job.request.image]), limits: config.limits,
                                      weightBytes: m.model.weightBytes)
            }
            let t1 = monotonicSeconds()
            let dets = try m.model.detect(image, scoreThresh: job.request.minConfidence)
            let t2 = monotonicSeconds()
            job.response = try DeepStackAPI.detectionResponse(
                dets, classNames: m.classNames, minConfidence: job.request.minConfidence,
                inferenceMs: Int(((t2 - t1) * 1000).rounded()), processMs: Int(((t2 - t0) * 1000).rounded()),
                moduleName: "edge-mrcnn \(m.name)")
            job.status = 200
            let kept = dets.filter { $0.score >= job.request.minConfidence }.count
            job.summary = "\(m.name) \(image.width)x\(image.height): \(kept) prediction\(kept == 1 ? "" : "s"), \(Int(((t2 - t1) * 1000).rounded())) ms"
        } catch let e as HTTPError {
            job.status = e.status
            job.response = DeepStackAPI.errorResponse(e.message)
            job.summary = e.message
        } catch {
            let msg = oneLine((error as? EdgeError)?.message ?? String(describing: error))
            job.status = 500
            job.response = DeepStackAPI.errorResponse("detection failed: " + msg)
            job.summary = msg
        }
    }

    // MARK: - connections

    private func readerLoop() {
        while true {
            mutex.lock()
            while pendingConnections.isEmpty && !stopping { connReady.wait(mutex) }
            if pendingConnections.isEmpty { mutex.unlock(); return }
            let fd = pendingConnections.removeFirst()
            busyReaders += 1
            mutex.unlock()
            serveConnection(fd)
            close(fd)
            mutex.locked { busyReaders -= 1 }
        }
    }

    private var isStopping: Bool { mutex.locked { stopping } }

    private enum ReadOutcome { case data, eof, timeout, stop, failure }

    /// Waits until `fd` is readable (or the server stops, or the deadline passes) and appends
    /// what is there (at most `max` bytes) to `buf`, through the reader's `scratch` buffer.
    private func receive(_ fd: Int32, into buf: inout [UInt8], max: Int, deadline: Double,
                         scratch: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        while true {
            let left = deadline - monotonicSeconds()
            if left <= 0 { return .timeout }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let r = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), Int32(min(left * 1000 + 1, 3_600_000))) }
            if r < 0 { if errno == EINTR { continue }; return .failure }
            if r == 0 { continue }
            if fds[1].revents != 0 { return .stop }
            let got = recv(fd, scratch.baseAddress, Swift.min(Swift.max(1, max), scratch.count), 0)
            if got < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return .failure
            }
            if got == 0 { return .eof }
            buf.append(contentsOf: UnsafeRawBufferPointer(start: scratch.baseAddress, count: got))
            return .data
        }
    }

    /// Sends all of `bytes` (bounded by the socket's send timeout). False if the client is gone.
    @discardableResult
    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; return false }
            if n == 0 { return false }
            off += n
        }
        return true
    }

    /// Answers with an error and closes gently: stop sending, then read (and drop) what the
    /// client still sends for a moment, so that it sees the answer rather than a reset.
    private func fail(_ fd: Int32, _ e: HTTPError, _ what: String, extraHeaders: [(String, String)] = [],
                      scratch: UnsafeMutableRawBufferPointer) {
        log("\(what) \(e.status) \(e.message)")
        guard sendAll(fd, HTTPResponse.error(e, extraHeaders: extraHeaders)) else { return }
        shutdown(fd, Int32(SHUT_WR))
        let until = monotonicSeconds() + 0.5
        var sink: [UInt8] = []
        var drained = 0
        while drained < (1 << 20) {
            sink.removeAll(keepingCapacity: true)
            guard receive(fd, into: &sink, max: scratch.count, deadline: until, scratch: scratch) == .data else { return }
            drained += sink.count
        }
    }

    private func log(_ s: String) {
        if !config.quiet { printErr("edge-mrcnn serve: " + DeepStackAPI.printable(s, limit: 300)) }
    }

    /// Serves the requests of one connection until it closes, fails, idles past --read-timeout,
    /// or asks for the connection to close.
    private func serveConnection(_ fd: Int32) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { scratch.deallocate() }
        var buf: [UInt8] = []
        buf.reserveCapacity(4096)
        let timeout = config.readTimeout
        while true {
            // --- the head: wait up to the timeout for a first byte, then the whole request
            // (head and body) must arrive within the timeout.
            var deadline = monotonicSeconds() + timeout
            var started = !buf.isEmpty
            var head: HTTPRequestHead
            var headLength: Int
            while true {
                if !buf.isEmpty {
                    let r = HTTPParser.parseHead(buf, limits: config.http)
                    if case .complete(let h, let n) = r { head = h; headLength = n; break }
                    if case .failed(let e) = r { fail(fd, e, "- (malformed request)", scratch: scratch); return }
                }
                if isStopping { return }
                switch receive(fd, into: &buf, max: 16 << 10, deadline: deadline, scratch: scratch) {
                case .data:
                    if !started { started = true; deadline = monotonicSeconds() + timeout }
                case .timeout:
                    if started { fail(fd, HTTPError(408, "the request did not arrive within \(formatFixed(timeout, 0)) s"), "- (incomplete request)", scratch: scratch) }
                    return
                case .eof, .stop, .failure:
                    return
                }
            }
            buf.removeFirst(headLength)
            let what = "\(head.method) \(head.path)"
            let route = DeepStackAPI.route(method: head.method, path: head.path, modelNames: models.map { $0.name },
                                           defaultModel: defaultModel)
            let bodyLength = head.contentLength ?? 0
            switch route {
            case .notFound(let m):
                fail(fd, HTTPError(404, m), what, scratch: scratch); return
            case .methodNotAllowed(let allow):
                fail(fd, HTTPError(405, "\(head.method) is not allowed here (allowed: \(allow))"), what, extraHeaders: [("Allow", allow)], scratch: scratch)
                return
            case .status, .ping, .customList:
                // These need no body: one that was sent is read and dropped (within the limits
                // the head parser checked, and the request's deadline).
                var left = bodyLength - min(bodyLength, buf.count)
                buf.removeFirst(min(bodyLength, buf.count))
                var sink: [UInt8] = []
                while left > 0 {
                    sink.removeAll(keepingCapacity: true)
                    switch receive(fd, into: &sink, max: left, deadline: deadline, scratch: scratch) {
                    case .data: left -= sink.count
                    case .timeout: fail(fd, HTTPError(408, "the request body did not arrive within \(formatFixed(timeout, 0)) s"), what, scratch: scratch); return
                    case .eof, .stop, .failure: return
                    }
                }
                let body: String
                switch route {
                case .status: body = statusJSON()
                case .ping: body = "{\"success\":true}"
                default: body = DeepStackAPI.modelListResponse(models.map { $0.name })
                }
                let keep = head.keepAlive && !isStopping
                log("\(what) 200")
                mutex.locked { requestsServed += 1 }
                if !sendAll(fd, HTTPResponse.json(status: 200, body: body, keepAlive: keep)) || !keep { return }
            case .detect(let modelIndex):
                guard let cl = head.contentLength else {
                    fail(fd, HTTPError(411, "a detection request needs a Content-Length"), what, scratch: scratch); return
                }
                if cl == 0 { fail(fd, HTTPError(400, "empty request body: send the image as multipart form field \"image\""), what, scratch: scratch); return }
                if head.expectContinue && buf.count < cl {
                    if !sendAll(fd, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) { return }
                }
                // --- the body: exactly Content-Length bytes (what follows belongs to the next request).
                var body: [UInt8] = []
                body.reserveCapacity(cl)
                let take = min(cl, buf.count)
                body.append(contentsOf: buf[0..<take])
                buf.removeFirst(take)
                while body.count < cl {
                    switch receive(fd, into: &body, max: cl - body.count, deadline: deadline, scratch: scratch) {
                    case .data: continue
                    case .timeout:
                        fail(fd, HTTPError(408, "the request body did not arrive within \(formatFixed(timeout, 0)) s "
                                           + "(\(body.count) of \(cl) bytes)"), what, scratch: scratch)
                        return
                    case .stop:
                        fail(fd, HTTPError(503, "the server is shutting down"), what, scratch: scratch); return
                    case .eof, .failure:
                        log("\(what) - connection closed after \(body.count) of \(cl) body bytes")
                        return
                    }
                }
                let request: DeepStackAPI.DetectionRequest
                do {
                    request = try body.withUnsafeBytes {
                        try DeepStackAPI.detectionRequest(body: $0, contentType: head.header("content-type"), apiKey: config.apiKey)
                    }
                } catch let e as HTTPError {
                    fail(fd, e, what, scratch: scratch); return
                } catch {
                    fail(fd, HTTPError(400, oneLine(String(describing: error))), what, scratch: scratch); return
                }
                // --- queue the job (503 at once when the queue is full) and wait for its answer.
                let job = ServeJob(model: modelIndex, body: body, request: request)
                body = []
                var refusal: HTTPError?
                mutex.locked {
                    if stopping {
                        refusal = HTTPError(503, "the server is shutting down")
                    } else if jobs.count >= config.queueLength {
                        rejectedBusy += 1
                        refusal = HTTPError(503, "busy: \(jobs.count) requests are waiting (--queue \(config.queueLength)); try again")
                    } else {
                        jobs.append(job)
                        jobReady.signal()
                        while !job.done { jobDone.wait(mutex) }
                        requestsServed += 1
                    }
                }
                if let e = refusal { fail(fd, e, what, extraHeaders: [("Retry-After", "1")], scratch: scratch); return }
                let keep = head.keepAlive && job.status == 200 && !isStopping
                log("\(what) \(job.status) \(job.summary)")
                if !sendAll(fd, HTTPResponse.json(status: job.status, body: job.response, keepAlive: keep)) || !keep { return }
            }
        }
    }

    // MARK: - status

    private func statusJSON() -> String {
        let (waiting, busy, served, rejected) = mutex.locked { (jobs.count, busyReaders, requestsServed, rejectedBusy) }
        var s = "{\"success\":true,\"server\":\"edge-mrcnn\",\"version\":\(ResultsJSON.string(toolVersion))"
        s += ",\"isa\":\(ResultsJSON.string(String(cString: em_isa_name(em_isa_current()))))"
        s += ",\"threads\":\(em_num_threads()),\"models\":["
        for (i, m) in models.enumerated() {
            if i > 0 { s += "," }
            s += "{\"name\":\(ResultsJSON.string(m.name)),\"file\":\(ResultsJSON.string(m.file))"
            s += ",\"precision\":\(ResultsJSON.string(m.precision)),\"default\":\(i == defaultModel)"
            s += ",\"route\":\(ResultsJSON.string(i == defaultModel ? "/v1/vision/detection" : "/v1/vision/custom/" + m.name))"
            s += ",\"classes\":[" + m.classNames.map { ResultsJSON.string($0) }.joined(separator: ",") + "]}"
        }
        s += "],\"queue\":{\"waiting\":\(waiting),\"capacity\":\(config.queueLength)}"
        s += ",\"connections\":{\"active\":\(busy),\"max\":\(config.maxConnections)}"
        s += ",\"requests\":\(served),\"rejectedBusy\":\(rejected)"
        s += ",\"uptimeSeconds\":\(Int(monotonicSeconds() - startTime))}"
        return s
    }
}

/// SIGTERM / SIGINT: wake every poll of the server (write is async-signal-safe).
private func serveStopHandler(_ sig: Int32) {
    let saved = errno
    var b: UInt8 = 1
    _ = write(serveSignalFd, &b, 1)
    errno = saved
}
