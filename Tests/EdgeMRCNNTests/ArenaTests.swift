import CShim
import Foundation
import XCTest
@testable import EdgeMRCNN

final class ArenaTests: XCTestCase {
    struct Rng {
        var s: UInt64
        mutating func next(_ n: Int) -> Int {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Int(s % UInt64(n))
        }
    }

    /// Random requests with random lifetimes.
    func randomRequests(_ rng: inout Rng, count: Int) -> [ArenaPlanner.Request] {
        (0..<count).map { _ in
            let start = rng.next(200)
            return ArenaPlanner.Request(bytes: 1 + rng.next(1 << rng.next(20)), start: start, end: start + 1 + rng.next(40))
        }
    }

    func testPlannerNeverOverlapsLiveBuffers() {
        var rng = Rng(s: 0x9E3779B97F4A7C15)
        for trial in 0..<50 {
            let reqs = randomRequests(&rng, count: 1 + rng.next(120))
            let (offsets, total) = ArenaPlanner.plan(reqs)
            let sum = reqs.reduce(0) { $0 + ($1.bytes + 63) / 64 * 64 }
            XCTAssertLessThanOrEqual(total, sum, "trial \(trial)")
            XCTAssertGreaterThanOrEqual(total, ArenaPlanner.peakLive(reqs), "trial \(trial)")
            for i in reqs.indices {
                XCTAssertEqual(offsets[i] % 64, 0)
                XCTAssertLessThanOrEqual(offsets[i] + reqs[i].bytes, total)
                for j in reqs.indices where j > i {
                    let live = reqs[i].start < reqs[j].end && reqs[j].start < reqs[i].end
                    if !live { continue }
                    let disjoint = offsets[i] + reqs[i].bytes <= offsets[j] || offsets[j] + reqs[j].bytes <= offsets[i]
                    XCTAssertTrue(disjoint, "trial \(trial): live buffers \(i) and \(j) share bytes")
                }
            }
        }
    }

    func testPlannerReusesMemoryOfAChain() {
        // a chain x0 -> x1 -> x2 ... where each buffer dies after the next is made: two slots suffice
        let reqs = (0..<10).map { ArenaPlanner.Request(bytes: 1000, start: $0, end: $0 + 2) }
        let (_, total) = ArenaPlanner.plan(reqs)
        XCTAssertEqual(total, 2 * 1024)
    }

    /// Runs a fake "pipeline" on a workspace: a chain of maps whose sizes follow the shape.
    func fakeRun(_ arena: Arena, _ h: Int, _ w: Int, extra: Int = 0) -> [UnsafeMutablePointer<Float>] {
        arena.beginRun(paddedHeight: h, paddedWidth: w)
        defer { arena.endRun() }
        let ws = Workspace(arena: arena)
        var ptrs: [UnsafeMutablePointer<Float>] = []
        var x = ws.map(3, h, w, zeroed: true)
        ptrs.append(x.pointer)
        for c in [8, 16, 8] {
            let y = ws.map(c, h, w)
            ptrs.append(y.pointer)
            for i in 0..<y.count { y.pointer[i] = Float(c) }
            XCTAssertEqual(Int(bitPattern: y.pointer) % 64, 0)
            // the input is still alive: it must be untouched
            XCTAssertTrue((0..<x.count).allSatisfy { x.pointer[$0] == (x.channels == 3 ? 0 : Float(x.channels)) })
            x = y
        }
        let dyn = ws.floats(10 + extra, reserve: 100)
        for i in 0..<dyn.count { dyn.pointer[i] = 1 }
        XCTAssertTrue((0..<x.count).allSatisfy { x.pointer[$0] == 8 })
        return ptrs
    }

