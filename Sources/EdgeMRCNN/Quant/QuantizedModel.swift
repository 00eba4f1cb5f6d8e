// The int8 model file (safetensors, metadata precision "int8") and how it is run.
//
// Tensors, for every weight layer L of the network description (Model/Network.swift):
//   L.packed        U8  [bytes] the em_qkernels.h packed blob (int8 weights symmetric per output
//                   channel, -127..127, bias and input zero point folded in; ConvTranspose2d as
//                   em_qpack_deconv2x2_weights)
//   L.weight_scale  F32 [Cout]   real weight = weight_scale[c] * weight
//   L.bias          I32 [Cout]   round(bias / (input_scale * weight_scale[c]))
// for a layer kept in float (metadata float_layers): L.weight / L.bias F32 as in the float model;
// for every activation A of QuantSpec.activations:
//   act.A.scale F32 [1], act.A.zero_point I32 [1]   real = scale * (q - zero_point)
// Metadata: the float model's keys with precision "int8", plus quant_scheme, calibration_method,
// calibration_images, calibration_images_sha256 (SHA-256 of the sorted file names, one per line),
// calibration_percentile (calibration_method "auto": calibration_choice, a summary, and
// calibration_methods "activation: method; ..." in QuantSpec.activations order), float_layers
// ("name: reason; ..." or "none"), float_outputs (layers whose outputs are dequantised from
// int32), float_ops (what runs in float by design).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

public struct CalibrationInfo: Sendable {
    public var method: CalibrationMethod
    public var imageNames: [String]
    public var percentile: Double
    /// Images the bias correction was measured on (0: none).
    public var correctionImages = 0
    /// `--method auto`: the method chosen per activation (nil: `method` everywhere).
    public var choice: MethodChoice.Result?
    public init(method: CalibrationMethod, imageNames: [String], percentile: Double) {
        self.method = method; self.imageNames = imageNames; self.percentile = percentile
    }

    /// SHA-256 (hex) of the sorted image names joined by newlines.
    public var imagesHash: String {
        let text = imageNames.sorted().joined(separator: "\n")
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { KnownCheckpoints.sha256($0) }
    }
}

public enum QuantizedModel {
    public static let precision = "int8"
    public static let scheme = "u8 asymmetric per-tensor activations, i8 symmetric per-channel weights, i32 bias"

    public static func isInt8(_ store: TensorStore) -> Bool { store.metadata["precision"] == precision }

    /// Per-output-channel symmetric int8 of a float weight (channel axis 0, or 1 for deconv).
    public static func quantizeWeights(_ w: UnsafePointer<Float>, shape: [Int], axis: Int) -> (q: [Int8], scales: [Float]) {
        let n = shape.reduce(1, *)
        let outer = axis == 0 ? 1 : shape[0]
        let cout = shape[axis]
        let inner = n / (outer * cout)
        var maxAbs = [Float](repeating: 0, count: cout)
        for o in 0..<outer {
            for c in 0..<cout {
                let base = (o * cout + c) * inner
                for i in 0..<inner { maxAbs[c] = max(maxAbs[c], abs(w[base + i])) }
            }
        }
        let scales = maxAbs.map { $0 > 0 && $0.isFinite ? $0 / 127 : Float(1) }
        var q = [Int8](repeating: 0, count: n)
        for o in 0..<outer {
            for c in 0..<cout {
                let base = (o * cout + c) * inner
                let inv = 1 / scales[c]
                for i in 0..<inner {
                    let v = (w[base + i] * inv).rounded(.toNearestOrEven)
                    q[base + i] = Int8(min(max(v.isNaN ? 0 : v, -127), 127))
                }
            }
        }
        return (q, scales)
    }

    static func biasQ(_ b: Float, _ sIn: Float, _ ws: Float) -> Int32 {
        let v = (Double(b) / (Double(sIn) * Double(ws))).rounded(.toNearestOrEven)
        return Int32(min(max(v.isNaN ? 0 : v, -2_147_483_000), 2_147_483_000))
    }

