// The int8 layers of the pipeline on the em_qkernels.h kernels: backbone (stem, bottlenecks with
// the residual add fused into conv3), FPN (top-down add with rescaling in uint8), the RPN head
// convs (outputs dequantised for decoding), the box head MLP (fc6, fc7 uint8; the predictor
// layers dequantise from int32), and the mask head (4 convs, deconv, logits). Everything else
// (anchors, decoding, NMS, RoIAlign on dequantised maps, softmax, sigmoid, paste) is the float
// stage code.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

/// A CHW uint8 tensor with its quantisation parameters.
struct U8Map {
    let buffer: ByteBuffer
    let channels: Int, height: Int, width: Int
    let q: QParams
    var pointer: UnsafeMutablePointer<UInt8> { buffer.pointer }
    var count: Int { channels * height * width }

    init(_ c: Int, _ h: Int, _ w: Int, _ q: QParams, _ ws: Workspace) {
        buffer = ws.bytes(c * h * w); channels = c; height = h; width = w; self.q = q
    }
    init(buffer: ByteBuffer, _ c: Int, _ h: Int, _ w: Int, _ q: QParams) {
        self.buffer = buffer; channels = c; height = h; width = w; self.q = q
    }

    func dequantized(_ ws: Workspace) -> FeatureMap {
        let f = ws.map(channels, height, width)
        em_dequantize_u8_f32(pointer, count, q.scale, q.zeroPoint, f.pointer)
        return f
    }
}

/// One packed int8 weight layer (conv, deconv 2x2/2 or linear).
struct QLayer {
    let name: String
    let packed: UnsafeRawPointer
    let cin: Int, cout: Int, kernel: Int, stride: Int, pad: Int
    let inQ: QParams
    /// Output parameters (nil: float output).
    let outQ: QParams?
    /// s_in * w_s[c] / s_out (or s_in * w_s[c] for float outputs).
    let mult: [Float]

    func conv(_ x: U8Map, _ ws: Workspace, relu: Bool, residual: U8Map? = nil) throws -> U8Map {
        let oh = (x.height + 2 * pad - kernel) / stride + 1, ow = (x.width + 2 * pad - kernel) / stride + 1
        let out = U8Map(cout, oh, ow, outQ!, ws)
        try convInto(x.pointer, x.height, x.width, out: out.pointer, relu: relu, residual: residual)
        return out
    }

    /// A convolution with float CHW output straight from the int32 accumulators:
    /// out[m, p] = acc[m, p] * s_in * w_s[m] (em_qconv2d_u8_f32).
    func convFloatInto(_ x: UnsafePointer<UInt8>, _ h: Int, _ w: Int, out: UnsafeMutablePointer<Float>) throws {
        let rc = mult.withUnsafeBufferPointer { m in
            em_qconv2d_u8_f32(x, Int32(cin), Int32(h), Int32(w), inQ.zeroPoint, packed, Int32(cout), Int32(kernel),
                              Int32(kernel), Int32(stride), Int32(pad), m.baseAddress, out)
        }
        if rc != 0 { throw EdgeError("int8 layer \(name) rejected its arguments") }
    }

    func convFloat(_ x: U8Map, _ ws: Workspace) throws -> FeatureMap {
        let f = ws.map(cout, x.height, x.width)
        try convFloatInto(x.pointer, x.height, x.width, out: f.pointer)
        return f
    }

    func convInto(_ x: UnsafePointer<UInt8>, _ h: Int, _ w: Int, out: UnsafeMutablePointer<UInt8>, relu: Bool,
                  residual: U8Map? = nil) throws {
        let o = outQ!
        let rc = mult.withUnsafeBufferPointer { m in
            em_qconv2d_u8(x, Int32(cin), Int32(h), Int32(w), inQ.zeroPoint, packed, Int32(cout), Int32(kernel),
                          Int32(kernel), Int32(stride), Int32(pad), m.baseAddress, o.zeroPoint,
                          residual?.pointer, residual?.q.zeroPoint ?? 0,
                          residual.map { $0.q.scale / o.scale } ?? 0, relu ? 1 : 0, out, nil)
        }
        if rc != 0 { throw EdgeError("int8 convolution \(name) rejected its arguments") }
    }
}

final class Int8Network {
    let qparams: [String: QParams]
    var layers: [String: QLayer] = [:]
    /// Packed blobs made at load time (models without L.packed tensors).
    private var owned: [ByteBuffer] = []
    /// Bytes of the int8 model's tensors plus the blobs packed at load time.
    var weightBytes: Int {
        owned.reduce(0) { $0 + $1.count } + store.names.reduce(0) { $0 + (store.tensor($1)?.byteCount ?? 0) }
    }
    private let store: TensorStore

