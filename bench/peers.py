#!/usr/bin/env python3
"""Side-by-side benchmark: edge-mrcnn (float, int8) against torch eager fp32 and ONNX Runtime
fp32 / int8 (QDQ, per-channel) on the SAME synthetic COCO-layout model and the same input.

Never a CI dependency. Needs torch + torchvision + safetensors (and onnxruntime + onnx for the ORT
rows) in the Python that runs it (a fresh venv: `pip install torch torchvision safetensors onnx
onnxruntime`), e.g. /root/venv-ref/bin/python bench/peers.py --runs 7 --threads 2

1. `edge-mrcnn convert --synthetic-coco` writes the seeded random model (torchvision's
   initialisation, BatchNorm folded) as safetensors; `--int8` also calibrates it on seeded noise
   images. torchvision's maskrcnn_resnet50_fpn(weights=None) gets the same folded weights: each
   backbone conv takes the folded weight, its BatchNorm is made an exact identity (weight 1,
   running mean 0, var 1, eps 0) with the folded bias as its bias.
2. The input is edge-mrcnn bench's noise image (xorshift32, seed 0), reproduced here bit for bit.
3. Each runtime runs in its own process under /usr/bin/time -v (peak RSS), with the same thread
   count, warm-up runs, then N timed runs of the whole model (median reported).
4. Our float detections are compared with torch's (count, top boxes by IoU): this also checks the
   weight mapping.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ----------------------------------------------------------------------------- shared helpers

def noise_image(h, w, seed=0):
    """edge-mrcnn's SyntheticModel.noiseImage: xorshift32, interleaved RGB, HxWx3 uint8."""
    import numpy as np
    state = (0x9E3779B9 ^ ((seed * 0x85EBCA6B) & 0xFFFFFFFF)) & 0xFFFFFFFF
    if state == 0:
        state = 1
    n = h * w * 3
    out = bytearray(n)
    m = 0xFFFFFFFF
    for i in range(n):
        state ^= (state << 13) & m
        state ^= state >> 17
        state ^= (state << 5) & m
        out[i] = state >> 24
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(h, w, 3)


def load_image_tensor(path):
    import numpy as np
    import torch
    img = np.load(path)
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float().div_(255.0)


def torchvision_model(safetensors_path, score_thresh):
    """maskrcnn_resnet50_fpn with our folded weights (see the module docstring)."""
    import torch
    import torchvision
    from safetensors.torch import load_file
    sd = load_file(safetensors_path)
    m = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, box_score_thresh=score_thresh).eval()
    target = m.state_dict()
    new = {}
    for name, t in sd.items():
        prefix, leaf = name.rsplit(".", 1)
        if prefix.startswith("backbone.body."):
            if prefix.endswith(".downsample"):
                conv, bn = prefix + ".0", prefix + ".1"
            else:
                parts = prefix.split(".")
                conv = prefix
                bn = ".".join(parts[:-1] + ["bn" + parts[-1][4:]])
            if leaf == "weight":
                new[conv + ".weight"] = t
                new[bn + ".weight"] = torch.ones(t.shape[0])
                new[bn + ".running_mean"] = torch.zeros(t.shape[0])
                new[bn + ".running_var"] = torch.ones(t.shape[0])
            else:
                new[bn + ".bias"] = t
            continue
        if prefix.startswith("backbone.fpn."):
            new[prefix + ".0." + leaf] = t
        elif prefix == "rpn.head.conv":
            new["rpn.head.conv.0.0." + leaf] = t
        elif prefix.startswith("roi_heads.mask_head."):
            new[prefix + ".0." + leaf] = t
        else:
            new[name] = t
    missing = [k for k in target if k not in new and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"weight mapping left {len(missing)} tensors unset, e.g. {missing[:3]}")
    for k in new:
        if k not in target or target[k].shape != new[k].shape:
            raise SystemExit(f"weight mapping: {k} is not a torchvision tensor of that shape")
    m.load_state_dict(new, strict=False)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eps = 0.0
    return m


def summarize(boxes, scores, labels):
    return {"boxes": [list(map(float, b)) for b in boxes], "scores": list(map(float, scores)),
            "labels": list(map(int, labels))}


# ----------------------------------------------------------------------------- workers