    /// The int8 model of a folded float model, its activation parameters and the layers to keep
    /// in float (name -> reason).
    public static func build(float store: TensorStore, config: ModelConfig, qparams: [String: QParams],
                             info: CalibrationInfo, floatLayers: [String: String] = [:],
                             biasCorrection: [String: [Float]] = [:],
                             source: String) throws -> OwnedTensorStore {
        var meta = config.metadata()
        meta["precision"] = precision
        meta["quant_scheme"] = scheme
        meta["calibration_method"] = info.choice == nil ? info.method.rawValue : MethodChoice.auto
        meta["calibration_images"] = String(info.imageNames.count)
        meta["calibration_images_sha256"] = info.imagesHash
        let usesPercentile = info.choice.map { $0.methods.values.contains(.percentile) } ?? (info.method == .percentile)
        meta["calibration_percentile"] = usesPercentile ? "\(info.percentile)" : "n/a"
        let net = try Network.build(config)
        let spec = QuantSpec(net)
        if let c = info.choice {
            meta["calibration_choice"] = "per activation, the least error of the layers reading it (float, its input fake-quantised "
                + "by each method) on \(c.images) calibration image\(c.images == 1 ? "" : "s"): " + MethodChoice.summary(c.methods)
            meta["calibration_methods"] = spec.activations.map { "\($0): \((c.methods[$0] ?? info.method).rawValue)" }.joined(separator: "; ")
        }
        if let bad = floatLayers.keys.sorted().first(where: { net.layer($0)?.op.hasWeights != true }) {
            throw EdgeError(file: source, "'\(bad)' is not a weight layer of \(net.name) (`edge-mrcnn info MODEL` lists them)")
        }
        meta["float_outputs"] = spec.layers.filter { $0.floatOutput }.map { $0.name }.joined(separator: ",")
            + ": int8 weights and inputs, float outputs dequantised from int32 (decoded/softmax/sigmoid in float)"
        meta["float_ops"] = "RoIAlign arithmetic (on the uint8 P2-P5, quantised output), anchors, box decoding, NMS, softmax, sigmoid, mask paste"
        meta["bias_correction"] = biasCorrection.isEmpty ? "none"
            : "empirical: per-channel mean int8-minus-float output shift of each int8 layer alone on \(info.correctionImages) calibration images, subtracted from the bias (\(biasCorrection.count) layers)"
        meta["float_layers"] = floatLayers.isEmpty ? "none"
            : floatLayers.keys.sorted().map { "\($0): \(floatLayers[$0]!)" }.joined(separator: "; ")
        let out = OwnedTensorStore(metadata: meta)
        for l in net.weightLayers {
            let ws = l.weightShape, bs = [l.cout]
            let input = net.paramsKey(l.inputs[0])
            let w = try store.floatTensor(l.name + ".weight", shape: ws, source: source)
            let b = try store.floatTensor(l.name + ".bias", shape: bs, source: source)
            if floatLayers[l.name] != nil {
                out.add(l.name + ".weight", dtype: .f32, shape: ws, bytes: UnsafeRawBufferPointer(start: w.data, count: w.byteCount))
                out.add(l.name + ".bias", dtype: .f32, shape: bs, bytes: UnsafeRawBufferPointer(start: b.data, count: b.byteCount))
                continue
            }
            guard let inQ = qparams[input] else {
                throw EdgeError(file: source, "no calibration statistics for activation '\(input)' (input of \(l.name))")
            }
            let (q, scales) = quantizeWeights(w.floats, shape: ws, axis: l.channelAxis)
            let corr = biasCorrection[l.name]
            let bq = (0..<bs[0]).map { c -> Int32 in
                let shift = corr.map { $0.count == bs[0] ? $0[c] : 0 } ?? 0
                return biasQ(b.floats[c] - shift, inQ.scale, scales[c])
            }
            let blob = try pack(q, bias: bq, layer: l, zIn: inQ.zeroPoint, source: source)
            out.add(l.name + ".packed", dtype: .u8, shape: [blob.count],
                    bytes: UnsafeRawBufferPointer(start: blob.pointer, count: blob.count))
            out.addFloats(l.name + ".weight_scale", shape: [scales.count], scales)
            bq.withUnsafeBytes { out.add(l.name + ".bias", dtype: .i32, shape: bs, bytes: $0) }
        }
        for a in spec.activations {
            guard let p = qparams[a] else {
                throw EdgeError(file: source, "no calibration statistics for activation '\(a)'")
            }
            out.addFloats("act.\(a).scale", shape: [1], [p.scale])
            [p.zeroPoint].withUnsafeBytes { out.add("act.\(a).zero_point", dtype: .i32, shape: [1], bytes: $0) }
        }
        return out
    }

