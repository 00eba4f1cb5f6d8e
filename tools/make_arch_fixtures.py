#!/usr/bin/env python3
"""Parity fixtures for torchvision's R-CNN ResNet-50-FPN family (run by hand, never in CI):

    /work/venv-peers/bin/python tools/make_arch_fixtures.py [--out Tests/Fixtures/arch] [--pth-dir /tmp/edge-mrcnn-arch]

For each architecture (fasterrcnn v1, maskrcnn v2, fasterrcnn v2; maskrcnn v1 with --arch) it builds the model with torchvision's builder
(weights=None, weights_backbone=None, NUM_CLASSES classes, min_size 256 / max_size 416), fills
its state dict with SEEDED values, saves `torch.save(model.state_dict())` as
<pth-dir>/<arch>.pth (not committed: ~170 MB each), runs two shapes-val images (the raw RGB bytes
of Tests/Fixtures/parity/*.rgb, so no JPEG decoder is involved) step by step and writes
<out>/<arch>_<image>.json: sizes, sampled FPN values, all RPN proposals, final
boxes/scores/labels and masks as COCO RLE. <out>/keys.json lists the state-dict keys and shapes
of every architecture as published (COCO class counts) for the key-recognition tests.

The seeded values are what Sources/EdgeMRCNN/Model/SeededCheckpoint.swift regenerates in memory
(tests fold that state dict through the same path a .pth takes). The generator is the one of
SyntheticModel.swift, reimplemented here bit for bit in numpy:
  - per tensor: seed = splitmix64(model_seed ^ fnv1a64(key)).next()
  - splitmix64 is counter based (state_i = seed + i * 0x9E3779B97F4A7C15), so draws vectorise
  - uniform in (-1, 1): 2 * ((z >> 11) * 2^-53) - 1
  - normal: Marsaglia's polar method on consecutive pairs (u, v), rejected when s >= 1 or s == 0;
    an accepted pair gives u*f then v*f, f = sqrt(-2 * log(s) / s), log in plain double
    arithmetic (SyntheticModel.log: 21 terms of 2 atanh(t))
  - value = float32(offset + scale * x)
What each tensor gets (INIT and GAINS below; torchvision's initialisation, read from its source):
  backbone.body convs: kaiming_normal_(fan_out) | backbone.fpn: kaiming_uniform_(a=1), bias 0 |
  rpn.head: normal(0.01), bias 0 | box_head convs: kaiming_normal_(fan_out) | box_head / box_predictor
  Linear: torch default U(+-1/sqrt(fan_in)) for weight and bias | mask_head: kaiming_normal_(fan_out),
  bias 0 | mask_predictor: kaiming_normal_(fan_out) weight, torch-default bias |
  every BatchNorm: weight 1 + 0.25u, bias 0.1u, running_mean 0.1u, running_var 1 + 0.25u |
  GAINS multiply the std/bound of the predictors so scores are not near-tied.

Extending to keypointrcnn_resnet50_fpn (the keypoint helper): add "keypointrcnn_v1" to ARCHS with
its builder, give INIT rules for roi_heads.keypoint_head.* (KeypointRCNNHeads: kaiming_normal_
fan_out, bias 0) and roi_heads.keypoint_predictor.* (kaiming_normal_ fan_out, bias 0), add a GAINS
entry for kps_score_lowres.weight if the heatmaps come out flat, and record the keypoints in
record(); on the Swift side the network description's new layers carry the same WeightInit and
SeededCheckpoint needs no change (it walks the description). num_classes is 2 for keypoints.
"""
import argparse, json, os, zlib
import numpy as np
import torch, torchvision
from torchvision.models import detection as D
from pycocotools import mask as mask_util

SEED = 20261130           # SeededCheckpoint.defaultSeed
NUM_CLASSES = 5
MIN_SIZE, MAX_SIZE = 256, 416
IMAGES = ["shapes_777_00002", "shapes_777_00004"]
ARCHS = {
    # edge-mrcnn architecture name: (torchvision builder, masks). maskrcnn v1 has its own parity
    # fixtures (tools/make_fixtures.py, a trained model); `--arch maskrcnn_resnet50_fpn_v1` records
    # seeded ones too (the same backbone/RPN/box values as fasterrcnn v1, plus masks).
    "fasterrcnn_resnet50_fpn_v1": (D.fasterrcnn_resnet50_fpn, False),
    "maskrcnn_resnet50_fpn_v2": (D.maskrcnn_resnet50_fpn_v2, True),
    "fasterrcnn_resnet50_fpn_v2": (D.fasterrcnn_resnet50_fpn_v2, False),
    "keypointrcnn_resnet50_fpn_v1": (D.keypointrcnn_resnet50_fpn, False),
}
PUBLISHED = dict(ARCHS)
# class count per architecture when not NUM_CLASSES (Keypoint R-CNN: background + person)
CLASSES_OF = {"keypointrcnn_resnet50_fpn_v1": 2}
# SeededCheckpoint.gains
GAINS = {
    "rpn.head.cls_logits.weight": 2.0,
}
BN = {"weight": (1.0, 0.25), "bias": (0.0, 0.1), "running_mean": (0.0, 0.1), "running_var": (1.0, 0.25)}
M64 = (1 << 64) - 1
NSAMPLES = 64


