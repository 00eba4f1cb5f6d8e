// Calibration statistics of one activation tensor and the choice of its uint8 quantisation range.
//
// HistogramObserver keeps the exact min and max and two histograms (negative and positive values,
// by magnitude) of `bins` bins over [0, R); when a value beyond R arrives, R doubles and adjacent
// bins merge pairwise (no second pass over the images). CalibrationMethod picks [lo, hi] from it;
// QParams turns [lo, hi] into asymmetric uint8 (scale, zero point) with 0 exactly representable and
// zero point 0 for non-negative tensors.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum CalibrationMethod: String, CaseIterable, Sendable {
    case minmax, percentile, entropy, mse

    /// The method used when none is given (best AP on shapes-val, see the quant report).
    public static let defaultMethod = CalibrationMethod.percentile
}

/// Asymmetric uint8 parameters: real = scale * (q - zeroPoint).
public struct QParams: Equatable, Sendable {
    public var scale: Float
    public var zeroPoint: Int32

    public init(scale: Float, zeroPoint: Int32) { self.scale = scale; self.zeroPoint = zeroPoint }

    /// The range [lo, hi] widened to contain 0; zero point 0 when lo >= 0. A degenerate range
    /// (all zeros) gets scale 1.
    public init(lo: Float, hi: Float) {
        let l = min(lo, 0), h = max(hi, 0)
        var s = (h - l) / 255
        if !(s > 0) || !s.isFinite { s = l == h ? 1 : Float.leastNormalMagnitude }
        var z = (-l / s).rounded(.toNearestOrEven)
        z = min(max(z, 0), 255)
        scale = s; zeroPoint = Int32(z)
    }

    @inline(__always) public func quantize(_ x: Float) -> UInt8 {
        var v = (x * (1 / scale)).rounded(.toNearestOrEven)
        if v.isNaN { return 0 }
        v = min(max(v, -16_777_216), 16_777_216)
        return UInt8(clamping: Int32(v) + zeroPoint)
    }

    @inline(__always) public func dequantize(_ q: UInt8) -> Float { Float(Int32(q) - zeroPoint) * scale }

    /// x -> dequantize(quantize(x)) in place.
    public func fakeQuantize(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let inv = 1 / scale, s = scale, z = Float(zeroPoint)
        for i in 0..<n {
            var v = (p[i] * inv).rounded(.toNearestOrEven)
            if v.isNaN { v = -z }
            v = min(max(v + z, 0), 255)
            p[i] = (v - z) * s
        }
    }
}

public final class HistogramObserver {
    public let bins: Int
    /// Magnitude histograms of negative and positive values over [0, range); zeros count as positive.
    public private(set) var neg: [Double]
    public private(set) var pos: [Double]
    public private(set) var range: Float = 0
    public private(set) var minValue: Float = .infinity
    public private(set) var maxValue: Float = -.infinity
    public private(set) var count: Int = 0
    /// Set when a NaN or an infinity was seen.
    public private(set) var nonFinite = false

    public init(bins: Int = 2048) {
        self.bins = max(bins, 8)
        neg = [Double](repeating: 0, count: self.bins)
        pos = [Double](repeating: 0, count: self.bins)
    }

    public func observe(_ values: [Float]) {
        values.withUnsafeBufferPointer { observe($0.baseAddress!, $0.count) }
    }

    public func observe(_ p: UnsafePointer<Float>, _ n: Int) {
        if n <= 0 { return }
        var lo = Float.infinity, hi = -Float.infinity
        for i in 0..<n {
            let v = p[i]
            if !v.isFinite { nonFinite = true; return }
            lo = min(lo, v); hi = max(hi, v)
        }
        minValue = min(minValue, lo); maxValue = max(maxValue, hi)
        count += n
        let m = max(-lo, hi)
        if m >= range { grow(to: m) }
        let perBin = Float(bins) / range
        let last = bins - 1
        neg.withUnsafeMutableBufferPointer { nb in
            pos.withUnsafeMutableBufferPointer { pb in
                for i in 0..<n {
                    let v = p[i]
                    if v < 0 { nb[min(Int(-v * perBin), last)] += 1 } else { pb[min(Int(v * perBin), last)] += 1 }
                }
            }
        }
    }

    /// Doubles the range until m < range, merging bin pairs each time.
    private func grow(to m: Float) {
        if range == 0 {
            range = m > 0 ? m * 1.0001 : 1e-8
            if m >= range { range = m + Float.leastNormalMagnitude }
            return
        }
        while m >= range {
            for h in 0..<2 {
                var a = h == 0 ? neg : pos
                for i in 0..<(bins / 2) { a[i] = a[2 * i] + a[2 * i + 1] }
                for i in (bins / 2)..<bins { a[i] = 0 }
                if h == 0 { neg = a } else { pos = a }
            }
            range *= 2
        }
    }

    public var isNonNegative: Bool { count == 0 || minValue >= 0 }
    public var binWidth: Float { range / Float(bins) }

    // ------------------------------------------------------------------ range selection

    /// The uint8 parameters chosen by `method` (percentile P in (0, 100]).
    public func qparams(_ method: CalibrationMethod, percentile: Double = 99.99) -> QParams {
        let (lo, hi) = self.range(method, percentile: percentile)
        return QParams(lo: lo, hi: hi)
    }

