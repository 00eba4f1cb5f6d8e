// Self-checks of the int8 quantisation (no files): parameters, round trip, calibration methods,
// the layer table.

extension SelfTest {
    static var quantChecks: [SelfCheck] {
        [
            SelfCheck("quant: qparams round trip") {
                let q = QParams(lo: -2, hi: 6)
                try expect(q.dequantize(q.quantize(0)) == 0, "zero is exact")
                var x: Float = -2
                while x <= 6 {
                    let e = abs(q.dequantize(q.quantize(x)) - x)
                    try expect(e <= q.scale * 0.5001, "error \(e) at \(x) above half a step \(q.scale / 2)")
                    x += 0.013
                }
                try expect(QParams(lo: 0.5, hi: 3).zeroPoint == 0, "non-negative range -> zero point 0")
            },
            SelfCheck("quant: calibration methods clip outliers") {
                // a triangle-ish bulk in [-1, 1] plus one far outlier
                var xs: [Float] = []
                for i in 0..<20_000 { xs.append(Float(i % 200) / 100 - 1) }
                xs.append(50)
                let o = HistogramObserver()
                o.observe(xs)
                try expect(o.range(.minmax).hi == 50, "minmax keeps the outlier")
                for m in [CalibrationMethod.percentile, .entropy] {
                    let r = o.range(m)
                    try expect(r.hi < 10 && r.hi > 0.5 && r.lo < -0.5, "\(m.rawValue) range [\(r.lo), \(r.hi)]")
                }
                // mse weighs the outlier's clipping error against the step size of the bulk
                let mm = o.range(.minmax), ms = o.range(.mse)
                try expect(o.quantizationError(lo: ms.lo, hi: ms.hi) <= o.quantizationError(lo: mm.lo, hi: mm.hi),
                           "mse range [\(ms.lo), \(ms.hi)] has no smaller error than minmax")
            },
            SelfCheck("quant: per-activation method choice (--method auto)") {
                // the lowest error wins, ties go to the default, NaN loses, no errors: the default
                let c = MethodChoice.choose(activations: ["a", "b", "c", "d"], errors: [
                    "a": [.percentile: 0.02, .minmax: 0.01, .entropy: 0.03, .mse: 0.01],
                    "b": [.percentile: 0.01, .minmax: 0.01, .entropy: 0.01, .mse: 0.01],
                    "c": [.percentile: .nan, .minmax: 0.7, .mse: 0.5]])
                try expect(c == ["a": .minmax, "b": .percentile, "c": .mse, "d": .percentile], "choice \(c)")
                try expect(MethodChoice.summary(c) == "percentile 2, minmax 1, mse 1", MethodChoice.summary(c))
                try expect(MethodChoice.parse("input: mse; backbone.body.conv1: minmax; x: bogus") == ["input": .mse, "backbone.body.conv1": .minmax],
                           "calibration_methods metadata parse")
            },
            SelfCheck("quant: layer table") {
                let spec = QuantSpec(.maskRCNNResNet50FPN(numClasses: 2))
                let acts = Set(spec.activations)
                for l in spec.layers {
                    try expect(acts.contains(spec.input(l)), "input of \(l.name) has parameters")
                }
                try expect(spec.layers.count == 74, "74 weight layers, got \(spec.layers.count)")
                // the architecture family: every weight layer's input gets parameters
                for a in Architecture.allCases where !a.hasKeypoints {
                    let s = QuantSpec(try Network.build(a, numClasses: 91))
                    let acts = Set(s.activations)
                    for l in s.layers { try expect(acts.contains(s.input(l)), "\(a.rawValue): input of \(l.name) has parameters") }
                }
            },
        ]
    }
}
