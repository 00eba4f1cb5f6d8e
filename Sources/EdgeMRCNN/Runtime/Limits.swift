// Limits that protect a small board from hostile or merely huge inputs: image pixels (checked
// from the JPEG header, before any pixel is decoded), detections per image, and the memory one
// image will need (decoded image + activations + weights), checked before the image is decoded.
// Each violation is a one-line EdgeError naming the file.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShim

/// torchvision's box_detections_per_img.
public let defaultMaxDetections = 100
/// The largest --max-detections accepted.
public let maxMaxDetections = 1000

/// The limits of one run (CLI flags; defaults protect the machine the binary runs on).
public struct RunLimits: Equatable {
    /// Images with more pixels are refused before decoding (`--max-pixels`).
    public var maxPixels: Int
    /// Detections kept per image, best scores first (`--max-detections`).
    public var maxDetections: Int
    /// Bytes one image may need (`--max-memory MB`); nil: the machine's physical memory.
    public var maxMemoryBytes: Int?

    public init(maxPixels: Int = defaultMaxPixels, maxDetections: Int = defaultMaxDetections, maxMemoryBytes: Int? = nil) {
        self.maxPixels = maxPixels; self.maxDetections = maxDetections; self.maxMemoryBytes = maxMemoryBytes
    }

    /// The memory limit in force: the flag, else the physical memory (nil if unknown).
    public var effectiveMemoryLimit: Int? { maxMemoryBytes ?? MemoryPlan.physicalMemory() }
}

/// A conservative estimate of the memory one image needs, made before it is decoded.
public struct MemoryPlan: Equatable {
    /// Decoded RGB (C buffer + Swift copy) and the normalised float image at full resolution.
    public var imageBytes: Int
    /// Activations of the network at the padded model input size.
    public var activationBytes: Int
    /// Weights (mapped or owned by the model).
    public var weightBytes: Int
    public var total: Int { imageBytes + activationBytes + weightBytes }

    /// Bytes per pixel of the original image: 3 (libjpeg) + 3 (RGBImage) + 12 (normalised f32).
    public static let imageBytesPerPixel = 18
    /// Bytes of live activations per pixel of the padded input (float pipeline: stem and C2/P2
    /// maps at 1/2 and 1/4 resolution, the FPN pyramid, RPN head and im2col scratch), an upper
    /// bound measured from peak RSS minus the weights at 800x1088 and 256x352.
    public static let activationBytesPerPaddedPixel = 1100

    public static func estimate(width w: Int, height h: Int, config: ModelConfig, weightBytes: Int) -> MemoryPlan {
        let px = w.multipliedReportingOverflow(by: h)
        let imagePixels = px.overflow ? Int.max / 64 : px.partialValue
        let s = Transform.sizes(height: max(h, 1), width: max(w, 1), minSize: config.minSize, maxSize: config.maxSize)
        let padded = s.paddedHeight * s.paddedWidth
        return MemoryPlan(imageBytes: imagePixels.multipliedReportingOverflow(by: imageBytesPerPixel).overflow
                              ? Int.max / 4 : imagePixels * imageBytesPerPixel,
                          activationBytes: padded * activationBytesPerPaddedPixel,
                          weightBytes: weightBytes)
    }

    /// Physical memory of the machine (sysconf), nil if unknown.
    public static func physicalMemory() -> Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        let (b, o) = pages.multipliedReportingOverflow(by: size)
        return o ? nil : b
    }

    /// Sum of the byte sizes of every tensor of `store`.
    public static func weightBytes(_ store: TensorStore) -> Int {
        var n = 0
        for name in store.names { if let t = store.tensor(name) { n += t.byteCount } }
        return n
    }

    public static func megabytes(_ b: Int) -> String { "\((b + (1 << 20) - 1) >> 20) MB" }
}

/// Checks an image file against the limits from its JPEG header alone (no pixel decoded):
/// pixel count, then the memory plan for `config`. Throws a one-line EdgeError naming `path`.
public func checkImageLimits(path: String, limits: RunLimits, config: ModelConfig, weightBytes: Int) throws {
    let (w, h) = try jpegSize(path: path)
    let (px, o) = w.multipliedReportingOverflow(by: h)
    if o || px > limits.maxPixels {
        throw EdgeError(file: path, "image too large: \(w)x\(h) = \(px) pixels exceeds the limit of \(limits.maxPixels) (--max-pixels)")
    }
    guard let limit = limits.effectiveMemoryLimit else { return }
    let plan = MemoryPlan.estimate(width: w, height: h, config: config, weightBytes: weightBytes)
    if plan.total > limit {
        let s = Transform.sizes(height: h, width: w, minSize: config.minSize, maxSize: config.maxSize)
        throw EdgeError(file: path, "needs about \(MemoryPlan.megabytes(plan.total)) (image \(w)x\(h) \(MemoryPlan.megabytes(plan.imageBytes)), "
            + "activations at \(s.paddedWidth)x\(s.paddedHeight) \(MemoryPlan.megabytes(plan.activationBytes)), "
            + "weights \(MemoryPlan.megabytes(plan.weightBytes))), more than the limit of \(MemoryPlan.megabytes(limit)) "
            + (limits.maxMemoryBytes == nil ? "(physical memory; --max-memory MB)" : "(--max-memory)"))
    }
}

/// Width and height of a JPEG file from its frame header.
public func jpegSize(path: String) throws -> (width: Int, height: Int) {
    var w: Int32 = 0, h: Int32 = 0
    var err = [CChar](repeating: 0, count: 512)
    let rc = err.withUnsafeMutableBufferPointer { e in em_jpeg_size_file(path, &w, &h, e.baseAddress, Int32(e.count)) }
    if rc != 0 {
        let bytes = err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let s = String(decoding: bytes, as: UTF8.self)
        throw EdgeError(file: path, s.isEmpty ? "cannot read the JPEG header" : String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 }))
    }
    return (Int(w), Int(h))
}
