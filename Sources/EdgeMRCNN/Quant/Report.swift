// The calibration report (`calibrate --report`): how far each quantised layer's output is from
// float on the calibration images, two ways, and how far the detections are.
//
// - "upstream int8" (what the user gets): the int8 model's output of the layer, dequantised,
//   against the float model's output on the same image. Only where the two runs see the same
//   tensor: the backbone, the FPN and the RPN head. In the RoI heads the proposals of the two runs
//   differ, so their rows are not comparable and the column is empty there.
// - "alone" (what this layer alone costs): during the float run, each int8 layer is run on the
//   float layer's own input, quantised with the layer's input parameters (and its residual with
//   its output parameters), exactly as the executor runs a lone int8 layer between float layers
//   (--keep-float of all the others); its output is dequantised and compared with the float
//   output. Exact (the real int8 kernels) and cheap (one int8 layer per float layer, one pass).
//   Not measured: the mask logits of a float run (the float mask head computes only the
//   predicted class's channel, Stages/MaskHead.swift).
//
// Error: SQNR = 10 log10(sum ref^2 / sum (x - ref)^2) over all elements of all images, and the
// cosine similarity sum x*ref / sqrt(sum x^2 * sum ref^2).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

/// Error of a tensor against its float reference, accumulated over many tensors.
public struct ErrorStats: Sendable {
    public var signal = 0.0, noise = 0.0, dot = 0.0, norm = 0.0
    public var count = 0

    public init() {}

    public mutating func add(reference r: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        var s = 0.0, e = 0.0, d = 0.0, q = 0.0
        for i in 0..<n {
            let a = Double(r[i]), b = Double(x[i])
            s += a * a; e += (b - a) * (b - a); d += a * b; q += b * b
        }
        signal += s; noise += e; dot += d; norm += q; count += n
    }

    public mutating func add(reference: [Float], _ x: [Float]) {
        precondition(reference.count == x.count)
        reference.withUnsafeBufferPointer { r in x.withUnsafeBufferPointer { add(reference: r.baseAddress!, $0.baseAddress!, r.count) } }
    }

    /// 10 log10(signal / noise) dB; +inf when exact, nil when nothing was measured.
    public var sqnrDB: Double? {
        if count == 0 { return nil }
        if noise == 0 { return .infinity }
        if signal == 0 { return -.infinity }
        return 10 * log10(signal / noise)
    }

    /// Cosine similarity; 1 when both are all zero, nil when nothing was measured.
    public var cosine: Double? {
        if count == 0 { return nil }
        if signal == 0 && norm == 0 { return 1 }
        if signal == 0 || norm == 0 { return 0 }
        return dot / (signal.squareRoot() * norm.squareRoot())
    }
}

/// One weight layer of the report.
public struct LayerReport: Sendable {
    public var name: String
    public var stage: String
    public var precision: String
    public var macs: Int
    public var upstream = ErrorStats()
    public var alone = ErrorStats()
    /// The detections of the float network with only this layer int8 against the float
    /// network's (what this layer costs at the outputs).
    public var endToEnd = OutputDisagreement()
    /// The float output's range over the images, and the range the output's uint8 parameters can
    /// represent (nil: the layer writes float).
    public var outMin = Float.infinity, outMax = -Float.infinity
    public var qRange: (lo: Float, hi: Float)?
    /// `calibrate --method auto`: the method chosen for this layer's input activation.
    public var inputMethod: String?
    /// Float output values outside qRange.
    public var clipped = 0, observed = 0
    /// Per output channel: sum of (int8 alone - float) and the number of elements (bias correction).
    public var shiftSum: [Double] = [], shiftCount: [Int] = []

    /// The mean shift of each output channel (empty when not measured).
    public var meanShift: [Float] {
        guard !shiftSum.isEmpty, shiftCount.allSatisfy({ $0 > 0 }) else { return [] }
        return zip(shiftSum, shiftCount).map { Float($0 / Double($1)) }
    }

    public var clipFraction: Double { observed == 0 ? 0 : Double(clipped) / Double(observed) }
}

