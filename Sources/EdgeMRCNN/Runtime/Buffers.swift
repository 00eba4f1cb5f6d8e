// Activation memory of the float pipeline. Every buffer the stages use comes from `Workspace`, so
// that an arena planner can later replace this one place (today: plain 64-byte aligned heap
// allocations, freed when the last reference goes away).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An owned, 64-byte aligned float array.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    init(count: Int, zeroed: Bool = false) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed && count > 0 { pointer.initialize(repeating: 0, count: count) }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// A copy of the contents as an array (for traces and tests).
    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// A CHW float tensor of one image.
public struct FeatureMap {
    public let buffer: FloatBuffer
    public let channels: Int, height: Int, width: Int
    public var pointer: UnsafeMutablePointer<Float> { buffer.pointer }
    public var count: Int { channels * height * width }
}

/// The single allocation point for activations and kernel scratch memory.
final class Workspace {
    private var scratchBuffer: UnsafeMutableRawPointer?
    private var scratchBytes = 0
    /// Sees every activation a quantised layer would produce (calibration, simulated int8).
    var hook: ActivationHook?

    deinit { scratchBuffer?.deallocate() }

    func floats(_ count: Int, zeroed: Bool = false) -> FloatBuffer {
        FloatBuffer(count: count, zeroed: zeroed)
    }

    func map(_ c: Int, _ h: Int, _ w: Int, zeroed: Bool = false) -> FeatureMap {
        FeatureMap(buffer: floats(c * h * w, zeroed: zeroed), channels: c, height: h, width: w)
    }

    /// Kernel scratch memory of at least `bytes` bytes (grow-only, reused between calls).
    /// Returns nil when no scratch is needed.
    func scratch(_ bytes: Int) -> UnsafeMutableRawPointer? {
        if bytes <= 0 { return nil }
        if bytes > scratchBytes {
            scratchBuffer?.deallocate()
            scratchBuffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            scratchBytes = bytes
        }
        return scratchBuffer
    }
}

/// Monotonic wall clock in seconds.
@inline(__always) func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// CPU time of this process (all threads) in seconds.
@inline(__always) func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