    init(_ store: TensorStore, config: ModelConfig, source: String) throws {
        self.store = store
        qparams = try QuantizedModel.activationParams(store, source: source)
        let floats = Set(QuantizedModel.floatLayers(store.metadata).map { $0.name })
        if let f = floats.first { throw EdgeError(file: source, "int8 runtime: layer \(f) is kept in float (not supported by the int8 kernels yet)") }
        let shapes = Dictionary(ModelSpec.tensors(numClasses: config.numClasses).map { ($0.name, $0.shape) },
                                uniquingKeysWith: { a, _ in a })
        for l in QuantSpec.layers {
            let ws = shapes[l.name + ".weight"]!
            let inQ = qparams[l.input]!
            let outQ = l.floatOutput ? nil : qparams[QuantSpec.key(l.name)]!
            let sc = try QuantizedModel.need(store, l.name + ".weight_scale", .f32, [ws[l.channelAxis]], source)
            let cout = ws[l.channelAxis]
            let mult = (0..<cout).map { c -> Float in
                let m = inQ.scale * sc.floats[c]
                return outQ.map { m / $0.scale } ?? m
            }
            let packed = try QuantizedModel.packedWeights(store, layer: l, shape: ws, zIn: inQ.zeroPoint, source: source) {
                self.owned.append($0)
            }
            let cin = l.kind == .deconv ? ws[0] : ws[1]
            let k = ws.count == 4 ? ws[2] : 1
            var stride = 1, pad = 0
            if l.kind == .conv {
                pad = k / 2
                if l.name == "backbone.body.conv1" { stride = 2 }
                if l.name.contains(".0.conv2") || l.name.contains(".0.downsample") {
                    stride = l.name.hasPrefix("backbone.body.layer1.") ? 1 : 2
                }
            }
            let inF = l.kind == .linear ? ws[1] : cin
            layers[l.name] = QLayer(name: l.name, packed: packed, cin: inF, cout: l.kind == .deconv ? ws[1] : ws[0],
                                    kernel: k, stride: stride, pad: pad, inQ: inQ, outQ: outQ, mult: mult)
        }
    }

    func layer(_ n: String) -> QLayer { layers[n]! }

    // ------------------------------------------------------------------ backbone + FPN

    /// The float input image -> P2..P6 in uint8 (shared parameters backbone.fpn.out).
    func features(_ x: FeatureMap, _ ws: Workspace) throws -> [U8Map] {
        var y = try stem(x, ws)
        return try features(stem: &y, ws)
    }

    /// The quantised input after the stem (conv1 + maxpool), so that the float input can be
    /// released before the body runs.
    func stem(_ x: FeatureMap, _ ws: Workspace) throws -> U8Map {
        let s: U8Map
        do {
            let xq = U8Map(x.channels, x.height, x.width, qparams[MaskRCNN.inputName]!, ws)
            em_quantize_f32_u8(x.pointer, x.count, xq.q.scale, xq.q.zeroPoint, xq.pointer)
            s = try layer("backbone.body.conv1").conv(xq, ws, relu: true)
        }
        let y = U8Map(s.channels, (s.height + 2 - 3) / 2 + 1, (s.width + 2 - 3) / 2 + 1, s.q, ws)
        em_qmaxpool2d_u8(s.pointer, Int32(s.channels), Int32(s.height), Int32(s.width), 3, 2, 1, y.pointer)
        return y
    }

