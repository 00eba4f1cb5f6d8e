#!/usr/bin/env python3
"""Makes the keypoint fixtures in Tests/Fixtures/keypoints/ (run by hand, never by CI):

    /work/venv-peers/bin/python tools/make_keypoint_fixtures.py

(pycocotools 2.0.11, torch + torchvision 0.29.2 CPU.)

1. persons.json: small synthetic COCO person-keypoint annotations (17 keypoints, visibility
   0/1/2, small/medium/large persons, a crowd region, persons with num_keypoints = 0, an image
   without persons). results.json: perturbed keypoint detections with "bbox" (loadRes' bbox
   branch: area = w*h), duplicates, false positives, detections on the crowd region and on the
   num_keypoints = 0 persons (OKS against the box extended by its size), tied scores.
   results-kp-only.json: the same without "bbox" (loadRes' keypoints branch: area and bbox from
   the keypoints' extent). expected.json: pycocotools' 10 keypoint stats for both, and per image
   the OKS matrix computeOks gives.
2. decode.bin + decode.json: torchvision's heatmaps_to_keypoints on recorded heatmaps and boxes
   (float32 little endian: maps [R, K, H, W], rois [R, 4], then the outputs xy [R, K, 2] and
   scores [R, K]).
3. deconv.bin + deconv.json: KeypointRCNNPredictor's ConvTranspose2d(4x4, stride 2, padding 1)
   + bilinear x2 (align_corners=False) on a small input: x [N, Cin, H, W], weight [Cin, Cout, 4, 4],
   bias [Cout], the deconv output [N, Cout, 2H, 2W] and the upsampled [N, Cout, 4H, 4W].
"""
import copy
import contextlib
import io
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "keypoints")


def quiet(f, *a, **k):
    with contextlib.redirect_stdout(io.StringIO()):
        return f(*a, **k)


def f32(x):
    return float(str(np.float32(x)))


def make_person(rng, img_w, img_h, size, nvis=None):
    w = size * rng.uniform(0.5, 0.8)
    h = size
    x0 = rng.uniform(0, max(1, img_w - w))
    y0 = rng.uniform(0, max(1, img_h - h))
    kps = []
    n = 0
    for k in range(17):
        v = int(rng.choice([0, 1, 2], p=[0.2, 0.2, 0.6]))
        if nvis == 0:
            v = 0
        if v == 0:
            kps += [0, 0, 0]
        else:
            kps += [round(x0 + rng.uniform(0, w), 1), round(y0 + rng.uniform(0, h), 1), v]
            n += 1
    area = round(w * h * rng.uniform(0.5, 0.9), 2)
    return {"bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)], "area": area,
            "keypoints": kps, "num_keypoints": n, "iscrowd": 0}


def crowd_counts(H, W, x0, y0, w, h):
    # Uncompressed column-major RLE of the rectangle x0..x0+w-1, y0..y0+h-1.
    counts = [x0 * H + y0, h]
    for _ in range(w - 1):
        counts += [H - h, h]
    counts.append(H * W - sum(counts))
    return counts


