// Mask arithmetic of COCO evaluation, following pycocotools' maskApi.c (the specification):
// polygon -> RLE (rleFrPoly: vertices scaled by 5, edges walked one unit step at a time,
// x-boundary crossings downsampled back to pixel columns), box -> RLE (rleFrBbox), union of
// RLEs (rleMerge), RLE IoU with the crowd rule (rleIou), box IoU (bbIou).
// See notes/formats.md §5. RLE itself (codec, area, toBbox) lives in Output/RLE.swift.

public enum MaskOps {
    /// Largest |coordinate| accepted in a polygon (pycocotools works in C int after ×5; far
    /// outside any image a polygon only costs time, so such input is refused).
    public static let maxCoordinate = 10_000_000.0

    /// The RLE of one polygon [x0,y0,x1,y1,...] (k = count/2 vertices, a trailing odd value is
    /// ignored as pycocotools does) in an h×w image, byte-identical to pycocotools rleFrPoly.
    /// Throws for non-finite or absurdly large coordinates and for an empty polygon.
    public static func rleFromPolygon(_ xy: [Double], height h: Int, width w: Int) throws -> RLE {
        let k = xy.count / 2
        guard k >= 1 else { throw EdgeError("polygon with fewer than 2 coordinates") }
        guard h >= 0, w >= 0 else { throw EdgeError("negative image size \(h)x\(w)") }
        for v in xy where !(v.isFinite && abs(v) <= maxCoordinate) {
            throw EdgeError("polygon coordinate \(v) is not a finite number within ±\(Int(maxCoordinate))")
        }
        let scale = 5.0
        var xs = [Int](repeating: 0, count: k + 1), ys = [Int](repeating: 0, count: k + 1)
        for j in 0..<k {
            xs[j] = Int(scale * xy[2 * j] + 0.5)      // C (int) cast: truncation toward zero
            ys[j] = Int(scale * xy[2 * j + 1] + 0.5)
        }
        xs[k] = xs[0]; ys[k] = ys[0]

        // Walk the edges point by point; look at each consecutive pair (u,v) as it is produced
        // (pycocotools stores all points first; only neighbours matter, so streaming is the same).
        var bounds: [Int] = []   // x*h + y of the kept boundary points
        var havePrev = false
        var pu = 0, pv = 0
        let wm1 = Double(w - 1), hd = Double(h)
        @inline(__always) func visit(_ u: Int, _ v: Int) {
            if havePrev && u != pu {
                var xd = Double(u < pu ? u : u - 1)
                xd = (xd + 0.5) / scale - 0.5
                if xd.rounded(.down) == xd && xd >= 0 && xd <= wm1 {
                    var yd = Double(v < pv ? v : pv)
                    yd = (yd + 0.5) / scale - 0.5
                    if yd < 0 { yd = 0 } else if yd > hd { yd = hd }
                    yd = yd.rounded(.up)
                    bounds.append(Int(xd) * h + Int(yd))
                }
            }
            pu = u; pv = v; havePrev = true
        }
        for j in 0..<k {
            var xs0 = xs[j], xe = xs[j + 1], ys0 = ys[j], ye = ys[j + 1]
            let dx = abs(xe - xs0), dy = abs(ys0 - ye)
            let flip = (dx >= dy && xs0 > xe) || (dx < dy && ys0 > ye)
            if flip { swap(&xs0, &xe); swap(&ys0, &ye) }
            if dx >= dy {
                let s = dx == 0 ? 0.0 : Double(ye - ys0) / Double(dx)
                for d in 0...dx {
                    let t = flip ? dx - d : d
                    visit(t + xs0, Int(Double(ys0) + s * Double(t) + 0.5))
                }
            } else {
                let s = Double(xe - xs0) / Double(dy)
                for d in 0...dy {
                    let t = flip ? dy - d : d
                    visit(Int(Double(xs0) + s * Double(t) + 0.5), t + ys0)
                }
            }
        }
        bounds.append(h * w)
        bounds.sort()
        // Differences, then merge zero-length runs exactly as maskApi.c does.
        var p = 0
        for j in 0..<bounds.count { let t = bounds[j]; bounds[j] -= p; p = t }
        var counts: [Int] = []
        counts.reserveCapacity(bounds.count)
        var j = 0
        counts.append(bounds[j]); j += 1
        while j < bounds.count {
            if bounds[j] > 0 {
                counts.append(bounds[j]); j += 1
            } else {
                j += 1
                if j < bounds.count { counts[counts.count - 1] += bounds[j]; j += 1 }
            }
        }
        return RLE(height: h, width: w, counts: counts)
    }

