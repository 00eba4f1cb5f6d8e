import XCTest
import CShim
@testable import EdgeMRCNN

/// int8 kernels (em_qkernels.h): for every ISA this CPU runs and threads 1 and 3, each dispatched
/// kernel must be byte-identical to its C reference (sentinel-filled outputs, untouched tail), and
/// each reference identical to a direct int64 computation + the documented float formula. The
/// checks themselves live in SelfTest/QKernelChecks.swift (they also run on aarch64 via
/// `edge-mrcnn selftest`); here they run on the small cases and on larger odd shapes.
final class QKernelTests: XCTestCase {
    typealias Q = QKernelCheck

    func testISAsCovered() {
        var names: [String] = []
        for isa in 0..<Int32(EM_ISA_COUNT.rawValue) where em_isa_supported(isa) != 0 {
            names.append(String(cString: em_isa_name(isa)))
        }
        XCTAssertTrue(names.contains("scalar"))
        XCTAssertEqual(names, SelfTest.isasTested)
        print("QKernelTests ISAs tested: \(names.joined(separator: " "))")
        // EDGE_MRCNN_REQUIRE_ISAS (set by .ci/run): the ISAs the README says are tested must run here.
        XCTAssertEqual(SelfTest.missingRequiredISAs, [], "required by EDGE_MRCNN_REQUIRE_ISAS but not supported by this CPU")
    }

    func testPacking() throws { try Q.packing() }

    func testPackRejectsBadArguments() {
        var p = [UInt8](repeating: 0, count: 1024)
        let w = [Int8](repeating: 1, count: 16)
        XCTAssertEqual(em_qpack_weights_bytes(0, 4), 0)
        XCTAssertEqual(p.withUnsafeMutableBytes { em_qpack_weights(w, 4, 4, 256, nil, $0.baseAddress) }, -1)
        XCTAssertEqual(p.withUnsafeMutableBytes { em_qpack_weights(w, 4, 4, 7, nil, $0.baseAddress) }, 0)
        // Shapes or zero point not matching the blob: refused, output untouched.
        let x = [UInt8](repeating: 9, count: 4)
        var out = [UInt8](repeating: 0xA5, count: 4)
        let mult = [Float](repeating: 0.01, count: 4)
        let rc1 = p.withUnsafeBytes { em_qconv2d_u8(x, 4, 1, 1, 8, $0.baseAddress, 4, 1, 1, 1, 0, mult, 0, nil, 0, 0, 0, &out, nil) }
        let rc2 = p.withUnsafeBytes { em_qconv2d_u8(x, 2, 1, 2, 7, $0.baseAddress, 4, 1, 1, 1, 0, mult, 0, nil, 0, 0, 0, &out, nil) }
        let rc3 = p.withUnsafeBytes { em_qlinear_u8(x, 1, 4, 7, $0.baseAddress, 3, mult, 0, 0, &out) }
        XCTAssertEqual([rc1, rc2, rc3], [-1, -1, -1])
        XCTAssertEqual(out, [UInt8](repeating: 0xA5, count: 4))
        XCTAssertEqual(p.withUnsafeBytes { em_qconv2d_u8(x, 4, 1, 1, 7, $0.baseAddress, 4, 1, 1, 1, 0, mult, 0, nil, 0, 0, 0, &out, nil) }, 0)
    }

    func testConvSmall() throws { for c in Q.smallConvCases { try Q.conv(c) } }

