// Self-test checks of the evaluation area (see SelfTest.swift): polygon rasterisation on the
// examples of notes/formats.md §5 and a tiny COCOeval run (values checked against pycocotools).

extension SelfTest {
    static var evalChecks: [SelfCheck] {
        [
            SelfCheck("eval.polygon.square") {
                let r = try MaskOps.rleFromPolygon([10, 10, 20, 10, 20, 20, 10, 20], height: 30, width: 30)
                let b = r.bbox
                try expect(r.area == 100, "area \(r.area)")
                try expect(b.x == 10 && b.y == 10 && b.w == 10 && b.h == 10, "bbox \(b)")
            },
            SelfCheck("eval.polygon.triangle") {
                let r = try MaskOps.rleFromPolygon([0, 0, 4, 0, 0, 4], height: 6, width: 6)
                let m = r.rowMajorMask()
                let rows = (0..<6).map { y in (0..<6).reduce(0) { $0 + Int(m[y * 6 + $1]) } }
                try expect(rows == [3, 2, 1, 0, 0, 0], "row counts \(rows)")
            },
            SelfCheck("eval.polygon.pycocotools-strings") {
                // Strings from pycocotools frPyObjects/merge (tools/make_eval_fixtures.py).
                let cases: [([[Double]], Int, Int, String)] = [
                    ([[-5.3, -2.7, 12.2, 3.9, 8.8, 14.6]], 12, 10, "0482N100O1O101N01O00"),
                    ([[1, 1, 5, 1, 5, 5, 1, 5], [3, 3, 8, 3, 8, 8, 3, 8]], 10, 10, ";46003M02N0000a0"),
                    ([[2, 3, 6, 4]], 10, 10, "g046000000000a0"),
                ]
                for (p, h, w, want) in cases {
                    let s = try COCOSegmentation.polygons(p).toRLE(height: h, width: w).compressedString
                    try expect(s == want, "\(p): \(s), expected \(want)")
                }
            },
            SelfCheck("eval.iou") {
                let d = (5.0, 5.0, 20.0, 10.0), g = (0.0, 0.0, 40.0, 20.0)
                try expect(MaskOps.boxIoU(d, g, crowd: false) == 0.25 && MaskOps.boxIoU(d, g, crowd: true) == 1.0, "box IoU")
                let dm = try MaskOps.rleFromBox([5, 5, 20, 10], height: 30, width: 50)
                let gm = try MaskOps.rleFromBox([0, 0, 40, 20], height: 30, width: 50)
                let v = MaskOps.maskIoU(dm, gm, crowd: false, dtBox: MaskOps.box(of: dm), gtBox: MaskOps.box(of: gm))
                try expect(v == 0.25, "mask IoU \(v)")
            },
            SelfCheck("eval.cocoeval.tiny") {
                let gtText = """
                {"images":[{"id":1,"file_name":"a.jpg","height":100,"width":100},{"id":2,"file_name":"b.jpg","height":100,"width":100}],
                 "categories":[{"id":1,"name":"x"}],
                 "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[10,10,20,20],"area":400,"iscrowd":0,"segmentation":[[10,10,30,10,30,30,10,30]]},
                  {"id":2,"image_id":2,"category_id":1,"bbox":[0,0,50,50],"area":2500,"iscrowd":1,"segmentation":[[0,0,50,0,50,50,0,50]]}]}
                """
                let resText = """
                [{"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":0.9},
                 {"image_id":2,"category_id":1,"bbox":[60,60,10,10],"score":0.95},
                 {"image_id":2,"category_id":1,"bbox":[5,5,10,10],"score":0.97}]
                """
                let gt = try COCODataset.parse(try JSON.parse(gtText), source: "selftest-gt")
                let res = try COCOResults.parse(try JSON.parse(resText), gt: gt, source: "selftest-res")
                for t in [COCOIoUType.bbox, .segm] {
                    let s = try COCOEval.evaluate(gt: gt, results: res, iouType: t).stats
                    // pycocotools: the crowd match is ignored, the other false positive halves AP.
                    let want: [Double] = [0.5, 0.5, 0.5, 0.5, -1, -1, 1, 1, 1, 1, -1, -1]
                    try expect(s == want, "\(t) stats \(s)")
                }
            },
        ]
    }
}