extension LayerReport {
    /// Accumulates the per-channel difference x - ref: CHW maps (channel-major), or linear rows
    /// [rows, channels] (channel = index mod channels).
    mutating func addShift(_ x: [Float], _ ref: UnsafePointer<Float>, channels c: Int, linear: Bool) {
        if shiftSum.isEmpty { shiftSum = [Double](repeating: 0, count: c); shiftCount = [Int](repeating: 0, count: c) }
        let n = x.count
        guard c > 0, n % c == 0 else { return }
        let per = n / c
        if linear {
            for r in 0..<per {
                for k in 0..<c { shiftSum[k] += Double(x[r * c + k]) - Double(ref[r * c + k]) }
            }
            for k in 0..<c { shiftCount[k] += per }
        } else {
            for k in 0..<c {
                var d = 0.0
                for i in (k * per)..<((k + 1) * per) { d += Double(x[i]) - Double(ref[i]) }
                shiftSum[k] += d; shiftCount[k] += per
            }
        }
    }
}

/// Float-vs-int8 agreement of the detections (score >= scoreFloor on either side), matched per
/// class greedily by score at box IoU >= 0.5.
public struct DetectionAgreement: Sendable {
    public var scoreFloor: Float = 0.5
    public var floatDetections = 0, int8Detections = 0, matched = 0
    public var sumBoxIoU = 0.0, sumMaskIoU = 0.0, sumScoreDiff = 0.0

    public init() {}

    public var meanBoxIoU: Double { matched == 0 ? 0 : sumBoxIoU / Double(matched) }
    public var meanMaskIoU: Double { matched == 0 ? 0 : sumMaskIoU / Double(matched) }
    public var meanAbsScoreDiff: Double { matched == 0 ? 0 : sumScoreDiff / Double(matched) }

    static func boxIoU(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float)) -> Double {
        let w = Double(min(a.2, b.2) - max(a.0, b.0)), h = Double(min(a.3, b.3) - max(a.1, b.1))
        if w <= 0 || h <= 0 { return 0 }
        let i = w * h
        let u = Double((a.2 - a.0) * (a.3 - a.1)) + Double((b.2 - b.0) * (b.3 - b.1)) - i
        return u > 0 ? i / u : 0
    }

    static func maskIoU(_ a: RLE?, _ b: RLE?) -> Double {
        guard let a, let b else { return 0 }
        let ba = a.bbox, bb = b.bbox
        let v = MaskOps.maskIoU(a, b, crowd: false, dtBox: (Double(ba.x), Double(ba.y), Double(ba.w), Double(ba.h)),
                                gtBox: (Double(bb.x), Double(bb.y), Double(bb.w), Double(bb.h)))
        return max(v, 0)
    }

    /// Adds one image's detections.
    public mutating func add(float f: [Detection], int8 q: [Detection]) {
        let fs = f.filter { $0.score >= scoreFloor }, qs = q.filter { $0.score >= scoreFloor }
        floatDetections += fs.count; int8Detections += qs.count
        var used = [Bool](repeating: false, count: qs.count)
        // detect() returns detections by descending score
        for d in fs {
            var best = -1, bestIoU = 0.5
            for (j, e) in qs.enumerated() where !used[j] && e.label == d.label {
                let v = DetectionAgreement.boxIoU(d.box, e.box)
                if v >= bestIoU { best = j; bestIoU = v }
            }
            if best < 0 { continue }
            used[best] = true
            matched += 1
            sumBoxIoU += bestIoU
            sumMaskIoU += DetectionAgreement.maskIoU(d.mask, qs[best].mask)
            sumScoreDiff += Double(abs(d.score - qs[best].score))
        }
    }
}

/// A float activation buffer the report owns (outside the arena: the report must not change the
/// runs it measures).
final class Scratch {
    private var bufs: [UnsafeMutableRawPointer] = []
    func act(_ c: Int, _ h: Int, _ w: Int, q: QParams?) -> Act {
        let n = max(c * h * w, 1) * (q == nil ? 4 : 1)
        let p = UnsafeMutableRawPointer.allocate(byteCount: n + 64, alignment: 64)
        bufs.append(p)
        return Act(storage: nil, raw: p, c, h, w, q: q)
    }
    func floats(_ a: Act) -> [Float] {
        if a.q == nil { return Array(UnsafeBufferPointer(start: a.f32, count: a.count)) }
        let p = a.q!
        return (0..<a.count).map { p.dequantize(a.u8[$0]) }
    }
    func release() { bufs.forEach { $0.deallocate() }; bufs = [] }
    deinit { release() }
}

