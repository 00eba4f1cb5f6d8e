// The network description: every layer of torchvision's maskrcnn_resnet50_fpn (v1), written once,
// in execution order. Everything that depends on the network's structure reads this table: the
// tensor names and shapes the converter writes and the loader checks (ModelSpec), the BatchNorm
// folding and key renaming of .pth files (Fold), the quantised layers and their input activations
// (QuantSpec), the MAC count per stage (WorkCount), the synthetic model's initialisation, and the
// executor (Stages/), which walks it. No code derives a layer's geometry from its name.
//
// Activations are named after the layer (or op) that produces them; "input" is the normalised,
// padded image. torchvision's structure (the specification):
//   backbone.body    resnet50: conv1 7x7/2 + BN + ReLU, maxpool 3x3/2 pad 1, layer1..4 of
//                    Bottlenecks (1x1, 3x3 carrying the stride, 1x1 x4; block 0 has a 1x1 downsample)
//   backbone.fpn     FeaturePyramidNetwork: 1x1 inner_blocks, top-down nearest upsample + add,
//                    3x3 layer_blocks, LastLevelMaxPool (max_pool2d k1 s2) -> P2..P6
//   rpn.head         RPNHead: 3x3 conv + ReLU on every level, 1x1 cls_logits (A) and bbox_pred (4A)
//   roi_heads        MultiScaleRoIAlign 7x7 (sampling 2), TwoMLPHead fc6/fc7 + ReLU,
//                    FastRCNNPredictor cls_score/bbox_pred; MultiScaleRoIAlign 14x14,
//                    MaskRCNNHeads 4 x (3x3 conv + ReLU), MaskRCNNPredictor ConvTranspose2d 2x2/2 +
//                    ReLU and the 1x1 mask_fcn_logits

public enum LayerOp: Equatable, Sendable {
    case conv(kernel: Int, stride: Int, pad: Int)
    /// torch ConvTranspose2d(cin, cout, 2, stride 2); weight [cin, cout, 2, 2].
    case deconv2x2
    /// torch ConvTranspose2d(cin, cout, 4, stride 2, padding 1) (the keypoint predictor);
    /// weight [cin, cout, 4, 4].
    case deconv4x4s2p1
    /// torch Linear; weight [cout, cin].
    case linear
    case maxpool(kernel: Int, stride: Int, pad: Int)
    /// inputs[0] + nearest upsampling of inputs[1] to inputs[0]'s size (the FPN top-down merge).
    case addUpsample
    /// MultiScaleRoIAlign over the inputs (P2..P5) to [cout, output, output] per RoI.
    case roiAlign(output: Int, samplingRatio: Int)

    /// The op reads an output pixel's spatial neighbours (a padded window): a convolution wider
    /// than 1x1 or the overlapping 4x4 transposed conv. RoIs laid side by side need their separator
    /// columns re-zeroed before such a layer.
    public var readsNeighbours: Bool {
        switch self {
        case .conv(let k, _, _): return k > 1
        case .deconv4x4s2p1: return true
        default: return false
        }
    }

    public var hasWeights: Bool {
        switch self { case .conv, .deconv2x2, .deconv4x4s2p1, .linear: return true; default: return false }
    }
}

/// The pipeline stages (bench's per-stage table, timings).
public enum NetStage: String, Sendable, CaseIterable {
    case backbone, fpn, rpn, roi_heads, masks, keypoints
}

/// How torchvision initialises a layer's weight and bias (the synthetic model).
public enum WeightInit: Sendable {
    /// conv without bias + BatchNorm2d at its defaults, folded: N(0, 2/fan_out) / sqrt(1 + eps), bias 0
    case kaimingBN
    /// kaiming_normal_(fan_out, relu), bias 0
    case kaiming
    /// kaiming_uniform_(a=1): U(±sqrt(3/fan_in)), bias 0
    case kaimingUniform
    /// normal_(std=0.01), bias 0
    case normal001
    /// nn.Linear / nn.Conv defaults: weight and bias U(±1/sqrt(fan_in))
    case torchDefault
    /// kaiming_normal_(fan_out, relu) weight, nn.Conv default bias
    case kaimingTorchBias
}

