// Read-only memory mapping of a file, and bounds-checked byte access over any byte range.
// Nothing here ever reads outside the mapping, whatever the bytes of a header claim.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The text of the current errno.
func errnoText() -> String {
    let e = errno
    if let s = strerror(e) { return String(cString: s) }
    return "errno \(e)"
}

/// A whole file mapped read-only (PROT_READ, MAP_PRIVATE). The mapping lives as long as the object.
public final class MappedFile {
    public let path: String
    public let count: Int
    private let base: UnsafeMutableRawPointer?

    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw EdgeError(file: path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw EdgeError(file: path, "cannot stat: \(errnoText())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw EdgeError(file: path, "not a regular file") }
        self.path = path
        let size = Int(st.st_size)
        if size <= 0 {
            base = nil; count = 0
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw EdgeError(file: path, "cannot map \(size) bytes: \(errnoText())")
        }
        base = p
        count = size
    }

    deinit { if let base { munmap(base, count) } }

    /// All bytes of the file.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: base == nil ? 0 : count) }

    /// Lets the kernel drop the resident pages of [p, p + n) that lie wholly inside the mapping
    /// (the data stays readable: a later read faults the page in again from the file). Used by
    /// the .pth loader once a tensor has been copied, so the file and its folded copy are not
    /// both resident. Pointers outside the mapping are ignored.
    public func dropPages(_ p: UnsafeRawPointer, count n: Int) {
        guard let base, n > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = max(Int(bitPattern: p), Int(bitPattern: base)), hi = min(Int(bitPattern: p) + n, Int(bitPattern: base) + count)
        let a = (lo + page - 1) / page * page, b = hi / page * page
        if b > a, let q = UnsafeMutableRawPointer(bitPattern: a) { _ = madvise(q, b - a, MADV_DONTNEED) }
    }

    /// All of the file's resident pages (see dropPages).
    public func dropAllPages() { if let base { dropPages(base, count: count) } }

    /// A bounds-checked span over the whole file; errors name `path`.
    public var span: ByteSpan { ByteSpan(bytes, source: path) }
}

/// A bounds-checked window of bytes. Every accessor throws an EdgeError naming `source` when the
/// requested range does not lie inside the window.
public struct ByteSpan {
    public let raw: UnsafeRawBufferPointer
    public let source: String

    public init(_ raw: UnsafeRawBufferPointer, source: String) { self.raw = raw; self.source = source }

    public var count: Int { raw.count }

    /// True when [offset, offset+length) lies inside the span (no overflow possible).
    @inline(__always) public func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= raw.count && length <= raw.count - offset
    }

    public func check(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String) throws {
        if !contains(offset, length) {
            throw EdgeError(file: source, "truncated or corrupt file: \(what()) needs bytes \(offset)..<\(offset &+ length) "
                + "but only \(raw.count) are available")
        }
    }

    public func u8(_ o: Int, _ what: @autoclosure () -> String = "a field") throws -> UInt8 {
        try check(o, 1, what()); return raw[o]
    }
    public func u16(_ o: Int, _ what: @autoclosure () -> String = "a field") throws -> UInt16 {
        try check(o, 2, what()); return UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))
    }
    public func u32(_ o: Int, _ what: @autoclosure () -> String = "a field") throws -> UInt32 {
        try check(o, 4, what()); return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))
    }
    public func u64(_ o: Int, _ what: @autoclosure () -> String = "a field") throws -> UInt64 {
        try check(o, 8, what()); return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self))
    }

    /// A sub-span [offset, offset+length).
    public func slice(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String = "a range") throws -> ByteSpan {
        try check(offset, length, what())
        return ByteSpan(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), source: source)
    }

    /// The bytes [offset, offset+length) as a String (UTF-8, invalid sequences repaired).
    public func string(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String = "a string") throws -> String {
        try check(offset, length, what())
        return String(decoding: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), as: UTF8.self)
    }

    /// Does the span start with `prefix`?
    public func hasPrefix(_ prefix: [UInt8]) -> Bool {
        guard raw.count >= prefix.count else { return false }
        for i in 0..<prefix.count where raw[i] != prefix[i] { return false }
        return true
    }
}
