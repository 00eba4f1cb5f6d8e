// Values that cross stage boundaries: images in, detections out.

/// An 8-bit RGB image, interleaved, row-major: pixels[(y * width + x) * 3 + c].
public struct RGBImage {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width; self.height = height; self.pixels = pixels
    }
}

/// A binary instance mask stored only over the image region its pasted box covers (paste output
/// for tests and tools; detections carry RLE, see Detection.mask).
/// bits is row-major [height][width] of 0/1, placed at (x0, y0) in an imageWidth x imageHeight image.
public struct MaskRegion {
    public var x0: Int, y0: Int, width: Int, height: Int
    public var imageWidth: Int, imageHeight: Int
    public var bits: [UInt8]

    public init(x0: Int, y0: Int, width: Int, height: Int, imageWidth: Int, imageHeight: Int, bits: [UInt8]) {
        precondition(bits.count == width * height)
        self.x0 = x0; self.y0 = y0; self.width = width; self.height = height
        self.imageWidth = imageWidth; self.imageHeight = imageHeight; self.bits = bits
    }

    /// Pixel (x, y) in image coordinates.
    @inline(__always) public func contains(x: Int, y: Int) -> Bool {
        let lx = x - x0, ly = y - y0
        return lx >= 0 && ly >= 0 && lx < width && ly < height && bits[ly * width + lx] != 0
    }
}

/// One keypoint of a detection, as torchvision's `heatmaps_to_keypoints` gives it: (x, y) in
/// original image pixels and the heatmap logit at the maximum (`keypoints_scores`). torchvision
/// reports visibility 1 for every keypoint; COCO results carry [x, y, 1] triples.
public struct Keypoint: Equatable, Sendable {
    public var x: Float, y: Float, score: Float
    public init(x: Float, y: Float, score: Float) { self.x = x; self.y = y; self.score = score }
}

/// One detected instance, in original image pixel coordinates.
public struct Detection {
    /// (x1, y1, x2, y2), torchvision convention (no +1).
    public var box: (Float, Float, Float, Float)
    public var score: Float
    /// Class index (for COCO models the COCO category id).
    public var label: Int
    /// The instance mask over the whole image as COCO RLE (column-major runs, Output/RLE.swift),
    /// encoded as soon as it was pasted: a detection never holds a bitmap.
    public var mask: RLE?
    /// A keypoint model's keypoints (torchvision's keypointrcnn: 17 COCO person keypoints), in
    /// the model's keypoint order; nil for models without a keypoint head.
    public var keypoints: [Keypoint]?

    public init(box: (Float, Float, Float, Float), score: Float, label: Int, mask: RLE?,
                keypoints: [Keypoint]? = nil) {
        self.box = box; self.score = score; self.label = label; self.mask = mask
        self.keypoints = keypoints
    }

    /// A detection whose mask is given as a region bitmap (encoded to RLE at once).
    public init(box: (Float, Float, Float, Float), score: Float, label: Int, mask region: MaskRegion) {
        self.init(box: box, score: score, label: label, mask: RLE(region: region))
    }
}
