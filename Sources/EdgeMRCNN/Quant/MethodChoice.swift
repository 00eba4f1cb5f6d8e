// Per-activation choice among the calibration methods (`calibrate --method auto`).
//
// Every activation that gets uint8 parameters has, from the same histogram (HistogramObserver),
// one candidate per method (percentile, minmax, entropy, mse). On the first calibration images the
// float model runs once per image; every float weight layer is run again on its own input
// fake-quantised (quantised and dequantised) with each distinct candidate of that input's
// parameters, everything else float, and its output is compared with the float output. The error
// of a candidate is the sum over the layers that read the activation of noise / signal (1 / SQNR,
// linear) over all those images: what this activation's rounding and clipping put into the layer
// reading it, weighted by its weights. An activation whose readers are not measured (a downsample
// branch read only as a residual; the mask logits' input, whose float layer computes only the
// predicted class's channel, Stages/MaskHead.swift) is judged by its own noise / signal. The
// lowest error wins; ties go to the earlier method of `MethodChoice.order` (the default first), so
// methods with identical parameters never change the choice, and activations never seen keep the
// default. Deterministic: the same images give the same choice.

public enum MethodChoice {
    /// The `--method` value and the metadata's calibration_method.
    public static let auto = "auto"

    /// The choice made: the method per activation and the images it was measured on.
    public struct Result: Sendable {
        public var methods: [String: CalibrationMethod]
        public var images: Int
        public init(methods: [String: CalibrationMethod], images: Int) { self.methods = methods; self.images = images }
    }

    /// The candidates in tie-breaking order: the default method first, then the others.
    public static let order: [CalibrationMethod] =
        [CalibrationMethod.defaultMethod] + CalibrationMethod.allCases.filter { $0 != CalibrationMethod.defaultMethod }

    /// Per activation: the method with the lowest error (ties: the earlier in `order`; non-finite
    /// errors lose; no errors: the default).
    public static func choose(activations: [String], errors: [String: [CalibrationMethod: Double]]) -> [String: CalibrationMethod] {
        var out: [String: CalibrationMethod] = [:]
        for a in activations {
            var best = CalibrationMethod.defaultMethod, bestErr = Double.infinity
            if let e = errors[a] {
                for m in order {
                    guard let v = e[m], !v.isNaN, v < bestErr else { continue }
                    best = m; bestErr = v
                }
            }
            out[a] = best
        }
        return out
    }

    /// How many activations chose each method, in `order` ("percentile 40, mse 20").
    public static func summary(_ choice: [String: CalibrationMethod]) -> String {
        order.compactMap { m in
            let n = choice.values.filter { $0 == m }.count
            return n == 0 ? nil : "\(m.rawValue) \(n)"
        }.joined(separator: ", ")
    }

    /// The metadata's calibration_methods ("activation: method; ...") as a dictionary.
    public static func parse(_ text: String?) -> [String: CalibrationMethod] {
        var out: [String: CalibrationMethod] = [:]
        for part in (text ?? "").split(separator: ";") {
            let kv = part.split(separator: ":", maxSplits: 1)
            guard kv.count == 2, let m = CalibrationMethod(rawValue: String(kv[1].trimmingSpaces())) else { continue }
            out[String(kv[0].trimmingSpaces())] = m
        }
        return out
    }

    /// noise / signal of accumulated errors: nil when nothing was measured.
    static func ratio(_ e: ErrorStats) -> Double? {
        if e.count == 0 { return nil }
        if e.signal == 0 { return e.noise == 0 ? 0 : .infinity }
        return e.noise / e.signal
    }

    /// Distinct candidate parameters per observed activation, and which candidate each method maps to.
    static func candidates(_ observer: CalibrationObserver, percentile: Double)
        -> (params: [String: [QParams]], index: [String: [CalibrationMethod: Int]]) {
        var params: [String: [QParams]] = [:], index: [String: [CalibrationMethod: Int]] = [:]
        for a in observer.spec.activations {
            guard let o = observer.observers[a], o.count > 0 else { continue }
            var ps: [QParams] = [], ix: [CalibrationMethod: Int] = [:]
            for m in order {
                let p = o.qparams(m, percentile: percentile)
                if let i = ps.firstIndex(of: p) { ix[m] = i } else { ix[m] = ps.count; ps.append(p) }
            }
            params[a] = ps; index[a] = ix
        }
        return (params, index)
    }