public struct LayerDef: Sendable {
    public let name: String
    public let op: LayerOp
    /// Activations read (the first is the main input; weight layers have one).
    public let inputs: [String]
    public let cin: Int, cout: Int
    public let relu: Bool
    /// Activation added before the ReLU (the bottleneck's identity).
    public let residual: String?
    public let stage: NetStage
    /// The output is decoded in float (no uint8 parameters): int8 layers dequantise from int32.
    public let floatOutput: Bool
    /// The activation whose uint8 parameters this output shares (nil: its own, or a max pool's input's).
    public let sharesParams: String?
    /// The layer runs on each of its inputs separately with the same weights (the RPN head conv).
    public let eachInput: Bool
    /// torchvision state-dict prefixes of the weight/bias, first found wins, and the BatchNorm folded in.
    public let sourcePrefixes: [String]
    public let batchNorm: String?
    public let initialisation: WeightInit?

    /// Folded weight shape (torch layout).
    public var weightShape: [Int] {
        switch op {
        case .conv(let k, _, _): return [cout, cin, k, k]
        case .deconv2x2: return [cin, cout, 2, 2]
        case .deconv4x4s2p1: return [cin, cout, 4, 4]
        case .linear: return [cout, cin]
        default: return []
        }
    }
    /// Output channel axis of the torch weight.
    public var channelAxis: Int { op == .deconv2x2 || op == .deconv4x4s2p1 ? 1 : 0 }

    /// "conv 3x3/2 pad 1, 64 -> 64, relu" (what `info` lists).
    public var summary: String {
        var t: String
        switch op {
        case .conv(let k, let s, let p): t = "conv \(k)x\(k)" + (s > 1 ? "/\(s)" : "") + (p > 0 ? " pad \(p)" : "")
        case .deconv2x2: t = "conv_transpose 2x2/2"
        case .deconv4x4s2p1: t = "conv_transpose 4x4/2 pad 1"
        case .linear: t = "linear"
        case .maxpool(let k, let s, _): t = "max_pool \(k)x\(k)/\(s)"
        case .addUpsample: t = "upsample + add"
        case .roiAlign(let o, let r): t = "roi_align \(o)x\(o) sampling \(r)"
        }
        t += ", \(cin) -> \(cout)"
        if residual != nil { t += ", + residual" }
        if relu { t += ", relu" }
        return t
    }
}

public struct Network: Sendable {
    public let name: String
    public let architecture: Architecture
    public let layers: [LayerDef]
    public let numClasses: Int
    /// RPN anchors per feature-map location (3 aspect ratios x 1 size per level).
    public let anchorsPerLocation: Int
    /// The FPN outputs P2..P6 (torchvision '0'..'3', 'pool'), RoIAlign reads the first four.
    public let featureOutputs: [String]
    /// Name of the pooled RoI features of the box and mask heads.
    public let boxPool: String
    /// nil: no mask branch (Faster R-CNN).
    public let maskPool: String?
    private let index: [String: Int]

    public func layer(_ name: String) -> LayerDef? { index[name].map { layers[$0] } }

    /// The weight layers a name or a simple pattern (`*` matches any run of characters) names;
    /// an error when a pattern matches none.
    public func weightLayers(matching patterns: [String]) throws -> [String] {
        func matches(_ p: Substring, _ n: Substring) -> Bool {
            guard let c = p.first else { return n.isEmpty }
            if c == "*" { return n.indices.contains { matches(p.dropFirst(), n[$0...]) } || matches(p.dropFirst(), n[n.endIndex...]) }
            return n.first == c && matches(p.dropFirst(), n.dropFirst())
        }
        var out: [String] = []
        for p in patterns {
            let hits = weightLayers.filter { matches(Substring(p), Substring($0.name)) }.map { $0.name }
            if hits.isEmpty { throw EdgeError("'\(p)' names no weight layer of \(name) (`edge-mrcnn info MODEL` lists them)") }
            out += hits.filter { !out.contains($0) }
        }
        return out
    }
    public func layers(in stage: NetStage) -> [LayerDef] { layers.filter { $0.stage == stage } }
    public var weightLayers: [LayerDef] { layers.filter { $0.op.hasWeights } }

    /// Every tensor of the folded float model with its shape.
    public var tensors: [(name: String, shape: [Int])] {
        weightLayers.flatMap { l in [(l.name + ".weight", l.weightShape), (l.name + ".bias", [l.cout])] }
    }