def worker(args):
    """One runtime in this process; writes {times, detections} as JSON to args.result."""
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    x = load_image_tensor(args.image)
    times = []
    det = None
    if args.worker == "torch-fp32":
        m = torchvision_model(args.float_model, args.score_thresh)
        with torch.inference_mode():
            for i in range(args.warmup + args.runs):
                t0 = time.perf_counter()
                out = m([x])[0]
                dt = time.perf_counter() - t0
                if i >= args.warmup:
                    times.append(dt)
        det = summarize(out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy())
    elif args.worker in ("ort-fp32", "ort-int8"):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        path = args.onnx if args.worker == "ort-fp32" else args.onnx_int8
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x.numpy()}
        for i in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            out = sess.run(None, feed)
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times.append(dt)
        det = summarize(out[0], out[2], out[1])
    else:
        raise SystemExit("unknown worker " + args.worker)
    with open(args.result, "w") as f:
        json.dump({"times": times, "detections": det}, f)


def export_onnx(args, work):
    """The fp32 ONNX model (opset 17, TorchScript exporter) and its QDQ int8 version."""
    import numpy as np
    import torch
    onnx_path = os.path.join(work, "model.onnx")
    int8_path = os.path.join(work, "model-int8.onnx")
    if not os.path.exists(onnx_path):
        m = torchvision_model(args.float_model, args.score_thresh)
        x = load_image_tensor(args.image)
        log("exporting ONNX (opset 17, dynamo=False)")
        torch.onnx.export(m, ([x],), onnx_path, opset_version=17, dynamo=False,
                          input_names=["image"], output_names=["boxes", "labels", "scores", "masks"])
    if not os.path.exists(int8_path) and "ort-int8" in args.only:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                              QuantType, quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
        pre = os.path.join(work, "model-pre.onnx")
        log("quantising ONNX (QDQ, per-channel, u8 activations / s8 weights, MinMax)")
        quant_pre_process(onnx_path, pre, skip_symbolic_shape=True)
        h, w = args.h, args.w

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = [noise_image(h, w, seed=s) for s in range(1, args.calib_images + 1)]

            def get_next(self):
                if not self.items:
                    return None
                img = self.items.pop(0)
                t = (img.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()
                return {"image": t}

        quantize_static(pre, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul"])
        # No CalibMaxIntermediateOutputs: the MinMax calibrator keeps only the ReduceMin/ReduceMax
        # outputs it adds (small) per image, and in onnxruntime 1.32 clear_collected_data()
        # drops the collected outputs without merging them, so with CalibMaxIntermediateOutputs
        # = 1 every image is discarded and quantize_static stops with "No data is collected."
    return onnx_path, int8_path


# ----------------------------------------------------------------------------- driver

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def timed_process(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout, peak RSS bytes)."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")
    rss = 0
    for line in r.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) * 1024
    return r.stdout, rss


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.machine()


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def ours_detections(path):
    with open(path) as f:
        res = json.load(f)
    boxes = [[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]] for d in res]
    return {"boxes": boxes, "scores": [d["score"] for d in res], "labels": [d["category_id"] for d in res]}


