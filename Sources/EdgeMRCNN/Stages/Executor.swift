// The executor: binds every weight layer of the network description to the model file's weights,
// each at the precision the file gives it (float file: all float; int8 file: int8 except the
// layers it keeps in float), and walks the description. Where a layer's input is in another
// precision than the layer reads, the executor converts it (quantise with the parameters of that
// activation, or dequantise). Ops without weights follow their inputs: a max pool, merge or
// RoIAlign on uint8 maps runs in uint8, on float maps in float.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

final class Executor {
    let net: Network
    private(set) var layers: [String: Layer] = [:]
    /// uint8 parameters of every activation (int8 files; empty for float models).
    let qparams: [String: QParams]
    /// Packed blobs made at load time (int8 files without L.packed tensors).
    private var owned: [ByteBuffer] = []
    var ownedBytes: Int { owned.reduce(0) { $0 + $1.count } + merged.values.reduce(0) { $0 + $1.packedBytes } }
    /// Layers bound in each precision.
    var int8Layers: Int { layers.values.filter { $0.isInt8 }.count }

    init(_ store: TensorStore, config: ModelConfig, source: String) throws {
        do { net = try Network.build(config) } catch let e as EdgeError { throw EdgeError(file: source, e.message) }
        let int8 = QuantizedModel.isInt8(store)
        qparams = int8 ? try QuantizedModel.activationParams(store, network: net, source: source) : [:]
        let kept = Set(QuantizedModel.floatLayers(store.metadata).map { $0.name })
        if let unknown = kept.first(where: { net.layer($0)?.op.hasWeights != true }) {
            throw EdgeError(file: source, "int8 model: float layer '\(unknown)' is not a weight layer of \(net.name)")
        }
        for l in net.weightLayers {
            if !int8 || kept.contains(l.name) {
                layers[l.name] = try Layer(float: l, store, source: source)
                continue
            }
            let inQ = qparams[net.paramsKey(l.inputs[0])]!
            let outQ = l.floatOutput ? nil : qparams[net.paramsKey(l.name)]!
            let sc = try QuantizedModel.need(store, l.name + ".weight_scale", .f32, [l.cout], source)
            let packed = try QuantizedModel.packedWeights(store, layer: l, zIn: inQ.zeroPoint, source: source) {
                self.owned.append($0)
            }
            layers[l.name] = Layer(int8: l, packed: packed, weightScales: sc.floats, inQ: inQ, outQ: outQ)
        }
        mergeSiblings()
        inputQParams = stemInputParams()
    }

    func layer(_ n: String) -> Layer { layers[n]! }

    /// Weight layers run as one GEMM (MergedLayers), by the name of their first member in the
    /// description; `mergedLater`: the other members (their outputs come with the first's).
    private var merged: [String: MergedLayers] = [:]
    private var mergedLater: Set<String> = []

    /// Groups the int8 1x1 layers with float output that read the same activation (the RPN head's
    /// cls_logits and bbox_pred), in description order.
    private func mergeSiblings() {
        var groups: [String: [Layer]] = [:], order: [String] = []
        for d in net.weightLayers {
            guard let l = layers[d.name], l.isInt8, d.floatOutput, case .conv(1, 1, 0) = d.op, d.inputs.count == 1,
                  d.residual == nil, !d.eachInput else { continue }
            if groups[d.inputs[0]] == nil { order.append(d.inputs[0]) }
            groups[d.inputs[0], default: []].append(l)
        }
        for k in order {
            guard let m = MergedLayers(groups[k]!) else { continue }
            merged[m.members[0].def.name] = m
            m.members.dropFirst().forEach { mergedLater.insert($0.def.name) }
            #if arch(x86_64)
            if let l = layers[k], l.feeds(m) { headOf[k] = m }
            #endif
        }
    }

    /// x86: convolutions run together with the merged group that reads their output (the RPN head
    /// conv with cls_logits + bbox_pred: Layer.runWithHead), by the convolution's name.
    private var headOf: [String: MergedLayers] = [:]

    /// The parameters an activation gets when a uint8 consumer reads it.
    func params(_ activation: String) -> QParams? { qparams[net.paramsKey(activation)] }