/// The float run's observer: ranges, clipping, "alone" errors, and the float outputs of the
/// layers the int8 run is compared on.
final class FloatPassObserver: LayerObserver {
    let int8: MaskRCNN
    var layers: [String: LayerReport]
    var kept: [String: [[Float]]] = [:]
    let compared: Set<String>
    private var inside = false

    init(int8: MaskRCNN, layers: [String: LayerReport], compared: Set<String>) {
        self.int8 = int8; self.layers = layers; self.compared = compared
    }

    func layerRan(_ layer: Layer, input: Act, residual: Act?, output: Act) {
        if inside { return }
        let name = layer.def.name
        guard var r = layers[name] else { return }
        let y = output
        if compared.contains(name) { kept[name, default: []].append(Array(UnsafeBufferPointer(start: y.f32, count: y.count))) }
        for i in 0..<y.count { let v = y.f32[i]; r.outMin = min(r.outMin, v); r.outMax = max(r.outMax, v) }
        let q = int8.boundLayer(name)
        if q.isInt8 {
            if let o = q.outputParams {
                let lo = o.dequantize(0), hi = o.dequantize(255)
                r.qRange = (lo, hi)
                for i in 0..<y.count { let v = y.f32[i]; if v < lo || v > hi { r.clipped += 1 } }
            }
            r.observed += y.count
            // the int8 layer alone on this layer's float input
            inside = true
            defer { inside = false }
            if let f = int8AloneOutput(layer, int8: int8, input: input, residual: residual, count: y.count) {
                f.withUnsafeBufferPointer { r.alone.add(reference: y.f32, $0.baseAddress!, y.count) }
                r.addShift(f, y.f32, channels: layer.def.cout, linear: layer.def.op == .linear)
            }
        }
        layers[name] = r
    }
}

/// The int8 model's layer `layer.def.name` run alone on a float layer's input (quantised with the
/// int8 layer's input parameters, the residual with its output parameters), its output
/// dequantised: what the executor computes for a lone int8 layer between float layers. Nil when
/// the int8 layer is float or rejects the arguments.
func int8AloneOutput(_ layer: Layer, int8: MaskRCNN, input: Act, residual: Act?, count: Int) -> [Float]? {
    let q = int8.boundLayer(layer.def.name)
    guard q.isInt8 else { return nil }
    let s = Scratch()
    let xin = s.act(input.channels, input.height, input.width, q: q.inputParams)
    input.convert(into: xin)
    let rq = layer.def.residual.flatMap { int8.activationParams($0) }
    let res = residual.map { r -> Act in
        let a = s.act(r.channels, r.height, r.width, q: rq)
        r.convert(into: a)
        return a
    }
    let sh = q.outputShape(xin)
    let out = s.act(sh.c, sh.h, sh.w, q: q.outputParams)
    let ws = Workspace(arena: Arena())
    guard (try? q.run(xin, into: out, ws, residual: res)) != nil, out.count == count else { return nil }
    return s.floats(out)
}

/// A float run with one layer's output replaced by its int8 model's output alone: the network
/// with only that layer in int8, every other layer float ("end to end" in the report).
final class OneLayerInt8Observer: LayerObserver {
    let int8: MaskRCNN
    let target: String
    private var inside = false
    init(int8: MaskRCNN, target: String) { self.int8 = int8; self.target = target }

    func layerRan(_ layer: Layer, input: Act, residual: Act?, output: Act) {
        guard !inside, layer.def.name == target, output.q == nil else { return }
        inside = true
        defer { inside = false }
        if let f = int8AloneOutput(layer, int8: int8, input: input, residual: residual, count: output.count) {
            f.withUnsafeBufferPointer { output.f32.update(from: $0.baseAddress!, count: output.count) }
        }
    }
}

