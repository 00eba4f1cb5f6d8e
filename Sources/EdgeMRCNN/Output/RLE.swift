// COCO run-length encoding (RLE) of binary masks, as pycocotools' maskApi.c defines it:
// runs over the image flattened column-major (x outer, y inner), alternating 0,1,0,... and
// starting with zeros; and the compressed string form ("counts" in results JSON), byte-identical
// to pycocotools `mask.encode`. See notes/formats.md §5.

public struct RLE: Equatable {
    /// Image height and width (COCO "size" is [h, w]).
    public var height: Int
    public var width: Int
    /// Run lengths; even indices are zero runs, odd indices one runs. They sum to height * width.
    public var counts: [Int]

    public init(height: Int, width: Int, counts: [Int]) {
        self.height = height; self.width = width; self.counts = counts
    }

    /// Number of set pixels (sum of the odd-indexed counts).
    public var area: Int {
        var a = 0
        var i = 1
        while i < counts.count { a += counts[i]; i += 2 }
        return a
    }

    /// The bounding box [x, y, w, h] as pycocotools' rleToBbox computes it (integers; all 0 for an
    /// empty mask). A one-run that wraps from one column into the next widens the box to the full
    /// image height, exactly as pycocotools does.
    public var bbox: (x: Int, y: Int, w: Int, h: Int) {
        let h = height
        let m = (counts.count / 2) * 2
        if m == 0 || h <= 0 { return (0, 0, 0, 0) }
        var xs = width, ys = h, xe = 0, ye = 0
        var cc = 0
        var xp = 0
        for j in 0..<m {
            cc += counts[j]
            let t = cc - (j % 2)
            if t < 0 { continue }  // a zero-length first one-run: pycocotools would underflow here
            let y = t % h
            let x = (t - y) / h
            if j % 2 == 0 {
                xp = x
            } else if xp < x {
                ys = 0; ye = h - 1
            }
            xs = min(xs, x); xe = max(xe, x); ys = min(ys, y); ye = max(ye, y)
        }
        if xe < xs || ye < ys { return (0, 0, 0, 0) }
        return (xs, ys, xe - xs + 1, ye - ys + 1)
    }

    // MARK: - encoding masks

    /// Encodes a mask region placed in its full image without materialising the full mask.
    /// Region pixels outside the image are ignored.
    public init(region r: MaskRegion) {
        let ok = r.width >= 0 && r.height >= 0 && r.bits.count >= r.width * r.height
        self = r.bits.withUnsafeBufferPointer { bits in
            RLE(regionBits: ok ? bits : UnsafeBufferPointer(start: nil, count: 0), x0: r.x0, y0: r.y0,
                width: r.width, height: r.height, imageWidth: r.imageWidth, imageHeight: r.imageHeight)
        }
    }

    /// Encodes a region bitmap (row-major [height][width], nonzero = set, at least width * height
    /// bytes; fewer encodes an empty mask) placed at (x0, y0) in an imageWidth x imageHeight image.
    /// Pixels outside the image are ignored. This is the encoder of every pasted mask: detect
    /// pastes each mask into one reusable buffer and encodes it here at once (Stages/Paste.swift).
    public init(regionBits bits: UnsafeBufferPointer<UInt8>, x0: Int, y0: Int, width: Int, height: Int,
                imageWidth: Int, imageHeight: Int) {
        let H = max(imageHeight, 0), W = max(imageWidth, 0)
        var b = RunBuilder()
        // Clip the region to the image.
        let cx0 = max(x0, 0), cx1 = min(x0 + width, W)
        let cy0 = max(y0, 0), cy1 = min(y0 + height, H)
        if cx1 <= cx0 || cy1 <= cy0 || width <= 0 || height <= 0 || bits.count < width * height
            || bits.baseAddress == nil {
            b.add(0, H * W)
        } else {
            let base = bits.baseAddress!
            let n = cy1 - cy0
            b.add(0, cx0 * H)
            for x in cx0..<cx1 {
                b.add(0, cy0)
                // Walk the column (stride `width`) one run at a time.
                var p = base + ((cy0 - y0) * width + (x - x0))
                var y = 0
                while y < n {
                    let v = p.pointee != 0
                    var e = y + 1
                    p += width
                    while e < n && (p.pointee != 0) == v {
                        e += 1
                        p += width
                    }
                    b.add(v ? 1 : 0, e - y)
                    y = e
                }
                b.add(0, H - cy1)
            }
            b.add(0, (W - cx1) * H)
        }
        self.init(height: H, width: W, counts: b.finish())
    }

    /// Encodes a full mask given row-major [height][width] (nonzero = set). Straightforward
    /// reference encoder, used by tests and for small masks.
    public init(rowMajor mask: [UInt8], height: Int, width: Int) {
        var b = RunBuilder()
        for x in 0..<max(width, 0) {
            for y in 0..<max(height, 0) {
                let i = y * width + x
                b.add(i < mask.count && mask[i] != 0 ? 1 : 0, 1)
            }
        }
        self.init(height: max(height, 0), width: max(width, 0), counts: b.finish())
    }

