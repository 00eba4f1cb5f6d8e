// pthread building blocks of `edge-mrcnn serve` (no Foundation, no Dispatch on the static aarch64
// binary): a mutex with condition variables, and threads with a chosen stack size.
#if canImport(Glibc)
import Glibc
#endif
import EdgeMRCNN

/// A pthread mutex (heap-allocated so that it never moves).
final class ServeMutex {
    let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
    }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    func lock() { pthread_mutex_lock(m) }
    func unlock() { pthread_mutex_unlock(m) }
    @discardableResult
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock(); defer { unlock() }
        return try body()
    }
}

/// A pthread condition variable used with one ServeMutex.
final class ServeCondition {
    let c: UnsafeMutablePointer<pthread_cond_t>
    init() {
        c = .allocate(capacity: 1)
        c.initialize(to: pthread_cond_t())
        pthread_cond_init(c, nil)
    }
    deinit { pthread_cond_destroy(c); c.deallocate() }
    /// Waits (the mutex held by the caller).
    func wait(_ mutex: ServeMutex) { pthread_cond_wait(c, mutex.m) }
    func signal() { pthread_cond_signal(c) }
    func broadcast() { pthread_cond_broadcast(c) }
}

private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a joinable thread running `body` with a stack of `stackBytes`.
func startThread(stackBytes: Int, _ body: @escaping () -> Void) throws -> pthread_t {
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setstacksize(&attr, stackBytes)
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(&tid, &attr, { p in
        Unmanaged<ThreadBody>.fromOpaque(p!).takeRetainedValue().run()
        return nil
    }, box)
    if rc != 0 {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw EdgeError("cannot start a thread (error \(rc))")
    }
    return tid
}

func joinThread(_ t: pthread_t) { _ = pthread_join(t, nil) }

