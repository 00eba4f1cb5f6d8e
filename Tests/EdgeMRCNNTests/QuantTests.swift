import Foundation
import XCTest
@testable import EdgeMRCNN

final class QuantTests: XCTestCase {
    /// Deterministic pseudo-random numbers (xorshift) so the tests do not depend on a seed API.
    struct Rng {
        var s: UInt64
        mutating func next() -> Double {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Double(s >> 11) / Double(1 << 53)
        }
        mutating func gaussian() -> Double {
            let u = max(next(), 1e-12), v = next()
            return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        }
    }

    func testUniformNonNegative() {
        var r = Rng(s: 12345)
        let xs = (0..<100_000).map { _ in Float(r.next()) }
        let o = HistogramObserver()
        o.observe(xs)
        XCTAssertTrue(o.isNonNegative)
        for m in CalibrationMethod.allCases {
            let q = o.qparams(m)
            XCTAssertEqual(q.zeroPoint, 0, "\(m): non-negative tensors get zero point 0")
            let hi = q.scale * 255
            // a uniform distribution has no outliers: every method keeps (nearly) the whole range
            XCTAssertGreaterThan(hi, 0.9, "\(m)")
            XCTAssertLessThanOrEqual(hi, 1.01, "\(m)")
        }
        XCTAssertEqual(o.qparams(.minmax).scale * 255, o.maxValue, accuracy: 1e-6)
    }

    func testGaussianWithOutliers() {
        var r = Rng(s: 987654321)
        let n = 1_000_000
        var xs = (0..<n).map { _ in Float(r.gaussian()) }
        xs += [20, -15]
        let o = HistogramObserver()
        o.observe(xs)
        XCTAssertFalse(o.isNonNegative)
        let mm = o.range(.minmax), pc = o.range(.percentile), ms = o.range(.mse), en = o.range(.entropy)
        XCTAssertEqual(mm.hi, 20); XCTAssertEqual(mm.lo, -15)
        // percentile 99.99 ends near 3.7 sigma
        XCTAssertGreaterThan(pc.hi, 3); XCTAssertLessThan(pc.hi, 5)
        XCTAssertLessThan(pc.lo, -3); XCTAssertGreaterThan(pc.lo, -5)
        // mse and entropy clip the two outliers too (a million in-range values outweigh them)
        XCTAssertLessThan(ms.hi, 10); XCTAssertGreaterThan(ms.hi, 2)
        XCTAssertLessThan(en.hi, 15); XCTAssertGreaterThan(en.hi, 2)
        // measured error: clipped ranges beat minmax
        func mse(_ q: QParams) -> Double {
            var e = 0.0
            for x in xs { let d = Double(q.dequantize(q.quantize(x)) - x); e += d * d }
            return e / Double(xs.count)
        }
        let eMM = mse(o.qparams(.minmax)), eP = mse(o.qparams(.percentile)), eM = mse(o.qparams(.mse))
        XCTAssertLessThan(eP, eMM)
        XCTAssertLessThan(eM, eMM)
        XCTAssertLessThanOrEqual(eM, eP * 1.05, "mse minimises the (estimated) squared error")
        // with far outliers that are frequent enough, mse keeps them (clipping would cost more)
        let o2 = HistogramObserver()
        o2.observe(Array(xs.prefix(200_000)) + [Float](repeating: 100, count: 5))
        XCTAssertGreaterThan(o2.range(.mse).hi, 50)
        XCTAssertLessThan(o2.range(.percentile).hi, 5)
    }

    func testRebinningKeepsCounts() {
        let o = HistogramObserver(bins: 64)
        o.observe((0..<1000).map { Float($0) / 1000 })
        let r1 = o.range
        o.observe((0..<1000).map { Float($0) / 100 - 5 })
        XCTAssertGreaterThan(o.range, 5)
        XCTAssertGreaterThan(o.range, r1)
        XCTAssertEqual(o.count, 2000)
        XCTAssertEqual(o.pos.reduce(0, +) + o.neg.reduce(0, +), 2000)
        XCTAssertEqual(o.minValue, -5)
    }

    func testNonFiniteIsFlagged() {
        let o = HistogramObserver()
        o.observe([1, 2, .nan])
        XCTAssertTrue(o.nonFinite)
        let c = CalibrationObserver()
        var v: [Float] = [1, .infinity]
        v.withUnsafeMutableBufferPointer { c.activation("backbone.body.conv1", $0.baseAddress!, 2) }
        XCTAssertEqual(c.firstNonFinite, "backbone.body.conv1")
    }

