// Which layers of the R50-FPN Mask R-CNN are quantised, which activation feeds each, and which
// activations get uint8 parameters. Activation names are the names of the layers that produce them
// (Conv2d/Deconv2x2/Linear outputs), plus "input" (the normalised image), the FPN merges
// "backbone.fpn.merge.i" and the two RoIAlign outputs.

/// Sees activations as the float pipeline produces them (in place: it may modify them).
public protocol ActivationHook: AnyObject {
    func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int)
}

public enum QuantLayerKind: String, Sendable { case conv, deconv, linear }

public struct QuantLayer: Sendable {
    public let name: String
    public let kind: QuantLayerKind
    /// Activation (qparams key) of the layer input.
    public let input: String
    /// Output dequantised straight from int32 (no uint8 output parameters): the box predictor,
    /// the RPN 1x1 heads and the mask logits.
    public let floatOutput: Bool
    /// Output channel axis of the torch weight (1 for ConvTranspose2d, else 0).
    public var channelAxis: Int { kind == .deconv ? 1 : 0 }
}

public enum QuantSpec {
    /// The P2..P5 outputs share one set of parameters (the RPN head conv and RoIAlign read all
    /// levels with one input scale); P6 is max-pooled P5 and shares them too.
    public static let fpnOutput = "backbone.fpn.out"

    /// The qparams key of an activation name (aliases: the FPN layer_blocks).
    public static func key(_ name: String) -> String {
        name.hasPrefix("backbone.fpn.layer_blocks.") ? fpnOutput : name
    }

    /// Every weight layer with its input activation, in network order.
    public static let layers: [QuantLayer] = {
        var out: [QuantLayer] = []
        func add(_ n: String, _ k: QuantLayerKind, _ input: String, float: Bool = false) {
            out.append(QuantLayer(name: n, kind: k, input: key(input), floatOutput: float))
        }
        add("backbone.body.conv1", .conv, "input")
        var prev = "backbone.body.conv1"   // the maxpool keeps the stem's parameters
        var stageOut: [String] = []
        for (li, blocks) in ModelSpec.resnetBlocks.enumerated() {
            for b in 0..<blocks {
                let p = "backbone.body.layer\(li + 1).\(b)"
                add(p + ".conv1", .conv, prev)
                add(p + ".conv2", .conv, p + ".conv1")
                add(p + ".conv3", .conv, p + ".conv2")
                if b == 0 { add(p + ".downsample", .conv, prev) }
                prev = p + ".conv3"
            }
            stageOut.append(prev)
        }
        for i in 0..<4 { add("backbone.fpn.inner_blocks.\(i)", .conv, stageOut[i]) }
        add("backbone.fpn.layer_blocks.3", .conv, "backbone.fpn.inner_blocks.3")
        for i in 0..<3 { add("backbone.fpn.layer_blocks.\(i)", .conv, "backbone.fpn.merge.\(i)") }
        add("rpn.head.conv", .conv, fpnOutput)
        // the 1x1 heads whose outputs are decoded in float dequantise straight from int32
        add("rpn.head.cls_logits", .conv, "rpn.head.conv", float: true)
        add("rpn.head.bbox_pred", .conv, "rpn.head.conv", float: true)
        add("roi_heads.box_head.fc6", .linear, BoxHead.poolName)
        add("roi_heads.box_head.fc7", .linear, "roi_heads.box_head.fc6")
        add("roi_heads.box_predictor.cls_score", .linear, "roi_heads.box_head.fc7", float: true)
        add("roi_heads.box_predictor.bbox_pred", .linear, "roi_heads.box_head.fc7", float: true)
        add("roi_heads.mask_head.0", .conv, MaskHead.poolName)
        for i in 1..<4 { add("roi_heads.mask_head.\(i)", .conv, "roi_heads.mask_head.\(i - 1)") }
        add("roi_heads.mask_predictor.conv5_mask", .deconv, "roi_heads.mask_head.3")
        add("roi_heads.mask_predictor.mask_fcn_logits", .conv, "roi_heads.mask_predictor.conv5_mask", float: true)
        return out
    }()

    /// Every activation that gets uint8 parameters (keys), in network order.
    public static let activations: [String] = {
        var out: [String] = [], seen = Set<String>()
        func add(_ n: String) { let k = key(n); if seen.insert(k).inserted { out.append(k) } }
        add("input")
        for l in layers {
            add(l.input)
            if !l.floatOutput { add(l.name) }
            if l.name == "backbone.fpn.inner_blocks.0" {
                for i in stride(from: 2, through: 0, by: -1) { add("backbone.fpn.merge.\(i)") }
            }
        }
        return out
    }()
}
