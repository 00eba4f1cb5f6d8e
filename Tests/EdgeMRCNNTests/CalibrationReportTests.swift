import Foundation
import XCTest
@testable import EdgeMRCNN

/// The calibration report's arithmetic, the accuracy guard's stepping, bias correction, and the
/// errors of the new `calibrate` options.
final class CalibrationReportTests: XCTestCase {
    func testSQNRAndCosine() {
        var e = ErrorStats()
        XCTAssertNil(e.sqnrDB)
        XCTAssertNil(e.cosine)
        e.add(reference: [1, 2, 3, 4], [1.1, 1.9, 3.1, 3.9])
        // signal 30, noise 4 * 0.01 -> 10 log10(750)
        XCTAssertEqual(e.sqnrDB!, 10 * log10(30 / 0.04), accuracy: 1e-4)
        let dot = 1.1 + 3.8 + 9.3 + 15.6, nx = 1.21 + 3.61 + 9.61 + 15.21
        XCTAssertEqual(e.cosine!, dot / (30.0.squareRoot() * nx.squareRoot()), accuracy: 1e-6)
        // accumulates over tensors: a second, exact tensor adds signal, no noise
        e.add(reference: [2, 2], [2, 2])
        XCTAssertEqual(e.sqnrDB!, 10 * log10(38 / 0.04), accuracy: 1e-4)
        XCTAssertEqual(e.count, 6)

        var exact = ErrorStats()
        exact.add(reference: [1, -2], [1, -2])
        XCTAssertEqual(exact.sqnrDB, .infinity)
        XCTAssertEqual(exact.cosine!, 1, accuracy: 1e-12)
        var flipped = ErrorStats()
        flipped.add(reference: [1, -2], [-1, 2])
        XCTAssertEqual(flipped.cosine!, -1, accuracy: 1e-12)
        XCTAssertEqual(flipped.sqnrDB!, 10 * log10(5.0 / 20.0), accuracy: 1e-9)
        var zeros = ErrorStats()
        zeros.add(reference: [0, 0], [0, 0])
        XCTAssertEqual(zeros.cosine, 1)
    }

    func testDetectionAgreement() {
        func det(_ b: (Float, Float, Float, Float), _ s: Float, _ l: Int) -> Detection {
            Detection(box: b, score: s, label: l, mask: nil)
        }
        var a = DetectionAgreement()
        let f = [det((0, 0, 10, 10), 0.9, 1), det((20, 20, 30, 30), 0.8, 2), det((50, 50, 60, 60), 0.3, 1)]
        // the first moves by one pixel (IoU 81/119), the second changes class, a low one is ignored
        let q = [det((1, 0, 11, 10), 0.85, 1), det((20, 20, 30, 30), 0.8, 1), det((50, 50, 60, 60), 0.2, 1)]
        a.add(float: f, int8: q)
        XCTAssertEqual(a.floatDetections, 2)
        XCTAssertEqual(a.int8Detections, 2)
        XCTAssertEqual(a.matched, 1)
        XCTAssertEqual(a.meanBoxIoU, 90.0 / 110.0, accuracy: 1e-6)
        XCTAssertEqual(a.meanAbsScoreDiff, 0.05, accuracy: 1e-6)
        XCTAssertEqual(a.meanMaskIoU, 0)   // no masks

        // end-to-end disagreement: float detections >= 0.5 matched to candidates of any score
        var e = OutputDisagreement()
        XCTAssertNil(e.value)
        e.add(float: f, candidate: f)
        XCTAssertEqual(e.value, 0)   // identical
        // the first matched (no masks: mask IoU counts 1) with score -0.05, the second unmatched
        // (class changed: 1), the class-changed candidate >= 0.5 has no float detection: 1
        e.add(float: f, candidate: q)
        XCTAssertEqual(e.floatDetections, 4)
        XCTAssertEqual(e.penalty, 0.05 + 1 + 1, accuracy: 1e-6)
        XCTAssertEqual(e.value!, 2.05 / 4, accuracy: 1e-6)
        // a candidate rising above 0.5 where float scored 0.3: costs its score difference
        var r = OutputDisagreement()
        r.add(float: [f[2]], candidate: [det((50, 50, 60, 60), 0.6, 1)])
        XCTAssertEqual(r.penalty, 0.3, accuracy: 1e-6)
    }

