// A torchvision checkpoint holds weights only: the transform sizes and class names it was trained
// with are constructor arguments that the .pth does not record. As torchvision's own weight enums
// do, edge-mrcnn carries a small table of known checkpoints (recognised by SHA-256) with that
// metadata, so that `detect --model X.pth` runs a known checkpoint as it was meant to run.
// Command-line flags still override, and unknown checkpoints get the torchvision defaults.
#if canImport(Glibc)
import Glibc
#endif
import CShim

public struct KnownCheckpoint {
    public let name: String
    /// Lower-case hex SHA-256 of the file, or a prefix of it (torchvision names its downloads
    /// with the first 8 hex digits of their SHA-256 and checks only those).
    public let sha256Prefix: String
    public let minSize: Int
    public let maxSize: Int
    public let classNames: [String]
    public let architecture: Architecture

    public init(name: String, sha256Prefix: String, minSize: Int, maxSize: Int, classNames: [String],
                architecture: Architecture = .maskrcnnV1) {
        self.name = name; self.sha256Prefix = sha256Prefix; self.minSize = minSize; self.maxSize = maxSize
        self.classNames = classNames; self.architecture = architecture
    }
}

public enum KnownCheckpoints {
    public static let all: [KnownCheckpoint] = [
        KnownCheckpoint(
            name: "torchvision maskrcnn_resnet50_fpn COCO v1 (maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth)",
            sha256Prefix: "bf2d0c1e", minSize: 800, maxSize: 1333,
            classNames: ModelConfig.cocoCategoryNames),
        KnownCheckpoint(
            name: "torchvision fasterrcnn_resnet50_fpn COCO v1 (fasterrcnn_resnet50_fpn_coco-258fb6c6.pth)",
            sha256Prefix: "258fb6c6", minSize: 800, maxSize: 1333,
            classNames: ModelConfig.cocoCategoryNames, architecture: .fasterrcnnV1),
        KnownCheckpoint(
            name: "torchvision maskrcnn_resnet50_fpn_v2 COCO (maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth)",
            sha256Prefix: "73cbd019", minSize: 800, maxSize: 1333,
            classNames: ModelConfig.cocoCategoryNames, architecture: .maskrcnnV2),
        KnownCheckpoint(
            name: "torchvision fasterrcnn_resnet50_fpn_v2 COCO (fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth)",
            sha256Prefix: "dd69338a", minSize: 800, maxSize: 1333,
            classNames: ModelConfig.cocoCategoryNames, architecture: .fasterrcnnV2),
        KnownCheckpoint(
            name: "torchvision keypointrcnn_resnet50_fpn COCO (keypointrcnn_resnet50_fpn_coco-fc266e95.pth)",
            sha256Prefix: "fc266e95", minSize: 800, maxSize: 1333,
            classNames: ["__background__", "person"], architecture: .keypointrcnnV1),
        KnownCheckpoint(
            name: "shapes-r50fpn (synthetic shapes test model)",
            sha256Prefix: "265dd4e0b3c510aab54b4059325e41807b66092d9873134d3d0760c873f883cb",
            minSize: 256, maxSize: 416,
            classNames: ["__background__", "circle", "square", "triangle"]),
    ]

    public static func match(sha256 hex: String) -> KnownCheckpoint? {
        all.first { hex.hasPrefix($0.sha256Prefix) }
    }

    /// Lower-case hex SHA-256 of a file's bytes.
    public static func sha256(ofFile path: String) throws -> String {
        guard let f = fopen(path, "rb") else {
            throw EdgeError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var state = em_sha256()
        em_sha256_init(&state)
        let chunk = 1 << 20
        let buf = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = fread(buf, 1, chunk, f)
            if n > 0 { em_sha256_update(&state, buf, n) }
            if n < chunk {
                if ferror(f) != 0 { throw EdgeError(file: path, "read error") }
                break
            }
        }
        return hex(finishing: &state)
    }

    /// Lower-case hex SHA-256 of bytes in memory.
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> String {
        var state = em_sha256()
        em_sha256_init(&state)
        if let base = bytes.baseAddress, bytes.count > 0 { em_sha256_update(&state, base, bytes.count) }
        return hex(finishing: &state)
    }

    private static func hex(finishing state: inout em_sha256) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        em_sha256_final(&state, &digest)
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for b in digest { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