    /// The key of an activation's uint8 parameters: a max pool keeps its input's, the FPN outputs
    /// share one set (the RPN head and RoIAlign read every level with one scale).
    public func paramsKey(_ activation: String) -> String {
        guard let l = layer(activation) else { return activation }
        if let s = l.sharesParams { return s }
        if case .maxpool = l.op { return paramsKey(l.inputs[0]) }
        return activation
    }

    public var hasMasks: Bool { maskPool != nil }
    /// Keypoint R-CNN: the keypoint branch (stage `keypoints`) and its keypoint count.
    public var hasKeypoints: Bool { numKeypoints > 0 }
    public var numKeypoints: Int {
        layers.last(where: { $0.stage == .keypoints && $0.op.hasWeights })?.cout ?? 0
    }

    init(name: String, architecture: Architecture, numClasses: Int, anchorsPerLocation: Int, featureOutputs: [String],
         boxPool: String, maskPool: String?, layers: [LayerDef]) {
        self.name = name; self.architecture = architecture; self.numClasses = numClasses; self.anchorsPerLocation = anchorsPerLocation
        self.featureOutputs = featureOutputs; self.boxPool = boxPool; self.maskPool = maskPool
        self.layers = layers
        index = Dictionary(layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    }
}

/// The torchvision detection architectures edge-mrcnn reads (the model file's `arch` metadata
/// value is the raw value). v1: FrozenBatchNorm ResNet-50, FPN and heads without BatchNorm, a
/// one-conv RPN head, TwoMLPHead; v2 (torchvision's `*_v2` builders): BatchNorm in the ResNet,
/// the FPN convs, the box head's convs (FastRCNNConvFCHead: 4 x conv 3x3 256 + BN + ReLU, one FC
/// 1024) and the mask head's convs, a two-conv RPN head. Faster R-CNN: no mask branch.
public enum Architecture: String, CaseIterable, Sendable {
    case maskrcnnV1 = "maskrcnn_resnet50_fpn_v1"
    case fasterrcnnV1 = "fasterrcnn_resnet50_fpn_v1"
    case maskrcnnV2 = "maskrcnn_resnet50_fpn_v2"
    case fasterrcnnV2 = "fasterrcnn_resnet50_fpn_v2"
    case keypointrcnnV1 = "keypointrcnn_resnet50_fpn_v1"

    /// torchvision's builder function.
    public var builder: String {
        switch self {
        case .maskrcnnV1: return "maskrcnn_resnet50_fpn"
        case .fasterrcnnV1: return "fasterrcnn_resnet50_fpn"
        case .maskrcnnV2: return "maskrcnn_resnet50_fpn_v2"
        case .fasterrcnnV2: return "fasterrcnn_resnet50_fpn_v2"
        case .keypointrcnnV1: return "keypointrcnn_resnet50_fpn"
        }
    }
    public var isV2: Bool { self == .maskrcnnV2 || self == .fasterrcnnV2 }
    public var hasMasks: Bool { self == .maskrcnnV1 || self == .maskrcnnV2 }
    public var hasKeypoints: Bool { self == .keypointrcnnV1 }

    /// Short name: maskrcnn, fasterrcnn, maskrcnn_v2, fasterrcnn_v2, keypointrcnn.
    public var shortName: String {
        switch self {
        case .maskrcnnV1: return "maskrcnn"
        case .fasterrcnnV1: return "fasterrcnn"
        case .maskrcnnV2: return "maskrcnn_v2"
        case .fasterrcnnV2: return "fasterrcnn_v2"
        case .keypointrcnnV1: return "keypointrcnn"
        }
    }

    /// An architecture by its raw value, torchvision builder name or short name.
    public static func named(_ s: String) -> Architecture? {
        allCases.first { $0.rawValue == s || $0.builder == s || $0.shortName == s }
    }

    /// The names `--arch` accepts (for messages).
    public static var namesList: String { allCases.map { $0.rawValue }.joined(separator: ", ") }

