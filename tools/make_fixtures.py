#!/usr/bin/env python3
"""Parity fixtures for the float pipeline (run by hand, never in CI):

    /root/venv-ref/bin/python tools/make_fixtures.py [--shared ../shared] [--out Tests/Fixtures/parity]

Loads ../shared/models/shapes-r50fpn/model.pth into torchvision's maskrcnn_resnet50_fpn
(num_classes=4, min_size=256, max_size=416), runs a few shapes-val images step by step through
model.transform / backbone / rpn / roi_heads / transform.postprocess and writes one small JSON per
image with sizes, summaries + sampled values of the preprocessed tensor and of every FPN level,
all RPN proposals, final boxes/scores/labels, a few 28x28 mask probability maps and the final
masks as COCO RLE. For the two smallest images the PIL-decoded RGB bytes are also written
(<name>.rgb) so that parity does not depend on the JPEG decoder; for every image a checksum of
the decoded pixels is recorded so a decoder mismatch shows up on its own.
"""
import argparse, json, os, zlib
import numpy as np
import torch, torchvision
from PIL import Image
from torchvision.transforms.functional import to_tensor
from torchvision.models.detection import maskrcnn_resnet50_fpn
from pycocotools import mask as mask_util

# (fixture name, image under shared/data, top-left crop (w, h) or None, min_size, max_size)
IMAGES = [
    ("shapes_777_00000", "shapes-val/images/shapes_777_00000.jpg", None, 256, 416),
    ("shapes_777_00002", "shapes-val/images/shapes_777_00002.jpg", None, 256, 416),
    ("shapes_777_00004", "shapes-val/images/shapes_777_00004.jpg", None, 256, 416),
    ("shapes_777_00006", "shapes-val/images/shapes_777_00006.jpg", None, 256, 416),
    # torchvision's default sizes on a 4:3 crop of a photo: 400x533 -> 800x1066, padded 800x1088
    ("coffee_crop_800", "photos/coffee.jpg", (533, 400), 800, 1333),
]
RAW_RGB = {"shapes_777_00002", "shapes_777_00004"}
NSAMPLES = 64


def r(x, nd=5):
    return [round(float(v), nd) for v in x]


def summarize(t, rng):
    """t: [C,H,W] float tensor -> summary + samples at fixed flat indices."""
    flat = t.reshape(-1).double()
    idx = sorted(rng.choice(flat.numel(), size=min(NSAMPLES, flat.numel()), replace=False).tolist())
    return {
        "shape": list(t.shape),
        "mean": float(flat.mean()),
        "mean_abs": float(flat.abs().mean()),
        "max_abs": float(flat.abs().max()),
        "indices": idx,
        "values": [float(flat[i]) for i in idx],
    }


def pixel_checksum(rgb):
    b = rgb.astype(np.uint8).tobytes()
    return {"sum": int(rgb.astype(np.int64).sum()), "crc32": zlib.crc32(b) & 0xFFFFFFFF,
            "first_row": rgb[0, :8].reshape(-1).tolist(), "center": rgb[rgb.shape[0] // 2, rgb.shape[1] // 2].tolist()}


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--shared", default=os.path.join(here, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(here, "Tests", "Fixtures", "parity"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    sd = torch.load(os.path.join(args.shared, "models/shapes-r50fpn/model.pth"), map_location="cpu",
                    weights_only=True)
    rng = np.random.default_rng(1234)
    index = []
    for name, rel, crop, min_size, max_size in IMAGES:
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4,
                                      min_size=min_size, max_size=max_size)
        model.load_state_dict(sd)
        model.eval()
        path = os.path.join(args.shared, "data", rel)
        pil = Image.open(path).convert("RGB")
        if crop is not None:
            pil = pil.crop((0, 0, crop[0], crop[1]))
        rgb = np.asarray(pil)
        if name in RAW_RGB:
            rgb.tofile(os.path.join(args.out, name + ".rgb"))
        img = to_tensor(pil)
        H, W = img.shape[-2:]
        with torch.no_grad():
            images, _ = model.transform([img])
            x = images.tensors[0]
            rh, rw = images.image_sizes[0]
            feats = model.backbone(images.tensors)
            props, _ = model.rpn(images, feats)
            dets, _ = model.roi_heads(feats, props, images.image_sizes)
            # 28x28 probabilities of the predicted label are in dets[0]["masks"] [N,1,28,28]
            mask_probs = dets[0]["masks"][:, 0]
            pre_boxes = dets[0]["boxes"].clone()
            final = model.transform.postprocess(dets, images.image_sizes, [(H, W)])[0]
        fx = {
            "image": rel,
            "crop": list(crop) if crop else None,
            "min_size": min_size, "max_size": max_size,
            "raw_rgb": (name + ".rgb") if name in RAW_RGB else None,
            "decoded": pixel_checksum(rgb),
            "orig_size": [int(H), int(W)],
            "resized_size": [int(rh), int(rw)],
            "padded_size": list(images.tensors.shape[-2:]),
            "input": summarize(x, rng),
            "fpn": {k: summarize(v[0], rng) for k, v in feats.items()},
            "proposals": [r(b, 4) for b in props[0].tolist()],
            "pre_paste_boxes": [r(b, 4) for b in pre_boxes.tolist()],
            "boxes": [r(b, 4) for b in final["boxes"].tolist()],
            "scores": r(final["scores"].tolist(), 6),
            "labels": [int(v) for v in final["labels"].tolist()],
            "mask_probs_first": [r(m.reshape(-1).tolist(), 5) for m in mask_probs[:3]],
        }
        masks = (final["masks"][:, 0] > 0.5).numpy().astype(np.uint8)
        rles = []
        for m in masks:
            e = mask_util.encode(np.asfortranarray(m))
            rles.append({"size": [int(s) for s in e["size"]], "counts": e["counts"].decode("ascii")})
        fx["masks_rle"] = rles
        out = os.path.join(args.out, name + ".json")
        with open(out, "w") as f:
            json.dump(fx, f, separators=(",", ":"))
        print(f"{name}: {W}x{H} -> {rw}x{rh} pad {list(images.tensors.shape[-2:])}, "
              f"{len(props[0])} proposals, {len(final['boxes'])} detections, {os.path.getsize(out)} B")
        index.append(name)
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"images": index, "torch": torch.__version__, "torchvision": torchvision.__version__},
                  f, indent=1)


if __name__ == "__main__":
    main()