    func testArenaReplansOnlyOnShapeChange() {
        let arena = Arena()
        let first = fakeRun(arena, 8, 16)
        XCTAssertEqual(arena.stats.plans, 1)
        XCTAssertGreaterThan(arena.stats.lastRunHeapBlocks, 0)   // the planning run is on the heap
        XCTAssertLessThanOrEqual(arena.stats.planBytes, arena.stats.sumBytes)
        _ = first
        let second = fakeRun(arena, 8, 16)
        XCTAssertEqual(arena.stats.plans, 1)
        // the arena block itself is made at the first served request
        XCTAssertEqual(arena.stats.lastRunHeapBlocks, 1)
        XCTAssertEqual(arena.stats.lastRunFallbacks, 0)
        let third = fakeRun(arena, 8, 16, extra: 50)   // dynamic size within its reserve
        XCTAssertEqual(arena.stats.plans, 1)
        XCTAssertEqual(arena.stats.lastRunHeapBlocks, 0)
        XCTAssertEqual(second, third)   // same offsets every run
        _ = fakeRun(arena, 16, 16)
        XCTAssertEqual(arena.stats.plans, 2)
        XCTAssertEqual(arena.stats.paddedHeight, 16)
        _ = fakeRun(arena, 16, 16)
        XCTAssertEqual(arena.stats.plans, 2)
        XCTAssertEqual(arena.stats.lastRunHeapBlocks, 1)
        // back to the first shape: its plan was kept, and the (bigger) block serves it
        _ = fakeRun(arena, 8, 16)
        XCTAssertEqual(arena.stats.plans, 2)
        XCTAssertEqual(arena.stats.lastRunHeapBlocks, 0)
        XCTAssertEqual(arena.stats.paddedHeight, 8)
    }

    func testRequestsThePlanCannotServeFallBackToTheHeap() {
        let arena = Arena()
        _ = fakeRun(arena, 8, 16)
        _ = fakeRun(arena, 8, 16)
        // bigger than its reserve: heap, counted, contents still correct (fakeRun checks them)
        _ = fakeRun(arena, 8, 16, extra: 500)
        XCTAssertEqual(arena.stats.lastRunFallbacks, 1)
        XCTAssertEqual(arena.stats.plans, 1)

        // out of sequence: a different order of requests never hands out bytes that are alive
        arena.beginRun(paddedHeight: 8, paddedWidth: 16)
        let ws = Workspace(arena: arena)
        var keep: [FloatBuffer] = []
        for n in [10, 3 * 128, 8 * 128, 16 * 128, 8 * 128, 5, 7, 9] {
            let b = ws.floats(n)
            for i in 0..<n { b.pointer[i] = Float(keep.count) }
            keep.append(b)
        }
        for (k, b) in keep.enumerated() {
            XCTAssertTrue((0..<b.count).allSatisfy { b.pointer[$0] == Float(k) }, "buffer \(k) was overwritten")
        }
        keep = []
        arena.endRun()
        XCTAssertGreaterThan(arena.stats.lastRunFallbacks, 0)

        // buffers that outlive their run (traces) stay valid and are never handed out again
        arena.beginRun(paddedHeight: 8, paddedWidth: 16)
        let held = Workspace(arena: arena).map(3, 8, 16, zeroed: true)
        arena.endRun()
        _ = fakeRun(arena, 8, 16)
        XCTAssertTrue((0..<held.count).allSatisfy { held.pointer[$0] == 0 })
        _ = fakeRun(arena, 32, 32)   // re-plan drops the old block; `held` keeps its memory alive
        XCTAssertTrue((0..<held.count).allSatisfy { held.pointer[$0] == 0 })
    }

