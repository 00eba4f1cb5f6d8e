// The layers the executor runs: an activation type that is float32 or uint8, and one weight layer
// type whose float and int8 forwards live side by side (the precision is the layer's, from the
// model file). The int8 kernels follow em_qkernels.h; the float ones em_kernels.h.

import CShim

/// A CHW activation (one image, or RoIs side by side; a linear layer's rows are [rows, 1, features]):
/// float32 (q nil) or uint8 with its quantisation parameters.
struct Act {
    /// Keeps the memory alive (an arena buffer).
    let storage: AnyObject?
    let raw: UnsafeMutableRawPointer
    let channels: Int, height: Int, width: Int
    let q: QParams?
    var count: Int { channels * height * width }
    var f32: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var u8: UnsafeMutablePointer<UInt8> { raw.assumingMemoryBound(to: UInt8.self) }

    init(_ m: FeatureMap) {
        storage = m.buffer; raw = UnsafeMutableRawPointer(m.pointer)
        channels = m.channels; height = m.height; width = m.width; q = nil
    }

    init(storage: AnyObject?, raw: UnsafeMutableRawPointer, _ c: Int, _ h: Int, _ w: Int, q: QParams?) {
        self.storage = storage; self.raw = raw; channels = c; height = h; width = w; self.q = q
    }

    /// A new activation from the workspace; a planning run reserves `reserve` elements.
    init(_ c: Int, _ h: Int, _ w: Int, q: QParams?, _ ws: Workspace, reserve: Int = 0) {
        if q == nil {
            let b = ws.floats(c * h * w, reserve: reserve)
            self.init(storage: b, raw: UnsafeMutableRawPointer(b.pointer), c, h, w, q: nil)
        } else {
            let b = ws.bytes(c * h * w, reserve: reserve)
            self.init(storage: b, raw: UnsafeMutableRawPointer(b.pointer), c, h, w, q: q)
        }
    }

    /// Same precision and parameters?
    func matches(_ p: QParams?) -> Bool {
        switch (q, p) {
        case (nil, nil): return true
        case let (a?, b?): return a.scale == b.scale && a.zeroPoint == b.zeroPoint
        default: return false
        }
    }

    /// Writes this activation in precision `out.q` into `out` (same element count).
    func convert(into out: Act) {
        switch (q, out.q) {
        case (nil, nil): out.f32.update(from: f32, count: count)
        case (nil, let p?): em_quantize_f32_u8(f32, count, p.scale, p.zeroPoint, out.u8)
        case (let p?, nil): em_dequantize_u8_f32(u8, count, p.scale, p.zeroPoint, out.f32)
        case let (a?, b?):
            for i in 0..<count { out.u8[i] = b.quantize(a.dequantize(u8[i])) }
        }
    }

    /// This activation in precision `p` (itself when it already is).
    func converted(to p: QParams?, _ ws: Workspace) -> Act {
        if matches(p) { return self }
        let out = Act(channels, height, width, q: p, ws)
        convert(into: out)
        return out
    }

    /// A float CHW map of the same values (a copy when uint8).
    func featureMap(_ ws: Workspace) -> FeatureMap {
        if q == nil, let b = storage as? FloatBuffer, b.pointer == f32 {
            return FeatureMap(buffer: b, channels: channels, height: height, width: width)
        }
        let m = ws.map(channels, height, width)
        convert(into: Act(m))
        return m
    }
}

/// Sees every weight layer as it runs, float or int8, with its input, residual and output in the
/// layer's own precisions (the calibration report: Quant/Report.swift). Called after the hook, so
/// a float output is what the hook left there. Nil in normal runs: one pointer test per layer.
protocol LayerObserver: AnyObject {
    func layerRan(_ layer: Layer, input: Act, residual: Act?, output: Act)
}

/// One weight layer (conv, 2x2/2 or 4x4/2 pad 1 transposed conv, or linear) bound to its weights: float
/// (weight/bias F32) or int8 (the em_qkernels.h packed blob, per-channel multipliers and the
/// parameters of its input and output activations).
final class Layer {
    let def: LayerDef
    private let weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?
    fileprivate let packed: UnsafeRawPointer?
    /// int8: parameters of the input and (unless the output is float) of the output.
    let inQ: QParams?, outQ: QParams?
    /// int8: s_in * w_s[c] / s_out (or s_in * w_s[c] for float outputs).
    fileprivate let mult: [Float]

