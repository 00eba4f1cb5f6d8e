#!/usr/bin/env python3
"""Makes the COCO evaluation fixtures in Tests/Fixtures/eval/ (run by hand, never by CI):

    /root/venv-ref/bin/python tools/make_eval_fixtures.py

1. coco-subset-results.json: deterministic fake detections for ../shared/data/coco-val2017-subset
   (perturbed GT boxes and masks with random scores, duplicates, false positives, detections on
   the crowd region, a category without GT, tied scores), with "bbox" and compressed-RLE
   "segmentation". coco-subset-results-segm-only.json: the same without "bbox" (loadRes' segm
   branch: area and bbox from the RLE).
2. expected.json: pycocotools' 12 stats for bbox and segm on those, on torchvision's own
   shapes-val results (../shared/models/shapes-r50fpn/torchvision-results-shapes-val.json, full
   and restricted to image ids 1..20), and polygon -> RLE strings (annToRLE) for the
   subset's annotations (all of them) plus synthetic polygons (edge cases).
"""
import copy
import io
import json
import os
import sys
import contextlib

import numpy as np
from pycocotools import mask as maskUtils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("EDGE_MRCNN_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "eval")
SUBSET = os.path.join(SHARED, "data/coco-val2017-subset/annotations/instances_val2017_subset.json")
SHAPES_GT = os.path.join(SHARED, "data/shapes-val/annotations.json")
SHAPES_RES = os.path.join(SHARED, "models/shapes-r50fpn/torchvision-results-shapes-val.json")


def quiet(f, *a, **k):
    with contextlib.redirect_stdout(io.StringIO()):
        return f(*a, **k)


def stats(gt, res, iou_type, img_ids=None):
    dt = quiet(gt.loadRes, copy.deepcopy(res))
    ev = COCOeval(gt, dt, iou_type)
    if img_ids is not None:
        ev.params.imgIds = img_ids
    quiet(ev.evaluate)
    quiet(ev.accumulate)
    quiet(ev.summarize)
    return [float(x) for x in ev.stats]


def f32(x):
    # Results written by edge-mrcnn carry float32 values in shortest form; mimic that.
    return float(str(np.float32(x)))


def make_subset_results(gt, rng):
    res = []
    img_ids = sorted(gt.getImgIds())
    cat_ids = sorted(gt.getCatIds())
    used_cats = sorted({a["category_id"] for a in gt.dataset["annotations"]})
    no_gt_cats = [c for c in cat_ids if c not in used_cats]
    for img_id in img_ids:
        img = gt.imgs[img_id]
        h, w = img["height"], img["width"]
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img_id]))
        for a in anns:
            m = gt.annToMask(a)
            copies = 1 + (rng.random() < 0.3)  # some duplicates (false positives once matched)
            for c in range(copies):
                if rng.random() < 0.15 and not a["iscrowd"]:
                    continue  # a miss
                dx, dy = int(rng.integers(-4, 5)), int(rng.integers(-4, 5))
                mm = np.roll(np.roll(m, dy, axis=0), dx, axis=1)
                if rng.random() < 0.3:
                    mm = mm.copy()
                    ys, xs = np.nonzero(mm)
                    if len(ys) > 0:  # erase a strip (worse IoU)
                        cut = int(np.percentile(ys, 70))
                        mm[cut:, :] = 0
                x, y, bw, bh = a["bbox"]
                s = 1.0 + rng.normal(0, 0.08)
                box = [x + dx + rng.normal(0, 2), y + dy + rng.normal(0, 2), bw * s, bh * s]
                score = float(rng.random())
                if rng.random() < 0.1:
                    score = 0.5  # ties
                cat = a["category_id"]
                if rng.random() < 0.08:
                    cat = int(rng.choice(used_cats))  # wrong class
                rle = maskUtils.encode(np.asfortranarray(mm.astype(np.uint8)))
                res.append({"image_id": img_id, "category_id": cat,
                            "bbox": [f32(v) for v in box], "score": f32(score),
                            "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}})
        # false positives, incl. a category without GT and tiny/huge boxes
        for k in range(3):
            bw, bh = float(rng.uniform(5, w / 2)), float(rng.uniform(5, h / 2))
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            m = np.zeros((h, w), np.uint8)
            m[int(y):int(y + bh), int(x):int(x + bw)] = 1
            cat = int(rng.choice(no_gt_cats)) if k == 0 else int(rng.choice(used_cats))
            rle = maskUtils.encode(np.asfortranarray(m))
            res.append({"image_id": img_id, "category_id": cat, "bbox": [f32(x), f32(y), f32(bw), f32(bh)],
                        "score": f32(rng.random() * 0.6),
                        "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}})
    return res


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261123)
    expected = {}

    gt = quiet(COCO, SUBSET)
    # polygon -> RLE of real annotations (annToRLE merges the parts of one object); before
    # COCOeval runs, whose _prepare replaces the GT polygons by RLEs in place
    polys = []
    for a in gt.dataset["annotations"]:
        if isinstance(a["segmentation"], list):
            rle = gt.annToRLE(a)
            polys.append({"ann_id": a["id"], "parts": len(a["segmentation"]), "counts": rle["counts"].decode(),
                          "area": int(maskUtils.area(rle)), "bbox": [float(v) for v in maskUtils.toBbox(rle)]})
    crowd = [a for a in gt.dataset["annotations"] if a["iscrowd"]][0]
    crowd_rle = gt.annToRLE(crowd)
    expected["subset_polygons"] = polys
    expected["subset_crowd"] = {"ann_id": crowd["id"], "counts": crowd_rle["counts"].decode(),
                                "area": int(maskUtils.area(crowd_rle))}

    res = make_subset_results(gt, rng)
    # detections inside the crowd region (match the crowd gt: ignored, not false positives)
    for a in gt.dataset["annotations"]:
        if a["iscrowd"]:
            img = gt.imgs[a["image_id"]]
            m = gt.annToMask(a)
            ys, xs = np.nonzero(m)
            for j in range(3):
                sub = np.zeros_like(m)
                x0 = int(xs.min()) + j * 3
                sub[ys.min():ys.max() + 1, x0:x0 + 8] = m[ys.min():ys.max() + 1, x0:x0 + 8]
                rle = maskUtils.encode(np.asfortranarray(sub))
                bb = [float(v) for v in maskUtils.toBbox(rle)]
                res.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": bb,
                            "score": f32(0.3 + 0.2 * j),
                            "segmentation": {"size": [img["height"], img["width"]], "counts": rle["counts"].decode()}})
    with open(os.path.join(OUT, "coco-subset-results.json"), "w") as f:
        json.dump(res, f)
    segm_only = [{k: v for k, v in r.items() if k != "bbox"} for r in res]
    with open(os.path.join(OUT, "coco-subset-results-segm-only.json"), "w") as f:
        json.dump(segm_only, f)
    expected["coco_subset"] = {"detections": len(res),
                               "bbox": stats(gt, res, "bbox"), "segm": stats(gt, res, "segm"),
                               "segm_only_bbox": stats(gt, segm_only, "bbox"),
                               "segm_only_segm": stats(gt, segm_only, "segm")}

    # synthetic polygons: (polygons, h, w) -> counts
    synth = [
        ([[10, 10, 20, 10, 20, 20, 10, 20]], 30, 30),
        ([[0, 0, 4, 0, 0, 4]], 6, 6),
        ([[-5.3, -2.7, 12.2, 3.9, 8.8, 14.6]], 12, 10),             # partly outside
        ([[1.5, 1.5, 7.5, 1.5, 7.5, 6.5, 1.5, 6.5]], 9, 9),         # half-pixel vertices
        ([[2.1, 0.2, 9.9, 4.4, 3.3, 8.8, 0.4, 5.0, 1.0, 2.0]], 10, 11),
        ([[1, 1, 5, 1, 5, 5, 1, 5], [3, 3, 8, 3, 8, 8, 3, 8]], 10, 10),  # overlapping parts (union)
        ([[2, 3, 6, 4]], 10, 10),                                     # 2-point "polygon" = box [x,y,w,h]
        ([[2, 3, 6, 4], [1, 1, 2, 2]], 10, 10),                       # two boxes
        ([[0.25, 0.25, 0.75, 0.25, 0.75, 0.75]], 3, 3),               # tiny
        ([[3, 3, 3, 3, 3, 3]], 8, 8),                                 # degenerate (one point)
        ([[1, 1, 6, 1, 6, 6, 1, 6], [2, 2, 3, 2, 3]], 8, 8),          # later part with odd count
        ([[0, 0, 40, 0, 40, 30, 0, 30]], 30, 40),                     # exactly the image
        ([[5, 1, 9, 8, 1, 8], [6, 6, 7, 6, 7, 7]], 10, 10),
    ]
    out_synth = []
    for p, h, w in synth:
        if len(p[0]) == 4:
            # annToRLE would pass a list of 4-number lists to frBbox, which in pycocotools 2.0.11
            # raises TypeError (it wants an ndarray); the Nx4 array is what it means: boxes.
            rles = maskUtils.frPyObjects(np.array(p, dtype=np.double), h, w)
        else:
            rles = maskUtils.frPyObjects(p, h, w)
        rle = maskUtils.merge(rles) if isinstance(rles, list) else rles
        out_synth.append({"polygons": p, "height": h, "width": w, "counts": rle["counts"].decode(),
                          "area": int(maskUtils.area(rle))})
    expected["synthetic_polygons"] = out_synth

    # random polygons (fractional, partly outside the image, 1-3 parts): counts strings only
    prng = np.random.default_rng(7)
    rand = []
    for _ in range(250):
        h, w = int(prng.integers(1, 48)), int(prng.integers(1, 48))
        parts = []
        for _ in range(int(prng.integers(1, 4))):
            k = int(prng.integers(3, 9))
            xs = prng.uniform(-6, w + 6, k)
            ys = prng.uniform(-6, h + 6, k)
            if prng.random() < 0.3:  # snap to quarter pixels (ties in the rounding rules)
                xs, ys = np.round(xs * 4) / 4, np.round(ys * 4) / 4
            parts.append([float(round(v, 3)) for xy in zip(xs, ys) for v in xy])
        rle = maskUtils.merge(maskUtils.frPyObjects(parts, h, w))
        rand.append([h, w, parts, rle["counts"].decode()])
    expected["random_polygons"] = rand

    # many detections per image (more than maxDets=100 on some), coarse scores (many ties, also
    # across images), boxes only (segm eval then uses the box polygons, loadRes' bbox branch)
    mrng = np.random.default_rng(99)
    many = []
    for n_img, img_id in enumerate(sorted(gt.getImgIds())):
        img = gt.imgs[img_id]
        anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=[img_id]))]
        n = 160 if n_img % 3 == 0 else 40
        for j in range(n):
            if anns and mrng.random() < 0.7:
                a = anns[int(mrng.integers(len(anns)))]
                x, y, bw, bh = a["bbox"]
                box = [x + mrng.normal(0, 0.1 * bw + 1), y + mrng.normal(0, 0.1 * bh + 1),
                       bw * (1 + mrng.normal(0, 0.15)), bh * (1 + mrng.normal(0, 0.15))]
                cat = a["category_id"]
            else:
                bw, bh = mrng.uniform(2, img["width"] / 3), mrng.uniform(2, img["height"] / 3)
                box = [mrng.uniform(0, img["width"] - bw), mrng.uniform(0, img["height"] - bh), bw, bh]
                cat = int(mrng.choice([1, 38, 77, 2]))
            many.append({"image_id": img_id, "category_id": cat, "bbox": [round(float(v), 2) for v in box],
                         "score": round(float(mrng.random()), 1)})
    with open(os.path.join(OUT, "coco-subset-results-many.json"), "w") as f:
        json.dump(many, f, separators=(",", ":"))
    expected["coco_subset_many"] = {"detections": len(many), "bbox": stats(gt, many, "bbox"),
                                    "segm": stats(gt, many, "segm")}

    # torchvision's own results on shapes-val
    sgt = quiet(COCO, SHAPES_GT)
    with open(SHAPES_RES) as f:
        sres = json.load(f)
    expected["shapes_val"] = {"detections": len(sres),
                              "bbox": stats(sgt, sres, "bbox"), "segm": stats(sgt, sres, "segm"),
                              "slice_image_ids": list(range(1, 21)),
                              "slice_bbox": stats(sgt, sres, "bbox", list(range(1, 21))),
                              "slice_segm": stats(sgt, sres, "segm", list(range(1, 21)))}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    for k in ("coco_subset", "shapes_val"):
        print(k, "bbox AP %.4f segm AP %.4f" % (expected[k]["bbox"][0], expected[k]["segm"][0]))


if __name__ == "__main__":
    sys.exit(main())