    /// The uint8 parameters the network's input can be made in directly (Transform.runU8): those
    /// every reader of "input" takes when all of them are int8 layers reading it in uint8; nil
    /// otherwise (float models, a float stem).
    private(set) var inputQParams: QParams?

    private func stemInputParams() -> QParams? {
        let readers = net.layers.filter { $0.inputs.contains(MaskRCNN.inputName) || $0.residual == MaskRCNN.inputName }
        guard let first = readers.first, first.op.hasWeights, let p = layers[first.name]?.inputParams else { return nil }
        for d in readers {
            guard d.op.hasWeights, d.residual != MaskRCNN.inputName, let l = layers[d.name], let lp = l.inputParams,
                  lp.scale == p.scale, lp.zeroPoint == p.zeroPoint else { return nil }
        }
        return p
    }

    // ------------------------------------------------------------------ walking the description

    /// Runs `defs` (layers and ops of the description, in order) on the activations in `env`,
    /// releasing each activation after its last use unless `keep` names it. A layer that runs on
    /// each of its inputs (the RPN head conv) reads the one present in `env`.
    func walk(_ defs: [LayerDef], _ env: inout [String: Act], keep: Set<String>, _ ws: Workspace,
              stageDone: ((NetStage) throws -> Void)? = nil) throws {
        var uses: [String: Int] = [:]
        for d in defs { (d.inputs + [d.residual].compactMap { $0 }).forEach { uses[$0, default: 0] += 1 } }
        func used(_ n: String) {
            uses[n, default: 1] -= 1
            if uses[n]! <= 0 && !keep.contains(n) { env[n] = nil }
        }
        var stage = defs.first?.stage
        for d in defs {
            if d.stage != stage, let s = stage { try stageDone?(s); stage = d.stage }
            let inputs = d.eachInput ? [d.inputs.first { env[$0] != nil }!] : d.inputs
            if mergedLater.contains(d.name) && env[d.name] != nil {   // made with its group's first member
                inputs.forEach(used)
                continue
            }
            #if arch(x86_64)
            if merged[d.name] != nil && env[d.name] != nil {   // made with the layer it reads (runWithHead)
                inputs.forEach(used)
                continue
            }
            if let g = headOf[d.name], ws.layerObserver == nil, ws.hook == nil {
                let l = layer(d.name)
                let xin = env[inputs[0]]!.converted(to: l.inputParams, ws)
                let out = l.output(for: xin, ws)
                let ys = try l.runWithHead(xin, into: out, g, ws)
                inputs.forEach(used)
                env[d.name] = out
                for (m, y) in zip(g.members, ys) { env[m.def.name] = y }
                continue
            }
            #endif
            if let g = merged[d.name], ws.layerObserver == nil {
                // the group's GEMM (not while the calibration report observes each layer's run)
                let outs = try g.run(env[inputs[0]]!.converted(to: g.inQ, ws), ws)
                inputs.forEach(used)
                for (l, y) in zip(g.members, outs) { env[l.def.name] = y }
                continue
            }
            let y = try run(d, inputs.map { env[$0]! }, residual: d.residual.map { env[$0]! }, ws)
            inputs.forEach(used)
            if let r = d.residual { used(r) }
            env[d.name] = y
        }
    }