/// End-to-end disagreement of detections with the float model's: each float detection scoring
/// >= 0.5 is matched (per class, greedily by score, box IoU >= 0.5) to a candidate detection of
/// any score and costs 1 - mask IoU + |score difference| (1 when unmatched); each unmatched
/// candidate scoring >= 0.5 costs 1. `penalty / floatDetections` is the figure (0: identical).
public struct OutputDisagreement: Sendable {
    public var penalty = 0.0
    public var floatDetections = 0
    public var images = 0
    public init() {}

    public var value: Double? { images == 0 ? nil : penalty / Double(max(floatDetections, 1)) }

    public mutating func add(float f: [Detection], candidate q: [Detection]) {
        images += 1
        var used = [Bool](repeating: false, count: q.count)
        for d in f where d.score >= 0.5 {
            floatDetections += 1
            var best = -1, bestIoU = 0.5
            for (j, e) in q.enumerated() where !used[j] && e.label == d.label {
                let v = DetectionAgreement.boxIoU(d.box, e.box)
                if v >= bestIoU { best = j; bestIoU = v }
            }
            if best < 0 { penalty += 1; continue }
            used[best] = true
            let m = (d.mask == nil && q[best].mask == nil) ? 1 : DetectionAgreement.maskIoU(d.mask, q[best].mask)
            penalty += (1 - m) + Double(abs(d.score - q[best].score))
        }
        for (j, e) in q.enumerated() where !used[j] && e.score >= 0.5 {
            // a candidate above 0.5 no float detection above 0.5 took: its score difference to the
            // best float detection of its class below 0.5 at box IoU >= 0.5, or 1 when none
            let below = f.filter { $0.score < 0.5 && $0.label == e.label && DetectionAgreement.boxIoU($0.box, e.box) >= 0.5 }
            penalty += below.map { Double(e.score - $0.score) }.min() ?? 1
        }
    }
}

/// The int8 run's observer: compares each compared layer's output with the float run's.
final class Int8PassObserver: LayerObserver {
    var layers: [String: LayerReport]
    let reference: [String: [[Float]]]
    private var seen: [String: Int] = [:]
    private let s = Scratch()

    init(layers: [String: LayerReport], reference: [String: [[Float]]]) {
        self.layers = layers; self.reference = reference
    }

    func layerRan(_ layer: Layer, input: Act, residual: Act?, output: Act) {
        let name = layer.def.name
        guard let refs = reference[name], var r = layers[name] else { return }
        let k = seen[name, default: 0]
        seen[name] = k + 1
        guard k < refs.count, refs[k].count == output.count else { return }
        r.upstream.add(reference: refs[k], s.floats(output))
        layers[name] = r
    }
}

/// The whole report.
public struct CalibrationReport: Sendable {
    public var layers: [LayerReport]
    public var agreement: DetectionAgreement
    public var images: [String]
    public var inputSize: (h: Int, w: Int)