    var isInt8: Bool { packed != nil }
    /// The precision this layer reads (nil: float).
    var inputParams: QParams? { isInt8 ? inQ : nil }
    /// The precision this layer writes (nil: float).
    var outputParams: QParams? { isInt8 && !def.floatOutput ? outQ : nil }

    init(float def: LayerDef, _ store: TensorStore, source: String) throws {
        self.def = def
        weight = try store.floatTensor(def.name + ".weight", shape: def.weightShape, source: source).floats
        bias = try store.floatTensor(def.name + ".bias", shape: [def.cout], source: source).floats
        packed = nil; inQ = nil; outQ = nil; mult = []
    }

    init(int8 def: LayerDef, packed: UnsafeRawPointer, weightScales: UnsafePointer<Float>, inQ: QParams, outQ: QParams?) {
        self.def = def
        weight = nil; bias = nil
        self.packed = packed; self.inQ = inQ; self.outQ = outQ
        mult = (0..<def.cout).map { c in
            let m = inQ.scale * weightScales[c]
            return outQ.map { m / $0.scale } ?? m
        }
    }

    /// Output dimensions for an input of c x h x w (linear: rows stay in `c`).
    func outputShape(_ x: Act) -> (c: Int, h: Int, w: Int) {
        switch def.op {
        case .conv(let k, let s, let p): return (def.cout, (x.height + 2 * p - k) / s + 1, (x.width + 2 * p - k) / s + 1)
        case .deconv2x2, .deconv4x4s2p1: return (def.cout, 2 * x.height, 2 * x.width)
        default: return (x.count / def.cin, 1, def.cout)
        }
    }

    /// A new output activation for input `x` from the workspace.
    func output(for x: Act, _ ws: Workspace) -> Act {
        let s = outputShape(x)
        return Act(s.c, s.h, s.w, q: outputParams, ws)
    }

    /// out = act(layer(x) + bias (+ residual)). `x` and `residual` are in this layer's input and
    /// output precisions, `out` in its output precision. `reserveWidth`: the largest width this
    /// call site passes (planning runs reserve the deconvolution scratch for it). Float layers
    /// report their output to the workspace's activation hook.
    /// `tile`: > 0 when x's columns are images of `tile` columns side by side, each convolved on
    /// its own (int8 same-size convolutions: em_qconv2d_u8_tiles; Executor.sideBySide's batches
    /// without separator columns).
    func run(_ x: Act, into out: Act, _ ws: Workspace, residual: Act? = nil, reserveWidth: Int = 0, tile: Int = 0) throws {
        if let clock = ws.layerClock {   // bench --layers: wall time of each weight layer
            let t0 = monotonicSeconds()
            defer { clock.add(def.name, monotonicSeconds() - t0) }
            try runLayer(x, into: out, ws, residual: residual, reserveWidth: reserveWidth, tile: tile)
        } else {
            try runLayer(x, into: out, ws, residual: residual, reserveWidth: reserveWidth, tile: tile)
        }
    }