    /// The fused preprocess (no full-size float image) equals normalise, resize, pad bit for bit,
    /// on both of its paths (tabulated columns up to 4096 wide, per-pixel beyond).
    func testFusedPreprocessIsBitIdentical() {
        var rng = Rng(s: 12345)
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        for (h, w, oh, ow) in [(7, 9, 16, 20), (40, 30, 13, 11), (5, 5, 5, 5), (3, 5000, 2, 4100), (31, 17, 64, 33)] {
            let rgb = (0..<(h * w * 3)).map { _ in UInt8(rng.next(256)) }
            let ph = (oh + 31) / 32 * 32, pw = (ow + 31) / 32 * 32
            var norm = [Float](repeating: 0, count: 3 * h * w)
            var resized = [Float](repeating: 0, count: 3 * oh * ow)
            em_normalize_rgb8_f32(rgb, Int32(h), Int32(w), mean, std, &norm)
            em_resize_bilinear_f32(norm, 3, Int32(h), Int32(w), &resized, Int32(oh), Int32(ow))
            var want = [Float](repeating: 0, count: 3 * ph * pw)
            for c in 0..<3 { for y in 0..<oh { for x in 0..<ow { want[(c * ph + y) * pw + x] = resized[(c * oh + y) * ow + x] } } }
            var got = [Float](repeating: .nan, count: 3 * ph * pw)
            em_normalize_resize_pad_rgb8_f32(rgb, Int32(h), Int32(w), mean, std, Int32(oh), Int32(ow), Int32(ph), Int32(pw), &got)
            XCTAssertEqual(got.map { $0.bitPattern }, want.map { $0.bitPattern }, "\(h)x\(w) -> \(oh)x\(ow)")
            // quantised in the same pass (the int8 stem's input): the bytes of quantising the float
            // planes; declined beyond 4096 columns
            var wantQ = [UInt8](repeating: 0, count: 3 * ph * pw), gotQ = [UInt8](repeating: 7, count: 3 * ph * pw)
            em_quantize_f32_u8(want, want.count, 0.0173, 114, &wantQ)
            let rc = em_normalize_resize_pad_rgb8_u8(rgb, Int32(h), Int32(w), mean, std, Int32(oh), Int32(ow),
                                                     Int32(ph), Int32(pw), 0.0173, 114, &gotQ)
            if ow > 4096 { XCTAssertEqual(rc, -1); continue }
            XCTAssertEqual(rc, 0)
            XCTAssertEqual(gotQ, wantQ, "uint8 \(h)x\(w) -> \(oh)x\(ow)")
        }
    }

    // ---------------------------------------------------------------- the real pipeline

    func minorFaults() -> Int {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return ru.ru_minflt
    }

    func checkSteadyState(_ model: MaskRCNN, _ image: RGBImage, label: String) throws {
        let a = try model.detect(image)
        let plans = model.arenaStats.plans
        XCTAssertGreaterThan(model.arenaStats.planBytes, 0)
        XCTAssertLessThanOrEqual(model.arenaStats.planBytes, model.arenaStats.sumBytes)
        let heap0 = ActivationAllocations.heapBlocks, fb0 = ActivationAllocations.fallbacks
        let b = try model.detect(image)   // allocates the arena block once
        XCTAssertEqual(ActivationAllocations.heapBlocks - heap0, 1, label)
        XCTAssertEqual(ActivationAllocations.fallbacks - fb0, 0, label)
        let heap1 = ActivationAllocations.heapBlocks
        let f0 = minorFaults()
        let c = try model.detect(image)
        let faults = minorFaults() - f0
        XCTAssertEqual(ActivationAllocations.heapBlocks - heap1, 0, "\(label): steady state made heap allocations")
        XCTAssertEqual(model.arenaStats.lastRunHeapBlocks, 0, label)
        XCTAssertEqual(model.arenaStats.lastRunFallbacks, 0, label)
        XCTAssertEqual(model.arenaStats.plans, plans, label)
        for (x, y) in [(a, b), (a, c)] {
            XCTAssertEqual(x.count, y.count, label)
            for (d, e) in zip(x, y) {
                XCTAssertEqual(d.score, e.score, label); XCTAssertEqual(d.label, e.label, label)
                XCTAssertEqual(d.mask, e.mask, label)
            }
        }
        let st = model.arenaStats
        print("\(label): plan \(st.planBytes >> 10) KB, sum \(st.sumBytes >> 10) KB, peak live \(st.peakLiveBytes >> 10) KB, "
            + "\(st.buffers) buffers, block \(st.blockBytes >> 10) KB, steady-state minor faults \(faults)")
        // no fresh memory is touched in the steady state beyond small arrays (4 KB pages)
        XCTAssertLessThan(faults * 4096, st.planBytes / 4, label)
    }

    func testSecondDetectOfTheSameShapeAllocatesNothing() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let val = try Shared.require("data/shapes-val/images")
        let calib = try Shared.require("data/shapes-calib/images")
        let loaded = try ModelLoader.load(path: modelPath)
        let float = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        let image = try loadImage(path: val + "/shapes_777_00000.jpg")
        try checkSteadyState(float, image, label: "float")

