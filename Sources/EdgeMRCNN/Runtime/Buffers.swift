// Activation memory. Every activation and kernel scratch buffer of a detect run comes from
// `Workspace` (float maps, uint8 maps, scratch). A `Workspace` draws on an `Arena` that lives as
// long as the model: the first run for a padded input shape records every request (bytes, order)
// and its release (the buffer object's deinit), then a greedy-by-size planner gives each request
// an offset in one block; later runs of that shape are served from that block with no heap
// allocation. A request the plan cannot serve safely (bigger than planned, more requests than
// planned, or a planned slot that overlaps a buffer still alive) falls back to its own heap block
// and is counted, so a wrong plan costs memory, never correctness.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// ---------------------------------------------------------------- raw blocks

/// Heap blocks of at least this size are mapped with mmap (and unmapped on release), so that
/// memory freed during a planning run goes back to the system at once.
private let mmapThreshold = 1 << 20

@inline(__always) private func roundUp(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }

/// A 64-byte aligned block of `bytes` bytes (mmap above 1 MB). Returns nil when out of memory.
private func blockAllocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
    let n = max(bytes, 1)
    if n >= mmapThreshold {
        let p = mmap(nil, roundUp(n, 4096), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let p, p != MAP_FAILED { return p }
        return nil
    }
    var p: UnsafeMutableRawPointer?
    if posix_memalign(&p, 64, n) != 0 { return nil }
    return p
}

private func blockFree(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
    let n = max(bytes, 1)
    if n >= mmapThreshold { munmap(p, roundUp(n, 4096)) } else { free(p) }
}

/// Allocation counters of activation/scratch memory (process-wide; detect runs are single-threaded
/// in Swift, the kernels' own threads never allocate here).
public enum ActivationAllocations {
    /// Heap blocks made for activations or kernel scratch outside an arena (planning runs, arena
    /// fallbacks, scratch growth, arena blocks themselves).
    public internal(set) static var heapBlocks = 0
    /// Requests a plan could not serve (subset of heapBlocks).
    public internal(set) static var fallbacks = 0
    /// Requests served from an arena.
    public internal(set) static var arenaServed = 0
}

/// The memory of one buffer: a slice of an arena block, or its own heap block.
final class ActivationStorage {
    let raw: UnsafeMutableRawPointer
    let bytes: Int
    /// Arena slice: the block it belongs to and its live-list entry.
    private let block: ArenaBlock?
    private let slot: Int
    /// Recording run: the request index to stamp the release on.
    private weak var recorder: Arena?
    private let request: Int, generation: Int

    /// A heap block (counted unless `counted` is false: weights, tests). Out of memory ends the
    /// process, as Swift's own allocation does.
    init(heapBytes: Int, recorder: Arena? = nil, request: Int = -1, generation: Int = 0, counted: Bool = true) {
        guard let p = blockAllocate(heapBytes) else {
            fatalError("out of memory allocating \(heapBytes) bytes of activations")
        }
        raw = p; bytes = heapBytes; block = nil; slot = -1
        self.recorder = recorder; self.request = request; self.generation = generation
        if counted { ActivationAllocations.heapBlocks += 1 }
    }

    init(block: ArenaBlock, offset: Int, bytes: Int, slot: Int) {
        raw = block.base + offset; self.bytes = bytes; self.block = block; self.slot = slot
        recorder = nil; request = -1; generation = 0
        ActivationAllocations.arenaServed += 1
    }

    deinit {
        if let block { block.release(slot) } else { blockFree(raw, bytes) }
        recorder?.recordRelease(request, generation: generation)
    }
}

