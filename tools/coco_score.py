#!/usr/bin/env python3
"""Score an edge-mrcnn detections JSON with pycocotools (run by hand; needs pycocotools).

    python tools/coco_score.py ANNOTATIONS.json DETECTIONS.json [--reference TORCHVISION_RESULTS.json]

image_id is taken from each result's file_name through the annotations (so results made without
--annotations score too). Prints box and mask AP (x100) as COCOeval computes them.
"""
import argparse
import contextlib
import io
import json

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def score(gt, results, iou_type):
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return 100.0 * ev.stats[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("annotations")
    ap.add_argument("detections")
    ap.add_argument("--reference")
    a = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(a.annotations)
    by_name = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
    res = json.load(open(a.detections))
    for r in res:
        if "file_name" in r:
            r["image_id"] = by_name[r["file_name"].split("/")[-1]]
    print(f"edge-mrcnn:  box AP {score(gt, res, 'bbox'):.2f}  mask AP {score(gt, res, 'segm'):.2f}  ({len(res)} detections)")
    if a.reference:
        ref = json.load(open(a.reference))
        print(f"reference:   box AP {score(gt, ref, 'bbox'):.2f}  mask AP {score(gt, ref, 'segm'):.2f}  ({len(ref)} detections)")


if __name__ == "__main__":
    main()