        // a different padded shape re-plans once, then is steady again
        let plans = float.arenaStats.plans
        var wide: [UInt8] = []
        for y in 0..<image.height {
            let row = image.pixels[(y * image.width * 3)..<((y + 1) * image.width * 3)]
            wide += row; wide += row
        }
        let big = RGBImage(width: image.width * 2, height: image.height, pixels: wide)
        _ = try float.detect(big)
        XCTAssertEqual(float.arenaStats.plans, plans + 1)
        _ = try float.detect(big)
        XCTAssertEqual(float.arenaStats.plans, plans + 1)

        let cal = Calibrator(model: float)
        for f in try Calibration.imageFiles(in: calib, log: { _ in }).prefix(2) {
            try cal.add(try loadImage(path: f), name: f)
        }
        let q = try cal.quantizedModel(float: loaded.store, method: .percentile, source: modelPath)
        let int8 = try MaskRCNN(store: q, config: loaded.config, source: "int8")
        XCTAssertEqual(int8.precision, "int8")
        try checkSteadyState(int8, image, label: "int8")
    }

    func testMaxMemory() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let val = try Shared.require("data/shapes-val/images")
        let loaded = try ModelLoader.load(path: modelPath)
        let image = try loadImage(path: val + "/shapes_777_00000.jpg")
        let free = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        let ref = try free.detect(image)
        let full = free.arenaStats.planBytes + free.weightBytes

        // far too little: a one-line error naming the need and the budget
        let tiny = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        tiny.maxMemoryBytes = tiny.weightBytes + (1 << 20)
        XCTAssertThrowsError(try tiny.detect(image)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("needs at least") && m.contains("--max-memory allows"), m)
            XCTAssertFalse(m.contains("\n"))
        }
        // just below the full-speed plan: smaller RoI chunks, same detections
        let tight = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        tight.maxMemoryBytes = full - 1
        var got = try tight.detect(image)
        got = try tight.detect(image)
        XCTAssertLessThan(tight.arenaStats.planBytes + tight.weightBytes, full)
        XCTAssertEqual(got.count, ref.count)
        for (d, e) in zip(got, ref) {
            XCTAssertEqual(d.score, e.score, accuracy: 1e-5); XCTAssertEqual(d.label, e.label)
        }
    }
}

/// Opt-in measurement: EDGE_MRCNN_ARENA_IMAGE=photo.jpg [EDGE_MRCNN_ARENA_MODELS=a.pth:b.safetensors]
/// [EDGE_MRCNN_ARENA_MIN=800 EDGE_MRCNN_ARENA_MAX=1333] prints each model's plan for that image.
final class ArenaReportTests: XCTestCase {
    func testReportPlan() throws {
        guard let img = ProcessInfo.processInfo.environment["EDGE_MRCNN_ARENA_IMAGE"] else {
            throw XCTSkip("set EDGE_MRCNN_ARENA_IMAGE to report a plan")
        }
        let env = ProcessInfo.processInfo.environment
        var models = [try Shared.require("models/shapes-r50fpn/model.pth")]
        if let list = env["EDGE_MRCNN_ARENA_MODELS"] { models = list.split(separator: ":").map(String.init) }
        let overrides = ModelOverrides(minSize: env["EDGE_MRCNN_ARENA_MIN"].flatMap { Int($0) } ?? 800,
                                       maxSize: env["EDGE_MRCNN_ARENA_MAX"].flatMap { Int($0) } ?? 1333)
        let image = try loadImage(path: img)
        for m in models {
            let loaded = try ModelLoader.load(path: m, overrides: overrides)
            let model = try MaskRCNN(store: loaded.store, config: loaded.config, source: m)
            _ = try model.detect(image)
            let st = model.arenaStats
            print("arena \(model.precision) \((m as NSString).lastPathComponent): padded \(st.paddedHeight)x\(st.paddedWidth): "
                + "plan \(st.planBytes >> 20) MB, sum of buffers \(st.sumBytes >> 20) MB, peak live \(st.peakLiveBytes >> 20) MB, "
                + "\(st.buffers) buffers, weights \(model.weightBytes >> 20) MB")
        }
    }
}