    /// The RLE of a box [x, y, w, h] (pycocotools rleFrBbox: the polygon of its four corners).
    public static func rleFromBox(_ bb: [Double], height h: Int, width w: Int) throws -> RLE {
        guard bb.count == 4 else { throw EdgeError("a box needs 4 numbers, got \(bb.count)") }
        let xs = bb[0], xe = bb[0] + bb[2], ys = bb[1], ye = bb[1] + bb[3]
        return try rleFromPolygon([xs, ys, xs, ye, xe, ye, xe, ys], height: h, width: w)
    }

    /// Union (or intersection) of RLEs of one size (pycocotools rleMerge). Sizes that differ give
    /// an empty 0x0 RLE, as in pycocotools.
    public static func merge(_ rles: [RLE], intersect: Bool = false) -> RLE {
        guard let first = rles.first else { return RLE(height: 0, width: 0, counts: []) }
        if rles.count == 1 { return first }
        let h = first.height, w = first.width
        var cnts = first.counts
        for i in 1..<rles.count {
            let B = rles[i]
            if B.height != h || B.width != w { return RLE(height: 0, width: 0, counts: []) }
            let A = cnts
            if A.isEmpty || B.counts.isEmpty { return RLE(height: h, width: w, counts: []) }
            var out: [Int] = []
            out.reserveCapacity(A.count + B.counts.count)
            var ca = A[0], cb = B.counts[0]
            var v = false, va = false, vb = false
            var a = 1, b = 1, cc = 0, ct = 1
            while ct > 0 {
                let c = min(ca, cb)
                cc += c; ct = 0
                ca -= c; if ca == 0 && a < A.count { ca = A[a]; a += 1; va = !va }; ct += ca
                cb -= c; if cb == 0 && b < B.counts.count { cb = B.counts[b]; b += 1; vb = !vb }; ct += cb
                let vp = v
                v = intersect ? (va && vb) : (va || vb)
                if v != vp || ct == 0 { out.append(cc); cc = 0 }
            }
            cnts = out
        }
        return RLE(height: h, width: w, counts: cnts)
    }

    /// Box IoU of [x,y,w,h] boxes (pycocotools bbIou): no +1; a crowd gt divides by the dt area.
    @inline(__always)
    public static func boxIoU(_ d: (Double, Double, Double, Double), _ g: (Double, Double, Double, Double), crowd: Bool) -> Double {
        let w = min(d.2 + d.0, g.2 + g.0) - max(d.0, g.0)
        if w <= 0 { return 0 }
        let h = min(d.3 + d.1, g.3 + g.1) - max(d.1, g.1)
        if h <= 0 { return 0 }
        let i = w * h
        let da = d.2 * d.3
        let u = crowd ? da : da + g.2 * g.3 - i
        return i / u
    }

    /// Mask IoU (pycocotools rleIou): computed only when the rleToBbox boxes overlap; −1 when the
    /// sizes differ; 0 when the intersection is empty; a crowd gt divides by the dt area.
    public static func maskIoU(_ dt: RLE, _ gt: RLE, crowd: Bool,
                               dtBox: (Double, Double, Double, Double), gtBox: (Double, Double, Double, Double)) -> Double {
        if boxIoU(dtBox, gtBox, crowd: crowd) <= 0 { return 0 }
        if dt.height != gt.height || dt.width != gt.width { return -1 }
        let A = dt.counts, B = gt.counts
        if A.isEmpty || B.isEmpty { return 0 }
        var ca = A[0], cb = B[0]
        var va = false, vb = false
        var a = 1, b = 1, inter = 0, uni = 0, ct = 1
        while ct > 0 {
            let c = min(ca, cb)
            if va || vb { uni += c; if va && vb { inter += c } }
            ct = 0
            ca -= c; if ca == 0 && a < A.count { ca = A[a]; a += 1; va = !va }; ct += ca
            cb -= c; if cb == 0 && b < B.count { cb = B[b]; b += 1; vb = !vb }; ct += cb
        }
        if inter == 0 { uni = 1 } else if crowd { uni = dt.area }
        return Double(inter) / Double(uni)
    }

    /// rleToBbox as doubles.
    @inline(__always)
    public static func box(of r: RLE) -> (Double, Double, Double, Double) {
        let b = r.bbox
        return (Double(b.x), Double(b.y), Double(b.w), Double(b.h))
    }
}
