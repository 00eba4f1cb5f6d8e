#!/usr/bin/env python3
"""Make RLE test fixtures with pycocotools (run by hand: /root/venv-ref/bin/python tools/make_rle_fixtures.py).

Writes Tests/Fixtures/rle/masks.json: a few random masks (row-major 0/1 strings, one per row) with
the counts string pycocotools.mask.encode gives, its area and toBbox. The Swift tests check that
edge-mrcnn's encoder is byte-identical and that its decoder agrees on area and bbox.
"""
import json
import os

import numpy as np
from pycocotools import mask as mask_util

rng = np.random.default_rng(20261123)
cases = []


def add(name, m):
    m = np.asarray(m, dtype=np.uint8)
    rle = mask_util.encode(np.asfortranarray(m))
    cases.append({
        "name": name,
        "height": int(m.shape[0]),
        "width": int(m.shape[1]),
        "rows": ["".join("1" if v else "0" for v in row) for row in m],
        "counts": rle["counts"].decode("ascii"),
        "area": int(mask_util.area(rle)),
        "bbox": [float(v) for v in mask_util.toBbox(rle)],
    })


# Sparse and dense noise, of odd sizes.
add("noise_sparse_13x17", rng.random((13, 17)) < 0.1)
add("noise_dense_20x9", rng.random((20, 9)) < 0.8)
add("noise_half_31x40", rng.random((31, 40)) < 0.5)
# Blobs (long runs: multi-group and negative differences).
for i, (h, w) in enumerate([(48, 64), (64, 37), (90, 120)]):
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), bool)
    for _ in range(3):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(3, h / 2), rng.uniform(3, w / 2)
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    add(f"blobs_{i}_{h}x{w}", m)
# A filled rectangle touching the corner (first count 0), an empty and a full mask.
m = np.zeros((25, 30), bool); m[0:10, 0:12] = True
add("corner_rect_25x30", m)
add("empty_7x5", np.zeros((7, 5), bool))
add("full_6x4", np.ones((6, 4), bool))
# A one-run that wraps from the bottom of one column to the top of the next.
m = np.zeros((16, 16), bool)
m[14:16, 5] = True
m[0:2, 6] = True
add("wrap_16x16", m)

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "rle", "masks.json")
with open(out, "w") as f:
    json.dump({"generator": "tools/make_rle_fixtures.py", "cases": cases}, f, indent=0)
print(f"wrote {len(cases)} cases to {os.path.normpath(out)} ({os.path.getsize(out)} bytes)")
