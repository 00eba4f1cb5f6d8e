// JSON Lines results (`detect --jsonl`): one JSON object per image or frame, on one line, written
// as soon as that image is done (a long run is usable while it runs; a killed run keeps its lines):
//   {"frame":1,"file_name":"a.jpg","time_ms":412.5,"detections":[<results JSON objects>]}
//   {"frame":2,"file_name":"-","error":"frame 2: truncated frame: ..."}
// The detection objects are exactly those of the results JSON (ResultsJSON.object). "frame" is
// the 1-based position of the image in the run (for standard input: of the frame in the stream).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum JSONLines {
    /// The line of an image that was processed (with its newline).
    public static func detections(frame: Int, fileName: String, imageId: Int, timeMs: Double, detections: [Detection],
                                  classNames: [String], extra: [(key: String, value: String)] = []) throws -> String {
        var s = "{\"frame\":\(frame),\"file_name\":\(ResultsJSON.string(fileName)),\"time_ms\":\(milliseconds(timeMs))"
        for (k, v) in extra { s += ",\(ResultsJSON.string(k)):\(v)" }
        s += ",\"detections\":["
        for (i, d) in detections.enumerated() {
            if i > 0 { s += "," }
            s += try ResultsJSON.object(d, imageId: imageId, fileName: fileName,
                                        categoryName: ResultsJSON.categoryName(d.label, classNames: classNames))
        }
        return s + "]}\n"
    }

    /// The line of an image or frame that failed (with its newline).
    public static func error(frame: Int, fileName: String, message: String, extra: [(key: String, value: String)] = []) -> String {
        var s = "{\"frame\":\(frame),\"file_name\":\(ResultsJSON.string(fileName))"
        for (k, v) in extra { s += ",\(ResultsJSON.string(k)):\(v)" }
        return s + ",\"error\":\(ResultsJSON.string(message))}\n"
    }

    /// Milliseconds with one decimal (a JSON number).
    static func milliseconds(_ v: Double) -> String {
        guard v.isFinite, v >= 0 else { return "0.0" }
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// Writes whole lines to a file descriptor at once (write(2), no buffering), so that each line
/// is visible as soon as it is written and a reader never sees half a line from a finished write.
public final class LineWriter {
    public let name: String
    private var fd: Int32
    private let owned: Bool

    /// Standard output (not closed by this writer).
    public init(standardOutput: ()) { name = "standard output"; fd = 1; owned = false }

    /// Creates or truncates `path`.
    public init(path: String) throws {
        name = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        owned = true
        if fd < 0 { throw EdgeError(file: path, "cannot create: \(LocalFile.errnoText())") }
    }

    deinit { if owned && fd >= 0 { _ = Glibc.close(fd) } }

    public func write(_ line: String) throws {
        var t = line
        try t.withUTF8 { u in
            guard var p = u.baseAddress else { return }
            var left = u.count
            while left > 0 {
                let n = Glibc.write(fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw EdgeError(file: name, "write failed: \(LocalFile.errnoText())")
                }
                left -= n
                p += n
            }
        }
    }

    /// Closes the file (standard output stays open); reports a failed close.
    public func close() throws {
        guard owned, fd >= 0 else { return }
        let rc = Glibc.close(fd)
        fd = -1
        if rc != 0 { throw EdgeError(file: name, "cannot close: \(LocalFile.errnoText())") }
    }
}