    public func range(_ method: CalibrationMethod, percentile: Double = 99.99) -> (lo: Float, hi: Float) {
        if count == 0 { return (0, 0) }
        switch method {
        case .minmax: return (min(minValue, 0), max(maxValue, 0))
        case .percentile: return percentileRange(percentile)
        case .entropy: return entropyRange()
        case .mse: return mseRange()
        }
    }

    /// Signed value at the start (upper: end) of histogram position j of the joint histogram
    /// ordered from the most negative bin to the most positive one.
    private func percentileRange(_ p: Double) -> (lo: Float, hi: Float) {
        let total = Double(count)
        let tail = total * max(0, min(100, 100 - p)) / 100
        let w = binWidth
        // upper end: walk down the positive bins
        var hi = max(maxValue, 0)
        var acc = 0.0
        for i in stride(from: bins - 1, through: 0, by: -1) {
            acc += pos[i]
            if acc > tail { hi = min(Float(i + 1) * w, hi); break }
        }
        var lo = min(minValue, 0)
        acc = 0
        if minValue < 0 {
            for i in stride(from: bins - 1, through: 0, by: -1) {
                acc += neg[i]
                if acc > tail { lo = max(-Float(i + 1) * w, lo); break }
            }
        }
        return (lo, hi)
    }

    /// Expected squared quantisation error of the histogram for the range [lo, hi] (in-range
    /// values: step^2 / 12; clipped values: the squared clipping distance from the bin centre).
    public func quantizationError(lo: Float, hi: Float) -> Double {
        let q = QParams(lo: lo, hi: hi)
        let s = Double(q.scale)
        let rlo = Double(0 - q.zeroPoint) * s, rhi = Double(255 - q.zeroPoint) * s
        let w = Double(binWidth)
        let inRange = s * s / 12
        var err = 0.0
        for i in 0..<bins {
            let c = (Double(i) + 0.5) * w
            if pos[i] > 0 { err += pos[i] * (c > rhi ? (c - rhi) * (c - rhi) : inRange) }
            if neg[i] > 0 { err += neg[i] * (-c < rlo ? (rlo + c) * (rlo + c) : inRange) }
        }
        return err
    }

    /// Minimises quantizationError: per side, a search over 256 clipping points, two rounds of
    /// coordinate descent.
    private func mseRange() -> (lo: Float, hi: Float) {
        var lo = min(minValue, 0), hi = max(maxValue, 0)
        let hiMax = hi, loMin = lo
        let steps = 256
        for _ in 0..<2 {
            if hiMax > 0 {
                var best = quantizationError(lo: lo, hi: hi), bestHi = hi
                for k in 1...steps {
                    let h = hiMax * Float(k) / Float(steps)
                    let e = quantizationError(lo: lo, hi: h)
                    if e < best { best = e; bestHi = h }
                }
                hi = bestHi
            }
            if loMin < 0 {
                var best = quantizationError(lo: lo, hi: hi), bestLo = lo
                for k in 1...steps {
                    let l = loMin * Float(k) / Float(steps)
                    let e = quantizationError(lo: l, hi: hi)
                    if e < best { best = e; bestLo = l }
                }
                lo = bestLo
            }
        }
        return (lo, hi)
    }

    /// TensorRT-style entropy calibration on the magnitude histogram: the threshold T whose
    /// clipped distribution (outliers added to the last bin) quantised to L levels has the least
    /// KL divergence from the reference; L = 255 for non-negative tensors, 127 otherwise.
    private func entropyRange() -> (lo: Float, hi: Float) {
        var mag = [Double](repeating: 0, count: bins)
        for i in 0..<bins { mag[i] = pos[i] + neg[i] }
        let levels = isNonNegative ? 255 : 127
        var lastNonZero = 0
        for i in 0..<bins where mag[i] > 0 { lastNonZero = i }
        let n = lastNonZero + 1
        if n <= levels {
            return (min(minValue, 0), max(maxValue, 0))
        }
        var bestT = n, bestKL = Double.infinity
        var stepT = max(1, (n - levels) / 256)
        if stepT < 1 { stepT = 1 }
        var t = levels
        var p = [Double](repeating: 0, count: n)
        var q = [Double](repeating: 0, count: n)
        while t <= n {
            // reference: first t bins, outliers folded into the last one
            var outliers = 0.0
            for i in t..<n { outliers += mag[i] }
            for i in 0..<t { p[i] = mag[i] }
            p[t - 1] += outliers
            // candidate: the first t bins merged into `levels` groups, spread over non-empty bins
            for i in 0..<t { q[i] = 0 }
            for g in 0..<levels {
                let a = g * t / levels, b = (g + 1) * t / levels
                var sum = 0.0, nz = 0
                for i in a..<b { sum += mag[i]; if mag[i] > 0 { nz += 1 } }
                if nz == 0 { continue }
                let v = sum / Double(nz)
                for i in a..<b where mag[i] > 0 { q[i] = v }
            }
            var ps = 0.0, qs = 0.0
            for i in 0..<t { ps += p[i]; qs += q[i] }
            var kl = 0.0
            if ps > 0 && qs > 0 {
                for i in 0..<t where p[i] > 0 {
                    let pi = p[i] / ps
                    let qi = q[i] > 0 ? q[i] / qs : 1e-12
                    kl += pi * log(pi / qi)
                }
            }
            if kl < bestKL { bestKL = kl; bestT = t }
            if t == n { break }
            t = min(t + stepT, n)
        }
        let thr = Float(bestT) * binWidth
        return (max(min(minValue, 0), -thr), min(max(maxValue, 0), thr))
    }
}