    func testQuantizeRoundTripBound() {
        for (lo, hi) in [(Float(0), Float(6)), (-3.5, 7.25), (-1, 0.01), (0, 1e-3)] {
            let q = QParams(lo: lo, hi: hi)
            // zero is exact
            XCTAssertEqual(q.dequantize(q.quantize(0)), 0)
            var x = lo
            let step = (hi - lo) / 997
            while x <= hi {
                let e = abs(q.dequantize(q.quantize(x)) - x)
                XCTAssertLessThanOrEqual(e, q.scale * 0.5 * 1.0001 + 1e-7, "x \(x) in [\(lo), \(hi)]")
                x += step
            }
            // outside the range: clamped to the end
            XCTAssertEqual(q.quantize(hi + 100 * q.scale), 255)
            XCTAssertEqual(q.quantize(lo - 100 * q.scale), 0)
        }
        var buf: [Float] = [0.26, -1, 9]
        QParams(lo: 0, hi: 2.55).fakeQuantize(&buf, 3)
        XCTAssertEqual(buf[0], 0.26, accuracy: 1e-6); XCTAssertEqual(buf[1], 0); XCTAssertEqual(buf[2], 2.55, accuracy: 1e-5)
    }

    func testWeightQuantisationPerChannel() {
        // [2, 1, 1, 3] conv weight: channel scales from each channel's max |w|
        let w: [Float] = [1, -0.5, 0.25, 100, 50, -127]
        let (q, s) = w.withUnsafeBufferPointer { QuantizedModel.quantizeWeights($0.baseAddress!, shape: [2, 1, 1, 3], axis: 0) }
        XCTAssertEqual(s[0], 1 / 127, accuracy: 1e-9); XCTAssertEqual(s[1], 1, accuracy: 1e-6)
        XCTAssertEqual(q, [127, -64, 32, 100, 50, -127])
        // deconv [Cin 2, Cout 1, 1, 2]: channel axis 1
        let d: [Float] = [0.5, -1, 2, 0]
        let (qd, sd) = d.withUnsafeBufferPointer { QuantizedModel.quantizeWeights($0.baseAddress!, shape: [2, 1, 1, 2], axis: 1) }
        XCTAssertEqual(sd.count, 1); XCTAssertEqual(sd[0], 2 / 127, accuracy: 1e-8)
        XCTAssertEqual(qd, [32, -64, 127, 0])
    }

    func testSpecIsConsistent() {
        let spec = QuantSpec(.maskRCNNResNet50FPN(numClasses: 2))
        let acts = Set(spec.activations)
        for l in spec.layers {
            XCTAssertTrue(acts.contains(spec.input(l)), "input of \(l.name)")
            XCTAssertEqual(acts.contains(spec.key(l.name)), !l.floatOutput, l.name)
        }
        XCTAssertEqual(spec.layers.count, 74)
        XCTAssertTrue(acts.contains("backbone.fpn.out") && !acts.contains("backbone.fpn.layer_blocks.0"))
    }