    func testGuardFloatLabels() throws {
        // --accuracy-guard without annotations: the float detections >= 0.5 are the labels; float
        // scores 100 against itself, a shifted box less, nothing >= 0.5 is an error
        func det(_ b: (Float, Float, Float, Float), _ s: Float, _ l: Int) -> Detection {
            Detection(box: b, score: s, label: l, mask: nil)
        }
        let config = ModelConfig(numClasses: 4)
        let ims = [COCOImage(id: 1, fileName: "a.jpg", height: 100, width: 100), COCOImage(id: 2, fileName: "b.jpg", height: 100, width: 100)]
        let fd = [[det((10, 10, 50, 50), 0.9, 1), det((60, 60, 90, 90), 0.3, 2)], [det((5, 5, 40, 30), 0.7, 3)]]
        let gt = try AccuracyGuard.labels(from: fd, images: ims, config: config)
        XCTAssertEqual(gt.annotations.count, 2)
        let same = try AccuracyGuard.score(fd, images: ims, gt: gt)
        XCTAssertEqual(same.boxAP, 100, accuracy: 1e-9)
        XCTAssertEqual(same.maskAPLeaveOut.count, 2)   // one fold per image here
        XCTAssertEqual(same.maskAP, 100, accuracy: 1e-9)
        let moved = try AccuracyGuard.score([[det((12, 10, 52, 50), 0.9, 1)], fd[1]], images: ims, gt: gt)
        XCTAssertLessThan(moved.boxAP, 100)
        XCTAssertThrowsError(try AccuracyGuard.labels(from: [[fd[0][1]], []], images: ims, config: config)) {
            XCTAssertTrue(($0 as? EdgeError)?.message.contains("detects nothing scoring >= 0.5") == true, "\($0)")
        }
    }

    func testGuardStepping() throws {
        // float mask AP 20; each layer returned to float recovers part of the drop
        let gain = ["a": 0.3, "b": 0.15, "c": 0.01]
        func measure(_ layers: [String]) -> AccuracyGuard.Score {
            AccuracyGuard.Score(boxAP: 18, maskAP: 19.5 + layers.reduce(0) { $0 + gain[$1]! })
        }
        let float = AccuracyGuard.Score(boxAP: 18.1, maskAP: 20)
        var seen: [[String]] = []
        let o = try AccuracyGuard.search(ranking: ["a", "b", "c"], budget: 3, maxDrop: 0.1, float: float,
                                         measure: measure, progress: { seen.append($0.floatLayers) })
        XCTAssertTrue(o.met)
        XCTAssertEqual(o.settled, ["a", "b"])
        XCTAssertEqual(seen, [[], ["a"], ["a", "b"]])
        XCTAssertEqual(o.steps.map { $0.added }, [nil, "a", "b"])
        // a budget of 1 is spent before the drop is met
        let short = try AccuracyGuard.search(ranking: ["a", "b", "c"], budget: 1, maxDrop: 0.1, float: float, measure: measure)
        XCTAssertFalse(short.met)
        XCTAssertEqual(short.steps.count, 2)
        // already within the drop: nothing in float
        let none = try AccuracyGuard.search(ranking: ["a"], budget: 3, maxDrop: 0.6, float: float, measure: measure)
        XCTAssertTrue(none.met)
        XCTAssertEqual(none.settled, [])
        // the ranking runs out before the budget
        let out = try AccuracyGuard.search(ranking: ["c"], budget: 3, maxDrop: 0.01, float: float, measure: measure)
        XCTAssertFalse(out.met)
        XCTAssertEqual(out.settled, ["c"])

        // the drop's jackknife standard error: paired leave-one-fold-out drops 0.2, 0.4, 0.6 (mean
        // 0.4) -> sqrt(2/3 * 0.08); none without the leave-out figures
        let f3 = AccuracyGuard.Score(boxAP: 0, maskAP: 20, maskAPLeaveOut: [20, 20, 20])
        let q3 = AccuracyGuard.Score(boxAP: 0, maskAP: 19.6, maskAPLeaveOut: [19.8, 19.6, 19.4])
        XCTAssertEqual(AccuracyGuard.dropStandardError(float: f3, int8: q3)!, (2.0 / 3 * 0.08).squareRoot(), accuracy: 1e-9)
        XCTAssertNil(AccuracyGuard.dropStandardError(float: float, int8: q3))
    }