    /// Weight layers worst first: int8 layers by their end-to-end disagreement (largest first),
    /// then those without one by their "alone" SQNR (lowest first; ties and unmeasured ones by
    /// upstream SQNR, then network order), float layers last.
    public var ranking: [LayerReport] {
        // `layers` is in network order (measure builds it so)
        let order = Dictionary(layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        func key(_ r: LayerReport) -> (Int, Int, Double, Double, Double, Int) {
            let a = r.alone.sqnrDB ?? .infinity, u = r.upstream.sqnrDB ?? .infinity
            let e = r.endToEnd.value
            return (r.precision == "int8" ? 0 : 1, e == nil ? 1 : 0, -(e ?? 0), a, u, order[r.name] ?? 0)
        }
        return layers.sorted { key($0) < key($1) }
    }

    /// Bias correction: each measured int8 layer's per-channel mean output shift.
    public var biasCorrections: [String: [Float]] {
        var out: [String: [Float]] = [:]
        for r in layers where r.precision == "int8" {
            let m = r.meanShift
            if !m.isEmpty { out[r.name] = m }
        }
        return out
    }

    /// Names of the int8 layers worst first (what --accuracy-guard returns to float).
    public var worstInt8Layers: [String] { ranking.filter { $0.precision == "int8" && $0.alone.count > 0 }.map { $0.name } }

    /// Runs the float model and the int8 model on `images` (name, image) and measures;
    /// `endToEndImages`: on the first that many images, also each int8 layer's end-to-end
    /// disagreement (one float run per layer and image).
    public static func measure(float: MaskRCNN, int8: MaskRCNN, images: [(String, RGBImage)],
                               endToEndImages: Int = 0, progress: (String) -> Void = { _ in }) throws -> CalibrationReport {
        let net = float.network
        var layers: [String: LayerReport] = [:]
        var h = 0, w = 0
        if let first = images.first?.1 {
            let s = Transform.sizes(height: first.height, width: first.width, minSize: float.config.minSize,
                                    maxSize: float.config.maxSize)
            h = s.paddedHeight; w = s.paddedWidth
        }
        let macs = WorkCount.layerMACs(height: h, width: w, network: net)
        let prec = Dictionary(uniqueKeysWithValues: int8.layerPrecisions)
        for l in net.weightLayers {
            layers[l.name] = LayerReport(name: l.name, stage: l.stage.rawValue, precision: prec[l.name] ?? "int8",
                                         macs: macs[l.name] ?? 0)
        }
        let methods = MethodChoice.parse(int8.metadata["calibration_methods"])
        for l in net.weightLayers where layers[l.name]!.precision == "int8" {
            layers[l.name]!.inputMethod = methods[net.paramsKey(l.inputs[0])]?.rawValue
        }
        let compared = Set(net.weightLayers.filter { $0.stage == .backbone || $0.stage == .fpn || $0.stage == .rpn }.map { $0.name })
        var agreement = DetectionAgreement()
        var floatDetections: [[Detection]] = []
        for (_, image) in images {
            let fo = FloatPassObserver(int8: int8, layers: layers, compared: compared)
            float.layerObserver = fo
            defer { float.layerObserver = nil; int8.layerObserver = nil }
            let fd = try float.detect(image, scoreThresh: 0.05)
            float.layerObserver = nil
            let qo = Int8PassObserver(layers: fo.layers, reference: fo.kept)
            int8.layerObserver = qo
            let qd = try int8.detect(image, scoreThresh: 0.05)
            int8.layerObserver = nil
            layers = qo.layers
            agreement.add(float: fd, int8: qd)
            floatDetections.append(fd)
        }
        let n = min(endToEndImages, images.count)
        if n > 0 {
            let targets = net.weightLayers.filter { layers[$0.name]!.precision == "int8" && layers[$0.name]!.alone.count > 0 }
            defer { float.layerObserver = nil }
            for (k, l) in targets.enumerated() {
                var e = OutputDisagreement()
                for i in 0..<n {
                    float.layerObserver = OneLayerInt8Observer(int8: int8, target: l.name)
                    let d = try float.detect(images[i].1, scoreThresh: 0.05)
                    float.layerObserver = nil
                    e.add(float: floatDetections[i], candidate: d)
                }
                layers[l.name]!.endToEnd = e
                if (k + 1) % 10 == 0 || k + 1 == targets.count { progress("end to end: \(k + 1)/\(targets.count) layers") }
            }
        }
        return CalibrationReport(layers: net.weightLayers.map { layers[$0.name]! }, agreement: agreement,
                                 images: images.map { $0.0 }, inputSize: (h, w))
    }

    fileprivate static func num(_ v: Double?, _ d: Int) -> String {
        guard let v else { return "-" }
        if v == .infinity { return "inf" }
        if v == -.infinity { return "-inf" }
        return COCOEvalResult.fixed(v, d)
    }

    fileprivate static func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        let p = String(repeating: " ", count: max(0, n - s.count))
        return left ? s + p : p + s
    }