    private func runLayer(_ x: Act, into out: Act, _ ws: Workspace, residual: Act?, reserveWidth: Int, tile: Int) throws {
        let d = def
        let cin = Int32(d.cin), cout = Int32(d.cout), h = Int32(x.height), w = Int32(x.width)
        var rc: Int32 = 0
        if let packed, let inQ {
            let z = inQ.zeroPoint
            rc = mult.withUnsafeBufferPointer { m -> Int32 in
                switch (d.op, outputParams) {
                case (.conv(let k, let s, let p), let o?) where tile > 0 && tile < x.width && d.op.readsNeighbours:
                    guard residual == nil else { return -1 }
                    return em_qconv2d_u8_tiles(x.u8, cin, h, w, z, packed, cout, Int32(k), Int32(k), Int32(s), Int32(p),
                                               Int32(tile), m.baseAddress, o.zeroPoint, d.relu ? 1 : 0, out.u8)
                case (.conv(let k, let s, let p), let o?):
                    return em_qconv2d_u8(x.u8, cin, h, w, z, packed, cout, Int32(k), Int32(k), Int32(s), Int32(p),
                                         m.baseAddress, o.zeroPoint, residual?.u8, residual?.q?.zeroPoint ?? 0,
                                         residual.map { $0.q!.scale / o.scale } ?? 0, d.relu ? 1 : 0, out.u8, nil)
                case (.conv(let k, let s, let p), nil):
                    return em_qconv2d_u8_f32(x.u8, cin, h, w, z, packed, cout, Int32(k), Int32(k), Int32(s), Int32(p),
                                             m.baseAddress, out.f32)
                case (.deconv2x2, let o?):
                    return em_qdeconv2x2s2_u8(x.u8, cin, h, w, z, packed, cout, m.baseAddress, o.zeroPoint,
                                              d.relu ? 1 : 0, out.u8, nil)
                case (.deconv4x4s2p1, nil):
                    let bytes = em_qdeconv4x4s2p1_u8_f32_scratch_bytes(cin, h, w, cout)
                    let bound = em_qdeconv4x4s2p1_u8_f32_scratch_bytes(cin, h, Int32(max(x.width, reserveWidth)), cout)
                    return em_qdeconv4x4s2p1_u8_f32(x.u8, cin, h, w, z, packed, cout, m.baseAddress, out.f32,
                                                    ws.scratch(Int(bytes), reserve: Int(bound)))
                case (.linear, let o?):
                    return em_qlinear_u8(x.u8, Int32(x.count / d.cin), cin, z, packed, cout, m.baseAddress, o.zeroPoint,
                                         d.relu ? 1 : 0, out.u8)
                case (.linear, nil):
                    return em_qlinear_u8_f32(x.u8, Int32(x.count / d.cin), cin, z, packed, cout, m.baseAddress, out.f32)
                default:
                    return -1
                }
            }
            if rc != 0 { throw EdgeError("int8 layer \(d.name) rejected its arguments") }
            ws.layerObserver?.layerRan(self, input: x, residual: residual, output: out)
            return
        }
        let wt = weight!, b = bias!
        switch d.op {
        case .conv(let k, let s, let p):
            let k = Int32(k), s = Int32(s), p = Int32(p)
            let scratch = ws.scratch(Int(em_conv2d_f32_scratch_bytes(cin, h, w, cout, k, k, s, p)))
            em_conv2d_f32(x.f32, cin, h, w, wt, b, cout, k, k, s, p, residual.map { UnsafePointer($0.f32) },
                          d.relu ? 1 : 0, out.f32, scratch)
        case .deconv2x2:
            let bytes = em_deconv2x2s2_f32_scratch_bytes(cin, h, w, cout)
            let bound = em_deconv2x2s2_f32_scratch_bytes(cin, h, Int32(max(x.width, reserveWidth)), cout)
            em_deconv2x2s2_f32(x.f32, cin, h, w, wt, b, cout, d.relu ? 1 : 0, out.f32,
                               ws.scratch(Int(bytes), reserve: Int(bound)))
        case .deconv4x4s2p1:
            let bytes = em_deconv4x4s2p1_f32_scratch_bytes(cin, h, w, cout)
            let bound = em_deconv4x4s2p1_f32_scratch_bytes(cin, h, Int32(max(x.width, reserveWidth)), cout)
            em_deconv4x4s2p1_f32(x.f32, cin, h, w, wt, b, cout, out.f32, ws.scratch(Int(bytes), reserve: Int(bound)))
        case .linear:
            let rows = x.count / d.cin
            if rows == 0 { return }
            em_linear_f32(x.f32, Int32(rows), cin, wt, b, cout, d.relu ? 1 : 0, out.f32)
        default:
            throw EdgeError("layer \(d.name) has no weights")
        }
        ws.hook?.activation(d.name, out.f32, out.count)
        ws.layerObserver?.layerRan(self, input: x, residual: residual, output: out)
    }