    /// Layers kept in float, from the metadata: [(name, reason)].
    public static func floatLayers(_ metadata: [String: String]) -> [(name: String, reason: String)] {
        guard let s = metadata["float_layers"], s != "none", !s.isEmpty else { return [] }
        return s.split(separator: ";").map { part in
            let kv = part.split(separator: ":", maxSplits: 1)
            let name = String(kv[0].trimmingSpaces())
            return (name, kv.count > 1 ? String(kv[1].trimmingSpaces()) : "")
        }
    }

    /// Activation parameters of an int8 model.
    public static func activationParams(_ store: TensorStore, network: Network, source: String) throws -> [String: QParams] {
        var out: [String: QParams] = [:]
        for a in QuantSpec(network).activations {
            guard let s = store.tensor("act.\(a).scale"), s.dtype == .f32, s.count == 1,
                  let z = store.tensor("act.\(a).zero_point"), z.dtype == .i32, z.count == 1 else {
                throw EdgeError(file: source, "int8 model: missing or invalid parameters of activation '\(a)'")
            }
            let scale = s.floats[0]
            let zp = z.data.assumingMemoryBound(to: Int32.self)[0]
            guard scale > 0, scale.isFinite, (0...255).contains(zp) else {
                throw EdgeError(file: source, "int8 model: activation '\(a)' has invalid scale \(scale) / zero point \(zp)")
            }
            out[a] = QParams(scale: scale, zeroPoint: zp)
        }
        return out
    }

    /// The float weights the int8 model represents (weight_scale * weight, bias_q * s_in * w_s):
    /// run with `SimulatedInt8` as the activation hook, the float kernels compute what the int8
    /// kernels compute up to the requantisation rounding.
    public static func dequantized(_ store: TensorStore, config: ModelConfig, source: String,
                                   materialize: Bool = true) throws
        -> (store: OwnedTensorStore, qparams: [String: QParams])
    {
        let net = try Network.build(config)
        let qp = try activationParams(store, network: net, source: source)
        let floats = Set(floatLayers(store.metadata).map { $0.name })
        var meta = store.metadata
        meta["precision"] = "float32"   // a float model with the int8 model's values
        let out = OwnedTensorStore(metadata: meta)
        for l in net.weightLayers {
            let ws = l.weightShape, bs = [l.cout]
            if floats.contains(l.name) {
                let w = try store.floatTensor(l.name + ".weight", shape: ws, source: source)
                let b = try store.floatTensor(l.name + ".bias", shape: bs, source: source)
                out.add(l.name + ".weight", dtype: .f32, shape: ws, bytes: UnsafeRawBufferPointer(start: w.data, count: w.byteCount))
                out.add(l.name + ".bias", dtype: .f32, shape: bs, bytes: UnsafeRawBufferPointer(start: b.data, count: b.byteCount))
                continue
            }
            func need(_ n: String, _ d: DType, _ shape: [Int]) throws -> TensorView {
                try QuantizedModel.need(store, n, d, shape, source)
            }
            let cout = ws[l.channelAxis]
            let qw = try int8Weights(store, layer: l, source: source, unpack: materialize)
            let s = try need(l.name + ".weight_scale", .f32, [cout])
            let b = try need(l.name + ".bias", .i32, bs)
            guard let sIn = qp[net.paramsKey(l.inputs[0])]?.scale else { throw EdgeError(file: source, "int8 model: no input scale for \(l.name)") }
            if !materialize { continue }
            let sc = s.floats
            let n = qw.count
            let outer = l.channelAxis == 0 ? 1 : ws[0]
            let inner = n / (outer * cout)
            var wf = [Float](repeating: 0, count: n)
            for o in 0..<outer {
                for c in 0..<cout {
                    let base = (o * cout + c) * inner
                    for i in 0..<inner { wf[base + i] = Float(qw[base + i]) * sc[c] }
                }
            }
            let bq = b.data.assumingMemoryBound(to: Int32.self)
            let bf = (0..<cout).map { Float(bq[$0]) * (sIn * sc[$0]) }
            out.addFloats(l.name + ".weight", shape: ws, wf)
            out.addFloats(l.name + ".bias", shape: bs, bf)
        }
        return (out, qp)
    }

