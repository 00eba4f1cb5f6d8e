// Limits that protect a small board from hostile or merely huge inputs: image pixels (checked
// from the JPEG header, before any pixel is decoded), detections per image, and memory: before
// an image is decoded, its decoded pixels plus the model's weights must fit the budget
// (--max-memory, default the physical memory); the arena planner then checks weights + planned
// activations before the model runs (MaskRCNN.maxMemoryBytes). Each violation is a one-line
// EdgeError naming the file.
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
    /// The memory budget in bytes (`--max-memory MB`); nil: the machine's physical memory.
    public var maxMemoryBytes: Int?

    public init(maxPixels: Int = defaultMaxPixels, maxDetections: Int = defaultMaxDetections, maxMemoryBytes: Int? = nil) {
        self.maxPixels = maxPixels; self.maxDetections = maxDetections; self.maxMemoryBytes = maxMemoryBytes
    }

    /// The memory limit in force: the flag, else the physical memory (nil if unknown).
    public var effectiveMemoryLimit: Int? { maxMemoryBytes ?? MemoryPlan.physicalMemory() }
}

/// What an image needs before the network runs, known from its header alone.
public struct MemoryPlan: Equatable {
    /// The decoded RGB image: the libjpeg buffer and its RGBImage copy.
    public var imageBytes: Int
    /// Weights (mapped or owned by the model).
    public var weightBytes: Int
    public var total: Int { imageBytes &+ weightBytes }

    /// Bytes per pixel of the original image while it is decoded: 3 (libjpeg) + 3 (RGBImage).
    /// (Normalise, resize and pad are fused into the padded model input, planned by the arena.)
    public static let imageBytesPerPixel = 6

    public static func estimate(width w: Int, height h: Int, weightBytes: Int) -> MemoryPlan {
        let (px, o1) = max(w, 0).multipliedReportingOverflow(by: max(h, 0))
        let (b, o2) = px.multipliedReportingOverflow(by: imageBytesPerPixel)
        return MemoryPlan(imageBytes: o1 || o2 ? Int.max / 4 : b, weightBytes: weightBytes)
    }

    /// Physical memory of the machine (sysconf), nil if unknown.
    public static func physicalMemory() -> Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        let (b, o) = pages.multipliedReportingOverflow(by: size)
        return o ? nil : b
    }

    public static func megabytes(_ b: Int) -> String { "\((b + (1 << 19)) >> 20) MB" }
}

/// Checks an image file against the limits from its JPEG header alone (no pixel decoded):
/// pixel count, then decoded image + weights against the memory budget. Throws a one-line
/// EdgeError naming `path`.
public func checkImageLimits(path: String, limits: RunLimits, weightBytes: Int) throws {
    let (w, h) = try jpegSize(path: path)
    try checkImageLimits(name: path, width: w, height: h, limits: limits, weightBytes: weightBytes)
}

/// The checks of `checkImageLimits(path:...)` for an image of `width` x `height` (from a header
/// read elsewhere, e.g. a frame in memory); errors name `name`.
public func checkImageLimits(name path: String, width w: Int, height h: Int, limits: RunLimits, weightBytes: Int) throws {
    let (px, o) = w.multipliedReportingOverflow(by: h)
    if o || px > limits.maxPixels {
        throw EdgeError(file: path, "image too large: \(w)x\(h) = \(px) pixels exceeds the limit of \(limits.maxPixels) (--max-pixels)")
    }
    guard let limit = limits.effectiveMemoryLimit else { return }
    let plan = MemoryPlan.estimate(width: w, height: h, weightBytes: weightBytes)
    if plan.total > limit {
        throw EdgeError(file: path, "image \(w)x\(h) needs \(MemoryPlan.megabytes(plan.imageBytes)) decoded, with the weights "
            + "(\(MemoryPlan.megabytes(plan.weightBytes))) more than the limit of \(MemoryPlan.megabytes(limit)) "
            + (limits.maxMemoryBytes == nil ? "(the physical memory; see --max-memory MB)" : "(--max-memory)"))
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