    /// Body + FPN from the stem output (consumed: `y` is replaced as the blocks run).
    /// `afterBackbone` runs between the backbone and the FPN (stage timing).
    func features(stem y: inout U8Map, _ ws: Workspace, afterBackbone: (() throws -> Void)? = nil) throws -> [U8Map] {
        var cs: [U8Map?] = []   // each C_i is released once its lateral conv has read it
        for (li, blocks) in ModelSpec.resnetBlocks.enumerated() {
            for b in 0..<blocks {
                let p = "backbone.body.layer\(li + 1).\(b)"
                let c2: U8Map
                do {   // scoped: `a` is released before conv3
                    let a = try layer(p + ".conv1").conv(y, ws, relu: true)
                    c2 = try layer(p + ".conv2").conv(a, ws, relu: true)
                }
                let identity = b == 0 ? try layer(p + ".downsample").conv(y, ws, relu: false) : y
                y = try layer(p + ".conv3").conv(c2, ws, relu: true, residual: identity)
            }
            cs.append(y)
        }
        try afterBackbone?()
        var results = [U8Map?](repeating: nil, count: 5)
        var last = try layer("backbone.fpn.inner_blocks.3").conv(cs[3]!, ws, relu: false)
        cs[3] = nil
        results[3] = try layer("backbone.fpn.layer_blocks.3").conv(last, ws, relu: false)
        for i in stride(from: 2, through: 0, by: -1) {
            let lat = try layer("backbone.fpn.inner_blocks.\(i)").conv(cs[i]!, ws, relu: false)
            cs[i] = nil
            let mq = qparams["backbone.fpn.merge.\(i)"]!
            let merged = U8Map(lat.channels, lat.height, lat.width, mq, ws)
            em_qadd_upsample_nearest_u8(lat.pointer, lat.q.zeroPoint, lat.q.scale / mq.scale, last.pointer,
                                        last.q.zeroPoint, last.q.scale / mq.scale, Int32(lat.channels),
                                        Int32(last.height), Int32(last.width), Int32(lat.height), Int32(lat.width),
                                        mq.zeroPoint, merged.pointer)
            last = merged
            results[i] = try layer("backbone.fpn.layer_blocks.\(i)").conv(merged, ws, relu: false)
        }
        let p5 = results[3]!
        let p6 = U8Map(p5.channels, (p5.height - 1) / 2 + 1, (p5.width - 1) / 2 + 1, p5.q, ws)
        em_qmaxpool2d_u8(p5.pointer, Int32(p5.channels), Int32(p5.height), Int32(p5.width), 1, 2, 0, p6.pointer)
        results[4] = p6
        return results.map { $0! }
    }

    // ------------------------------------------------------------------ RPN head

    func rpnHeads(_ levels: [U8Map], _ ws: Workspace) throws -> [(logits: FeatureMap, deltas: FeatureMap)] {
        try levels.map { p in
            let t = try layer("rpn.head.conv").conv(p, ws, relu: true)
            return (try layer("rpn.head.cls_logits").convFloat(t, ws), try layer("rpn.head.bbox_pred").convFloat(t, ws))
        }
    }

    // ------------------------------------------------------------------ box head MLP

    /// P2..P5 (of `features`) copied to HWC layout for the uint8 RoIAlign.
    func hwcLevels(_ levels: [U8Map], _ ws: Workspace) -> [U8Map] {
        levels.prefix(4).map { m in
            let t = U8Map(m.channels, m.height, m.width, m.q, ws)
            em_transpose_chw_hwc_u8(m.pointer, Int32(m.channels), Int32(m.height), Int32(m.width), t.pointer)
            return t
        }
    }

    /// BoxHead.Scorer on the int8 kernels: 7x7 RoIAlign from the uint8 HWC maps straight to the
    /// quantised fc6 input, fc6, fc7 (uint8), cls_score and bbox_pred (float from int32).
    func boxScorer(_ hwc: [U8Map], sizes: ImageSizes, _ ws: Workspace) -> BoxHead.Scorer {
        let pq = qparams[BoxHead.poolName]!
        let fc6 = layer("roi_heads.box_head.fc6"), fc7 = layer("roi_heads.box_head.fc7")
        let cls = layer("roi_heads.box_predictor.cls_score"), bbox = layer("roi_heads.box_predictor.bbox_pred")
        // sized for the largest chunk BoxHead.run passes (ws.boxChunk rows)
        let rows = max(ws.boxChunk, 1)
        var xq = ws.bytes(rows * fc6.cin), h6 = ws.bytes(rows * 1024), h7 = ws.bytes(rows * 1024)
        return { boxes, n, logits, deltas in
            let inF = fc6.cin, p = 7
            if xq.count < n * inF { xq = ws.bytes(n * inF); h6 = ws.bytes(n * 1024); h7 = ws.bytes(n * 1024) }
            try MultiScaleRoIAlign.runU8(hwc, boxes: boxes, count: n, sizes: sizes, output: p, outQ: pq, out: xq.pointer,
                                         cstride: p * p, ystride: p, offset: { $0 * inF })
            var rc = fc6.mult.withUnsafeBufferPointer { m in
                em_qlinear_u8(xq.pointer, Int32(n), Int32(inF), pq.zeroPoint, fc6.packed, Int32(fc6.cout),
                              m.baseAddress, fc6.outQ!.zeroPoint, 1, h6.pointer)
            }
            rc |= fc7.mult.withUnsafeBufferPointer { m in
                em_qlinear_u8(h6.pointer, Int32(n), Int32(fc7.cin), fc7.inQ.zeroPoint, fc7.packed, Int32(fc7.cout),
                              m.baseAddress, fc7.outQ!.zeroPoint, 1, h7.pointer)
            }
            for (l, out) in [(cls, logits), (bbox, deltas)] {
                rc |= l.mult.withUnsafeBufferPointer { m in
                    em_qlinear_u8_f32(h7.pointer, Int32(n), Int32(l.cin), l.inQ.zeroPoint, l.packed, Int32(l.cout),
                                      m.baseAddress, out)
                }
            }
            if rc != 0 { throw EdgeError("int8 box head rejected its arguments") }
        }
    }