    /// One layer or op of the description on its inputs, into a new activation.
    func run(_ d: LayerDef, _ xs: [Act], residual: Act?, _ ws: Workspace) throws -> Act {
        let x = xs[0]
        switch d.op {
        case .conv, .deconv2x2, .deconv4x4s2p1, .linear:
            let l = layer(d.name)
            let xin = x.converted(to: l.inputParams, ws)
            let res = try residual.map { r -> Act in
                guard l.outputParams != nil else { return r.converted(to: nil, ws) }
                guard let p = params(d.residual!) else { throw EdgeError("no parameters for \(d.residual!)") }
                return r.matches(p) ? r : r.converted(to: p, ws)
            }
            let out = l.output(for: xin, ws)
            try l.run(xin, into: out, ws, residual: res)
            return out
        case .maxpool(let k, let s, let p):
            let out = Act(x.channels, (x.height + 2 * p - k) / s + 1, (x.width + 2 * p - k) / s + 1, q: x.q, ws)
            if x.q != nil {
                em_qmaxpool2d_u8(x.u8, Int32(x.channels), Int32(x.height), Int32(x.width), Int32(k), Int32(s), Int32(p), out.u8)
            } else {
                em_maxpool2d_f32(x.f32, Int32(x.channels), Int32(x.height), Int32(x.width), Int32(k), Int32(s), Int32(p), out.f32)
            }
            return out
        case .addUpsample:
            let (lat, top) = (x, xs[1])
            if let lq = lat.q, let tq = top.q, let mq = params(d.name) {
                let out = Act(lat.channels, lat.height, lat.width, q: mq, ws)
                em_qadd_upsample_nearest_u8(lat.u8, lq.zeroPoint, lq.scale / mq.scale, top.u8, tq.zeroPoint,
                                            tq.scale / mq.scale, Int32(lat.channels), Int32(top.height), Int32(top.width),
                                            Int32(lat.height), Int32(lat.width), mq.zeroPoint, out.u8)
                return out
            }
            // float: added in place into the lateral map (its only reader)
            let out = lat.q == nil ? lat : lat.converted(to: nil, ws)
            let t = top.converted(to: nil, ws)
            em_upsample_nearest_add_f32(t.f32, Int32(t.channels), Int32(t.height), Int32(t.width), out.f32,
                                        Int32(out.height), Int32(out.width))
            ws.hook?.activation(d.name, out.f32, out.count)
            return out
        case .roiAlign:
            throw EdgeError("\(d.name): RoIAlign runs in the RoI heads")
        }
    }

    // ------------------------------------------------------------------ the stages

    /// The backbone and the FPN: the normalised image (released once read) -> P2..P6.
    /// `stageDone` is called as each stage ends.
    func features(_ x: inout Act?, _ ws: Workspace, stageDone: (NetStage) throws -> Void) throws -> [Act] {
        var env: [String: Act] = ["input": x!]
        x = nil
        let defs = net.layers.filter { $0.stage == .backbone || $0.stage == .fpn }
        try withoutActuallyEscaping(stageDone) { done in
            try walk(defs, &env, keep: Set(net.featureOutputs), ws, stageDone: done)
        }
        try stageDone(.fpn)
        return net.featureOutputs.map { env[$0]! }
    }

    /// The RPN head on every level: float objectness logits [A, H, W] and box deltas [4A, H, W].
    func rpnHeads(_ levels: [Act], _ ws: Workspace) throws -> [(logits: FeatureMap, deltas: FeatureMap)] {
        let defs = net.layers(in: .rpn)
        let outs = defs.filter { $0.floatOutput }.map { $0.name }   // [logits, deltas]
        return try zip(net.featureOutputs, levels).map { name, p in
            var env = [name: p]
            try walk(defs, &env, keep: Set(outs), ws)
            return (env[outs[0]]!.featureMap(ws), env[outs[1]]!.featureMap(ws))
        }
    }

    /// The maps RoIAlign reads, P2..P5: uint8 maps in HWC layout (all channels of a pixel at once),
    /// float maps as they are.
    func roiLevels(_ levels: [Act], _ ws: Workspace) -> [Act] {
        levels.prefix(4).map { m in
            guard m.q != nil else { return m }
            let t = Act(m.channels, m.height, m.width, q: m.q, ws)
            em_transpose_chw_hwc_u8(m.u8, Int32(m.channels), Int32(m.height), Int32(m.width), t.u8)
            return t
        }
    }
}

/// Buffers of a head's layers, made on the first call for the largest batch the head passes
/// (planned at that bound) and reused by later calls: a layer's output takes a free buffer of its
/// size class, so a chain of equal layers alternates between two (no allocation per RoI batch).
final class HeadBuffers {
    private let ws: Workspace
    private var buffers: [(cls: Int, capacity: Int, act: Act, busy: Bool)] = []
    init(_ ws: Workspace) { self.ws = ws }

    /// A buffer for c x h x w elements of precision q; `bound`: the most elements this slot ever holds.
    func take(_ c: Int, _ h: Int, _ w: Int, q: QParams?, bound: Int) -> Act {
        let cls = bound * (q == nil ? 4 : 1), n = c * h * w
        if let i = buffers.firstIndex(where: { $0.cls == cls && !$0.busy && $0.capacity >= n }) {
            buffers[i].busy = true
            let b = buffers[i].act
            return Act(storage: b.storage, raw: b.raw, c, h, w, q: q)
        }
        let a = Act(c, h, w, q: q, ws, reserve: bound)
        buffers.append((cls, n, a, true))
        return a
    }