    static func need(_ store: TensorStore, _ n: String, _ d: DType, _ shape: [Int], _ source: String) throws -> TensorView {
        guard let t = store.tensor(n) else { throw EdgeError(file: source, "int8 model: missing tensor '\(n)'") }
        guard t.dtype == d, t.shape == shape else {
            throw EdgeError(file: source, "int8 model: tensor '\(n)' is \(t.dtype.rawValue) \(t.shape), expected \(d.rawValue) \(shape)")
        }
        return t
    }

    /// GEMM matrix size of a layer's packed weights: (M, K).
    static func gemmShape(_ l: LayerDef) -> (Int, Int) {
        let ws = l.weightShape
        switch l.op {
        case .deconv2x2: return (4 * ws[1], ws[0])
        case .deconv4x4s2p1: return (16 * ws[1], ws[0])
        default: return (ws[0], ws.dropFirst().reduce(1, *))
        }
    }

    /// Packs int8 weights (torch layout) with the int32 bias for input zero point zIn.
    static func pack(_ q: [Int8], bias: [Int32], layer l: LayerDef, zIn: Int32, source: String) throws -> ByteBuffer {
        let (m, k) = gemmShape(l), ws = l.weightShape
        let blob = ByteBuffer(count: em_qpack_weights_bytes(Int32(m), Int32(k)))
        let rc = q.withUnsafeBufferPointer { qp in
            bias.withUnsafeBufferPointer { bp in
                switch l.op {
                case .deconv2x2:
                    return em_qpack_deconv2x2_weights(qp.baseAddress, Int32(ws[0]), Int32(ws[1]), zIn, bp.baseAddress, blob.pointer)
                case .deconv4x4s2p1:
                    return em_qpack_deconv4x4s2p1_weights(qp.baseAddress, Int32(ws[0]), Int32(ws[1]), zIn, bp.baseAddress, blob.pointer)
                default:
                    return em_qpack_weights(qp.baseAddress, Int32(m), Int32(k), zIn, bp.baseAddress, blob.pointer)
                }
            }
        }
        if rc != 0 { throw EdgeError(file: source, "cannot pack the weights of \(l.name)") }
        return blob
    }