def compare(name, ref, other, top=20):
    """Matches other's detections to ref's by IoU (same label): how many of ref's top boxes are found."""
    n = min(top, len(ref["boxes"]))
    found, worst_score = 0, 0.0
    for i in range(n):
        best, j_best = 0.0, -1
        for j, b in enumerate(other["boxes"]):
            if other["labels"][j] != ref["labels"][i]:
                continue
            v = iou(ref["boxes"][i], b)
            if v > best:
                best, j_best = v, j
        if best > 0.9:
            found += 1
            worst_score = max(worst_score, abs(other["scores"][j_best] - ref["scores"][i]))
    return (f"{name}: {len(other['boxes'])} detections (torch {len(ref['boxes'])}); "
            f"{found}/{n} of torch's top {n} matched at IoU > 0.9 with the same label, "
            f"max score difference {worst_score:.2g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release/edge-mrcnn"))
    ap.add_argument("--size", default="800x1066")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib-images", type=int, default=2)
    ap.add_argument("--work", default="/tmp/edge-mrcnn-peers")
    ap.add_argument("--only", default="ours-int8,ours-float,torch-fp32,ort-fp32,ort-int8",
                    help="comma-separated rows to run")
    ap.add_argument("--out", help="also write the markdown table to this file")
    # worker mode (internal)
    ap.add_argument("--worker")
    ap.add_argument("--image")
    ap.add_argument("--result")
    ap.add_argument("--float-model")
    ap.add_argument("--onnx")
    ap.add_argument("--onnx-int8")
    ap.add_argument("--score-thresh", type=float, default=0.0)
    args = ap.parse_args()
    args.h, args.w = map(int, args.size.split("x"))
    args.only = args.only.split(",")
    if args.worker:
        worker(args)
        return

    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    float_model = os.path.join(work, f"synthetic-seed{args.seed}-float.safetensors")
    int8_model = os.path.join(work, f"synthetic-seed{args.seed}-int8-{args.size}.safetensors")
    image = os.path.join(work, f"noise-{args.size}.npy")
    if not os.path.exists(float_model):
        log("writing the synthetic float model")
        subprocess.run([args.bin, "convert", "--synthetic-coco", "--seed", str(args.seed), "-o", float_model], check=True)
    if "ours-int8" in args.only and not os.path.exists(int8_model):
        log("writing the synthetic int8 model (calibrated on noise images)")
        subprocess.run([args.bin, "--threads", str(args.threads), "convert", "--synthetic-coco", "--seed", str(args.seed),
                        "--int8", "--size", args.size, "--calib-images", str(args.calib_images), "-o", int8_model], check=True)
    if not os.path.exists(image):
        import numpy as np
        log("drawing the input image")
        np.save(image, noise_image(args.h, args.w))
    args.float_model = float_model
    args.image = image
    onnx_path = onnx_int8 = None
    if "ort-fp32" in args.only or "ort-int8" in args.only:
        onnx_path, onnx_int8 = export_onnx(args, work)

    import platform
    import torch
    versions = {"torch": torch.__version__}
    try:
        import torchvision
        versions["torchvision"] = torchvision.__version__
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass

    load_before = os.getloadavg()
    rows = []
    dets = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    for row in args.only:
        log(f"running {row}")
        if row.startswith("ours-"):
            model = int8_model if row == "ours-int8" else float_model
            det_path = os.path.join(work, f"{row}-detections.json")
            out, rss = timed_process([args.bin, "--threads", str(args.threads), "bench", "--model", model,
                                      "--size", args.size, "--runs", str(args.runs), "--warmup", str(args.warmup),
                                      "--json", "--save-detections", det_path], env)
            j = json.loads(out)
            rows.append(("edge-mrcnn (this)", "int8" if row == "ours-int8" else "fp32", j["median_s"], j["min_s"], rss,
                         j["detections"], j["isa"]))
            dets[row] = ours_detections(det_path)
        else:
            result = os.path.join(work, f"{row}.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", row, "--image", image, "--result", result,
                   "--float-model", float_model, "--threads", str(args.threads), "--runs", str(args.runs),
                   "--warmup", str(args.warmup), "--score-thresh", "0.0"]
            if onnx_path:
                cmd += ["--onnx", onnx_path, "--onnx-int8", onnx_int8]
            _, rss = timed_process(cmd, env)
            with open(result) as f:
                j = json.load(f)
            label = {"torch-fp32": ("torch eager", "fp32"), "ort-fp32": ("ONNX Runtime", "fp32"),
                     "ort-int8": ("ONNX Runtime QDQ per-channel", "int8")}[row]
            rows.append((label[0], label[1], median(j["times"]), min(j["times"]), rss, len(j["detections"]["boxes"]), ""))
            dets[row] = j["detections"]

    lines = [
        f"Synthetic COCO-layout Mask R-CNN R50-FPN (seed {args.seed}, torchvision initialisation, BN folded), "
        f"noise input {args.size}, score threshold 0 (100 detections reach the mask head), "
        f"{args.threads} threads, {args.warmup} warm-up, median of {args.runs}. Peak RSS from /usr/bin/time -v "
        f"(whole process, model loading included).",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f". Load average (1/5/15 min) before: {' '.join(f'{v:.2f}' for v in load_before)}, after: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg()) + ".",
        "",
        "| runtime | precision | median | min | peak RSS | detections |",
        "|---|---|---|---|---|---|",
    ]
    for name, prec, med, mn, rss, nd, isa in rows:
        lines.append(f"| {name}{' (' + isa + ')' if isa else ''} | {prec} | {med:.3f} s | {mn:.3f} s | "
                     f"{rss / 2**20:.0f} MiB | {nd} |")
    if "torch-fp32" in dets:
        lines.append("")
        for row in ("ours-float", "ours-int8", "ort-fp32", "ort-int8"):
            if row in dets:
                lines.append("- " + compare(row, dets["torch-fp32"], dets[row]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
