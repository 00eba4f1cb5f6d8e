// The tensors of a converted (BatchNorm-folded) float model, by name and shape. This is the
// contract between the converter (.pth -> folded tensors -> safetensors) and the pipeline, which
// loads exactly these names. Names follow torchvision's state_dict keys, with BN folded away:
//
//   backbone.body.conv1.{weight,bias}                         [64,3,7,7] / [64]
//   backbone.body.layer{1..4}.{b}.conv{1,2,3}.{weight,bias}   bn{i} folded into conv{i}
//   backbone.body.layer{1..4}.0.downsample.{weight,bias}      downsample.0 + downsample.1 folded
//   backbone.fpn.inner_blocks.{0..3}.{weight,bias}            [256,C,1,1] / [256]
//   backbone.fpn.layer_blocks.{0..3}.{weight,bias}            [256,256,3,3] / [256]
//   rpn.head.conv.{weight,bias}                               [256,256,3,3] / [256]
//   rpn.head.cls_logits.{weight,bias}                         [3,256,1,1] / [3]
//   rpn.head.bbox_pred.{weight,bias}                          [12,256,1,1] / [12]
//   roi_heads.box_head.fc6.{weight,bias}                      [1024,12544] / [1024]
//   roi_heads.box_head.fc7.{weight,bias}                      [1024,1024] / [1024]
//   roi_heads.box_predictor.cls_score.{weight,bias}           [K,1024] / [K]
//   roi_heads.box_predictor.bbox_pred.{weight,bias}           [4K,1024] / [4K]
//   roi_heads.mask_head.{0..3}.{weight,bias}                  [256,256,3,3] / [256]
//   roi_heads.mask_predictor.conv5_mask.{weight,bias}         [256,256,2,2] (in,out,kh,kw) / [256]
//   roi_heads.mask_predictor.mask_fcn_logits.{weight,bias}    [K,256,1,1] / [K]

public enum ModelSpec {
    public static let resnetBlocks = [3, 4, 6, 3]
    public static let resnetWidths = [64, 128, 256, 512]
    public static let fpnChannels = 256
    public static let anchorsPerLocation = 3

    /// Every tensor of the folded float model with its shape, in a stable order.
    public static func tensors(numClasses k: Int) -> [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        func conv(_ n: String, _ cout: Int, _ cin: Int, _ kh: Int, _ kw: Int) {
            out.append((n + ".weight", [cout, cin, kh, kw])); out.append((n + ".bias", [cout]))
        }
        conv("backbone.body.conv1", 64, 3, 7, 7)
        var cin = 64
        for (li, blocks) in resnetBlocks.enumerated() {
            let w = resnetWidths[li]
            for b in 0..<blocks {
                let p = "backbone.body.layer\(li + 1).\(b)"
                conv(p + ".conv1", w, cin, 1, 1)
                conv(p + ".conv2", w, w, 3, 3)
                conv(p + ".conv3", w * 4, w, 1, 1)
                if b == 0 { conv(p + ".downsample", w * 4, cin, 1, 1) }
                cin = w * 4
            }
        }
        for (i, c) in [256, 512, 1024, 2048].enumerated() {
            conv("backbone.fpn.inner_blocks.\(i)", fpnChannels, c, 1, 1)
        }
        for i in 0..<4 { conv("backbone.fpn.layer_blocks.\(i)", fpnChannels, fpnChannels, 3, 3) }
        conv("rpn.head.conv", 256, 256, 3, 3)
        conv("rpn.head.cls_logits", anchorsPerLocation, 256, 1, 1)
        conv("rpn.head.bbox_pred", anchorsPerLocation * 4, 256, 1, 1)
        out.append(("roi_heads.box_head.fc6.weight", [1024, 256 * 7 * 7]))
        out.append(("roi_heads.box_head.fc6.bias", [1024]))
        out.append(("roi_heads.box_head.fc7.weight", [1024, 1024]))
        out.append(("roi_heads.box_head.fc7.bias", [1024]))
        out.append(("roi_heads.box_predictor.cls_score.weight", [k, 1024]))
        out.append(("roi_heads.box_predictor.cls_score.bias", [k]))
        out.append(("roi_heads.box_predictor.bbox_pred.weight", [4 * k, 1024]))
        out.append(("roi_heads.box_predictor.bbox_pred.bias", [4 * k]))
        for i in 0..<4 { conv("roi_heads.mask_head.\(i)", 256, 256, 3, 3) }
        out.append(("roi_heads.mask_predictor.conv5_mask.weight", [256, 256, 2, 2]))
        out.append(("roi_heads.mask_predictor.conv5_mask.bias", [256]))
        conv("roi_heads.mask_predictor.mask_fcn_logits", k, 256, 1, 1)
        return out
    }
}