/// An owned, 64-byte aligned float array.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    let storage: ActivationStorage

    /// A heap buffer outside any arena (tests, traces; not counted).
    convenience init(count: Int, zeroed: Bool = false) {
        self.init(storage: ActivationStorage(heapBytes: max(count, 1) * 4, counted: false), count: count, zeroed: zeroed)
    }

    init(storage: ActivationStorage, count: Int, zeroed: Bool) {
        self.storage = storage
        self.count = count
        pointer = storage.raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed && count > 0 { pointer.initialize(repeating: 0, count: count) }
    }

    /// `count` floats of `base` from element `offset` (shares, and keeps alive, its memory).
    init(viewOf base: FloatBuffer, offset: Int, count: Int) {
        precondition(offset >= 0 && offset + count <= base.count)
        storage = base.storage
        self.count = count
        pointer = base.pointer + offset
    }

    /// A copy of the contents as an array (for traces and tests).
    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// An owned, 64-byte aligned byte array.
final class ByteBuffer {
    let count: Int
    let pointer: UnsafeMutablePointer<UInt8>
    let storage: ActivationStorage

    /// A heap buffer outside any arena (packed weights; not counted).
    convenience init(count: Int) {
        self.init(storage: ActivationStorage(heapBytes: max(count, 1), counted: false), count: count)
    }

    init(storage: ActivationStorage, count: Int) {
        self.storage = storage
        self.count = count
        pointer = storage.raw.bindMemory(to: UInt8.self, capacity: max(count, 1))
    }
}

/// A CHW float tensor of one image.
public struct FeatureMap {
    public let buffer: FloatBuffer
    public let channels: Int, height: Int, width: Int
    public var pointer: UnsafeMutablePointer<Float> { buffer.pointer }
    public var count: Int { channels * height * width }
}

// ---------------------------------------------------------------- planner

/// Offsets for buffers with known sizes and lifetimes: greedy by size (largest first, each at the
/// lowest offset that overlaps no already placed buffer whose lifetime overlaps its own).
public enum ArenaPlanner {
    public struct Request {
        public var bytes: Int
        /// Live over [start, end) in event order.
        public var start: Int, end: Int
        public init(bytes: Int, start: Int, end: Int) { self.bytes = bytes; self.start = start; self.end = end }
    }

    /// Offsets (multiples of `alignment`) and the total size.
    public static func plan(_ reqs: [Request], alignment: Int = 64) -> (offsets: [Int], total: Int) {
        let order = reqs.indices.sorted { a, b in
            reqs[a].bytes != reqs[b].bytes ? reqs[a].bytes > reqs[b].bytes : a < b
        }
        var offsets = [Int](repeating: 0, count: reqs.count)
        var placed: [Int] = []
        var total = 0
        var busy: [(lo: Int, hi: Int)] = []
        for i in order {
            let r = reqs[i]
            let size = roundUp(max(r.bytes, 1), alignment)
            busy.removeAll(keepingCapacity: true)
            for j in placed where reqs[j].start < r.end && r.start < reqs[j].end {
                busy.append((offsets[j], offsets[j] + roundUp(max(reqs[j].bytes, 1), alignment)))
            }
            busy.sort { $0.lo < $1.lo }
            var off = 0
            for b in busy {
                if off + size <= b.lo { break }
                off = max(off, b.hi)
            }
            offsets[i] = off
            placed.append(i)
            total = max(total, off + size)
        }
        return (offsets, total)
    }

    /// Largest sum of bytes alive at one time (a lower bound of any plan).
    public static func peakLive(_ reqs: [Request], alignment: Int = 64) -> Int {
        var events: [(t: Int, d: Int)] = []
        for r in reqs {
            let s = roundUp(max(r.bytes, 1), alignment)
            events.append((r.start, s)); events.append((r.end, -s))
        }
        events.sort { $0.t != $1.t ? $0.t < $1.t : $0.d < $1.d }
        var cur = 0, peak = 0
        for e in events { cur += e.d; peak = max(peak, cur) }
        return peak
    }
}

