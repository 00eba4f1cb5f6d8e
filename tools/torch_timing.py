#!/usr/bin/env python3
"""Per-stage torch eager timings of torchvision maskrcnn_resnet50_fpn with the shapes model, on the
same inputs as Tests/EdgeMRCNNTests/PipelineBenchTests.swift (run by hand, never in CI):

    /root/venv-ref/bin/python tools/torch_timing.py [--threads 1] [--runs 5]

Stages mirror PipelineTrace: preprocess (to_tensor + model.transform), backbone (body), fpn,
rpn, roi_heads (box branch + postprocess_detections), masks (mask branch + maskrcnn_inference),
paste (transform.postprocess + > 0.5). Median of --runs after one warm-up, in wall time and in process CPU time (time.process_time, the
steadier measure on a shared machine).
"""
import argparse, os, time
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import maskrcnn_inference


def load(shared, min_size, max_size):
    m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4, min_size=min_size,
                              max_size=max_size)
    m.load_state_dict(torch.load(os.path.join(shared, "models/shapes-r50fpn/model.pth"),
                                 map_location="cpu", weights_only=True))
    return m.eval()


@torch.no_grad()
def staged(model, rgb):
    t = [time.perf_counter()]
    c = [time.process_time()]
    img = to_tensor(rgb)
    H, W = img.shape[-2:]
    images, _ = model.transform([img]); t.append(time.perf_counter()); c.append(time.process_time())
    body = model.backbone.body(images.tensors); t.append(time.perf_counter()); c.append(time.process_time())
    feats = model.backbone.fpn(body); t.append(time.perf_counter()); c.append(time.process_time())
    props, _ = model.rpn(images, feats); t.append(time.perf_counter()); c.append(time.process_time())
    rh = model.roi_heads
    x = rh.box_roi_pool(feats, props, images.image_sizes)
    x = rh.box_head(x)
    cl, br = rh.box_predictor(x)
    boxes, scores, labels = rh.postprocess_detections(cl, br, props, images.image_sizes)
    t.append(time.perf_counter()); c.append(time.process_time())
    mf = rh.mask_roi_pool(feats, boxes, images.image_sizes)
    mf = rh.mask_head(mf)
    ml = rh.mask_predictor(mf)
    masks = maskrcnn_inference(ml, labels); t.append(time.perf_counter()); c.append(time.process_time())
    res = [{"boxes": boxes[0], "scores": scores[0], "labels": labels[0], "masks": masks[0]}]
    out = model.transform.postprocess(res, images.image_sizes, [(H, W)])[0]
    binm = out["masks"] > 0.5; t.append(time.perf_counter()); c.append(time.process_time())
    return np.diff(t), np.diff(c), len(out["boxes"])


def bench(label, model, rgb, runs):
    staged(model, rgb)
    rows, crows = [], []
    for _ in range(runs):
        d, cd, n = staged(model, rgb)
        rows.append(d); crows.append(cd)
    med = np.median(np.array(rows), axis=0) * 1000
    tots = np.array(rows).sum(axis=1) * 1000
    tot, tmin = np.median(tots), tots.min()
    names = ["preprocess", "backbone", "fpn", "rpn", "roi_heads", "masks", "paste"]
    print(f"TORCH {label} threads={torch.get_num_threads()} dets={n}: "
          + " ".join(f"{k} {v:.1f}" for k, v in zip(names, med)) + f" | total median {tot:.1f} min {tmin:.1f} ms")
    cmed = np.median(np.array(crows), axis=0) * 1000
    ctots = np.array(crows).sum(axis=1) * 1000
    print("  cpu: " + " ".join(f"{k} {v:.1f}" for k, v in zip(names, cmed))
          + f" | total median {np.median(ctots):.1f} min {ctots.min():.1f} ms")
    with torch.no_grad():
        t0 = time.perf_counter(); model([to_tensor(rgb)]); t1 = time.perf_counter()
    print(f"TORCH {label} full model() one run: {(t1 - t0) * 1000:.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--shared", default=os.path.join(here, "..", "shared"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shapes = np.asarray(Image.open(os.path.join(a.shared, "data/shapes-val/images/shapes_777_00000.jpg")).convert("RGB"))
    bench("shapes_777_00000 349x403 (256/416)", load(a.shared, 256, 416), shapes, a.runs)
    coffee = Image.open(os.path.join(a.shared, "data/photos/coffee.jpg")).convert("RGB").crop((0, 0, 533, 400))
    bench("coffee crop 533x400 -> 800x1066 (800/1333)", load(a.shared, 800, 1333), np.asarray(coffee), a.runs)


if __name__ == "__main__":
    main()