def make_gt(rng):
    images, anns = [], []
    aid = 1
    sizes = [20, 28, 40, 60, 90, 120, 200]
    for img_id in range(1, 9):
        W, H = 480, 360
        images.append({"id": img_id, "file_name": f"p{img_id}.jpg", "width": W, "height": H})
        if img_id == 8:
            continue  # no persons
        for j in range(int(rng.integers(1, 5))):
            p = make_person(rng, W, H, float(rng.choice(sizes)))
            if img_id == 3 and j == 0:
                p = make_person(rng, W, H, 80.0, nvis=0)  # num_keypoints = 0: ignored
            p.update({"id": aid, "image_id": img_id, "category_id": 1, "segmentation": []})
            if p["num_keypoints"] == 0 and img_id != 3:
                p["keypoints"][0:3] = [p["bbox"][0] + 1, p["bbox"][1] + 1, 2]
                p["num_keypoints"] = 1
            anns.append(p)
            aid += 1
        if img_id == 5:  # a crowd region
            anns.append({"id": aid, "image_id": img_id, "category_id": 1, "iscrowd": 1, "area": 9000.0,
                         "bbox": [300.0, 200.0, 150.0, 100.0], "keypoints": [0] * 51, "num_keypoints": 0,
                         "segmentation": {"size": [H, W], "counts": crowd_counts(H, W, 300, 200, 150, 100)}})
            aid += 1
    cats = [{"id": 1, "name": "person", "supercategory": "person",
             "keypoints": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                           "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                           "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"],
             "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                          [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]}]
    return {"images": images, "annotations": anns, "categories": cats}


def make_results(rng, gt):
    res = []
    for a in gt["annotations"]:
        x0, y0, w, h = a["bbox"]
        copies = 1 + int(rng.random() < 0.3)
        for c in range(copies):
            if rng.random() < 0.12 and not a["iscrowd"]:
                continue
            noise = rng.choice([0.01, 0.03, 0.06, 0.2]) * max(w, h) ** 0.5 * 3
            kps = []
            for k in range(17):
                gx, gy, v = a["keypoints"][3 * k: 3 * k + 3]
                if v == 0:
                    gx, gy = x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)
                kps += [f32(gx + rng.normal(0, noise)), f32(gy + rng.normal(0, noise)), 1]
            bx = [f32(x0 + rng.normal(0, 2)), f32(y0 + rng.normal(0, 2)), f32(w * rng.uniform(0.5, 1.8)),
                  f32(h * rng.uniform(0.5, 1.8))]
            res.append({"image_id": a["image_id"], "category_id": 1, "bbox": bx, "keypoints": kps,
                        "score": f32(rng.uniform(0.05, 1.0))})
    for img in gt["images"]:  # false positives
        for j in range(int(rng.integers(0, 3))):
            x0, y0 = rng.uniform(0, 400), rng.uniform(0, 280)
            w, h = rng.uniform(10, 80), rng.uniform(20, 80)
            kps = []
            for k in range(17):
                kps += [f32(x0 + rng.uniform(0, w)), f32(y0 + rng.uniform(0, h)), 1]
            res.append({"image_id": img["id"], "category_id": 1,
                        "bbox": [f32(x0 - 20), f32(y0 - 20), f32(w + 90), f32(h + 90)],  # larger than the keypoints
                        "keypoints": kps, "score": f32(rng.uniform(0.05, 0.6))})
    # tied scores
    res[3]["score"] = res[7]["score"] = res[11]["score"]
    # many on one image (more than maxDets = 20)
    for j in range(24):
        a = gt["annotations"][0]
        kps = []
        for k in range(17):
            kps += [f32(a["bbox"][0] + rng.uniform(0, a["bbox"][2])), f32(a["bbox"][1] + rng.uniform(0, a["bbox"][3])), 1]
        res.append({"image_id": a["image_id"], "category_id": 1, "bbox": list(map(f32, a["bbox"])),
                    "keypoints": kps, "score": f32(rng.uniform(0.05, 0.9))})
    return res


def kp_eval(gt, res):
    dt = quiet(gt.loadRes, copy.deepcopy(res))
    ev = COCOeval(gt, dt, "keypoints")
    quiet(ev.evaluate)
    quiet(ev.accumulate)
    quiet(ev.summarize)
    oks = {}
    for (img, cat), m in ev.ious.items():
        if len(m):
            oks[str(img)] = np.asarray(m).tolist()
    return [float(x) for x in ev.stats], oks


def eval_fixtures():
    rng = np.random.default_rng(1710)
    gtj = make_gt(rng)
    res = make_results(rng, gtj)
    res_kp = [{k: v for k, v in r.items() if k != "bbox"} for r in res]
    with open(os.path.join(OUT, "persons.json"), "w") as f:
        json.dump(gtj, f)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f)
    with open(os.path.join(OUT, "results-kp-only.json"), "w") as f:
        json.dump(res_kp, f)
    gt = quiet(COCO, os.path.join(OUT, "persons.json"))
    s1, o1 = kp_eval(gt, res)
    s2, o2 = kp_eval(gt, res_kp)
    exp = {"results.json": {"stats": s1, "oks": o1}, "results-kp-only.json": {"stats": s2, "oks": o2}}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f)
    print("keypoint stats (bbox branch):", [round(x, 4) for x in s1])
    print("keypoint stats (keypoints branch):", [round(x, 4) for x in s2])


def decode_fixture():
    g = torch.Generator().manual_seed(56)
    R, K, H, W = 5, 4, 56, 56
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    maps = torch.randn(R, K, H, W, generator=g) * 0.5
    for r in range(R):
        for k in range(K):
            cy, cx = torch.rand(2, generator=g) * torch.tensor([H - 1.0, W - 1.0])
            s = 1.5 + 3 * torch.rand(1, generator=g)
            maps[r, k] += 8 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    rois = torch.tensor([[10.3, 20.7, 110.9, 240.2],   # taller than wide
                         [0.0, 0.0, 30.5, 12.25],      # small: maps shrink
                         [100.5, 50.5, 101.2, 51.0],   # narrower than 1 px: clamped to 1
                         [37.25, 80.0, 337.75, 230.5],  # wide
                         [5.0, 6.0, 61.0, 62.0]],       # exactly 56x56
                        dtype=torch.float32)
    xy, scores = heatmaps_to_keypoints(maps, rois)
    blob = b"".join(t.contiguous().numpy().astype("<f4").tobytes()
                    for t in [maps, rois, xy[:, :, :2].contiguous(), scores])
    with open(os.path.join(OUT, "decode.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(OUT, "decode.json"), "w") as f:
        json.dump({"rois": R, "keypoints": K, "height": H, "width": W,
                   "layout": ["maps", "rois", "xy", "scores"], "torchvision": __import__("torchvision").__version__}, f)
    print("decode: xy[0] =", xy[0, :, :2].tolist(), "scores[0] =", scores[0].tolist())


def deconv_fixture():
    g = torch.Generator().manual_seed(17)
    N, Cin, Cout, H, W = 2, 6, 3, 5, 4
    x = torch.relu(torch.randn(N, Cin, H, W, generator=g))
    weight = torch.randn(Cin, Cout, 4, 4, generator=g) * 0.3
    bias = torch.randn(Cout, generator=g) * 0.1
    y = F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    up = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False, recompute_scale_factor=False)
    blob = b"".join(t.contiguous().numpy().astype("<f4").tobytes() for t in [x, weight, bias, y, up])
    with open(os.path.join(OUT, "deconv.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(OUT, "deconv.json"), "w") as f:
        json.dump({"n": N, "cin": Cin, "cout": Cout, "height": H, "width": W,
                   "layout": ["x", "weight", "bias", "deconv", "upsampled"]}, f)
    print("deconv:", tuple(y.shape), tuple(up.shape))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    eval_fixtures()
    decode_fixture()
    deconv_fixture()