    /// The 1x1 convolution's output channel `label` only, for one RoI of a side-by-side batch:
    /// dst[28 x 28] from the [Cin, 28, uw] map at column `x0`. Float layers compute that channel
    /// alone (one GEMM row); int8 layers read it from `all`, the whole float output of the batch
    /// (computed once by `run`).
    /// int8 1x1 layers with float output (the mask logits): for each window r (m x m at column
    /// columns[r] of the uint8 map x), channel labels[r] into dst + r * m * m, computing only each
    /// label's 8-channel block (em_qconv1x1_blocks_u8_f32, the windows over the threads; the same
    /// floats as those channels of `run`). `blocks`: a float scratch map of at least 8 * m * m
    /// values per window.
    func int8Channels(_ labels: [Int], of x: Act, columns: [Int], size m: Int, blocks: Act,
                      into dst: UnsafeMutablePointer<Float>, _ ws: Workspace) throws {
        let n = labels.count
        guard let packed, let inQ, outQ == nil, case .conv(1, 1, 0) = def.op, x.q != nil, x.height == m, n > 0,
              columns.count == n, labels.allSatisfy({ $0 >= 0 && $0 < def.cout }), blocks.count >= n * 8 * m * m else {
            throw EdgeError("\(def.name): not an int8 1x1 layer with float output for these labels")
        }
        let t0 = ws.layerClock != nil ? monotonicSeconds() : 0
        defer { ws.layerClock?.add(def.name, monotonicSeconds() - t0) }
        let x0s = columns.map { Int32($0) }
        #if arch(x86_64)
        // x86 avx512vnni: each window's label channel alone, straight from the map (1: not on this
        // ISA or for these windows; then the blocks below)
        let one = labels.map { Int32($0) }
        let rc1 = mult.withUnsafeBufferPointer { d in
            em_qconv1x1_rows_u8_f32(x.u8, Int32(def.cin), Int32(x.height), Int32(x.width), inQ.zeroPoint, packed,
                                    Int32(def.cout), Int32(n), one, x0s, 0, Int32(m), Int32(m), d.baseAddress, dst)
        }
        if rc1 == 0 { return }
        if rc1 != 1 { throw EdgeError("int8 layer \(def.name) rejected its arguments") }
        #endif
        let blockOf = labels.map { Int32($0 / 8) }
        let rc = mult.withUnsafeBufferPointer { d in
            em_qconv1x1_blocks_u8_f32(x.u8, Int32(def.cin), Int32(x.height), Int32(x.width), inQ.zeroPoint, packed,
                                      Int32(def.cout), Int32(n), blockOf, x0s, 0, Int32(m), Int32(m), d.baseAddress, blocks.f32)
        }
        if rc != 0 { throw EdgeError("int8 layer \(def.name) rejected its arguments") }
        for r in 0..<n {
            (dst + r * m * m).update(from: blocks.f32 + (r * 8 + labels[r] % 8) * m * m, count: m * m)
        }
    }

    func channel(_ label: Int, of x: Act, column x0: Int, size m: Int, all: Act?, into dst: UnsafeMutablePointer<Float>,
                 _ ws: Workspace) {
        let uw = x.width
        if let all {
            for y in 0..<m {
                (dst + y * m).update(from: all.f32 + (label * x.height + y) * uw + x0, count: m)
            }
            return
        }
        let c = def.cin
        let t0 = ws.layerClock != nil ? monotonicSeconds() : 0
        defer { ws.layerClock?.add(def.name, monotonicSeconds() - t0) }
        for y in 0..<m {
            em_sgemm(1, Int32(m), Int32(c), weight! + label * c, Int32(c), x.f32 + y * uw + x0, Int32(x.height * uw),
                     dst + y * m, Int32(m), bias! + label, 0, 0)
        }
        ws.hook?.activation(def.name, dst, m * m)
    }
}

/// int8 1x1 convolutions with float output that read the same activation (the RPN head's
/// cls_logits and bbox_pred, on every level): the executor runs them as one GEMM over their
/// concatenated weights (em_qpack_concat, made once at load), so the input's panels are built once
/// and the rows share channel blocks (3 + 12 rows: 2 blocks of 8, not 1 + 2). Each member's output
/// is a view of its channels of the joint output (no copy): row m's float is its int32 sum (the
/// same exact integer) times its own multiplier, so every member gets the floats of its own run.
final class MergedLayers {
    let members: [Layer]
    fileprivate let packed: ByteBuffer
    fileprivate let mult: [Float]
    let cin: Int, cout: Int
    let inQ: QParams
    /// Bytes of the joint blob.
    var packedBytes: Int { packed.count }

    /// nil unless every layer is an int8 1x1 stride-1 convolution with float output reading the
    /// same input with the same parameters, and there are at least two.
    init?(_ ls: [Layer]) {
        guard ls.count >= 2, let q = ls[0].inQ, let p0 = ls[0].packed else { return nil }
        for l in ls {
            guard l.isInt8, l.def.floatOutput, l.def.residual == nil, !l.def.relu, !l.def.eachInput,
                  case .conv(1, 1, 0) = l.def.op, l.def.inputs == ls[0].def.inputs, l.def.cin == ls[0].def.cin,
                  let lq = l.inQ, lq.scale == q.scale, lq.zeroPoint == q.zeroPoint else { return nil }
        }
        // ((a + b) + c ...): each concat keeps the earlier rows in order
        var blob: ByteBuffer?, prev: UnsafeRawPointer = p0, rows = ls[0].def.cout
        for l in ls.dropFirst() {
            let next = ByteBuffer(count: em_qpack_weights_bytes(Int32(rows + l.def.cout), Int32(l.def.cin)))
            guard em_qpack_concat(prev, l.packed, next.pointer) == 0 else { return nil }
            blob = next
            prev = UnsafeRawPointer(next.pointer)
            rows += l.def.cout
        }
        members = ls
        packed = blob!
        mult = ls.flatMap { $0.mult }
        cin = ls[0].def.cin
        cout = rows
        inQ = q
    }