/// One arena block and the slices of it that are alive.
final class ArenaBlock {
    let base: UnsafeMutableRawPointer
    let bytes: Int
    /// Live slices (offset, end) by slot; a slot is free when end == 0.
    private var live: [(lo: Int, hi: Int)] = []
    private var freeSlots: [Int] = []

    init?(bytes: Int) {
        guard let p = blockAllocate(bytes) else { return nil }
        base = p; self.bytes = bytes
        ActivationAllocations.heapBlocks += 1
    }
    deinit { blockFree(base, bytes) }

    /// Takes [lo, hi) if no live slice overlaps it; returns its slot or nil.
    func take(_ lo: Int, _ hi: Int) -> Int? {
        if hi > bytes { return nil }
        for s in live where s.hi > 0 && s.lo < hi && lo < s.hi { return nil }
        if let slot = freeSlots.popLast() { live[slot] = (lo, hi); return slot }
        live.append((lo, hi))
        return live.count - 1
    }

    func release(_ slot: Int) {
        live[slot] = (0, 0)
        freeSlots.append(slot)
    }
}

/// What the arena of a model did (see `MaskRCNN.arenaStats`).
public struct ArenaStats: Equatable {
    /// Size of the current plan (the arena block), bytes.
    public var planBytes = 0
    /// Sum of the planned buffers' sizes (what separate allocations would need in total), bytes.
    public var sumBytes = 0
    /// Largest sum of planned buffers alive at one time (lower bound of any plan), bytes.
    public var peakLiveBytes = 0
    /// Planned buffers in one run.
    public var buffers = 0
    /// Plans made so far (one per padded input shape not seen before; the last 8 are kept).
    public var plans = 0
    /// Size of the arena block now held (the largest plan served so far), bytes.
    public var blockBytes = 0
    /// Padded input shape of the current plan (0, 0 before the first run).
    public var paddedHeight = 0, paddedWidth = 0
    /// Requests of the last run served by the heap because the plan could not serve them.
    public var lastRunFallbacks = 0
    /// Heap blocks (activations and scratch) made during the last run.
    public var lastRunHeapBlocks = 0
}

/// The activation memory of one model: the saved plans, the block serving them and the recording
/// of a planning run. Kernel scratch is planned like the activations (Workspace.scratch).
final class Arena {
    private struct Planned { var bytes: Int; var offset: Int }
    private struct ShapeKey: Hashable { var h: Int, w: Int }
    private struct SavedPlan {
        var entries: [Planned]
        var tag: Int
        var planBytes: Int, sumBytes: Int, peakLiveBytes: Int
    }
    /// Plans by padded shape (a few are kept, so that alternating shapes do not re-plan).
    private var saved: [ShapeKey: SavedPlan] = [:]
    private var savedOrder: [ShapeKey] = []
    static let keptPlans = 8
    private var plan: [Planned] = []
    /// The block serving the current plan; kept (and reused) while it is big enough.
    private var block: ArenaBlock?
    /// Replace a block bigger than the plan being served (under a memory budget).
    var shrinkBlock = false
    private(set) var stats = ArenaStats()

    // run state
    private var recording = false
    private var generation = 0
    private var recKey = ShapeKey(h: 0, w: 0)
    private var recTag = 0
    private var next = 0
    private var clock = 0
    private var recBytes: [Int] = [], recStart: [Int] = [], recEnd: [Int] = []
    /// Recording run: bytes (as planned) alive now and at most so far.
    private(set) var recordingLiveBytes = 0, recordingPeakBytes = 0
    var isRecording: Bool { recording }
    /// The tag of the plan being recorded (extra state the plan depends on, e.g. the RoI chunk
    /// sizes --max-memory chose); it can still change during the recording run.
    var recordingTag: Int { recTag }
    func setPlanTag(_ t: Int) { if recording { recTag = t } }
    private var runHeap0 = 0, runFallback0 = 0