    func testConvOddShapes() throws {
        let cases: [Q.Conv] = [
            .init(cin: 37, h: 21, w: 19, cout: 70, kh: 3, kw: 3, stride: 1, pad: 1, residual: true, relu: true),
            .init(cin: 64, h: 14, w: 13, cout: 41, kh: 1, kw: 1, stride: 1, pad: 0, residual: true, relu: true),
            .init(cin: 3, h: 45, w: 38, cout: 16, kh: 7, kw: 7, stride: 2, pad: 3, relu: true),   // stem-like
            .init(cin: 33, h: 17, w: 15, cout: 35, kh: 3, kw: 3, stride: 2, pad: 1, relu: true),  // K 297
            .init(cin: 66, h: 15, w: 14, cout: 130, kh: 1, kw: 1, stride: 2, pad: 0),            // downsample
            .init(cin: 2, h: 3, w: 3, cout: 3, kh: 3, kw: 3, stride: 1, pad: 1, residual: true, relu: true),
            .init(cin: 130, h: 6, w: 5, cout: 17, kh: 3, kw: 3, stride: 1, pad: 0),
            .init(cin: 9, h: 2, w: 300, cout: 8, kh: 1, kw: 3, stride: 1, pad: 1),
            // wide rows: stride-1 panels zipped straight from the input rows (all but the edge
            // panels), K not a multiple of 4 (zero-point rows), and the padded planes of small
            // inputs (mask-head shape)
            .init(cin: 5, h: 6, w: 130, cout: 9, kh: 3, kw: 3, stride: 1, pad: 1, residual: true, relu: true),
            .init(cin: 3, h: 4, w: 100, cout: 17, kh: 5, kw: 5, stride: 1, pad: 2, relu: true),
            .init(cin: 3, h: 7, w: 97, cout: 8, kh: 3, kw: 3, stride: 1, pad: 0),
            .init(cin: 64, h: 9, w: 60, cout: 70, kh: 3, kw: 3, stride: 1, pad: 1, residual: true),
            .init(cin: 256, h: 14, w: 14, cout: 40, kh: 3, kw: 3, stride: 1, pad: 1, relu: true),
            // x86: K up to 640 runs in one K slice (K 639: padded to 640), K 648 in two (512 + 136)
            .init(cin: 71, h: 5, w: 31, cout: 20, kh: 3, kw: 3, stride: 1, pad: 1, relu: true),
            .init(cin: 72, h: 5, w: 31, cout: 20, kh: 3, kw: 3, stride: 1, pad: 1, residual: true, relu: true),
        ]
        for c in cases { try Q.conv(c) }
    }

    func testConvExtremesLargeK() throws {
        // All 255 inputs (zero point 0) with all +127 / all -127 / alternating weights, K = 4635:
        // |acc| up to 150e6; any 16-bit saturation (pmaddubsw) or lost carry would show.
        for mode in 1...3 {
            try Q.conv(.init(cin: 515, h: 5, w: 4, cout: 9, kh: 3, kw: 3, stride: 1, pad: 1, mode: mode))
            try Q.conv(.init(cin: 515, h: 4, w: 7, cout: 17, kh: 3, kw: 3, stride: 1, pad: 1, mode: mode, residual: true, relu: true))
            try Q.conv(.init(cin: 2049, h: 3, w: 5, cout: 11, kh: 1, kw: 1, stride: 1, pad: 0, mode: mode, residual: true))
        }
    }

    func testBlockWindow() throws { try Q.blockWindow() }

    /// The mask head's shape: 16 RoIs of 28 x 28 side by side, 256 channels (27 classes: the reference computes them all).
    func testRowsWindows() throws {
        try Q.rowsWindows()
        try Q.rowsWindows(cin: 256, h: 28, w: 28 * 16, m: 27, x0s: (0..<16).map { 28 * $0 }, y0: 0, wh: 28, ww: 28, seed: 14)
    }

    /// The mask head's shape (256 channels, 14x14 RoIs, 7 side by side) on tiles, and the ISAs
    /// that run it as one GEMM: x86 avx512vnni (where Executor.sideBySidePitch drops the
    /// separator columns).
    func testConvTiles() throws {
        try Q.tiles((256, 14, 14, 7, 12, 3, true))
        let saved = em_isa_current()
        defer { _ = em_isa_set(saved) }
        for isa in 0..<Int32(EM_ISA_COUNT.rawValue) where em_isa_supported(isa) != 0 {
            _ = em_isa_set(isa)
            let direct = em_qconv_tiles_direct(256, 14, 14 * 16, 3, 3, 1, 1, 14)
            XCTAssertEqual(direct != 0, String(cString: em_isa_name(isa)) == "avx512vnni", "\(String(cString: em_isa_name(isa)))")
            XCTAssertEqual(em_qconv_tiles_direct(256, 14, 14 * 16 + 1, 3, 3, 1, 1, 14), 0)
        }
    }

    func testPackConcat() throws { try Q.packConcat() }

    /// The RPN head's shape on a small level (256 channels, 3x3, 15 head rows), plus the selftest cases.
    func testConvHead() throws {
        for c in Q.convHeadCases { try Q.convHead(c) }
        try Q.convHead((256, 13, 17, 256, 3, 1, 15, true))
    }