    /// Runs the float model on `images` and measures each activation's candidates (see the top of
    /// the file): activation -> method -> error (lower is better).
    public static func measure(model: MaskRCNN, observer: CalibrationObserver, percentile: Double,
                               images: [RGBImage]) throws -> [String: [CalibrationMethod: Double]] {
        let (params, index) = candidates(observer, percentile: percentile)
        let probe = ChoiceProbe(network: observer.spec.network, params: params)
        defer { model.layerObserver = nil }
        for image in images {
            model.layerObserver = probe
            _ = try model.detect(image, scoreThresh: 0.05, trace: nil, hook: probe)
            model.layerObserver = nil
        }
        return errors(probe, index: index)
    }

    /// The probe's measurements as errors per method: the readers' summed noise / signal, or the
    /// activation's own when no reader was measured.
    static func errors(_ probe: ChoiceProbe, index: [String: [CalibrationMethod: Int]]) -> [String: [CalibrationMethod: Double]] {
        var out: [String: [CalibrationMethod: Double]] = [:]
        for (a, ps) in probe.params {
            var err = [Double](repeating: 0, count: ps.count)
            let readers = (probe.readers[a] ?? [:]).filter { $0.value.contains { $0.count > 0 } }
            if !readers.isEmpty {
                for name in readers.keys.sorted() {
                    for (i, e) in readers[name]!.enumerated() { err[i] += ratio(e) ?? 0 }
                }
            } else if let own = probe.own[a] {
                for (i, e) in own.enumerated() { err[i] = ratio(e) ?? 0 }
            } else {
                continue
            }
            var byMethod: [CalibrationMethod: Double] = [:]
            for (m, i) in index[a] ?? [:] { byMethod[m] = err[i] }
            out[a] = byMethod
        }
        return out
    }
}

/// The float run's probe: the hook measures each activation's own candidates, the layer observer
/// re-runs each float weight layer on its input fake-quantised with each candidate.
final class ChoiceProbe: LayerObserver, ActivationHook {
    let network: Network
    let params: [String: [QParams]]
    /// activation -> reading layer -> per candidate
    var readers: [String: [String: [ErrorStats]]] = [:]
    var own: [String: [ErrorStats]] = [:]
    private var inside = false
    private var buffer: [Float] = []
    private let ws = Workspace(arena: Arena())

    init(network: Network, params: [String: [QParams]]) { self.network = network; self.params = params }

    func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int) {
        let k = network.paramsKey(name)
        guard !inside, count > 0, let ps = params[k], ps.count > 1 else { return }
        var st = own[k] ?? [ErrorStats](repeating: ErrorStats(), count: ps.count)
        if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
        buffer.withUnsafeMutableBufferPointer { b in
            let t = b.baseAddress!
            for (i, p) in ps.enumerated() {
                t.update(from: values, count: count)
                p.fakeQuantize(t, count)
                st[i].add(reference: UnsafePointer(values), UnsafePointer(t), count)
            }
        }
        own[k] = st
    }

    func layerRan(_ layer: Layer, input: Act, residual: Act?, output: Act) {
        guard !inside, !layer.isInt8, input.q == nil, output.q == nil, input.count > 0, output.count > 0 else { return }
        let k = network.paramsKey(layer.def.inputs[0])
        guard let ps = params[k], ps.count > 1 else { return }
        inside = true
        defer { inside = false }
        let s = Scratch()
        defer { s.release() }
        let x = s.act(input.channels, input.height, input.width, q: nil)
        let y = s.act(output.channels, output.height, output.width, q: nil)
        var st = readers[k]?[layer.def.name] ?? [ErrorStats](repeating: ErrorStats(), count: ps.count)
        for (i, p) in ps.enumerated() {
            x.f32.update(from: input.f32, count: input.count)
            p.fakeQuantize(x.f32, input.count)
            guard (try? layer.run(x, into: y, ws, residual: residual)) != nil else { return }
            st[i].add(reference: UnsafePointer(output.f32), UnsafePointer(y.f32), output.count)
        }
        readers[k, default: [:]][layer.def.name] = st
    }
}
