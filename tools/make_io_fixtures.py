#!/usr/bin/env python3
"""Writes the tiny IO test fixtures into Tests/Fixtures/io/ (run by hand, never by CI):

    /root/venv-ref/bin/python tools/make_io_fixtures.py            # write the fixtures
    /root/venv-ref/bin/python tools/make_io_fixtures.py --check-ours FILE.safetensors [--shapes-folded]
        # load a file written by edge-mrcnn's SafeTensorsWriter with Python's safetensors and
        # compare it with tests/Fixtures/io/roundtrip-expected.json (or, with --shapes-folded,
        # with the BN-folded tensors of ../shared/models/shapes-r50fpn/model.pth computed in torch).
"""
import collections, io, json, os, sys, zipfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "io")
SHAPES = os.path.join(os.path.dirname(ROOT), "shared", "models", "shapes-r50fpn", "model.pth")


def as_list(t):
    return t.detach().to(torch.float64).reshape(-1).tolist() if t.is_floating_point() else t.reshape(-1).tolist()


def describe(sd):
    return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": as_list(v)}
            for k, v in sd.items()}


def dtype_state_dict():
    sd = collections.OrderedDict()
    sd["f32"] = torch.tensor([[1.5, -2.25, 3.0], [4.0, 5.5, -6.75]], dtype=torch.float32)
    sd["f16"] = torch.tensor([0.5, -1.0, 65504.0, 6.1e-5, 1e-7], dtype=torch.float16)   # incl. a subnormal
    sd["bf16"] = torch.tensor([1.0, -3.5, 256.0], dtype=torch.bfloat16)
    sd["f64"] = torch.tensor([[0.1, 0.2], [1e-3, -7.0]], dtype=torch.float64)
    sd["i64"] = torch.tensor([1, -2, 1 << 40], dtype=torch.int64)
    sd["scalar"] = torch.tensor(3.5)                                   # 0-dim
    sd["nbt"] = torch.tensor(42, dtype=torch.int64)                    # like num_batches_tracked
    base = torch.arange(12, dtype=torch.float32) * 0.5
    sd["view"] = base.view(3, 4)[:, 1:3]                               # offset 1, stride (4, 1)
    sd["transposed"] = base.view(3, 4).t()                             # stride (1, 4), shares `base`
    other = torch.arange(10, dtype=torch.float32) + 100
    sd["shared_a"] = other[2:6]                                        # offset 2 into a shared storage
    sd["shared_b"] = other.view(2, 5)[1]                               # offset 5
    sd["param"] = torch.nn.Parameter(torch.tensor([7.0, 8.0]))         # _rebuild_parameter, NEWTRUE
    sd["empty"] = torch.zeros(0, 3)
    return sd


def check_ours(path, shapes_folded):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
        if shapes_folded:
            sd = torch.load(SHAPES, map_location="cpu", weights_only=True)
            folded = fold(sd)
            assert sorted(keys) == sorted(folded.keys()), set(keys) ^ set(folded.keys())
            worst = 0.0
            for k in keys:
                a = f.get_tensor(k)
                b = folded[k]
                assert a.shape == b.shape, (k, a.shape, b.shape)
                worst = max(worst, (a - b).abs().max().item())
            print(f"{path}: {len(keys)} tensors load in Python safetensors; max |ours - torch fold| = {worst:.3g}; metadata={meta}")
            assert worst < 1e-4
        else:
            exp = json.load(open(os.path.join(OUT, "roundtrip-expected.json")))
            assert meta == exp["metadata"], (meta, exp["metadata"])
            for k, e in exp["tensors"].items():
                t = f.get_tensor(k)
                assert list(t.shape) == e["shape"], k
                assert as_list(t) == e["values"], k
            print(f"{path}: loads in Python safetensors, {len(keys)} tensors and metadata as expected")
    # 64-byte alignment of the data buffer
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
    assert (8 + n) % 64 == 0, n
    print("data buffer starts at", 8 + n)


def fold(sd):
    """The BN folding of ModelSpec, in torch (reference for the Swift Fold)."""
    out = {}
    for k, w in sd.items():
        if not k.endswith(".weight"):
            continue
        p = k[: -len(".weight")]
        if p.startswith("backbone.body.") and (p.split(".")[-1].startswith("conv") or p.endswith("downsample.0")):
            if p.endswith("downsample.0"):
                bn, name = p[:-1] + "1", p[: -len(".0")]
            else:
                parts = p.split(".")
                parts[-1] = "bn" + parts[-1][4:]
                bn, name = ".".join(parts), p
            s = sd[bn + ".weight"] / torch.sqrt(sd[bn + ".running_var"] + 1e-5)
            out[name + ".weight"] = w * s.view(-1, 1, 1, 1)
            out[name + ".bias"] = sd[bn + ".bias"] - sd[bn + ".running_mean"] * s
    for k, v in sd.items():
        if k.startswith("backbone.body.") or k.endswith("num_batches_tracked"):
            continue
        name = k
        if k.startswith("backbone.fpn.") or k.startswith("roi_heads.mask_head."):
            name = k.replace(".0.weight", ".weight").replace(".0.bias", ".bias")
        if k.startswith("rpn.head.conv.0.0."):
            name = k.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        out[name] = v
    return out