    /// The table (stderr): worst first.
    public var table: String {
        let num = CalibrationReport.num, pad = CalibrationReport.pad
        var head = pad("#", 3, false) + " " + pad("layer", 44, true) + pad("MMAC", 8, false) + pad("e2e", 8, false)
        head += pad("alone dB", 9, false) + pad("cos", 8, false) + pad("upstr dB", 9, false) + pad("cos", 8, false)
        head += pad("float range", 20, false) + pad("uint8 range", 20, false) + pad("clip %", 8, false)
        let auto = layers.contains { $0.inputMethod != nil }
        if auto { head += "  input method" }
        var out = ["calibration report: \(images.count) image\(images.count == 1 ? "" : "s"), MACs at \(inputSize.w)x\(inputSize.h) (RoI heads: 1000 proposals, 100 detections); "
                   + "e2e = disagreement of the detections with float when only this layer is int8 (worst first), "
                   + "SQNR dB / cosine of the int8 output vs float, alone = only this layer int8, upstream = the int8 model",
                   head]
        for (i, r) in ranking.enumerated() {
            let fr = r.outMin <= r.outMax ? num(Double(r.outMin), 2) + ".." + num(Double(r.outMax), 2) : "-"
            var qr = r.precision == "int8" ? "float out" : "float layer"
            if let q = r.qRange { qr = num(Double(q.lo), 2) + ".." + num(Double(q.hi), 2) }
            var line = pad("\(i + 1)", 3, false) + " " + pad(r.name, 44, true) + pad(num(Double(r.macs) / 1e6, 1), 8, false)
            line += pad(num(r.endToEnd.value, 4), 8, false)
            line += pad(num(r.alone.sqnrDB, 1), 9, false) + pad(num(r.alone.cosine, 4), 8, false)
            line += pad(num(r.upstream.sqnrDB, 1), 9, false) + pad(num(r.upstream.cosine, 4), 8, false)
            line += pad(fr, 20, false) + pad(qr, 20, false) + pad(num(r.clipFraction * 100, 3), 8, false)
            if auto { line += "  " + (r.inputMethod ?? "-") }
            out.append(line)
        }
        let a = agreement
        var d = "detections (score >= \(a.scoreFloor)): float \(a.floatDetections), int8 \(a.int8Detections), "
        d += "matched at IoU 0.5: \(a.matched); mean box IoU \(num(a.meanBoxIoU, 4)), mask IoU \(num(a.meanMaskIoU, 4)), "
        d += "|score diff| \(num(a.meanAbsScoreDiff, 4))"
        out.append(d)
        return out.joined(separator: "\n")
    }

    static func jnum(_ v: Double?) -> JSON {
        guard let v, v.isFinite else { return v == nil ? .null : .string(v! > 0 ? "inf" : "-inf") }
        return .double(v)
    }

    /// The JSON document (worst first).
    public var json: JSON {
        func stats(_ e: ErrorStats) -> JSON {
            .object([("sqnr_db", CalibrationReport.jnum(e.sqnrDB)), ("cosine", CalibrationReport.jnum(e.cosine)), ("elements", .int(e.count))])
        }
        let ls: [JSON] = ranking.enumerated().map { i, r -> JSON in
            var fields: [(String, JSON)] = [("rank", .int(i + 1)), ("layer", .string(r.name)), ("stage", .string(r.stage)),
                     ("precision", .string(r.precision)), ("macs", .int(r.macs)),
                     ("end_to_end", .object([("disagreement", CalibrationReport.jnum(r.endToEnd.value)),
                                             ("float_detections", .int(r.endToEnd.floatDetections)),
                                             ("images", .int(r.endToEnd.images))])),
                     ("alone", stats(r.alone)), ("upstream", stats(r.upstream)),
                     ("float_min", r.outMin <= r.outMax ? .double(Double(r.outMin)) : .null),
                     ("float_max", r.outMin <= r.outMax ? .double(Double(r.outMax)) : .null),
                     ("uint8_min", r.qRange.map { .double(Double($0.lo)) } ?? .null),
                     ("uint8_max", r.qRange.map { .double(Double($0.hi)) } ?? .null),
                     ("clip_fraction", .double(r.clipFraction))]
            if let m = r.inputMethod { fields.append(("input_method", .string(m))) }
            return .object(fields)
        }
        let a = agreement
        return .object([("images", .array(images.map { .string($0) })),
                        ("input_padded", .array([.int(inputSize.w), .int(inputSize.h)])),
                        ("layers", .array(ls)),
                        ("detections", .object([("score_floor", .double(Double(a.scoreFloor))), ("float", .int(a.floatDetections)),
                                                ("int8", .int(a.int8Detections)), ("matched_iou50", .int(a.matched)),
                                                ("mean_box_iou", .double(a.meanBoxIoU)), ("mean_mask_iou", .double(a.meanMaskIoU)),
                                                ("mean_abs_score_diff", .double(a.meanAbsScoreDiff))]))])
    }
}