    /// The members' outputs for `x` (uint8 with the members' input parameters), in member order.
    func run(_ x: Act, _ ws: Workspace) throws -> [Act] {
        let t0 = ws.layerClock != nil ? monotonicSeconds() : 0
        let n = x.height * x.width
        let joint = ws.floats(cout * n)
        let rc = mult.withUnsafeBufferPointer { m in
            em_qconv2d_u8_f32(x.u8, Int32(cin), Int32(x.height), Int32(x.width), inQ.zeroPoint, packed.pointer,
                              Int32(cout), 1, 1, 1, 0, m.baseAddress, joint.pointer)
        }
        if rc != 0 { throw EdgeError("int8 layers \(members.map { $0.def.name }.joined(separator: ", ")) rejected their arguments") }
        var outs: [Act] = [], c0 = 0
        for l in members {
            let v = FloatBuffer(viewOf: joint, offset: c0 * n, count: l.def.cout * n)
            outs.append(Act(storage: v, raw: UnsafeMutableRawPointer(v.pointer), l.def.cout, x.height, x.width, q: nil))
            c0 += l.def.cout
        }
        if let clock = ws.layerClock {   // bench --layers: the joint time, split by the members' MACs (rows)
            let dt = monotonicSeconds() - t0
            for l in members { clock.add(l.def.name, dt * Double(l.def.cout) / Double(cout)) }
        }
        return outs
    }
}

extension Layer {
    /// Whether `head` reads exactly this layer's output as it is written: an int8 convolution with
    /// uint8 output and no residual, the head's input parameters its output's, K its channels.
    func feeds(_ head: MergedLayers) -> Bool {
        guard isInt8, let o = outputParams, def.residual == nil, case .conv = def.op,
              head.cin == def.cout, head.inQ.scale == o.scale, head.inQ.zeroPoint == o.zeroPoint else { return false }
        return head.members.allSatisfy { $0.def.inputs == [def.name] }
    }

    /// This convolution into `out` and the merged 1x1 float layers `head` on its output in one call
    /// (em_qconv2d_u8_head_f32: the same bytes and floats as running them one after the other; x86
    /// runs the head on each chunk of pixels while their outputs are in cache). Returns the
    /// members' outputs as MergedLayers.run does. bench --layers: the joint time, split by MACs.
    func runWithHead(_ x: Act, into out: Act, _ head: MergedLayers, _ ws: Workspace) throws -> [Act] {
        guard let packed, let inQ, let o = outputParams, case .conv(let k, let s, let p) = def.op else {
            throw EdgeError("\(def.name): not an int8 convolution with uint8 output")
        }
        let t0 = ws.layerClock != nil ? monotonicSeconds() : 0
        let n = out.height * out.width
        let joint = ws.floats(head.cout * n)
        let rc = mult.withUnsafeBufferPointer { m in
            head.mult.withUnsafeBufferPointer { hm in
                em_qconv2d_u8_head_f32(x.u8, Int32(def.cin), Int32(x.height), Int32(x.width), inQ.zeroPoint, packed,
                                       Int32(def.cout), Int32(k), Int32(k), Int32(s), Int32(p), m.baseAddress, o.zeroPoint,
                                       def.relu ? 1 : 0, out.u8, head.packed.pointer, Int32(head.cout), hm.baseAddress,
                                       joint.pointer)
            }
        }
        if rc != 0 { throw EdgeError("int8 layer \(def.name) with its head rejected its arguments") }
        var outs: [Act] = [], c0 = 0
        for l in head.members {
            let v = FloatBuffer(viewOf: joint, offset: c0 * n, count: l.def.cout * n)
            outs.append(Act(storage: v, raw: UnsafeMutableRawPointer(v.pointer), l.def.cout, out.height, out.width, q: nil))
            c0 += l.def.cout
        }
        if let clock = ws.layerClock {
            let dt = monotonicSeconds() - t0
            let own = Double(def.cout * def.cin * k * k), all = own + Double(head.cout * head.cin)
            clock.add(def.name, dt * own / all)
            for l in head.members { clock.add(l.def.name, dt * Double(l.def.cout * l.def.cin) / all) }
        }
        return outs
    }
}