def main():
    if "--check-ours" in sys.argv:
        check_ours(sys.argv[sys.argv.index("--check-ours") + 1], "--shapes-folded" in sys.argv)
        return
    os.makedirs(OUT, exist_ok=True)
    sd = dtype_state_dict()
    torch.save(sd, os.path.join(OUT, "dtypes.pth"))
    torch.save(sd, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)
    nested = {"model": collections.OrderedDict([("a.weight", torch.tensor([[1.0, 2.0]])), ("a.bias", torch.tensor([0.25]))]),
              "epoch": 3, "lr": 0.02, "milestones": [16, 22], "flag": True, "none": None}
    torch.save(nested, os.path.join(OUT, "nested.pth"))
    # A zip written by Python's zipfile: stored, no 64-byte padding (torch.load accepts it).
    buf = io.BytesIO()
    torch.save(collections.OrderedDict([("x", torch.tensor([1.0, 2.0, 3.0]))]), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    for name, method in [("plainzip.pth", zipfile.ZIP_STORED), ("deflated.pth", zipfile.ZIP_DEFLATED)]:
        with zipfile.ZipFile(os.path.join(OUT, name), "w", compression=method) as z:
            for info in src.infolist():
                z.writestr(info.filename.replace("archive/", "foo/"), src.read(info.filename))
    # The same, with storage data/0 shorter than its declared 3 floats.
    with zipfile.ZipFile(os.path.join(OUT, "short.pth"), "w") as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data/0"):
                data = data[:8]
            z.writestr(info.filename.replace("archive/", "foo/"), data)
    # A flat zip (no top folder): torch rejects it, so do we.
    with zipfile.ZipFile(os.path.join(OUT, "flat.pth"), "w") as z:
        for info in src.infolist():
            z.writestr(info.filename.replace("archive/", ""), src.read(info.filename))
    # A checkpoint as torchvision's references/detection/train.py saves it (optimizer, scheduler
    # with a Counter, argparse.Namespace args).
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.02, momentum=0.9)
    m(torch.ones(1, 2)).sum().backward()
    opt.step()
    sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[16, 22], gamma=0.1)
    import argparse
    torch.save({"model": m.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sch.state_dict(),
                "args": argparse.Namespace(lr=0.02, epochs=26, data_path="/x"), "epoch": 3},
               os.path.join(OUT, "reference-ckpt.pth"))
    # A whole module instead of a state dict.
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(2, 2), os.path.join(OUT, "module.pth"))
    # An unsupported dtype (complex64).
    torch.save(collections.OrderedDict([("c", torch.zeros(2, dtype=torch.complex64))]), os.path.join(OUT, "complex.pth"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"dtypes": describe(sd), "nested": describe(nested["model"])}, f, indent=1)
    # safetensors written by Python's safetensors.
    st = {"weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8,
          "half": np.array([1.0, -0.5, 2.0], dtype=np.float16),
          "ids": np.array([5, -6], dtype=np.int64),
          "scalar": np.array(2.5, dtype=np.float32),
          "nothing": np.zeros((0, 4), dtype=np.float32)}
    save_file(st, os.path.join(OUT, "python.safetensors"), metadata={"format": "pt", "note": "made by safetensors 0.8.0"})
    with open(os.path.join(OUT, "python-safetensors-expected.json"), "w") as f:
        json.dump({k: {"shape": list(v.shape), "values": v.astype(np.float64).reshape(-1).tolist()} for k, v in st.items()}, f)
    # Expected values for the round-trip fixture that the Swift test writes with our writer.
    with open(os.path.join(OUT, "roundtrip-expected.json"), "w") as f:
        json.dump({"metadata": {"format": "edge-mrcnn-test", "note": "round trip"},
                   "tensors": {"big": {"shape": [4, 16], "values": [float(i) * 0.25 for i in range(64)]},
                               "odd": {"shape": [3], "values": [1.0, -2.0, 3.5]},
                               "s": {"shape": [], "values": [9.0]}}}, f)
    # Reference values of the folded shapes model (computed here in torch).
    if os.path.exists(SHAPES):
        sdm = torch.load(SHAPES, map_location="cpu", weights_only=True)
        f = fold(sdm)
        ref = {}
        for k in ["backbone.body.conv1.weight", "backbone.body.conv1.bias", "backbone.body.layer1.0.downsample.weight",
                  "backbone.body.layer1.0.downsample.bias", "backbone.body.layer4.2.conv3.weight", "backbone.body.layer4.2.conv3.bias",
                  "rpn.head.conv.weight", "roi_heads.mask_head.3.bias", "backbone.fpn.inner_blocks.0.weight"]:
            t = f[k].to(torch.float64).reshape(-1)
            ref[k] = {"shape": list(f[k].shape), "sum": t.sum().item(), "abssum": t.abs().sum().item(),
                      "first": t[:5].tolist(), "last": t[-3:].tolist()}
        with open(os.path.join(OUT, "shapes-fold-reference.json"), "w") as fh:
            json.dump(ref, fh, indent=1)
    for n in sorted(os.listdir(OUT)):
        print(n, os.path.getsize(os.path.join(OUT, n)))


if __name__ == "__main__":
    main()
