// Output files appear whole or not at all: everything is written to "<path>.tmp-<pid>", which is
// renamed over <path> only once it is complete; on any error the temporary file is removed.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class AtomicFile {
    public let path: String
    public let tempPath: String
    private var fd: Int32
    private var done = false

    /// Creates the temporary file next to `path`.
    public init(path: String) throws {
        self.path = path
        self.tempPath = AtomicFile.temporaryName(for: path)
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw EdgeError(file: path, "cannot create \(tempPath): \(LocalFile.errnoText())") }
    }

    deinit { if !done { abort() } }

    public static func temporaryName(for path: String) -> String { "\(path).tmp-\(getpid())" }

    public func write(_ text: String) throws {
        var t = text
        try t.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !done, fd >= 0 else { throw EdgeError(file: path, "write after the file was closed") }
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                let msg = LocalFile.errnoText()
                abort()
                throw EdgeError(file: path, "write failed: \(msg)")
            }
            left -= n
            p += n
        }
    }

    /// Flushes the data to disk, closes and renames the file into place.
    public func commit() throws {
        guard !done else { throw EdgeError(file: path, "already closed") }
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            let msg = LocalFile.errnoText(); abort()
            throw EdgeError(file: path, "cannot flush: \(msg)")
        }
        if close(fd) != 0 {
            let msg = LocalFile.errnoText(); fd = -1; abort()
            throw EdgeError(file: path, "cannot close: \(msg)")
        }
        fd = -1
        if rename(tempPath, path) != 0 {
            let msg = LocalFile.errnoText(); abort()
            throw EdgeError(file: path, "cannot rename \(tempPath) into place: \(msg)")
        }
        done = true
    }

    /// Discards the temporary file (idempotent).
    public func abort() {
        if done { return }
        done = true
        if fd >= 0 { close(fd); fd = -1 }
        unlink(tempPath)
    }

    /// Writes `path` atomically with whatever `body` writes to the temporary path (for writers
    /// that take a path, such as the JPEG encoder). The temporary file is removed on error.
    public static func write(path: String, _ body: (_ tempPath: String) throws -> Void) throws {
        let tmp = temporaryName(for: path)
        do {
            try body(tmp)
        } catch {
            unlink(tmp)
            throw error
        }
        if rename(tmp, path) != 0 {
            let msg = LocalFile.errnoText()
            unlink(tmp)
            throw EdgeError(file: path, "cannot rename \(tmp) into place: \(msg)")
        }
    }

    /// Writes a whole string atomically.
    public static func write(path: String, contents: String) throws {
        let f = try AtomicFile(path: path)
        try f.write(contents)
        try f.commit()
    }
}

/// Small file helpers (no Foundation).
public enum LocalFile {
    public static func errnoText() -> String { String(cString: strerror(errno)) }

    /// The whole content of a regular file.
    public static func readBytes(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw EdgeError(file: path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw EdgeError(file: path, "cannot stat: \(errnoText())") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw EdgeError(file: path, "is a folder, not a file") }
        var out = [UInt8]()
        out.reserveCapacity(max(Int(st.st_size), 0))
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw EdgeError(file: path, "read failed: \(errnoText())")
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    public enum Kind { case missing, file, directory, other }

    public static func kind(_ path: String) -> Kind {
        var st = stat()
        if stat(path, &st) != 0 { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// Names in a folder (no "." and ".."), sorted by their bytes.
    public static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else { throw EdgeError(file: dir, "cannot open folder: \(errnoText())") }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: &e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// Whether two paths name the same existing file.
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Creates a folder if it does not exist yet (one level).
    public static func makeDirectory(_ path: String) throws {
        switch kind(path) {
        case .directory: return
        case .missing:
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw EdgeError(file: path, "cannot create folder: \(errnoText())")
            }
        default: throw EdgeError(file: path, "exists and is not a folder")
        }
    }
}