    /// The architecture of a torchvision state dict, from its keys (a DataParallel "module."
    /// prefix allowed): keypoint predictor -> Keypoint R-CNN; `roi_heads.box_head.5` (the FC after
    /// the conv head) -> v2, `roi_heads.box_head.fc6` -> v1; a mask predictor -> Mask R-CNN.
    public static func recognise(hasKey: (String) -> Bool) throws -> Architecture {
        func has(_ k: String) -> Bool { hasKey(k) || hasKey("module." + k) }
        if has("roi_heads.keypoint_predictor.kps_score_lowres.weight") { return .keypointrcnnV1 }
        let masks = has("roi_heads.mask_predictor.mask_fcn_logits.weight")
        if has("roi_heads.box_head.5.weight") { return masks ? .maskrcnnV2 : .fasterrcnnV2 }
        if has("roi_heads.box_head.fc6.weight") { return masks ? .maskrcnnV1 : .fasterrcnnV1 }
        throw EdgeError("not a torchvision R-CNN ResNet-50-FPN state dict: no 'roi_heads.box_head.fc6.weight' "
            + "(v1) nor 'roi_heads.box_head.5.weight' (v2)")
    }
}

/// Builds a network description piece by piece (the shared parts of every architecture).
struct LayerTable {
    var layers: [LayerDef] = []
    var stage = NetStage.backbone

    mutating func add(_ name: String, _ op: LayerOp, _ inputs: [String], _ cin: Int, _ cout: Int, relu: Bool = false,
                      residual: String? = nil, floatOutput: Bool = false, shares: String? = nil, eachInput: Bool = false,
                      from: [String]? = nil, bn: String? = nil, initialisation: WeightInit? = nil) {
        layers.append(LayerDef(name: name, op: op, inputs: inputs, cin: cin, cout: cout, relu: relu, residual: residual,
                               stage: stage, floatOutput: floatOutput, sharesParams: shares, eachInput: eachInput,
                               sourcePrefixes: from ?? [name], batchNorm: bn, initialisation: initialisation))
    }
    func conv(_ k: Int, _ s: Int = 1, _ p: Int = 0) -> LayerOp { .conv(kernel: k, stride: s, pad: p) }

    /// backbone.body: ResNet-50 (BatchNorm folded into every conv) -> C2..C5 (name, channels).
    mutating func resNet50() -> [(name: String, channels: Int)] {
        stage = .backbone
        let body = "backbone.body"
        add("\(body).conv1", conv(7, 2, 3), ["input"], 3, 64, relu: true, bn: "\(body).bn1", initialisation: .kaimingBN)
        add("\(body).maxpool", .maxpool(kernel: 3, stride: 2, pad: 1), ["\(body).conv1"], 64, 64)
        var prev = "\(body).maxpool", cin = 64
        var stageOutputs: [(name: String, channels: Int)] = []
        for (li, (blocks, w)) in zip([3, 4, 6, 3], [64, 128, 256, 512]).enumerated() {
            for b in 0..<blocks {
                let p = "\(body).layer\(li + 1).\(b)"
                let s = b == 0 && li > 0 ? 2 : 1
                add(p + ".conv1", conv(1), [prev], cin, w, relu: true, bn: p + ".bn1", initialisation: .kaimingBN)
                add(p + ".conv2", conv(3, s, 1), [p + ".conv1"], w, w, relu: true, bn: p + ".bn2", initialisation: .kaimingBN)
                if b == 0 {
                    add(p + ".downsample", conv(1, s), [prev], cin, 4 * w, from: [p + ".downsample.0"],
                        bn: p + ".downsample.1", initialisation: .kaimingBN)
                }
                add(p + ".conv3", conv(1), [p + ".conv2"], w, 4 * w, relu: true,
                    residual: b == 0 ? p + ".downsample" : prev, bn: p + ".bn3", initialisation: .kaimingBN)
                prev = p + ".conv3"; cin = 4 * w
            }
            stageOutputs.append((prev, cin))
        }
        return stageOutputs
    }

    /// backbone.fpn: top-down from C5 -> P2..P6 (torchvision '0'..'3', 'pool'). `batchNorm`: v2's
    /// Conv2dNormActivation blocks (conv without bias at .0, BatchNorm2d at .1).
    mutating func fpn(_ c: [(name: String, channels: Int)], batchNorm: Bool) -> [String] {
        stage = .fpn
        let fpn = "backbone.fpn", f = 256, fpnOut = "\(fpn).out"
        func inner(_ i: Int) {
            let n = "\(fpn).inner_blocks.\(i)"
            add(n, conv(1), [c[i].name], c[i].channels, f, from: batchNorm ? [n + ".0"] : [n + ".0", n],
                bn: batchNorm ? n + ".1" : nil, initialisation: .kaimingUniform)
        }
        func layerBlock(_ i: Int, _ input: String) {
            let n = "\(fpn).layer_blocks.\(i)"
            add(n, conv(3, 1, 1), [input], f, f, shares: fpnOut, from: batchNorm ? [n + ".0"] : [n + ".0", n],
                bn: batchNorm ? n + ".1" : nil, initialisation: .kaimingUniform)
        }
        inner(3)
        layerBlock(3, "\(fpn).inner_blocks.3")
        var last = "\(fpn).inner_blocks.3"
        for i in stride(from: 2, through: 0, by: -1) {
            inner(i)
            let m = "\(fpn).merge.\(i)"
            add(m, .addUpsample, ["\(fpn).inner_blocks.\(i)", last], f, f)
            layerBlock(i, m)
            last = m
        }
        add("\(fpn).pool", .maxpool(kernel: 1, stride: 2, pad: 0), ["\(fpn).layer_blocks.3"], f, f, shares: fpnOut)
        return (0..<4).map { "\(fpn).layer_blocks.\($0)" } + ["\(fpn).pool"]
    }