    func testLinear() throws {
        for c in Q.smallLinearCases { try Q.linear(c) }
        try Q.linear(.init(n: 33, k: 257, m: 70))
        try Q.linear(.init(n: 70, k: 1025, m: 37))
        try Q.linear(.init(n: 97, k: 1024, m: 19))   // K = Kp: panels straight from the rows
        try Q.linear(.init(n: 3, k: 12545, m: 9, mode: 1)) // FC6-sized K, extremes
        try Q.linear(.init(n: 3, k: 12545, m: 9, mode: 2))
        // x86 avx512vnni: tiles stored transposed by the micro-kernel (u8 and f32), the panels
        // built by the 16 x 16 dword transpose: RoIs not a multiple of 16 / 48, M ending inside
        // a block, K slices ending inside a group of 16 (1028: a last slice of one group, after
        // two of 512 summed in the int32 tiles), channel-block split at 1 and 3 threads (M 56)
        // and the pixel-block path at 3 threads (M 17)
        try Q.linear(.init(n: 50, k: 1028, m: 56))
        try Q.linear(.init(n: 95, k: 516, m: 17))
        try Q.linear(.init(n: 13, k: 200, m: 3, mode: 2))
    }

    func testDeconv() throws {
        for c in Q.smallDeconvCases { try Q.deconv(c) }
        try Q.deconv(.init(cin: 65, h: 14, w: 14, cout: 5))
        try Q.deconv(.init(cin: 256, h: 7, w: 9, cout: 11, mode: 3))
        // x86 avx512vnni: row pairs interleaved and stored by the micro-kernel: 48-pixel panels
        // inside one input row with a masked tail (W 61, 100), across rows (W 49, 100), a last
        // block of 4 rows (odd Cout), K beyond one 512 slice (the int32 tile added in registers)
        try Q.deconv(.init(cin: 8, h: 1, w: 61, cout: 5))
        try Q.deconv(.init(cin: 20, h: 3, w: 49, cout: 3))
        try Q.deconv(.init(cin: 12, h: 2, w: 100, cout: 2))
        try Q.deconv(.init(cin: 600, h: 2, w: 50, cout: 3))
        try Q.deconv(.init(cin: 600, h: 1, w: 13, cout: 1, mode: 2))
        // the pack path with ReLU (lo = z_out), and with the float clamp (multipliers past the
        // bound), with and without ReLU
        try Q.deconv(.init(cin: 20, h: 3, w: 49, cout: 3, relu: 1))
        try Q.deconv(.init(cin: 12, h: 2, w: 100, cout: 2, relu: 1, multScale: 1e30))
        try Q.deconv(.init(cin: 8, h: 1, w: 61, cout: 5, multScale: 1e30))
        try Q.deconv(.init(cin: 20, h: 3, w: 49, cout: 3, relu: 1, zOut: 0)) // no z_out add
    }

    func testElementwise() throws { try Q.elementwise() }

    func testFloatOutputConv() throws { for c in Q.floatConvCases { try Q.floatConv(c) } }

    func testTransposeCHWtoHWC() throws { try Q.transpose() }

    /// The uint8 RoIAlign equals dequantise -> float RoIAlign -> quantise byte for byte.
    func testRoIAlignU8MatchesFloatRoundTrip() throws { for c in Q.roiCases { try Q.roiAlign(c) } }

    func testRoIAlignU8RejectsBadArguments() {
        var out = [UInt8](repeating: 0, count: 16)
        let feat = [UInt8](repeating: 1, count: 8), box: [Float] = [0, 0, 1, 1], off = [0]
        XCTAssertEqual(em_roi_align_u8_hwc(feat, 0, 2, 2, 1, 0, 1, 2, box, 1, off, 2, 2, 4, 2, 1, 0, &out), -1)
        XCTAssertEqual(em_roi_align_u8_hwc(feat, 2, 2, 2, 1, 0, 1, 2, box, 1, off, 2, 2, 4, 2, 0, 0, &out), -1)
        XCTAssertEqual(em_roi_align_u8_hwc(feat, 2, 2, 2, 1, 0, 1, 2, box, 0, off, 2, 2, 4, 2, 1, 0, &out), 0)
    }

    func testSelfCheckListRegistered() {
        XCTAssertEqual(SelfTest.qkernelChecks.count, 8)
        XCTAssertTrue(SelfTest.all.contains { $0.name.hasPrefix("qkernels:") })
    }
}
