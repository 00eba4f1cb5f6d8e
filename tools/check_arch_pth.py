#!/usr/bin/env python3
"""By hand (never in CI): the seeded .pth files tools/make_arch_fixtures.py saved are read by
`edge-mrcnn detect` with no flag but the sizes, and its results JSON equals the fixtures.

    /work/venv-peers/bin/python tools/check_arch_pth.py [--bin .build/release/edge-mrcnn] [--pth-dir /tmp/edge-mrcnn-arch]

For each architecture in Tests/Fixtures/arch/index.json: detect --model <arch>.pth --min-size 256
--max-size 416 --json on the fixture images (the JPEGs in ../shared/data/shapes-val, which our
decoder and PIL decode to the same pixels: ParityTests checks that), then torchvision's detections
matched by label and IoU > 0.9: box within 0.05 px, score within 1e-3, mask IoU >= 0.99, no
segmentation for box-only models. Prints one line per architecture.
"""
import argparse, json, os, subprocess, sys, tempfile
import numpy as np
from pycocotools import mask as mask_util


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(here, ".build", "release", "edge-mrcnn"))
    ap.add_argument("--pth-dir", default="/tmp/edge-mrcnn-arch")
    ap.add_argument("--shared", default=os.path.join(here, "..", "shared"))
    args = ap.parse_args()
    fxdir = os.path.join(here, "Tests", "Fixtures", "arch")
    index = json.load(open(os.path.join(fxdir, "index.json")))
    ok_all = True
    archs = sorted({f.rsplit("_shapes", 1)[0] for f in index["fixtures"]})
    for arch in archs:
        pth = os.path.join(args.pth_dir, arch + ".pth")
        with tempfile.TemporaryDirectory() as tmp:
            imgs = []
            for img in index["images"]:
                src = os.path.join(args.shared, "data", "shapes-val", "images", img + ".jpg")
                os.symlink(os.path.abspath(src), os.path.join(tmp, img + ".jpg"))
                imgs.append(os.path.join(tmp, img + ".jpg"))
            out = os.path.join(tmp, "out.json")
            p = subprocess.run([args.bin, "detect", "--model", pth, "--min-size", str(index["min_size"]),
                                "--max-size", str(index["max_size"]), "--json", out] + imgs,
                               capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{arch}: detect failed: {p.stderr.strip()}")
                ok_all = False
                continue
            res = json.load(open(out))
        worst_box = worst_score = 0.0
        worst_iou = 1.0
        n_ref = n_match = 0
        bad = []
        has_segm = any("segmentation" in r for r in res)
        for img in index["images"]:
            fx = json.load(open(os.path.join(fxdir, f"{arch}_{img}.json")))
            ours = [r for r in res if r["file_name"].startswith(img)]
            used = set()
            for j, (rb, rs, rl) in enumerate(zip(fx["boxes"], fx["scores"], fx["labels"])):
                n_ref += 1
                best, bi = 0.0, -1
                for i, r in enumerate(ours):
                    if i in used or r["category_id"] != rl:
                        continue
                    x, y, w, h = r["bbox"]
                    v = iou(rb, [x, y, x + w, y + h])
                    if v > best:
                        best, bi = v, i
                if bi < 0 or best <= 0.9:
                    if rs >= 0.05 + 1e-3:
                        bad.append(f"{img} det {j} unmatched (score {rs})")
                    continue
                used.add(bi)
                n_match += 1
                r = ours[bi]
                x, y, w, h = r["bbox"]
                bd = max(abs(a - b) for a, b in zip(rb, [x, y, x + w, y + h]))
                sd = abs(r["score"] - rs)
                worst_box, worst_score = max(worst_box, bd), max(worst_score, sd)
                if bd > 0.05 or sd > 1e-3:
                    bad.append(f"{img} det {j}: box {bd:.4f} score {sd:.2e}")
                if "masks_rle" in fx:
                    ref = mask_util.decode({"size": fx["masks_rle"][j]["size"], "counts": fx["masks_rle"][j]["counts"].encode()})
                    seg = r.get("segmentation")
                    m = mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()}) if seg else np.zeros_like(ref)
                    u = np.logical_or(ref, m).sum()
                    v = np.logical_and(ref, m).sum() / u if u else 1.0
                    worst_iou = min(worst_iou, v)
                    if v < 0.99:
                        bad.append(f"{img} det {j}: mask IoU {v:.4f}")
            for i, r in enumerate(ours):
                if i not in used and r["score"] >= 0.05 + 1e-3:
                    bad.append(f"{img}: our detection {i} (score {r['score']}) unmatched")
        masks = any("masks_rle" in json.load(open(os.path.join(fxdir, f"{arch}_{img}.json"))) for img in index["images"])
        if has_segm != masks:
            bad.append(f"segmentation present: {has_segm}, expected {masks}")
        ok = not bad
        ok_all &= ok
        print(f"{arch}: {'OK' if ok else 'FAIL'} — .pth read by detect with --min-size/--max-size only; "
              f"{n_match}/{n_ref} torchvision detections matched on {len(index['images'])} images, "
              f"max box diff {worst_box:.4f} px, max score diff {worst_score:.2e}"
              + (f", min mask IoU {worst_iou:.4f}" if masks else ", no segmentation (box-only)")
              + ("" if ok else "; " + "; ".join(bad[:5])))
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