    /// The saved plan of a padded shape: its tag and size, nil if none.
    func savedPlan(paddedHeight h: Int, paddedWidth w: Int) -> (tag: Int, planBytes: Int)? {
        saved[ShapeKey(h: h, w: w)].map { ($0.tag, $0.planBytes) }
    }

    /// Does a run of this padded shape (and tag) need a new plan?
    func needsPlan(paddedHeight h: Int, paddedWidth w: Int, tag: Int = 0) -> Bool {
        saved[ShapeKey(h: h, w: w)].map { $0.tag != tag } ?? true
    }

    /// Starts a run: records when the shape (or tag) has no plan yet, serves from its plan otherwise.
    func beginRun(paddedHeight h: Int, paddedWidth w: Int, tag: Int = 0) {
        let k = ShapeKey(h: h, w: w)
        generation += 1
        if let sp = saved[k], sp.tag == tag {
            recording = false
            plan = sp.entries
            if shrinkBlock, let b = block, b.bytes > sp.planBytes { block = nil }
            stats.planBytes = sp.planBytes; stats.sumBytes = sp.sumBytes; stats.peakLiveBytes = sp.peakLiveBytes
            stats.buffers = sp.entries.count; stats.paddedHeight = h; stats.paddedWidth = w
        } else {
            // the plan is saved only when the recording run completes (a run that throws re-plans)
            recording = true
            plan = []
            recBytes = []; recStart = []; recEnd = []
            recordingLiveBytes = 0; recordingPeakBytes = 0
            recKey = k; recTag = tag
        }
        next = 0; clock = 0
        runHeap0 = ActivationAllocations.heapBlocks; runFallback0 = ActivationAllocations.fallbacks
    }

    /// Ends a run; a completed recording run makes the plan (the block itself is allocated at
    /// first use); an incomplete one (the run threw) is dropped, so the next run records again.
    func endRun(completed: Bool = true) {
        if recording && completed {
            let reqs = (0..<recBytes.count).map {
                ArenaPlanner.Request(bytes: recBytes[$0], start: recStart[$0], end: recEnd[$0] < 0 ? Int.max : recEnd[$0])
            }
            let (offsets, total) = ArenaPlanner.plan(reqs)
            let sp = SavedPlan(entries: zip(recBytes, offsets).map { Planned(bytes: $0, offset: $1) }, tag: recTag,
                               planBytes: total, sumBytes: recBytes.reduce(0) { $0 + roundUp(max($1, 1), 64) },
                               peakLiveBytes: ArenaPlanner.peakLive(reqs))
            if saved[recKey] == nil {
                savedOrder.append(recKey)
                if savedOrder.count > Arena.keptPlans { saved[savedOrder.removeFirst()] = nil }
            }
            saved[recKey] = sp
            plan = sp.entries
            stats.planBytes = sp.planBytes; stats.sumBytes = sp.sumBytes; stats.peakLiveBytes = sp.peakLiveBytes
            stats.buffers = sp.entries.count; stats.paddedHeight = recKey.h; stats.paddedWidth = recKey.w
            stats.plans += 1
        }
        recording = false
        recBytes = []; recStart = []; recEnd = []
        stats.lastRunFallbacks = ActivationAllocations.fallbacks - runFallback0
        stats.lastRunHeapBlocks = ActivationAllocations.heapBlocks - runHeap0
        stats.blockBytes = block?.bytes ?? 0
    }

    /// Memory for `bytes` bytes; `reserve` (>= bytes) is what a planning run reserves for it
    /// (the bound of a dynamic size).
    func storage(bytes: Int, reserve: Int) -> ActivationStorage {
        let i = next
        next += 1
        clock += 1
        if recording {
            let b = max(bytes, reserve)
            recBytes.append(b); recStart.append(clock); recEnd.append(-1)
            recordingLiveBytes += roundUp(b, 64)
            recordingPeakBytes = max(recordingPeakBytes, recordingLiveBytes)
            return ActivationStorage(heapBytes: bytes, recorder: self, request: i, generation: generation)
        }
        if i < plan.count && bytes <= plan[i].bytes {
            if (block?.bytes ?? 0) < stats.planBytes { block = ArenaBlock(bytes: max(stats.planBytes, 64)) }
            if let b = block, let slot = b.take(plan[i].offset, plan[i].offset + roundUp(max(bytes, 1), 64)) {
                return ActivationStorage(block: b, offset: plan[i].offset, bytes: bytes, slot: slot)
            }
        }
        ActivationAllocations.fallbacks += 1
        return ActivationStorage(heapBytes: bytes)
    }