    /// rpn.head on every level: `convs` 3x3 conv + ReLU (v1: one, named rpn.head.conv; v2: two,
    /// rpn.head.conv.0/.1), the 1x1 cls_logits (A) and bbox_pred (4A).
    mutating func rpnHead(_ levels: [String], convs: Int, anchors a: Int) {
        stage = .rpn
        let f = 256
        var x = "rpn.head.conv"
        if convs == 1 {
            add(x, conv(3, 1, 1), levels, f, f, relu: true, eachInput: true, from: ["rpn.head.conv.0.0", "rpn.head.conv"],
                initialisation: .normal001)
        } else {
            for i in 0..<convs {
                let n = "rpn.head.conv.\(i)"
                add(n, conv(3, 1, 1), i == 0 ? levels : [x], f, f, relu: true, eachInput: i == 0, from: [n + ".0"],
                    initialisation: .normal001)
                x = n
            }
        }
        add("rpn.head.cls_logits", conv(1), [x], f, a, floatOutput: true, initialisation: .normal001)
        add("rpn.head.bbox_pred", conv(1), [x], f, 4 * a, floatOutput: true, initialisation: .normal001)
    }

    /// roi_heads box branch: 7x7 RoIAlign, the box head (v1 TwoMLPHead fc6/fc7; v2
    /// FastRCNNConvFCHead: box_head.0-3 conv 3x3 + BN + ReLU, [4] Flatten, box_head.5 FC 1024 +
    /// ReLU), FastRCNNPredictor. Returns the pool's name.
    mutating func boxBranch(_ levels: [String], numClasses k: Int, convHead: Bool) -> String {
        stage = .roi_heads
        let f = 256
        let pool = "roi_heads.box_roi_pool"
        add(pool, .roiAlign(output: 7, samplingRatio: 2), Array(levels.prefix(4)), f, f)
        var x = pool
        if convHead {
            for i in 0..<4 {
                let n = "roi_heads.box_head.\(i)"
                add(n, conv(3, 1, 1), [x], f, f, relu: true, from: [n + ".0"], bn: n + ".1", initialisation: .kaiming)
                x = n
            }
            add("roi_heads.box_head.5", .linear, [x], f * 7 * 7, 1024, relu: true, initialisation: .torchDefault)
            x = "roi_heads.box_head.5"
        } else {
            add("roi_heads.box_head.fc6", .linear, [pool], f * 7 * 7, 1024, relu: true, initialisation: .torchDefault)
            add("roi_heads.box_head.fc7", .linear, ["roi_heads.box_head.fc6"], 1024, 1024, relu: true, initialisation: .torchDefault)
            x = "roi_heads.box_head.fc7"
        }
        add("roi_heads.box_predictor.cls_score", .linear, [x], 1024, k, floatOutput: true, initialisation: .torchDefault)
        add("roi_heads.box_predictor.bbox_pred", .linear, [x], 1024, 4 * k, floatOutput: true, initialisation: .torchDefault)
        return pool
    }

