// torchvision transform.postprocess: boxes rescaled to the original image with float32 ratios
// (orig / resized per axis), then paste_masks_in_image; masks thresholded at 0.5 and kept only
// over the box-sized region they cover (MaskRegion), never as full-image planes.

import CShim

enum Paste {
    /// Boxes (resized coordinates, flat) -> original-image boxes (flat).
    static func rescale(_ boxes: [Float], sizes s: ImageSizes) -> [Float] {
        let rh = s.ratioHeight, rw = s.ratioWidth
        var out = boxes
        for i in stride(from: 0, to: boxes.count, by: 4) {
            out[i] = boxes[i] * rw; out[i + 1] = boxes[i + 1] * rh
            out[i + 2] = boxes[i + 2] * rw; out[i + 3] = boxes[i + 3] * rh
        }
        return out
    }

    /// One 28x28 probability map pasted for an original-image box.
    static func mask(_ probs: UnsafePointer<Float>, size m: Int, box: [Float], imageHeight h: Int,
                     imageWidth w: Int, threshold: Float = 0.5) -> MaskRegion {
        var x0: Int32 = 0, y0: Int32 = 0, rw: Int32 = 0, rh: Int32 = 0
        box.withUnsafeBufferPointer { b in
            em_paste_mask_region(b.baseAddress, Int32(m), Int32(h), Int32(w), &x0, &y0, &rw, &rh)
        }
        var bits = [UInt8](repeating: 0, count: Int(rw) * Int(rh))
        if rw > 0 && rh > 0 {
            box.withUnsafeBufferPointer { b in
                bits.withUnsafeMutableBufferPointer { o in
                    em_paste_mask_f32(probs, Int32(m), b.baseAddress, Int32(h), Int32(w), threshold, o.baseAddress)
                }
            }
        }
        return MaskRegion(x0: Int(x0), y0: Int(y0), width: Int(rw), height: Int(rh), imageWidth: w,
                          imageHeight: h, bits: bits)
    }
}