    func recordRelease(_ request: Int, generation g: Int) {
        guard recording && g == generation else { return }
        clock += 1
        if request >= 0 && request < recEnd.count && recEnd[request] < 0 {
            recEnd[request] = clock
            recordingLiveBytes -= roundUp(recBytes[request], 64)
        }
    }

    /// Drops the plans and the block (the next run re-plans).
    func reset() { plan = []; block = nil; saved = [:]; savedOrder = [] }
}

/// The single allocation point for activations and kernel scratch memory of one run.
final class Workspace {
    let arena: Arena
    /// Sees every activation a quantised layer would produce (calibration, simulated int8).
    var hook: ActivationHook?
    /// Sees every weight layer's input and output (the calibration report); nil otherwise.
    var layerObserver: LayerObserver?
    /// Times every weight layer (bench --layers); nil otherwise: one pointer test per layer.
    var layerClock: LayerClock?
    /// RoI chunk sizes (the memory/speed knob of --max-memory).
    var boxChunk = BoxHead.chunk
    var maskBatch = MaskHead.batch
    /// The most detections this run can produce (--max-detections): what the mask head reserves.
    var detectionBound = BoxHead.detectionsPerImageBound

    /// A workspace on its own arena (no reuse across runs).
    convenience init() { self.init(arena: Arena()) }
    init(arena: Arena) { self.arena = arena }

    /// `count` floats; a planning run reserves `reserve` (the bound of a dynamic count).
    func floats(_ count: Int, zeroed: Bool = false, reserve: Int = 0) -> FloatBuffer {
        FloatBuffer(storage: arena.storage(bytes: max(count, 1) * 4, reserve: reserve * 4), count: count, zeroed: zeroed)
    }

    func map(_ c: Int, _ h: Int, _ w: Int, zeroed: Bool = false) -> FeatureMap {
        FeatureMap(buffer: floats(c * h * w, zeroed: zeroed), channels: c, height: h, width: w)
    }

    /// `count` bytes (uint8 activations); a planning run reserves `reserve`.
    func bytes(_ count: Int, reserve: Int = 0) -> ByteBuffer {
        ByteBuffer(storage: arena.storage(bytes: max(count, 1), reserve: reserve), count: count)
    }

    /// The scratch buffer handed out last; released by the next scratch request (or the end of
    /// the run), so the plan gives it exactly that lifetime.
    private var scratchHold: ByteBuffer?

    /// Kernel scratch memory of at least `bytes` bytes, valid until the next `scratch` call; a
    /// planned buffer like the activations (`reserve`: its bound when `bytes` is dynamic).
    /// Returns nil when no scratch is needed.
    func scratch(_ bytes: Int, reserve: Int = 0) -> UnsafeMutableRawPointer? {
        scratchHold = nil
        if bytes <= 0 { return nil }
        let b = self.bytes(bytes, reserve: reserve)
        scratchHold = b
        return UnsafeMutableRawPointer(b.pointer)
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

/// Wall seconds per weight layer, summed over its calls in one run (the RPN head conv runs once per
/// level, the RoI heads once per chunk or batch), in the order the layers first ran.
public final class LayerClock {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var order: [String] = []
    public init() {}
    func add(_ name: String, _ dt: Double) {
        if seconds[name] == nil { order.append(name) }
        seconds[name, default: 0] += dt
    }
}