    /// roi_heads mask branch: 14x14 RoIAlign, MaskRCNNHeads 4 x (conv 3x3 + ReLU; v2 with
    /// BatchNorm), MaskRCNNPredictor ConvTranspose2d 2x2/2 + ReLU and the 1x1 mask_fcn_logits.
    mutating func maskBranch(_ levels: [String], numClasses k: Int, batchNorm: Bool) -> String {
        stage = .masks
        let f = 256
        let pool = "roi_heads.mask_roi_pool"
        add(pool, .roiAlign(output: 14, samplingRatio: 2), Array(levels.prefix(4)), f, f)
        var x = pool
        for i in 0..<4 {
            let n = "roi_heads.mask_head.\(i)"
            add(n, conv(3, 1, 1), [x], f, f, relu: true,
                from: batchNorm ? [n + ".0"] : [n + ".0", "roi_heads.mask_head.mask_fcn\(i + 1)"],
                bn: batchNorm ? n + ".1" : nil, initialisation: .kaiming)
            x = n
        }
        add("roi_heads.mask_predictor.conv5_mask", .deconv2x2, [x], f, f, relu: true, initialisation: .kaimingTorchBias)
        add("roi_heads.mask_predictor.mask_fcn_logits", conv(1), ["roi_heads.mask_predictor.conv5_mask"], f, k,
            floatOutput: true, initialisation: .kaimingTorchBias)
        return pool
    }

    /// roi_heads keypoint branch (Keypoint R-CNN): 14x14 RoIAlign (sampling 2) on P2..P5,
    /// KeypointRCNNHeads 8 x (conv 3x3 512 + ReLU; torchvision's Sequential indices 0, 2, ..., 14),
    /// KeypointRCNNPredictor's ConvTranspose2d 4x4/2 pad 1 to the keypoint logits (float output;
    /// its bilinear x2 upsampling and heatmaps_to_keypoints run in float: KeypointDecode).
    mutating func keypointBranch(_ levels: [String], numKeypoints k: Int) {
        stage = .keypoints
        let f = 256, c = 512
        let pool = "roi_heads.keypoint_roi_pool"
        add(pool, .roiAlign(output: 14, samplingRatio: 2), Array(levels.prefix(4)), f, f)
        var x = pool, cin = f
        for i in 0..<8 {
            let n = "roi_heads.keypoint_head.\(2 * i)"
            add(n, conv(3, 1, 1), [x], cin, c, relu: true, initialisation: .kaiming)
            x = n; cin = c
        }
        add("roi_heads.keypoint_predictor.kps_score_lowres", .deconv4x4s2p1, [x], c, k, floatOutput: true,
            initialisation: .kaiming)
    }
}

extension Network {
    /// The torchvision key whose first dimension is the class count (background included).
    public static let classScoreWeight = "roi_heads.box_predictor.cls_score.weight"

    /// torchvision maskrcnn_resnet50_fpn (v1) with `k` classes (background included).
    public static func maskRCNNResNet50FPN(numClasses k: Int) -> Network {
        resNet50FPN(.maskrcnnV1, numClasses: k)
    }

    /// The network of `arch` with `k` classes (background included); an error for an
    /// architecture this build cannot run yet.
    public static func build(_ arch: Architecture, numClasses k: Int) throws -> Network {
        return resNet50FPN(arch, numClasses: k)
    }

    /// The network a model config describes.
    public static func build(_ config: ModelConfig) throws -> Network {
        try build(config.architecture, numClasses: config.numClasses)
    }

    /// The ResNet-50-FPN R-CNN family from the shared pieces.
    static func resNet50FPN(_ arch: Architecture, numClasses k: Int) -> Network {
        var t = LayerTable()
        let c = t.resNet50()
        let levels = t.fpn(c, batchNorm: arch.isV2)
        let anchors = 3
        t.rpnHead(levels, convs: arch.isV2 ? 2 : 1, anchors: anchors)
        let boxPool = t.boxBranch(levels, numClasses: k, convHead: arch.isV2)
        let maskPool = arch.hasMasks ? t.maskBranch(levels, numClasses: k, batchNorm: arch.isV2) : nil
        if arch.hasKeypoints { t.keypointBranch(levels, numKeypoints: COCOKeypoints.names.count) }
        return Network(name: arch.builder, architecture: arch, numClasses: k, anchorsPerLocation: anchors,
                       featureOutputs: levels, boxPool: boxPool, maskPool: maskPool, layers: t.layers)
    }
}

// ------------------------------------------------------------------ derived views

/// The tensors of a converted (BatchNorm-folded) float model, by name and shape: the contract
/// between the converter and the loader, from the network description.
public enum ModelSpec {
    /// maskrcnn_resnet50_fpn v1's tensors.
    public static func tensors(numClasses k: Int) -> [(name: String, shape: [Int])] {
        Network.maskRCNNResNet50FPN(numClasses: k).tensors
    }
    /// The tensors of the architecture and class count a config names.
    public static func tensors(_ config: ModelConfig) throws -> [(name: String, shape: [Int])] {
        try Network.build(config).tensors
    }
}

/// Multiply-accumulates of the weight layers per pipeline stage (the GMAC/s column of `bench`),
/// by propagating shapes through the network description. Nominal work: the int8 mask head's
/// batching separators and the GEMM tile padding are not counted; the mask logits count the
/// predicted label's channel only (what both precisions compute: float takes that channel, int8
/// with more than 16 classes that channel's block of 8, fewer classes all of them).
public enum WorkCount {
    /// MACs per stage for a padded network input of `height` x `width`, `proposals` RoIs into the
    /// box head and `detections` into the mask head.
    public static func macs(height: Int, width: Int, numClasses k: Int, proposals: Int = 1000,
                            detections: Int = 100) -> [String: Int] {
        macs(height: height, width: width, network: .maskRCNNResNet50FPN(numClasses: k), proposals: proposals,
             detections: detections)
    }