    func testBiasCorrectionArithmetic() {
        var r = LayerReport(name: "x", stage: "backbone", precision: "int8", macs: 0)
        // CHW: 2 channels of 3 elements; int8 is +0.1 on channel 0 and -0.3 on channel 1
        var ref: [Float] = [1, 2, 3, 4, 5, 6]
        r.addShift([1.1, 2.1, 3.1, 3.7, 4.7, 5.7], &ref, channels: 2, linear: false)
        XCTAssertEqual(r.meanShift[0], 0.1, accuracy: 1e-6)
        XCTAssertEqual(r.meanShift[1], -0.3, accuracy: 1e-6)
        // linear rows [rows, channels]: channel = index mod channels
        var l = LayerReport(name: "fc", stage: "roi_heads", precision: "int8", macs: 0)
        var lref: [Float] = [0, 0, 0, 0, 0, 0]
        l.addShift([1, 2, 1, 2, 1, 2], &lref, channels: 2, linear: true)
        XCTAssertEqual(l.meanShift, [1, 2])
        XCTAssertEqual(l.shiftCount, [3, 3])
        // the int32 bias holds (b - shift) / (s_in * w_s), rounded half to even
        XCTAssertEqual(QuantizedModel.biasQ(0.5 - 0.1, 0.02, 0.01), 2000)
        XCTAssertEqual(QuantizedModel.biasQ(0.5 - (-0.3), 0.02, 0.01), 4000)
        // the report hands out the mean shifts of int8 layers only
        let floatLayer = LayerReport(name: "f", stage: "backbone", precision: "float32", macs: 0)
        let rep = CalibrationReport(layers: [r, floatLayer], agreement: DetectionAgreement(), images: [], inputSize: (0, 0))
        XCTAssertEqual(Array(rep.biasCorrections.keys), ["x"])
    }

    func testRankingWorstFirst() {
        func layer(_ n: String, _ alone: Float, precision: String = "int8") -> LayerReport {
            var r = LayerReport(name: n, stage: "backbone", precision: precision, macs: 0)
            r.alone.add(reference: [1, 1], [1, 1 + alone])
            return r
        }
        let rep = CalibrationReport(layers: [layer("backbone.body.conv1", 0.01), layer("backbone.body.layer1.0.conv1", 0.5),
                                             layer("backbone.body.layer1.0.conv2", 0.1, precision: "float32"),
                                             layer("backbone.body.layer1.0.conv3", 0.05)],
                                    agreement: DetectionAgreement(), images: [], inputSize: (0, 0))
        XCTAssertEqual(rep.ranking.map { $0.name }, ["backbone.body.layer1.0.conv1", "backbone.body.layer1.0.conv3",
                                                    "backbone.body.conv1", "backbone.body.layer1.0.conv2"])
        XCTAssertEqual(rep.worstInt8Layers, ["backbone.body.layer1.0.conv1", "backbone.body.layer1.0.conv3", "backbone.body.conv1"])
        XCTAssertTrue(rep.table.contains("backbone.body.layer1.0.conv1"))
        XCTAssertTrue(rep.json.serialized().contains("\"rank\":1"))

        // measured end to end, the layers rank by their cost at the outputs (largest first),
        // ahead of those without the figure, whatever their SQNR alone
        var layers = rep.layers
        func cost(_ i: Int, _ penalty: Double) { layers[i].endToEnd.penalty = penalty; layers[i].endToEnd.floatDetections = 10; layers[i].endToEnd.images = 2 }
        cost(0, 5)   // conv1: the best SQNR alone, the largest cost
        cost(3, 1)
        let e2e = CalibrationReport(layers: layers, agreement: DetectionAgreement(), images: [], inputSize: (0, 0))
        XCTAssertEqual(e2e.worstInt8Layers, ["backbone.body.conv1", "backbone.body.layer1.0.conv3", "backbone.body.layer1.0.conv1"])
        XCTAssertTrue(e2e.json.serialized().contains("\"end_to_end\":{\"disagreement\":0.5"), e2e.json.serialized())
    }

