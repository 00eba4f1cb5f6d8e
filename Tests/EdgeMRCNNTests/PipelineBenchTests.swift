import XCTest
import CShim
@testable import EdgeMRCNN

/// Per-stage timings of the float pipeline; runs only with EDGE_MRCNN_BENCH=1 (never timed
/// assertions). Build in release for meaningful numbers:
///   EDGE_MRCNN_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter PipelineBenchTests
/// EDGE_MRCNN_BENCH_THREADS (default 1), EDGE_MRCNN_BENCH_RUNS (default 5, plus one warm-up).
/// Stage columns are medians in ms; the total gives median and min (min is the steadier figure on a
/// shared machine).
final class PipelineBenchTests: XCTestCase {
    func env(_ k: String) -> String? { getenv(k).map { String(cString: $0) } }

    func decode(_ path: String) throws -> RGBImage {
        var rgb: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        guard em_jpeg_decode_file(path, 1 << 28, &rgb, &w, &h, &err, Int32(err.count)) == 0, let p = rgb else {
            throw EdgeError("decode \(path): \(String(cString: err))")
        }
        defer { em_free(p) }
        return RGBImage(width: Int(w), height: Int(h), pixels: [UInt8](UnsafeBufferPointer(start: p, count: Int(w * h * 3))))
    }

    /// Top-left crop (the 800x1066 case is coffee.jpg cropped to 533x400).
    func crop(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<(width * 3) { px[y * width * 3 + x] = img.pixels[y * img.width * 3 + x] }
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    func bench(_ label: String, _ model: MaskRCNN, _ img: RGBImage) throws {
        let runs = Int(env("EDGE_MRCNN_BENCH_RUNS") ?? "") ?? 5
        _ = try model.detect(img)
        var all: [[(stage: String, seconds: Double)]] = []
        var cpu: [[(stage: String, seconds: Double)]] = []
        var n = 0
        for _ in 0..<runs {
            let t = PipelineTrace()
            n = try model.detect(img, trace: t).count
            all.append(t.timings); cpu.append(t.cpuTimings)
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        var line = "BENCH \(label) isa=\(String(cString: em_isa_name(em_isa_current()))) threads=\(em_num_threads()) dets=\(n):"
        for (i, st) in all[0].enumerated() {
            line += " \(st.stage) \(String(format: "%.1f", median(all.map { $0[i].seconds }) * 1000))"
        }
        let totals = all.map { $0.reduce(0) { $0 + $1.seconds } }
        line += " | total median \(String(format: "%.1f", median(totals) * 1000)) min \(String(format: "%.1f", totals.min()! * 1000)) ms"
        line += "\n  cpu:"
        for (i, st) in cpu[0].enumerated() {
            line += " \(st.stage) \(String(format: "%.1f", median(cpu.map { $0[i].seconds }) * 1000))"
        }
        let ctot = cpu.map { $0.reduce(0) { $0 + $1.seconds } }
        line += " | total median \(String(format: "%.1f", median(ctot) * 1000)) min \(String(format: "%.1f", ctot.min()! * 1000)) ms"
        print(line)
    }

    func testBench() throws {
        guard env("EDGE_MRCNN_BENCH") == "1" else { throw XCTSkip("set EDGE_MRCNN_BENCH=1") }
        em_set_num_threads(Int32(env("EDGE_MRCNN_BENCH_THREADS") ?? "") ?? 1)
        let path = try Shared.require("models/shapes-r50fpn/model.pth")
        let shapes = try decode(try Shared.require("data/shapes-val/images/shapes_777_00000.jpg"))
        let (s1, c1) = try ModelLoader.load(path: path, overrides: ModelOverrides(minSize: 256, maxSize: 416))
        try bench("shapes_777_00000 349x403 (256/416)", MaskRCNN(store: s1, config: c1, source: path), shapes)
        let coffee = try decode(try Shared.require("data/photos/coffee.jpg"))
        let (s2, c2) = try ModelLoader.load(path: path, overrides: ModelOverrides(minSize: 800, maxSize: 1333))
        try bench("coffee crop 533x400 -> 800x1066 (800/1333)", MaskRCNN(store: s2, config: c2, source: path),
                  crop(coffee, width: 533, height: 400))
    }
}
