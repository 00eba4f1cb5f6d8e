// torchvision GeneralizedRCNNTransform at inference: RGB8 -> [0,1] -> normalise -> bilinear
// resize (scale rule in Double, output side = floor(side * scale), kernel ratio in/out) ->
// zero pad bottom/right to multiples of 32.

import CShim

public struct ImageSizes: Equatable {
    public var originalHeight: Int, originalWidth: Int
    public var resizedHeight: Int, resizedWidth: Int
    public var paddedHeight: Int, paddedWidth: Int

    /// torchvision resize_boxes ratios (float32): original / resized, per axis.
    public var ratioHeight: Float { Float(originalHeight) / Float(resizedHeight) }
    public var ratioWidth: Float { Float(originalWidth) / Float(resizedWidth) }
}

public enum Transform {
    /// torchvision's resize rule: scale = min(minSize / min(h, w), maxSize / max(h, w)) in Double,
    /// out = floor(side * scale). Returns (height, width).
    public static func resizedSize(height h: Int, width w: Int, minSize: Int, maxSize: Int) -> (Int, Int) {
        let scale = min(Double(minSize) / Double(min(h, w)), Double(maxSize) / Double(max(h, w)))
        let oh = Int((Double(h) * scale).rounded(.down))
        let ow = Int((Double(w) * scale).rounded(.down))
        return (max(oh, 1), max(ow, 1))
    }

    public static func sizes(height h: Int, width w: Int, minSize: Int, maxSize: Int) -> ImageSizes {
        let (rh, rw) = resizedSize(height: h, width: w, minSize: minSize, maxSize: maxSize)
        return ImageSizes(originalHeight: h, originalWidth: w, resizedHeight: rh, resizedWidth: rw,
                          paddedHeight: (rh + 31) / 32 * 32, paddedWidth: (rw + 31) / 32 * 32)
    }

    /// The model's per-channel mean and std (ImageNet's when the model gives none).
    private static func meanStd(_ config: ModelConfig) -> ([Float], [Float]) {
        (config.imageMean.count == 3 ? config.imageMean : [0.485, 0.456, 0.406],
         config.imageStd.count == 3 ? config.imageStd : [0.229, 0.224, 0.225])
    }

    static func run(_ image: RGBImage, config: ModelConfig, _ ws: Workspace) -> (FeatureMap, ImageSizes) {
        let s = sizes(height: image.height, width: image.width, minSize: config.minSize, maxSize: config.maxSize)
        let h = image.height, w = image.width
        let (mean, std) = meanStd(config)
        // normalise + resize + pad in one pass (no full-size float copy of the image)
        let out = ws.map(3, s.paddedHeight, s.paddedWidth)
        image.pixels.withUnsafeBufferPointer { px in
            mean.withUnsafeBufferPointer { m in
                std.withUnsafeBufferPointer { sd in
                    em_normalize_resize_pad_rgb8_f32(px.baseAddress, Int32(h), Int32(w), m.baseAddress, sd.baseAddress,
                                                     Int32(s.resizedHeight), Int32(s.resizedWidth),
                                                     Int32(s.paddedHeight), Int32(s.paddedWidth), out.pointer)
                }
            }
        }
        return (out, s)
    }

    /// `run` quantised to uint8 with `q` in the same pass (the int8 stem's input: the same bytes as
    /// run then quantising the map, without the float map). Nil when the kernel declines (resized
    /// width above 4096): then `run` and a conversion.
    static func runU8(_ image: RGBImage, config: ModelConfig, q: QParams, _ ws: Workspace) -> (Act, ImageSizes)? {
        let s = sizes(height: image.height, width: image.width, minSize: config.minSize, maxSize: config.maxSize)
        guard s.resizedWidth <= 4096 else { return nil }
        let h = image.height, w = image.width
        let (mean, std) = meanStd(config)
        let out = Act(3, s.paddedHeight, s.paddedWidth, q: q, ws)
        let rc = image.pixels.withUnsafeBufferPointer { px in
            mean.withUnsafeBufferPointer { m in
                std.withUnsafeBufferPointer { sd in
                    em_normalize_resize_pad_rgb8_u8(px.baseAddress, Int32(h), Int32(w), m.baseAddress, sd.baseAddress,
                                                    Int32(s.resizedHeight), Int32(s.resizedWidth),
                                                    Int32(s.paddedHeight), Int32(s.paddedWidth), q.scale, q.zeroPoint,
                                                    out.u8)
                }
            }
        }
        return rc == 0 ? (out, s) : nil
    }
}
