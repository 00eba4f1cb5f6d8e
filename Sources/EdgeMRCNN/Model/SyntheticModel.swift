// A seeded random model in the COCO layout (91 classes, min 800 / max 1333) for benchmarks: the
// weights are drawn from the distributions torchvision's maskrcnn_resnet50_fpn(weights=None)
// initialises them with, then folded as Fold folds BatchNorm. Deterministic on every platform:
// splitmix64 + the polar (Marsaglia) normal method with a log written here in plain double
// arithmetic (no libm), so x86 and aarch64 draw the same bits.
//
// torchvision's initialisation (the specification, read from its source):
//   ResNet convs           kaiming_normal_(fan_out, relu): N(0, 2 / (cout*kh*kw))
//   ResNet BatchNorm2d     weight 1, bias 0, running mean 0, var 1 (eval): folds to w / sqrt(1 + 1e-5), bias 0
//   FPN convs              kaiming_uniform_(a=1): U(±sqrt(3 / fan_in)), bias 0
//   RPN head convs         normal_(std=0.01), bias 0
//   TwoMLPHead, FastRCNNPredictor   nn.Linear defaults: weight and bias U(±1/sqrt(fan_in))
//   MaskRCNNHeads convs    kaiming_normal_(fan_out, relu), bias 0
//   MaskRCNNPredictor      weights kaiming_normal_(fan_out, relu) (torch's fan_out of a
//                          ConvTranspose2d weight [in, out, kh, kw] is in*kh*kw); biases keep the
//                          nn.Conv defaults U(±1/sqrt(fan_in)), fan_in = size(1)*kh*kw.

/// splitmix64: a tiny, well-mixed 64-bit generator (identical on every platform).
public struct SplitMix64 {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Uniform in (-1, 1).
    mutating func symmetric() -> Double { 2 * unit() - 1 }
}

/// Standard normal samples by the polar method (pairs; the second is kept for the next call).
public struct NormalSampler {
    public var rng: SplitMix64
    private var spare: Double?
    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    public mutating func next() -> Double {
        if let s = spare { spare = nil; return s }
        while true {
            let u = rng.symmetric(), v = rng.symmetric()
            let s = u * u + v * v
            if s >= 1 || s == 0 { continue }
            let f = (-2 * SyntheticModel.log(s) / s).squareRoot()
            spare = v * f
            return u * f
        }
    }
}

public enum SyntheticModel {
    public static let defaultSeed: UInt64 = 0
    /// The detection score threshold benchmarks use with this model (every detection slot filled).
    public static let scoreThresh: Float = 0
    /// Metadata key that marks a synthetic model file (value: "coco seed N").
    public static let metadataKey = "synthetic"

    /// Natural log of a positive finite double, in plain IEEE double arithmetic (no libm): x = m * 2^e
    /// with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.172; the series
    /// is summed to t^41 (error far below one ulp of the result's use here).
    public static func log(_ x: Double) -> Double {
        var e = Int(x.exponent)
        var m = x.significand       // [1, 2)
        if m > 1.4142135623730951 { m *= 0.5; e += 1 }
        let t = (m - 1) / (m + 1), t2 = t * t
        var term = t, sum = 0.0
        var k = 1.0
        for _ in 0..<21 { sum += term / k; term *= t2; k += 2 }
        return 2 * sum + Double(e) * 0.6931471805599453
    }

    /// A per-tensor seed from the model seed and the tensor name (FNV-1a), so tensors do not depend
    /// on generation order.
    static func tensorSeed(_ seed: UInt64, _ name: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var mix = SplitMix64(seed: seed ^ h)
        return mix.next()
    }

    enum Init {
        case normal(std: Double)
        case uniform(bound: Double)
        case zero
    }

    /// How torchvision initialises a tensor of layer `l` (its `initialisation` in the network
    /// description) and the BN fold factor. For a bias, torch's fan_in = size(1) * kh * kw of the weight.
    static func initialisation(_ l: LayerDef, isBias: Bool) -> (Init, fold: Float) {
        // a BatchNorm2d at its defaults (v2's FPN and heads) folds to w / sqrt(1 + eps), bias 0
        let bnFold = Float(1.0 / (1.0 + Fold.bnEps).squareRoot())
        if l.batchNorm != nil && l.initialisation != .kaimingBN {
            let (k, _) = initialisation(l, isBias: isBias, ignoringBatchNorm: true)
            return isBias ? (.zero, 1) : (k, bnFold)
        }
        return initialisation(l, isBias: isBias, ignoringBatchNorm: true)
    }