    /// Gives back the buffer of `a`.
    func give(_ a: Act) {
        if let i = buffers.firstIndex(where: { $0.act.raw == a.raw }) { buffers[i].busy = false }
    }
}

extension Executor {
    /// Runs the weight layers `defs` (a chain: each reads the previous one's output) on `x`, taking
    /// outputs and conversions from `bufs`; scale: `bound(elements)` gives the planning bound of a
    /// buffer of that many elements. `final` receives the last layer's output if given.
    /// `afterEach` runs after each layer (sideBySide re-zeroes its separators).
    /// `tile`: Layer.run's (the input's columns are images of `tile` columns), 0: none.
    func chain(_ defs: [LayerDef], _ x: Act, _ bufs: HeadBuffers, bound: (Int) -> Int, final: Act? = nil,
               reserveWidth: Int = 0, tile: Int = 0, _ ws: Workspace, afterEach: ((LayerDef, Act) -> Void)? = nil) throws -> Act {
        var cur = x
        for (i, d) in defs.enumerated() {
            let l = layer(d.name)
            var xin = cur
            if !cur.matches(l.inputParams) {
                xin = bufs.take(cur.channels, cur.height, cur.width, q: l.inputParams, bound: bound(cur.count))
                cur.convert(into: xin)
                bufs.give(cur)
            }
            let s = l.outputShape(xin)
            let out = i == defs.count - 1 && final != nil
                ? final! : bufs.take(s.c, s.h, s.w, q: l.outputParams, bound: bound(s.c * s.h * s.w))
            try l.run(xin, into: out, ws, reserveWidth: reserveWidth, tile: tile)
            bufs.give(xin)
            afterEach?(d, out)
            cur = out
        }
        return cur
    }
}

extension Executor {
    /// The column pitch of RoIs in sideBySide's batches of the chain `defs` on [c, p, p] RoIs: p
    /// (no separator columns: every layer that reads neighbours an int8 same-size convolution
    /// before any layer that changes the size, run on tiles of p columns as one GEMM by the ISA in
    /// use, em_qconv_tiles_direct), else p + 1.
    func sideBySidePitch(_ defs: [LayerDef], size p: Int, q: QParams?, _ ws: Workspace) -> Int {
        guard q != nil, ws.layerObserver == nil, ws.hook == nil, ws.maskBatch > 1 else { return p + 1 }
        var resized = false
        for d in defs {
            let l = layer(d.name)
            guard l.isInt8, l.inputParams != nil else { return p + 1 }
            if case .conv(let k, 1, let pad) = d.op, 2 * pad + 1 == k {
                if !d.op.readsNeighbours { continue }
                guard !resized, l.outputParams != nil, d.residual == nil,
                      em_qconv_tiles_direct(Int32(d.cin), Int32(p), Int32(2 * p), Int32(k), Int32(k), 1, Int32(pad), Int32(p)) != 0
                else { return p + 1 }
                continue
            }
            if d.op.readsNeighbours { return p + 1 }
            resized = true
        }
        return p
    }