    // ------------------------------------------------------------------ mask head

    /// 28x28 probabilities [N * 784] of the predicted labels (same batching as MaskHead.run).
    /// `hwc`: uint8 P2..P5 in HWC layout (hwcLevels).
    func masks(_ hwc: [U8Map], boxes: [Float], labels: [Int], sizes s: ImageSizes, numClasses: Int,
               _ ws: Workspace) throws -> FloatBuffer {
        let n = labels.count
        let m = MaskHead.size
        let maxN = max(n, ws.detectionBound)
        let out = ws.floats(n * m * m, reserve: maxN * m * m)
        if n == 0 { return out }
        let c = 256, p = 14, pitch = p + 1
        let pq = qparams[MaskHead.poolName]!
        let convs = (0..<4).map { layer("roi_heads.mask_head.\($0)") }
        let deconv = layer("roi_heads.mask_predictor.conv5_mask"), logits = layer("roi_heads.mask_predictor.mask_fcn_logits")
        let g = min(max(ws.maskBatch, 1), n)
        let maxW = g * pitch - 1, boundW = max(ws.maskBatch, 1) * pitch - 1
        let a = ws.bytes(c * p * maxW, reserve: c * p * boundW), b = ws.bytes(c * p * maxW, reserve: c * p * boundW)
        let up = ws.bytes(c * 4 * p * maxW, reserve: c * 4 * p * boundW)
        let lg = ws.floats(numClasses * 4 * p * maxW, reserve: numClasses * 4 * p * boundW)
        var start = 0
        while start < n {
            let cnt = min(g, n - start)
            let w = cnt * pitch - 1
            // the RoIs of this batch side by side, separated by one zero-point column
            a.pointer.initialize(repeating: UInt8(pq.zeroPoint), count: c * p * w)
            try boxes.withUnsafeBufferPointer { bp in
                try MultiScaleRoIAlign.runU8(hwc, boxes: bp.baseAddress! + 4 * start, count: cnt, sizes: s, output: p,
                                             outQ: pq, out: a.pointer, cstride: p * w, ystride: w,
                                             offset: { $0 * pitch })
            }
            func zeroSeparators(_ x: UnsafeMutablePointer<UInt8>, _ z: Int32) {
                if cnt < 2 { return }
                for row in 0..<(c * p) {
                    let base = x + row * w
                    for r in 0..<(cnt - 1) { base[r * pitch + p] = UInt8(z) }
                }
            }
            try convs[0].convInto(a.pointer, p, w, out: b.pointer, relu: true); zeroSeparators(b.pointer, convs[0].outQ!.zeroPoint)
            try convs[1].convInto(b.pointer, p, w, out: a.pointer, relu: true); zeroSeparators(a.pointer, convs[1].outQ!.zeroPoint)
            try convs[2].convInto(a.pointer, p, w, out: b.pointer, relu: true); zeroSeparators(b.pointer, convs[2].outQ!.zeroPoint)
            try convs[3].convInto(b.pointer, p, w, out: a.pointer, relu: true)
            let rc = deconv.mult.withUnsafeBufferPointer { mm in
                em_qdeconv2x2s2_u8(a.pointer, Int32(c), Int32(p), Int32(w), deconv.inQ.zeroPoint, deconv.packed, Int32(c),
                                   mm.baseAddress, deconv.outQ!.zeroPoint, 1, up.pointer, nil)
            }
            if rc != 0 { throw EdgeError("int8 deconvolution rejected its arguments") }
            let uw = 2 * w
            try logits.convFloatInto(up.pointer, 2 * p, uw, out: lg.pointer)
            for r in 0..<cnt {
                let i = start + r
                let label = min(max(labels[i], 0), numClasses - 1)
                let dst = out.pointer + i * m * m
                for y in 0..<m {
                    let row = lg.pointer + (label * 2 * p + y) * uw + 2 * r * pitch
                    for x in 0..<m { dst[y * m + x] = 1 / (1 + expf(-row[x])) }
                }
            }
            start += cnt
        }
        return out
    }
}