    /// The same for any network of the family.
    /// `keypointDetections`: the detections the keypoint branch runs on (default: `detections`).
    public static func macs(height: Int, width: Int, network: Network, proposals: Int = 1000,
                            detections: Int = 100, keypointDetections: Int? = nil) -> [String: Int] {
        count(height: height, width: width, net: network, proposals: proposals, detections: detections,
              keypointDetections: keypointDetections ?? detections).stages
    }

    /// MACs of each weight layer (the same count, by layer name).
    public static func layerMACs(height: Int, width: Int, network: Network, proposals: Int = 1000,
                                 detections: Int = 100) -> [String: Int] {
        count(height: height, width: width, net: network, proposals: proposals, detections: detections,
              keypointDetections: detections).layers
    }

    private static func count(height: Int, width: Int, net: Network, proposals: Int,
                              detections: Int, keypointDetections: Int) -> (stages: [String: Int], layers: [String: Int]) {
        var byLayer: [String: Int] = [:]
        var shape: [String: (h: Int, w: Int)] = ["input": (height, width)]
        var perRoI: [String: (h: Int, w: Int)] = [:]
        var out: [String: Int] = [:]
        let maskLogits = net.layers(in: .masks).last { $0.op.hasWeights }?.name
        for l in net.layers {
            let roi = l.stage == .roi_heads || l.stage == .masks || l.stage == .keypoints
            func outSize(_ s: (h: Int, w: Int)) -> (h: Int, w: Int) {
                switch l.op {
                case .conv(let k, let st, let p), .maxpool(let k, let st, let p):
                    return ((s.h + 2 * p - k) / st + 1, (s.w + 2 * p - k) / st + 1)
                case .deconv2x2, .deconv4x4s2p1: return (2 * s.h, 2 * s.w)
                case .linear: return (1, 1)
                case .addUpsample: return s
                case .roiAlign(let o, _): return (o, o)
                }
            }
            // the RPN head runs on every level: its MACs add up over them
            let ins = l.eachInput ? l.inputs : [l.inputs[0]]
            var macs = 0, sizes: [(h: Int, w: Int)] = []
            for i in ins {
                let s = roi ? (perRoI[i] ?? (0, 0)) : (shape[i] ?? (0, 0))
                let o = outSize(s)
                sizes.append(o)
                switch l.op {
                case .conv(let kk, _, _): macs += l.cin * l.cout * kk * kk * o.h * o.w
                case .deconv2x2: macs += l.cin * l.cout * 4 * s.h * s.w
                case .deconv4x4s2p1: macs += l.cin * l.cout * 16 * s.h * s.w
                case .linear: macs += l.cin * l.cout
                default: break
                }
            }
            if l.stage == .masks && l.name == maskLogits { macs /= max(l.cout, 1) }
            if roi {
                perRoI[l.name] = sizes[0]
                macs *= l.stage == .roi_heads ? proposals : l.stage == .keypoints ? keypointDetections : detections
            } else if l.eachInput {
                // consumers of a per-level layer see the sum of the level areas
                shape[l.name] = (sizes.reduce(0) { $0 + $1.h * $1.w }, 1)
            } else {
                shape[l.name] = sizes[0]
            }
            out[l.stage.rawValue, default: 0] += macs
            if l.op.hasWeights { byLayer[l.name] = macs }
        }
        return (out, byLayer)
    }
}