    /// Runs the layer chain `defs` on `n` RoIs of [c, p, p] laid side by side, in batches of at
    /// most `ws.maskBatch`, as few as that allows and of equal sizes (100 RoIs at 16: 15, 15, 14
    /// x 5, not 16 x 6 and a last batch of 4): one [c, p, W] map per batch, so each padded layer
    /// runs as one large GEMM and still sees exactly the zeros torchvision's per-RoI padding
    /// gives: with `pitch` p + 1
    /// (the default) one zero (zero-point) column between neighbours, re-zeroed after every layer
    /// whose reader reads neighbours; with pitch p (sideBySidePitch) none, the convolutions
    /// running on tiles of p columns. The mask head, the keypoint head and v2's box-head
    /// convolutions run this way. `fill(start, count, x)` writes RoIs start..<start+count into
    /// the batch map (already zeroed, RoI r at column r * pitch); `use(start, count, y, bound)`
    /// receives the chain's output (and gives its buffers back to `bufs`).
    func sideBySide(_ defs: [LayerDef], rois n: Int, channels c: Int, size p: Int, q: QParams?, pitch: Int? = nil,
                    _ bufs: HeadBuffers, _ ws: Workspace,
                    fill: (_ start: Int, _ count: Int, _ x: Act) throws -> Void,
                    use: (_ start: Int, _ count: Int, _ y: Act, _ bound: (Int) -> Int) throws -> Void) throws {
        let pitch = pitch ?? p + 1, sep = pitch - p
        let most = max(ws.maskBatch, 1)
        let boundW = most * pitch - sep
        // as few batches as `most` RoIs each allow, of equal size (+-1): no small last batch
        let nb = (n + most - 1) / most
        var start = 0, b = 0
        while start < n {
            let cnt = n / nb + (b < n % nb ? 1 : 0)
            b += 1
            let w = cnt * pitch - sep
            let bound = { (e: Int) in e / w * boundW }
            let x = bufs.take(c, p, w, q: q, bound: c * p * boundW)
            if let q = q { x.u8.initialize(repeating: UInt8(q.zeroPoint), count: c * p * w) } else { x.f32.initialize(repeating: 0, count: c * p * w) }
            try fill(start, cnt, x)
            let y = try chain(defs, x, bufs, bound: bound, reserveWidth: boundW, tile: sep == 0 ? p : 0, ws) { d, y in
                guard sep > 0, cnt > 1, let i = defs.firstIndex(where: { $0.name == d.name }), i + 1 < defs.count,
                      defs[i + 1].op.readsNeighbours else { return }
                let rows = y.channels * y.height
                if let q = y.q {
                    em_set_columns_u8(y.u8, rows, y.width, Int32(p), Int32(pitch), Int32(cnt - 1), UInt8(q.zeroPoint))
                } else {
                    em_set_columns_f32(y.f32, rows, y.width, Int32(p), Int32(pitch), Int32(cnt - 1), 0)
                }
            }
            try use(start, cnt, y, bound)
            start += cnt
        }
    }

    /// A RoI head's pooling before its side-by-side batches: on uint8 maps the uint8 parameters of
    /// the pooled maps (fillPooled pools each batch straight into its map); on float maps every RoI
    /// pooled at once (so the activation hook sees them together) into a buffer fillPooled copies from.
    func poolRoIs(_ pool: LayerDef, rois n: Int, levels: [Act], boxes: [Float], sizes s: ImageSizes,
                  _ ws: Workspace) -> (q: QParams?, pooled: FloatBuffer?) {
        guard case .roiAlign(let p, let sampling) = pool.op else { fatalError("\(pool.name) is not a RoIAlign") }
        if levels.first?.q != nil { return (params(pool.name), nil) }
        let c = pool.cout, maxN = max(n, ws.detectionBound)
        let b = ws.floats(n * c * p * p, reserve: maxN * c * p * p)
        MultiScaleRoIAlign.run(levels, boxes: boxes, sizes: s, output: p, sampling: sampling, out: b.pointer)
        ws.hook?.activation(pool.name, b.pointer, n * c * p * p)
        return (nil, b)
    }

    /// RoIs start..<start+count pooled into a side-by-side batch map `x` (uint8 maps: RoIAlign
    /// straight into it; float maps: copied from `pooled`, every RoI pooled at once before).
    func fillPooled(_ x: Act, levels: [Act], boxes: [Float], pooled: FloatBuffer?, start: Int, count cnt: Int,
                    channels c: Int, size p: Int, pitch: Int? = nil, sampling: Int, sizes s: ImageSizes) throws {
        let pitch = pitch ?? p + 1, w = x.width
        if let q = x.q {
            try boxes.withUnsafeBufferPointer { bp in
                try MultiScaleRoIAlign.runU8(levels, boxes: bp.baseAddress! + 4 * start, count: cnt, sizes: s, output: p,
                                             sampling: sampling, outQ: q, out: x.u8, cstride: p * w, ystride: w,
                                             offset: { $0 * pitch })
            }
        } else {
            for r in 0..<cnt {
                let src = pooled!.pointer + (start + r) * c * p * p
                for ch in 0..<c {
                    for y in 0..<p { (x.f32 + (ch * p + y) * w + r * pitch).update(from: src + (ch * p + y) * p, count: p) }
                }
            }
        }
    }
}
