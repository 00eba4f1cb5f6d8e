// Zip archive reader (central directory; classic and ZIP64 end records and extra fields), enough
// for torch.save files: STORED entries only. All offsets and sizes are validated against the file.

public struct ZipEntry {
    public let name: String
    public let method: UInt16
    public let flags: UInt16
    public let compressedSize: Int
    public let size: Int
    public let localHeaderOffset: Int
}

public final class ZipArchive {
    public let span: ByteSpan
    /// Entries in central-directory order.
    public let entries: [ZipEntry]
    private let index: [String: Int]

    public static let localMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    public init(_ span: ByteSpan) throws {
        self.span = span
        let n = span.count
        func fail(_ p: String) -> EdgeError { EdgeError(file: span.source, "not a valid zip file: \(p)") }
        guard n >= 22 else { throw fail("too short (\(n) bytes) for an end-of-central-directory record") }

        // Find the classic end record, searching backwards over a possible comment (≤ 65535 bytes).
        var eocd = -1
        var pos = n - 22
        let lowest = max(0, n - 22 - 65535)
        while pos >= lowest {
            if span.raw[pos] == 0x50 && span.raw[pos + 1] == 0x4B && span.raw[pos + 2] == 0x05 && span.raw[pos + 3] == 0x06 {
                eocd = pos; break
            }
            pos -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record (truncated file?)") }
        var entryCount = Int(try span.u16(eocd + 10, "end record"))
        var cdSize = Int(try span.u32(eocd + 12, "end record"))
        var cdOffset = Int(try span.u32(eocd + 16, "end record"))
        var cdLimit = eocd

        // ZIP64: locator just before the classic record.
        if eocd >= 20, try span.u32(eocd - 20) == 0x07064B50 {
            let recOff64 = try span.u64(eocd - 20 + 8, "zip64 locator")
            guard recOff64 <= UInt64(eocd - 20) else { throw fail("zip64 locator points past its own position") }
            let rec = Int(recOff64)
            guard try span.u32(rec, "zip64 end record") == 0x06064B50 else { throw fail("bad zip64 end record signature") }
            try span.check(rec, 56, "zip64 end record")
            let c64 = try span.u64(rec + 32), s64 = try span.u64(rec + 40), o64 = try span.u64(rec + 48)
            guard c64 <= UInt64(n), s64 <= UInt64(n), o64 <= UInt64(n) else { throw fail("zip64 end record sizes exceed the file") }
            entryCount = Int(c64); cdSize = Int(s64); cdOffset = Int(o64)
            cdLimit = rec
        }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw fail("central directory (offset \(cdOffset), size \(cdSize)) lies outside the file")
        }
        guard entryCount <= cdSize / 46 else { throw fail("entry count \(entryCount) does not fit a central directory of \(cdSize) bytes") }

        var list: [ZipEntry] = []
        list.reserveCapacity(entryCount)
        var idx: [String: Int] = [:]
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for i in 0..<entryCount {
            guard p <= cdEnd - 46 else { throw fail("central directory entry \(i) runs past the directory") }
            guard try span.u32(p) == 0x02014B50 else { throw fail("bad central directory signature for entry \(i)") }
            let flags = try span.u16(p + 8)
            let method = try span.u16(p + 10)
            var csize = UInt64(try span.u32(p + 20))
            var usize = UInt64(try span.u32(p + 24))
            let nameLen = Int(try span.u16(p + 28))
            let extraLen = Int(try span.u16(p + 30))
            let commentLen = Int(try span.u16(p + 32))
            var local = UInt64(try span.u32(p + 42))
            let total = 46 + nameLen + extraLen + commentLen
            guard total <= cdEnd - p else { throw fail("central directory entry \(i) runs past the directory") }
            let name = try span.string(p + 46, nameLen)
            // ZIP64 extended information (id 0x0001): only fields whose 32-bit value is 0xFFFFFFFF.
            var e = p + 46 + nameLen
            let eEnd = e + extraLen
            while e + 4 <= eEnd {
                let id = try span.u16(e), len = Int(try span.u16(e + 2))
                guard e + 4 + len <= eEnd else { throw fail("extra field of '\(name)' runs past its entry") }
                if id == 0x0001 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF { guard f + 8 <= e + 4 + len else { throw fail("short zip64 field in '\(name)'") }; usize = try span.u64(f); f += 8 }
                    if csize == 0xFFFF_FFFF { guard f + 8 <= e + 4 + len else { throw fail("short zip64 field in '\(name)'") }; csize = try span.u64(f); f += 8 }
                    if local == 0xFFFF_FFFF { guard f + 8 <= e + 4 + len else { throw fail("short zip64 field in '\(name)'") }; local = try span.u64(f); f += 8 }
                }
                e += 4 + len
            }
            guard csize <= UInt64(n), usize <= UInt64(n) * 1032, local <= UInt64(n) else {
                throw fail("entry '\(name)' has sizes or offset beyond the file")
            }
            if idx[name] == nil { idx[name] = list.count }
            list.append(ZipEntry(name: name, method: method, flags: flags, compressedSize: Int(csize),
                                 size: Int(usize), localHeaderOffset: Int(local)))
            p += total
        }
        entries = list
        index = idx
    }

    public func entry(_ name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    /// The stored bytes of an entry (a view into the archive, no copy).
    public func data(_ e: ZipEntry) throws -> ByteSpan {
        let src = span.source
        if e.flags & 1 != 0 { throw EdgeError(file: src, "zip entry '\(e.name)' is encrypted") }
        if e.method != 0 {
            throw EdgeError(file: src, "zip entry '\(e.name)' is compressed (method \(e.method)); compressed entries are not supported")
        }
        if e.compressedSize != e.size {
            throw EdgeError(file: src, "zip entry '\(e.name)' is stored but its sizes differ (\(e.compressedSize) vs \(e.size))")
        }
        let o = e.localHeaderOffset
        guard try span.u32(o, "local header of '\(e.name)'") == 0x04034B50 else {
            throw EdgeError(file: src, "zip entry '\(e.name)': bad local header signature at offset \(o)")
        }
        let nameLen = Int(try span.u16(o + 26, "local header of '\(e.name)'"))
        let extraLen = Int(try span.u16(o + 28, "local header of '\(e.name)'"))
        let start = o + 30 + nameLen + extraLen
        return try span.slice(start, e.size, "data of zip entry '\(e.name)'")
    }
}