    // ---------------------------------------------------------------- files and the CLI errors

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "quanttest-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func testEmptyFolderAndSingleImageAreErrors() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        XCTAssertThrowsError(try Calibration.run(modelPath: "/nonexistent", imagesDir: d, output: d + "/o.safetensors")) {
            XCTAssertTrue(String(describing: $0).contains("empty"), "\($0)")
        }
        FileManager.default.createFile(atPath: d + "/notes.txt", contents: Data("x".utf8))
        var logged: [String] = []
        XCTAssertThrowsError(try Calibration.run(modelPath: "/nonexistent", imagesDir: d, output: d + "/o.safetensors",
                                                 log: { logged.append($0) })) {
            XCTAssertTrue(String(describing: $0).contains("no .jpg"), "\($0)")
        }
        XCTAssertTrue(logged.contains { $0.contains("notes.txt") })
        FileManager.default.createFile(atPath: d + "/a.jpg", contents: Data([0xFF, 0xD8, 0xFF]))
        XCTAssertThrowsError(try Calibration.run(modelPath: "/nonexistent", imagesDir: d, output: d + "/o.safetensors")) {
            XCTAssertTrue(String(describing: $0).contains("at least 2"), "\($0)")
        }
        XCTAssertThrowsError(try Calibration.run(modelPath: "/nonexistent", imagesDir: d + "/missing", output: d + "/o.safetensors"))
    }

    func testBrokenImagesLeaveTooFew() throws {
        let model = try Shared.require("models/shapes-r50fpn/model.pth")
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        FileManager.default.createFile(atPath: d + "/a.jpg", contents: Data([0xFF, 0xD8, 0xFF]))
        FileManager.default.createFile(atPath: d + "/b.jpg", contents: Data([1, 2, 3]))
        var logged: [String] = []
        XCTAssertThrowsError(try Calibration.run(modelPath: model, imagesDir: d, output: d + "/o.safetensors",
                                                 log: { logged.append($0) })) {
            XCTAssertTrue(String(describing: $0).contains("at least 2 usable"), "\($0)")
        }
        XCTAssertEqual(logged.filter { $0.hasPrefix("skipping") }.count, 2)
    }

    // ---------------------------------------------------------------- a calibrated shapes model

    func iou(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float)) -> Float {
        let ix = max(0, min(a.2, b.2) - max(a.0, b.0)), iy = max(0, min(a.3, b.3) - max(a.1, b.1))
        let inter = ix * iy
        let u = (a.2 - a.0) * (a.3 - a.1) + (b.2 - b.0) * (b.3 - b.1) - inter
        return u > 0 ? inter / u : 0
    }

    func testCalibratedShapesModel() throws {
        let modelPath = try Shared.require("models/shapes-r50fpn/model.pth")
        let calib = try Shared.require("data/shapes-calib/images")
        let val = try Shared.require("data/shapes-val/images")
        let loaded = try ModelLoader.load(path: modelPath)
        let float = try MaskRCNN(store: loaded.store, config: loaded.config, source: modelPath)
        let cal = Calibrator(model: float)
        let files = try Calibration.imageFiles(in: calib, log: { _ in }).prefix(4)
        XCTAssertThrowsError(try cal.quantizedModel(float: loaded.store, method: .percentile, source: "t"))  // no images yet
        for f in files { try cal.add(try loadImage(path: f), name: (f as NSString).lastPathComponent) }

        let q = try cal.quantizedModel(float: loaded.store, method: .percentile, source: modelPath)
        XCTAssertEqual(q.metadata["precision"], "int8")
        XCTAssertEqual(q.metadata["calibration_images"], "4")
        XCTAssertEqual(q.tensor("backbone.body.conv1.packed")?.dtype, .u8)
        XCTAssertNil(q.tensor("backbone.body.conv1.weight"))
        XCTAssertEqual(q.tensor("backbone.body.conv1.bias")?.dtype, .i32)
        XCTAssertEqual(q.tensor("act.input.zero_point")?.dtype, .i32)

        // write / read round trip and determinism
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        try SafeTensorsWriter.write(q, metadata: q.metadata, to: d + "/a.safetensors")
        let q2 = try cal.quantizedModel(float: loaded.store, method: .percentile, source: modelPath)
        try SafeTensorsWriter.write(q2, metadata: q2.metadata, to: d + "/b.safetensors")
        let da = try Data(contentsOf: URL(fileURLWithPath: d + "/a.safetensors"))
        let db = try Data(contentsOf: URL(fileURLWithPath: d + "/b.safetensors"))
        XCTAssertEqual(da, db, "same calibration -> byte-identical files")
        let read = try ModelLoader.load(path: d + "/a.safetensors")
        XCTAssertEqual(read.config.numClasses, 4)
        XCTAssertEqual(Set(read.store.names), Set(q.names))
        for n in q.names {
            let a = q.tensor(n)!, b = read.store.tensor(n)!
            XCTAssertEqual(a.dtype, b.dtype, n); XCTAssertEqual(a.shape, b.shape, n)
            XCTAssertEqual(memcmp(a.data, b.data, a.byteCount), 0, n)
        }
        let text = try ModelConverter.describe(path: d + "/a.safetensors")
        XCTAssertTrue(text.contains("precision: int8") && text.contains("float layers: none"), text)

        // Two comparisons on the first three shapes-val images, every detection scored above 0.3.
        // Measured on this model (2026-11, avx512vnni): int8 vs float, 28 detections, median
        // IoU 0.98, worst 0.54, scores within 0.093; int8 vs simulated, 28 detections, median IoU
        // 0.993, 25 of 28 at IoU >= 0.98, worst 0.66, scores within 0.026.
        let int8 = try MaskRCNN(store: read.store, config: read.config, source: d + "/a.safetensors")
        XCTAssertEqual(int8.precision, "int8")
        setenv("EDGE_MRCNN_INT8", "simulate", 1)
        defer { unsetenv("EDGE_MRCNN_INT8") }
        let sim = try MaskRCNN(store: read.store, config: read.config, source: d + "/a.safetensors")
        unsetenv("EDGE_MRCNN_INT8")
        XCTAssertEqual(sim.precision, "int8 (simulated)")
        var vsFloat: [Match] = [], vsSim: [Match] = []
        for valFile in try Calibration.imageFiles(in: val, log: { _ in }).prefix(3) {
            let image = try loadImage(path: valFile)
            let fd = try float.detect(image), qd = try int8.detect(image), sd = try sim.detect(image)
            XCTAssertFalse(fd.isEmpty, valFile)
            vsFloat += fd.filter { $0.score > 0.3 }.map { best($0, in: qd) }
            XCTAssertEqual(qd.filter { $0.score > 0.3 }.count, sd.filter { $0.score > 0.3 }.count, "int8 vs simulated: \(valFile)")
            vsSim += qd.filter { $0.score > 0.3 }.map { best($0, in: sd) }
        }
        print("QUANT int8 vs float: \(summary(vsFloat))")
        print("QUANT int8 vs simulated: \(summary(vsSim))")
        // (a) int8 vs float, an accuracy bound against an independent reference (the float pipeline,
        // which ParityTests holds to torchvision). Quantisation error is real here (uint8
        // activations, 4 calibration images, a weak 4-class model whose low-scored boxes sit
        // among overlapping candidates, so NMS may keep a neighbour), hence: the typical
        // (median) box must agree to IoU 0.95, none may be lost (IoU >= 0.5 with a same-label
        // detection) and no score may move by more than 0.15. This catches a wrong scale, zero
        // point, layer wiring or requantisation (an output zero point one step off in every conv
        // drops the median IoU to 0.86); it cannot see an isolated one-step rounding difference.
        XCTAssertGreaterThanOrEqual(vsFloat.count, 10)
        XCTAssertGreaterThanOrEqual(median(vsFloat.map(\.iou)), 0.95, "int8 vs float: \(summary(vsFloat))")
        XCTAssertGreaterThanOrEqual(vsFloat.map(\.iou).min() ?? 0, 0.5, "int8 vs float: \(summary(vsFloat))")
        XCTAssertLessThanOrEqual(vsFloat.map(\.dScore).max() ?? 1, 0.15, "int8 vs float: \(summary(vsFloat))")
        // (b) int8 kernels vs the same quantised network simulated on the float kernels
        // (dequantised weights, every activation rounded to its uint8 grid): NOT an independent
        // reference (both use the same quantisation parameters), but two implementations of one
        // arithmetic. Each layer differs only where the simulation's float arithmetic rounds an
        // activation to the neighbouring uint8 step, but such flips propagate through the 50-odd
        // layers: measured on P2 of shapes_777_00001 (the 100-image percentile model), 59% of
        // the elements differ by one step or more, 11% by two or more, at most 6 steps, and no
        // RPN proposal is identical. (Whether the first layers already differ more often than
        // float rounding explains is not checked here: a per-layer comparison would tell.) The
        // boxes still move by a fraction of a pixel, except where NMS keeps a different one of
        // two overlapping candidates. So:
        // the same number of detections, median IoU >= 0.98, at least 85% of them at IoU >= 0.95,
        // none below 0.6, scores within 0.04. A wrong requantisation, zero point or
        // kernel in either path breaks this.
        XCTAssertGreaterThanOrEqual(vsSim.count, 10)
        XCTAssertGreaterThanOrEqual(median(vsSim.map(\.iou)), 0.98, "int8 vs simulated: \(summary(vsSim))")
        XCTAssertGreaterThanOrEqual(Float(vsSim.filter { $0.iou >= 0.95 }.count), 0.85 * Float(vsSim.count),
                                    "int8 vs simulated: \(summary(vsSim))")
        XCTAssertGreaterThanOrEqual(vsSim.map(\.iou).min() ?? 0, 0.6, "int8 vs simulated: \(summary(vsSim))")
        XCTAssertLessThanOrEqual(vsSim.map(\.dScore).max() ?? 1, 0.04, "int8 vs simulated: \(summary(vsSim))")
    }

    struct Match { var iou: Float, dScore: Float }

    func median(_ xs: [Float]) -> Float {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    func summary(_ ms: [Match]) -> String {
        "\(ms.count) detections, median IoU \(median(ms.map(\.iou))), \(ms.filter { $0.iou >= 0.95 }.count) at IoU >= 0.95, "
            + "worst IoU \(ms.map(\.iou).min() ?? 0), largest score difference \(ms.map(\.dScore).max() ?? 0)"
    }

    /// The same-label detection of `ds` that overlaps `f` most, and its score difference.
    func best(_ f: Detection, in ds: [Detection]) -> Match {
        var m = Match(iou: 0, dScore: 1)
        for d in ds where d.label == f.label {
            let v = iou(d.box, f.box)
            if v > m.iou { m = Match(iou: v, dScore: abs(d.score - f.score)) }
        }
        return m
    }
}