    /// The full mask, row-major [height][width] of 0/1 (tests; small images).
    public func rowMajorMask() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: height * width)
        var pos = 0
        let total = height * width
        for (i, c) in counts.enumerated() {
            if i % 2 == 1 {
                var p = pos
                let end = min(pos + c, total)
                while p < end {
                    let x = p / height, y = p % height
                    out[y * width + x] = 1
                    p += 1
                }
            }
            pos += c
        }
        return out
    }

    /// Calls `body(x, y0, y1)` for every vertical run of set pixels: rows y0..<y1 of column x, in
    /// column-major order. Runs are cut at column ends; nothing is materialised. Counts that run
    /// past height * width are ignored.
    public func forEachColumnRun(_ body: (_ x: Int, _ y0: Int, _ y1: Int) -> Void) {
        let h = height, total = height * width
        guard h > 0, total > 0 else { return }
        var pos = 0
        var i = 0
        while i < counts.count && pos < total {
            let c = max(counts[i], 0)
            if i % 2 == 1 && c > 0 {
                var p = pos
                let end = min(pos + c, total)
                while p < end {
                    let x = p / h, y = p - x * h
                    let y1 = min(h, y + (end - p))
                    body(x, y, y1)
                    p += y1 - y
                }
            }
            pos += c
            i += 1
        }
    }

    /// Whether pixel (x, y) is set (a linear walk over the runs: tests, small checks).
    public func contains(x: Int, y: Int) -> Bool {
        guard x >= 0, y >= 0, x < width, y < height else { return false }
        let target = x * height + y
        var pos = 0
        for (i, c) in counts.enumerated() {
            if target < pos + c { return i % 2 == 1 }
            pos += c
        }
        return false
    }

    // MARK: - compressed string codec

    /// The compressed "counts" string (pycocotools rleToString).
    public var compressedString: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(counts.count * 2)
        for i in 0..<counts.count {
            var x = counts[i]
            if i > 2 { x -= counts[i - 2] }
            var more = true
            while more {
                var c = x & 0x1f
                x >>= 5  // arithmetic shift (Int is signed)
                more = (c & 0x10) != 0 ? (x != -1) : (x != 0)
                if more { c |= 0x20 }
                bytes.append(UInt8(c + 48))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses a compressed counts string (pycocotools rleFrString). Throws on characters outside
    /// '0'...'o', a truncated final count, negative runs, or counts that do not sum to h * w.
    public init(height: Int, width: Int, compressed s: String) throws {
        var counts: [Int] = []
        var x = 0, k = 0
        var inCount = false
        for ch in s.utf8 {
            guard ch >= 48 && ch <= 111 else {
                throw EdgeError("RLE counts: invalid character \(JSON.describeByte(ch))")
            }
            let c = Int(ch) - 48
            guard k < 13 else { throw EdgeError("RLE counts: a count is too long") }
            x |= (c & 0x1f) << (5 * k)
            k += 1
            inCount = true
            if c & 0x20 == 0 {
                if c & 0x10 != 0 { x |= -1 << (5 * k) }
                if counts.count > 2 {
                    let (s, o) = x.addingReportingOverflow(counts[counts.count - 2])
                    guard !o else { throw EdgeError("RLE counts: run length \(counts.count + 1) overflows") }
                    x = s
                }
                guard x >= 0 else { throw EdgeError("RLE counts: negative run length \(x)") }
                counts.append(x)
                x = 0; k = 0; inCount = false
            }
        }
        if inCount { throw EdgeError("RLE counts: the string ends inside a count") }
        var total = 0
        for c in counts {
            let (s, o) = total.addingReportingOverflow(c)
            guard !o else { throw EdgeError("RLE counts: runs sum to more than \(Int.max)") }
            total = s
        }
        let (area, ao) = height.multipliedReportingOverflow(by: width)
        guard height >= 0, width >= 0, !ao, total == area else {
            throw EdgeError("RLE counts: runs sum to \(total), expected \(height)x\(width) = \(height * width)")
        }
        self.init(height: height, width: width, counts: counts)
    }
}

/// Accumulates alternating runs (0 first) from a stream of (value, length) pieces.
struct RunBuilder {
    private(set) var counts: [Int] = []
    private var current: UInt8 = 0
    private var run = 0

    @inline(__always) mutating func add(_ value: UInt8, _ n: Int) {
        if n <= 0 { return }
        if value != current {
            counts.append(run)
            current = value
            run = 0
        }
        run += n
    }

    mutating func finish() -> [Int] {
        // pycocotools emits the last run even when the mask is empty ([h*w]); an empty image
        // (h*w = 0) gives [0].
        counts.append(run)
        let out = counts
        counts = []; run = 0; current = 0
        return out
    }
}