    func testMethodChoiceOnSyntheticStatistics() {
        // the choice: lowest error wins, ties go to the earlier method (the default first), NaN
        // loses, an activation without errors keeps the default
        XCTAssertEqual(MethodChoice.order, [.percentile, .minmax, .entropy, .mse])
        let errs: [String: [CalibrationMethod: Double]] = [
            "a": [.percentile: 0.02, .minmax: 0.01, .entropy: 0.03, .mse: 0.01],
            "b": [.percentile: 0.01, .minmax: 0.01, .entropy: 0.01, .mse: 0.01],
            "c": [.percentile: .nan, .minmax: 0.7, .mse: 0.5],
        ]
        let c = MethodChoice.choose(activations: ["a", "b", "c", "d"], errors: errs)
        XCTAssertEqual(c, ["a": .minmax, "b": .percentile, "c": .mse, "d": .percentile])
        XCTAssertEqual(MethodChoice.summary(c), "percentile 2, minmax 1, mse 1")

        // synthetic statistics of two real activations: `x` a bulk in [0, 1) with one value at
        // 1000 (percentile 99.99 and entropy clip it, minmax keeps it, mse's search stops just below
        // it, with a little more error on the real values than minmax); `z` all zeros (every
        // method gives the same parameters: nothing to measure, the default stays)
        let obs = CalibrationObserver(bins: 2048)
        let x = obs.spec.activations[1], z = obs.spec.activations[2]
        let bulk = (0..<10_000).map { Float($0 % 1000) / 1000 } + [1000]
        let zeros = [Float](repeating: 0, count: 100)
        var b0 = bulk, z0 = zeros
        obs.activation(x, &b0, b0.count)
        obs.activation(z, &z0, z0.count)
        let (params, index) = MethodChoice.candidates(obs, percentile: 99.99)
        XCTAssertEqual(params[z]?.count, 1)
        XCTAssertNotEqual(index[x]?[.minmax], index[x]?[.percentile])
        let probe = ChoiceProbe(network: obs.spec.network, params: params)
        var copy = bulk, zcopy = zeros
        probe.activation(x, &copy, copy.count)
        probe.activation(z, &zcopy, zcopy.count)
        XCTAssertEqual(copy, bulk)   // the probe leaves the activation alone
        let e = MethodChoice.errors(probe, index: index)
        XCTAssertNil(e[z])
        // clipping 1000 to ~1 costs ~1e6 of a signal of ~1e6; minmax's step of ~3.9 rounds the
        // bulk to 0: noise ~ sum x^2 ~ 3333
        let ex = e[x]!
        XCTAssertGreaterThan(ex[.percentile]!, 0.9)
        XCTAssertGreaterThan(ex[.entropy]!, 0.5)
        XCTAssertLessThan(ex[.minmax]!, 0.01)
        XCTAssertLessThan(ex[.mse]!, 0.01)
        XCTAssertLessThan(ex[.minmax]!, ex[.mse]!)
        let chosen = MethodChoice.choose(activations: [x, z], errors: e)
        XCTAssertEqual(chosen, [x: .minmax, z: .percentile])
    }

    // ---------------------------------------------------------------- CLI errors

    static let binary: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent + "/edge-mrcnn"
    }()

    func run(_ args: [String]) throws -> (status: Int32, err: String, crashed: Bool) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CalibrationReportTests.binary)
        p.arguments = args
        let e = Pipe()
        p.standardError = e; p.standardOutput = Pipe()
        try p.run()
        let d = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: d, as: UTF8.self), p.terminationReason != .exit)
    }

    func testCalibrateOptionErrors() throws {
        guard FileManager.default.isExecutableFile(atPath: CalibrationReportTests.binary) else {
            throw XCTSkip("edge-mrcnn binary not built")
        }
        let tmp = NSTemporaryDirectory() + "calib-cli-\(getpid())"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let empty = tmp + "/empty.json"
        try "{\"images\": [], \"annotations\": [], \"categories\": []}".write(toFile: empty, atomically: true, encoding: .utf8)
        let base = ["calibrate", "--model", tmp + "/none.safetensors", "--images", tmp, "-o", tmp + "/o.safetensors"]
        let cases: [([String], String)] = [
            (["--keep-float", "backbone.body.conv9"], "backbone.body.conv9"),
            (["--end-to-end-images", "2"], "--end-to-end-images applies to --report and --accuracy-guard only"),
            (["--accuracy-guard", "--annotations", ""], "--annotations needs a COCO.json file"),
            (["--accuracy-guard", "--annotations", empty, "--max-float-layers", "0"], "--max-float-layers must be at least 1"),
            (["--accuracy-guard", "--annotations", empty, "--max-drop", "x"], "--max-drop must be a number"),
            (["--max-drop", "0.1"], "--max-drop applies to --accuracy-guard only"),
            (["--bias-correction", "maybe"], "--bias-correction must be on, off or both"),
            (["--auto-images", "3"], "--auto-images applies to --method auto only"),
            (["--method", "best"], "--method must be one of minmax, percentile, entropy, mse, all or auto"),
            (["--accuracy-guard", "--annotations", empty], "has no annotations: --accuracy-guard needs annotated images"),
        ]
        for (extra, message) in cases {
            let r = try run(base + extra)
            XCTAssertFalse(r.crashed, "\(extra)")
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.err.hasPrefix("edge-mrcnn: ") && r.err.contains(message), "\(extra): \(r.err)")
        }
    }
}