    /// The int8 weights of a layer in torch layout, from L.packed (unpacked) or L.weight (I8).
    /// unpack false: the checks only (validation at load time), no unpacked copy.
    static func int8Weights(_ store: TensorStore, layer l: LayerDef, source: String, unpack: Bool = true) throws -> [Int8] {
        let ws = l.weightShape, n = ws.reduce(1, *)
        if let t = store.tensor(l.name + ".weight"), t.dtype == .i8 {
            guard t.shape == ws else { throw EdgeError(file: source, "int8 model: tensor '\(t.name)' has shape \(t.shape), expected \(ws)") }
            return Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Int8.self), count: n))
        }
        let (m, k) = gemmShape(l)
        let t = try need(store, l.name + ".packed", .u8, [em_qpack_weights_bytes(Int32(m), Int32(k))], source)
        var pm: Int32 = 0, pk: Int32 = 0
        guard em_qpacked_info(t.data, t.byteCount, &pm, &pk, nil) == 0, Int(pm) == m, Int(pk) == k else {
            throw EdgeError(file: source, "int8 model: '\(t.name)' is not a valid packed \(m)x\(k) weight blob")
        }
        if !unpack { return [] }
        let mp = (m + 7) / 8 * 8, kp = (k + 3) / 4 * 4
        let w = (t.data + 64 + 8 * mp).assumingMemoryBound(to: Int8.self)
        @inline(__always) func at(_ r: Int, _ c: Int) -> Int8 { w[((r / 8) * (kp / 4) + c / 4) * 32 + (r % 8) * 4 + c % 4] }
        var out = [Int8](repeating: 0, count: n)
        if l.op == .deconv2x2 {
            let cin = ws[0], cout = ws[1]
            for ci in 0..<cin { for co in 0..<cout { for d in 0..<4 { out[(ci * cout + co) * 4 + d] = at(co * 4 + d, ci) } } }
        } else if l.op == .deconv4x4s2p1 {
            let cin = ws[0], cout = ws[1]
            for ci in 0..<cin { for co in 0..<cout { for d in 0..<16 { out[(ci * cout + co) * 16 + d] = at(co * 16 + d, ci) } } }
        } else {
            for r in 0..<m { for c in 0..<k { out[r * k + c] = at(r, c) } }
        }
        return out
    }

    /// The packed blob of a layer: the file's L.packed when present and aligned, else packed now
    /// (`keep` receives the new buffer).
    static func packedWeights(_ store: TensorStore, layer l: LayerDef, zIn: Int32, source: String,
                              keep: (ByteBuffer) -> Void) throws -> UnsafeRawPointer {
        let (m, k) = gemmShape(l)
        let bytes = em_qpack_weights_bytes(Int32(m), Int32(k))
        if let t = store.tensor(l.name + ".packed") {
            guard t.dtype == .u8, t.shape == [bytes] else {
                throw EdgeError(file: source, "int8 model: tensor '\(t.name)' is \(t.dtype.rawValue) \(t.shape), expected U8 [\(bytes)]")
            }
            var z: Int32 = -1
            guard em_qpacked_info(t.data, t.byteCount, nil, nil, &z) == 0, z == zIn else {
                throw EdgeError(file: source, "int8 model: '\(t.name)' is not a valid packed weight blob for input zero point \(zIn)")
            }
            if Int(bitPattern: t.data) % 4 == 0 { return t.data }
            let copy = ByteBuffer(count: bytes)
            copy.pointer.update(from: t.data.assumingMemoryBound(to: UInt8.self), count: bytes)
            keep(copy)
            return UnsafeRawPointer(copy.pointer)
        }
        let q = try int8Weights(store, layer: l, source: source)
        let cout = l.cout
        let b = try need(store, l.name + ".bias", .i32, [cout], source)
        let bias = Array(UnsafeBufferPointer(start: b.data.assumingMemoryBound(to: Int32.self), count: cout))
        let blob = try pack(q, bias: bias, layer: l, zIn: zIn, source: source)
        keep(blob)
        return UnsafeRawPointer(blob.pointer)
    }

    /// Checks an int8 model file's tensors (dtype and shape).
    public static func validate(_ store: TensorStore, config: ModelConfig, source: String) throws {
        _ = try dequantized(store, config: config, source: source, materialize: false)
    }
}

/// The activation hook of an int8 model run on the float kernels: every activation that has
/// uint8 parameters is quantised and dequantised in place.
public final class SimulatedInt8: ActivationHook {
    public let qparams: [String: QParams]
    let network: Network
    public init(qparams: [String: QParams], network: Network) { self.qparams = qparams; self.network = network }
    public func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int) {
        if let p = qparams[network.paramsKey(name)] { p.fakeQuantize(values, count) }
    }
}