# ------------------------------------------------------------------ the generator (SyntheticModel.swift)

def splitmix_seq(seed, n):
    """The first n outputs of splitmix64 seeded with `seed` (uint64 array)."""
    with np.errstate(over="ignore"):
        st = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = st
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tensor_seed(seed, name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return int(splitmix_seq(seed ^ h, 1)[0])


def symmetric(z):
    return 2.0 * ((z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)) - 1.0


def plain_log(x):
    m, e = np.frexp(x)          # x = m * 2^e, m in [0.5, 1)
    m = m * 2.0
    e = e.astype(np.int64) - 1  # significand in [1, 2)
    big = m > 1.4142135623730951
    m = np.where(big, m * 0.5, m)
    e = e + big
    t = (m - 1) / (m + 1)
    t2 = t * t
    term = t.copy()
    s = np.zeros_like(t)
    k = 1.0
    for _ in range(21):
        s = s + term / k
        term = term * t2
        k += 2
    return 2 * s + e.astype(np.float64) * 0.6931471805599453


def fill(seed, n, normal, offset, scale):
    if n == 0:
        return np.zeros(0, np.float32)
    if not normal:
        x = symmetric(splitmix_seq(seed, n))
        return (offset + scale * x).astype(np.float32)
    pairs = n // 2 + 16
    while True:
        z = symmetric(splitmix_seq(seed, 2 * pairs))
        u, v = z[0::2], z[1::2]
        s = u * u + v * v
        ok = (s < 1) & (s != 0)
        if ok.sum() * 2 >= n:
            break
        pairs = pairs * 2
    u, v, s = u[ok], v[ok], s[ok]
    f = np.sqrt(-2 * plain_log(s) / s)
    out = np.empty(2 * len(u))
    out[0::2] = u * f
    out[1::2] = v * f
    return (offset + scale * out[:n]).astype(np.float32)


def fans(shape):
    rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


def init_rule(key, shape, weight_shape):
    """(normal?, std or bound) of a conv/linear tensor: torchvision's initialisation."""
    is_bias = key.endswith(".bias")
    fan_in, fan_out = fans(weight_shape)
    kaiming = (True, (2.0 / fan_out) ** 0.5)
    default = (False, 1.0 / fan_in ** 0.5)
    zero = (False, 0.0)
    if key.startswith("backbone.body."):
        return zero if is_bias else kaiming
    if key.startswith("backbone.fpn."):
        return zero if is_bias else (False, (3.0 / fan_in) ** 0.5)
    if key.startswith("rpn.head."):
        return zero if is_bias else (True, 0.01)
    if key.startswith("roi_heads.box_head."):
        if len(weight_shape) == 4:
            return zero if is_bias else kaiming
        return default
    if key.startswith("roi_heads.box_predictor."):
        return default
    if key.startswith("roi_heads.mask_head."):
        return zero if is_bias else kaiming
    if key.startswith("roi_heads.mask_predictor."):
        return default if is_bias else kaiming
    if key.startswith("roi_heads.keypoint_head.") or key.startswith("roi_heads.keypoint_predictor."):
        return zero if is_bias else kaiming
    raise SystemExit(f"no initialisation rule for {key}")


def seeded_state_dict(model, seed=SEED):
    sd = model.state_dict()
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    out = {}
    for key, t in sd.items():
        prefix, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            out[key] = t.clone()
            continue
        ts = tensor_seed(seed, key)
        if "BatchNorm" in kinds.get(prefix, ""):
            off, sc = BN[leaf]
            v = fill(ts, t.numel(), False, off, sc)
        else:
            wshape = list(sd[prefix + ".weight"].shape)
            normal, scale = init_rule(key, list(t.shape), wshape)
            scale *= GAINS.get(key, 1.0)
            v = fill(ts, t.numel(), normal, 0.0, scale) if scale != 0 else np.zeros(t.numel(), np.float32)
        out[key] = torch.from_numpy(v.reshape(tuple(t.shape)).copy())
    return out


# ------------------------------------------------------------------ fixtures

def r(x, nd):
    return [round(float(v), nd) for v in x]


def summarize(t, rng):
    flat = t.reshape(-1).double()
    idx = sorted(rng.choice(flat.numel(), size=min(NSAMPLES, flat.numel()), replace=False).tolist())
    return {"shape": list(t.shape), "mean_abs": float(flat.abs().mean()), "max_abs": float(flat.abs().max()),
            "indices": idx, "values": [float(flat[i]) for i in idx]}


def record(model, rgb, masks, rng):
    H, W = rgb.shape[:2]
    img = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        images, _ = model.transform([img])
        rh, rw = images.image_sizes[0]
        feats = model.backbone(images.tensors)
        props, _ = model.rpn(images, feats)
        dets, _ = model.roi_heads(feats, props, images.image_sizes)
        final = model.transform.postprocess(dets, images.image_sizes, [(H, W)])[0]
    fx = {
        "orig_size": [int(H), int(W)], "resized_size": [int(rh), int(rw)],
        "padded_size": list(images.tensors.shape[-2:]),
        "fpn": {k: summarize(v[0], rng) for k, v in feats.items()},
        "proposals": [r(b, 3) for b in props[0].tolist()],
        "boxes": [r(b, 4) for b in final["boxes"].tolist()],
        "scores": r(final["scores"].tolist(), 6),
        "labels": [int(v) for v in final["labels"].tolist()],
    }
    if masks:
        rles = []
        for m in (final["masks"][:, 0] > 0.5).numpy().astype(np.uint8):
            e = mask_util.encode(np.asfortranarray(m))
            rles.append({"size": [int(s) for s in e["size"]], "counts": e["counts"].decode("ascii")})
        fx["masks_rle"] = rles
    if "keypoints" in final:
        # per detection: 17 x (x, y, score) in original-image pixels (keypoints_scores: the logit)
        fx["keypoints"] = [[[round(float(p[0]), 4), round(float(p[1]), 4), round(float(s), 5)] for p, s in zip(kp, ks)]
                           for kp, ks in zip(final["keypoints"].tolist(), final["keypoints_scores"].tolist())]
    return fx


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(here, "Tests", "Fixtures", "arch"))
    ap.add_argument("--pth-dir", default="/tmp/edge-mrcnn-arch")
    ap.add_argument("--arch", action="append", help="only these (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.pth_dir, exist_ok=True)
    parity = os.path.join(here, "Tests", "Fixtures", "parity")

    keys = {}
    for name, (builder, _) in PUBLISHED.items():
        m = builder(weights=None, weights_backbone=None)
        keys[name] = [[k, list(v.shape)] for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")]
    with open(os.path.join(args.out, "keys.json"), "w") as f:
        json.dump(keys, f, separators=(",", ":"))

    index = {"seed": SEED, "num_classes": NUM_CLASSES, "min_size": MIN_SIZE, "max_size": MAX_SIZE,
             "images": IMAGES, "torch": torch.__version__, "torchvision": torchvision.__version__, "fixtures": []}
    todo = dict(ARCHS, maskrcnn_resnet50_fpn_v1=(D.maskrcnn_resnet50_fpn, True)) if args.arch else ARCHS
    for name, (builder, masks) in todo.items():
        if args.arch and name not in args.arch:
            continue
        model = builder(weights=None, weights_backbone=None, num_classes=CLASSES_OF.get(name, NUM_CLASSES),
                        min_size=MIN_SIZE, max_size=MAX_SIZE)
        sd = seeded_state_dict(model)
        model.load_state_dict(sd)
        model.eval()
        pth = os.path.join(args.pth_dir, name + ".pth")
        torch.save(model.state_dict(), pth)
        for img in IMAGES:
            meta = json.load(open(os.path.join(parity, img + ".json")))
            h, w = meta["orig_size"]
            rgb = np.fromfile(os.path.join(parity, img + ".rgb"), dtype=np.uint8).reshape(h, w, 3)
            rng = np.random.default_rng(zlib.crc32((name + img).encode()))
            fx = record(model, rgb, masks, rng)
            fx.update({"arch": name, "image": img, "raw_rgb": "parity/" + img + ".rgb"})
            out = os.path.join(args.out, f"{name}_{img}.json")
            with open(out, "w") as f:
                json.dump(fx, f, separators=(",", ":"))
            sc = fx["scores"]
            print(f"{name} {img}: {len(fx['proposals'])} proposals, {len(sc)} detections "
                  f"(top scores {sc[:3]}), {os.path.getsize(out)} B")
            if name not in CLASSES_OF:   # ArchParityTests reads NUM_CLASSES models; KeypointParityTests its own
                index["fixtures"].append(f"{name}_{img}")
        print(f"saved {pth}")
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