    static func initialisation(_ l: LayerDef, isBias: Bool, ignoringBatchNorm: Bool) -> (Init, fold: Float) {
        let w = l.weightShape
        let rf = w.count == 4 ? w[2] * w[3] : 1
        let fanIn = Double(w[1] * rf), fanOut = Double(w[0] * rf)
        let kaimingFanOut = Init.normal(std: (2.0 / fanOut).squareRoot())
        let torchDefault = Init.uniform(bound: 1 / fanIn.squareRoot())
        switch l.initialisation ?? .torchDefault {
        case .kaimingBN: return isBias ? (.zero, 1) : (kaimingFanOut, Float(1.0 / (1.0 + Fold.bnEps).squareRoot()))
        case .kaiming: return isBias ? (.zero, 1) : (kaimingFanOut, 1)
        case .kaimingUniform: return isBias ? (.zero, 1) : (.uniform(bound: (3.0 / fanIn).squareRoot()), 1)
        case .normal001: return isBias ? (.zero, 1) : (.normal(std: 0.01), 1)
        case .torchDefault: return (torchDefault, 1)
        case .kaimingTorchBias: return isBias ? (torchDefault, 1) : (kaimingFanOut, 1)
        }
    }

    /// The folded float model (the network's tensors, F32) and its config: COCO classes (person
    /// for Keypoint R-CNN), 800/1333.
    /// About 44 M parameters (176 MB) for maskrcnn v1.
    public static func generate(seed: UInt64 = defaultSeed, architecture: Architecture = .maskrcnnV1) throws
        -> (store: OwnedTensorStore, config: ModelConfig)
    {
        // COCO's 91 classes; Keypoint R-CNN: background + person, as torchvision's keypointrcnn
        let config = ModelConfig(numClasses: architecture.hasKeypoints ? 2 : ModelConfig.cocoCategoryNames.count,
                                 architecture: architecture)
        var meta = config.metadata()
        meta[metadataKey] = architecture == .maskrcnnV1 ? "coco seed \(seed)" : "coco \(architecture.rawValue) seed \(seed)"
        let out = OwnedTensorStore(metadata: meta)
        let net = try Network.build(config)
        var values: [Float] = []
        for l in net.weightLayers {
            for (name, shape) in [(l.name + ".weight", l.weightShape), (l.name + ".bias", [l.cout])] {
                let n = shape.reduce(1, *)
                values = [Float](repeating: 0, count: n)
                let (kind, fold) = initialisation(l, isBias: name.hasSuffix(".bias"))
                let s = tensorSeed(seed, name)
                values.withUnsafeMutableBufferPointer { v in
                    switch kind {
                    case .zero: break
                    case .normal(let std):
                        var g = NormalSampler(seed: s)
                        for i in 0..<n { v[i] = Float(g.next() * std) * fold }
                    case .uniform(let bound):
                        var r = SplitMix64(seed: s)
                        for i in 0..<n { v[i] = Float(r.symmetric() * bound) * fold }
                    }
                }
                out.addFloats(name, shape: shape, values)
            }
        }
        return (out, config)
    }

    /// A deterministic uint8 noise image (xorshift32, interleaved RGB). Seed 0 is the image that
    /// `edge-mrcnn bench --size HxW` times (bench/peers.py draws the same one); calibration images
    /// use seeds 1, 2, ...
    public static func noiseImage(height: Int, width: Int, seed: UInt32 = 0) -> RGBImage {
        var state: UInt32 = 0x9E37_79B9 ^ (seed &* 0x85EB_CA6B)
        if state == 0 { state = 1 }
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<px.count {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            px[i] = UInt8(truncatingIfNeeded: state >> 24)
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// Calibrates the float synthetic model on `images` noise images of `height` x `width`
    /// (seeds 1...images) and returns the int8 model (metadata keeps the synthetic marker).
    public static func calibrate(float store: TensorStore, config: ModelConfig, height: Int, width: Int,
                                 images: Int = 2, method: CalibrationMethod = .defaultMethod,
                                 log: (String) -> Void = { _ in }) throws -> OwnedTensorStore {
        let model = try MaskRCNN(store: store, config: config, source: "synthetic model")
        let cal = Calibrator(model: model)
        for i in 1...max(images, 2) {
            try cal.add(noiseImage(height: height, width: width, seed: UInt32(i)), name: "noise-\(height)x\(width)-\(i)")
            log("calibrated on synthetic image \(i)/\(max(images, 2)) (\(height)x\(width))")
        }
        let q = try cal.quantizedModel(float: store, method: method, source: "synthetic model")
        if let s = store.metadata[metadataKey] { q.metadata[metadataKey] = s + ", calibrated on \(max(images, 2)) noise images \(height)x\(width)" }
        return q
    }
}
