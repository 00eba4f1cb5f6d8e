#!/usr/bin/env python3
"""How noisy is an AP drop measured on a few images? (run by hand, never by CI)

Given COCO annotations and two results files of the same images (float and int8), prints the
box/mask AP difference (x100) on the whole set and its spread over random image subsets of the
sizes given (without replacement, seeded): what the accuracy guard sees when it measures the drop
on N images.

  tools/ap_subset_noise.py ANNOTATIONS.json FLOAT.json INT8.json [--sizes 50,100] [--draws 30]
"""
import argparse, contextlib, io, json, random, statistics

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def ap(gt, dt, iou, ids):
    e = COCOeval(gt, dt, iou)
    e.params.imgIds = ids
    with contextlib.redirect_stdout(io.StringIO()):
        e.evaluate(); e.accumulate(); e.summarize()
    return e.stats[0] * 100


def main():
    p = argparse.ArgumentParser()
    p.add_argument("annotations"); p.add_argument("float"); p.add_argument("int8")
    p.add_argument("--sizes", default="50,100"); p.add_argument("--draws", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(a.annotations)
        f = gt.loadRes(json.load(open(a.float)))
        q = gt.loadRes(json.load(open(a.int8)))
    ids = sorted(gt.getImgIds())
    rng = random.Random(a.seed)
    print(f"{len(ids)} images: " + ", ".join(
        f"{t} float {ap(gt, f, t, ids):.2f} int8 {ap(gt, q, t, ids):.2f} drop {ap(gt, f, t, ids) - ap(gt, q, t, ids):+.2f}"
        for t in ("bbox", "segm")))
    for n in [int(s) for s in a.sizes.split(",")]:
        for t in ("bbox", "segm"):
            d = []
            for _ in range(a.draws):
                s = sorted(rng.sample(ids, n))
                d.append(ap(gt, f, t, s) - ap(gt, q, t, s))
            print(f"{n} of {len(ids)} images, {t}: drop mean {statistics.mean(d):+.2f}, sd {statistics.stdev(d):.2f}, "
                  f"min {min(d):+.2f}, max {max(d):+.2f} ({a.draws} draws)")


if __name__ == "__main__":
    main()
