#!/usr/bin/env python3
"""Writes the hostile-input corpus under Tests/Fixtures/bad/ (issue 5).

Every file is named for what is wrong with it. Folders:
  jpeg/          images `detect` must refuse (one clear line, exit 1, no output left behind)
  valid/         unusual but legitimate images `detect` must accept (grayscale, CMYK,
                 progressive, 1x1, restart markers)
  pth/           torch checkpoints `convert` must refuse
  safetensors/   model files `detect` / `info` must refuse
  coco/          annotations / results files `eval` must refuse

Run with the reference venv (torch, pillow); CI never runs this, the small files are committed:
  /root/venv-ref/bin/python tools/make_bad_inputs.py
Deterministic: running it twice gives the same bytes.
"""
import io
import json
import os
import struct
import sys
import zipfile

import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "bad")


def out(folder, name, data):
    d = os.path.join(ROOT, folder)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------- JPEG

def test_image(w=48, h=32):
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 5) % 256, (y * 7) % 256, ((x + y) * 3) % 256)
    return im


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", quality=85, **kw)
    return b.getvalue()


def segments(data):
    """(marker, start, end) of each marker segment before the first SOS's entropy data."""
    out_ = []
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        ln = struct.unpack(">H", data[i + 2:i + 4])[0]
        out_.append((m, i, i + 2 + ln))
        if m == 0xDA:
            break
        i += 2 + ln
    return out_


def find(data, marker):
    for m, s, e in segments(data):
        if m == marker:
            return s, e
    raise KeyError(hex(marker))


def set_sof_size(data, w, h):
    s, _ = find(data, 0xC0) if 0xC0 in [m for m, _, _ in segments(data)] else find(data, 0xC2)
    b = bytearray(data)
    b[s + 5:s + 7] = struct.pack(">H", h)
    b[s + 7:s + 9] = struct.pack(">H", w)
    return bytes(b)


def make_jpeg():
    base = jpeg_bytes(test_image())
    sos_s, sos_e = find(base, 0xDA)
    # The headers, up to and including the SOS segment, and no entropy-coded data or EOI.
    out("jpeg", "header_only_no_scan_data.jpg", base[:sos_e])
    # Headers up to the frame header only (no Huffman tables, no scan).
    _, sof_e = find(base, 0xC0)
    out("jpeg", "header_only_stops_after_frame.jpg", base[:sof_e])
    out("jpeg", "truncated_in_scan_data.jpg", base[:sos_e + (len(base) - sos_e) // 2])
    out("jpeg", "truncated_before_eoi.jpg", base[:-2])
    # A Huffman table whose 16 code-length counts claim more than 256 codes.
    dht_s, dht_e = find(base, 0xC4)
    b = bytearray(base)
    for k in range(16):
        b[dht_s + 5 + k] = 0xFF
    out("jpeg", "bad_huffman_table_counts.jpg", bytes(b))
    # A scan that names a Huffman table that was never defined (table 3).
    b = bytearray(base)
    ncomp = b[sos_s + 4]
    for c in range(ncomp):
        b[sos_s + 6 + 2 * c] = 0x33
    out("jpeg", "scan_uses_undefined_huffman_table.jpg", bytes(b))
    # Frame header says 480 rows, the data holds 32: libjpeg runs out of data.
    out("jpeg", "wrong_dimensions_height_too_large.jpg", set_sof_size(base, 48, 480))
    out("jpeg", "zero_height.jpg", set_sof_size(base, 48, 0))
    out("jpeg", "zero_width.jpg", set_sof_size(base, 0, 32))
    # A decompression bomb: a valid small file whose header declares 60000x60000 (3.6 Gpx).
    out("jpeg", "bomb_declares_60000x60000.jpg", set_sof_size(base, 60000, 60000))
    # 12-bit samples (SOF precision 12): not decodable with an 8-bit libjpeg.
    b = bytearray(base)
    sof_s, _ = find(base, 0xC0)
    b[sof_s + 4] = 12
    out("jpeg", "precision_12_bit.jpg", bytes(b))
    # Two components only (neither gray, nor YCbCr, nor CMYK).
    g = jpeg_bytes(test_image().convert("L"))
    b = bytearray(g)
    sof_s, sof_e = find(g, 0xC0)
    out("jpeg", "sof_component_count_zero.jpg", bytes(b[:sof_s + 9]) + b"\x00" + bytes(b[sof_s + 10:]))
    # Quantisation table id out of range (4).
    b = bytearray(base)
    dqt_s, _ = find(base, 0xDB)
    b[dqt_s + 4] = 0x04
    out("jpeg", "quant_table_id_out_of_range.jpg", bytes(b))
    out("jpeg", "empty_zero_bytes.jpg", b"")
    out("jpeg", "soi_marker_only.jpg", b"\xff\xd8")
    out("jpeg", "soi_then_garbage.jpg", b"\xff\xd8" + bytes((i * 73 + 11) % 256 for i in range(400)))
    out("jpeg", "not_an_image_text.jpg", b"This is a text file that was saved with a .jpg name.\n" * 4)
    out("jpeg", "not_an_image_html.jpeg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    png = io.BytesIO()
    test_image(8, 8).save(png, "PNG")
    out("jpeg", "png_named_jpg.jpg", png.getvalue())
    out("jpeg", "zeros_4k.jpg", bytes(4096))

    # Unusual but valid: must decode (and run) fine.
    out("valid", "grayscale.jpg", jpeg_bytes(test_image().convert("L")))
    out("valid", "cmyk_adobe.jpg", jpeg_bytes(test_image().convert("CMYK")))
    out("valid", "progressive.jpg", jpeg_bytes(test_image(), progressive=True))
    out("valid", "one_by_one.jpg", jpeg_bytes(test_image(1, 1)))
    out("valid", "subsampling_444.jpg", jpeg_bytes(test_image(), subsampling=0))
    out("valid", "with_restart_markers.jpg", jpeg_bytes(test_image(64, 48), restart_marker_blocks=1))
    out("valid", "tall_3x200.jpg", jpeg_bytes(test_image(3, 200)))


# ---------------------------------------------------------------------------------------- .pth

CLS = "roi_heads.box_predictor.cls_score.weight"


def tsave(obj, **kw):
    b = io.BytesIO()
    torch.save(obj, b, **kw)
    return b.getvalue()


def small_sd():
    """A tiny state dict: numClasses is readable; tensors are broadcast (stride 0) views of one
    element, so the file stays a few hundred bytes."""
    z = torch.zeros(1)
    return {
        CLS: z.expand(4, 1024),
        "backbone.body.conv1.weight": z.expand(64, 3, 7, 7),
        "backbone.body.bn1.weight": torch.ones(1).expand(64),
        "backbone.body.bn1.bias": z.expand(64),
        "backbone.body.bn1.running_mean": z.expand(64),
        "backbone.body.bn1.running_var": torch.ones(1).expand(64),
    }


def rezip(data, edit):
    """Rewrites a torch zip: edit(name, bytes) -> (name, bytes) or None to drop the entry."""
    src = zipfile.ZipFile(io.BytesIO(data))
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression=zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            r = edit(info.filename, src.read(info.filename))
            if r is None:
                continue
            zi = zipfile.ZipInfo(r[0], date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = r[2] if len(r) > 2 else zipfile.ZIP_STORED
            z.writestr(zi, r[1])
    return b.getvalue()


def make_pth():
    good = tsave(small_sd())
    out("pth", "not_a_zip_text.pth", b"this is not a torch checkpoint\n")
    out("pth", "empty_zero_bytes.pth", b"")
    out("pth", "zip_truncated_no_end_record.pth", good[: len(good) // 2])
    out("pth", "zip_without_data_pkl.pth", rezip(good, lambda n, d: None if n.endswith("data.pkl") else (n, d)))
    out("pth", "zip_data_pkl_deflated.pth",
        rezip(good, lambda n, d: (n, d, zipfile.ZIP_DEFLATED) if n.endswith("data.pkl") else (n, d)))
    # Central directory offset pointing past the end of the file.
    b = bytearray(good)
    e = b.rfind(b"PK\x05\x06")
    b[e + 16:e + 20] = struct.pack("<I", len(b) + 1000)
    z64 = b.rfind(b"PK\x06\x06")  # torch writes ZIP64 end records too: patch both
    if z64 >= 0:
        b[z64 + 48:z64 + 56] = struct.pack("<Q", len(b) + 1000)
    out("pth", "zip_central_directory_out_of_range.pth", bytes(b))

    def patch_pkl(fn):
        return rezip(good, lambda n, d: (n, fn(d)) if n.endswith("data.pkl") else (n, d))

    # An opcode the reader does not know (0xFF) right after PROTO 2.
    out("pth", "pickle_unknown_opcode.pth", patch_pkl(lambda d: d[:2] + b"\xff" + d[2:]))
    # A global outside the whitelist: os.system.
    out("pth", "pickle_unknown_global_os_system.pth",
        patch_pkl(lambda d: b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."))
    out("pth", "pickle_truncated_no_stop.pth", patch_pkl(lambda d: d[: len(d) // 2]))
    out("pth", "pickle_stack_underflow.pth", patch_pkl(lambda d: b"\x80\x02s."))
    # Storage files shorter than the element count the pickle declares.
    out("pth", "storage_shorter_than_declared.pth",
        rezip(tsave({CLS: torch.zeros(4, 8)}),
              lambda n, d: (n, d[:20]) if "/data/" in n and not n.endswith("data.pkl") else (n, d)))
    out("pth", "storage_entry_missing.pth",
        rezip(good, lambda n, d: None if n.endswith("/data/0") else (n, d)))
    # Shapes and dtypes the model cannot use.
    out("pth", "wrong_shape_cls_score_rank1.pth", tsave({CLS: torch.zeros(4)}))
    sd = small_sd()
    sd["backbone.body.conv1.weight"] = torch.zeros(1).expand(64, 3, 5, 5)
    out("pth", "wrong_shape_conv1_5x5.pth", tsave(sd))
    sd = small_sd()
    sd["backbone.body.conv1.weight"] = torch.zeros(1, dtype=torch.int32).expand(64, 3, 7, 7)
    out("pth", "wrong_dtype_conv1_int32.pth", tsave(sd))
    out("pth", "wrong_dtype_complex.pth", tsave({CLS: torch.zeros(4, 2, dtype=torch.complex64)}))
    out("pth", "missing_tensors.pth", tsave({CLS: torch.zeros(1).expand(4, 1024)}))
    # Non-finite weights.
    sd = small_sd()
    sd["backbone.body.conv1.weight"] = torch.full((1,), float("nan")).expand(64, 3, 7, 7)
    out("pth", "nan_weights.pth", tsave(sd))
    sd = small_sd()
    sd["backbone.body.bn1.running_var"] = torch.full((1,), float("inf")).expand(64)
    out("pth", "inf_batchnorm_running_var.pth", tsave(sd))
    # A broadcast (stride 0) view of one element that claims 2^40 elements: 4 TB once expanded.
    out("pth", "broadcast_view_claims_2pow40_elements.pth", tsave({CLS: torch.zeros(1).expand(1 << 20, 1 << 20)}))
    out("pth", "checkpoint_is_a_list.pth", tsave([1, 2, 3]))
    out("pth", "state_dict_without_tensors.pth", tsave({"epoch": 3, "lr": 0.1}))
    legacy = tsave(small_sd(), _use_new_zipfile_serialization=False)
    out("pth", "legacy_format_truncated.pth", legacy[: len(legacy) - 300])


# --------------------------------------------------------------------------------- safetensors

def st(header, data=b"", raw_len=None):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if raw_len is None else raw_len
    return struct.pack("<Q", n) + h + data


META = {"format": "edge-mrcnn", "format_version": "1", "arch": "maskrcnn_resnet50_fpn_v1",
        "precision": "float32", "num_classes": "4",
        "class_names": json.dumps(["__background__", "circle", "square", "triangle"]),
        "min_size": "256", "max_size": "416", "image_mean": "0.485,0.456,0.406",
        "image_std": "0.229,0.224,0.225"}


def make_safetensors():
    t = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    d8 = struct.pack("<2f", 1.0, 2.0)
    out("safetensors", "too_short_4_bytes.safetensors", b"\x10\x00\x00\x00")
    out("safetensors", "header_length_lies_2pow40.safetensors", st(t, d8, raw_len=1 << 40))
    out("safetensors", "header_length_past_end_of_file.safetensors", st(t, d8, raw_len=4000))
    out("safetensors", "header_length_cuts_json.safetensors", st(t, d8, raw_len=20))
    out("safetensors", "header_not_json.safetensors", struct.pack("<Q", 16) + b"{this is not js}")
    out("safetensors", "header_is_json_list.safetensors", st([1, 2, 3]))
    out("safetensors", "overlapping_offsets.safetensors", st(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)))
    out("safetensors", "offsets_past_end_of_data.safetensors", st(
        {"a": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}, bytes(16)))
    out("safetensors", "offsets_huge_2pow62.safetensors", st(
        {"a": {"dtype": "U8", "shape": [4], "data_offsets": [1 << 62, (1 << 62) + 4]}}, bytes(4)))
    out("safetensors", "offsets_disagree_with_shape.safetensors", st(
        {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, d8))
    out("safetensors", "shape_product_overflows.safetensors", st(
        {"a": {"dtype": "F32", "shape": [1 << 31, 1 << 31, 1 << 31], "data_offsets": [0, 8]}}, d8))
    out("safetensors", "negative_dimension.safetensors", st(
        {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, d8))
    out("safetensors", "unknown_dtype_Q4.safetensors", st(
        {"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, d8))
    h = (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
         b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
    out("safetensors", "duplicate_tensor_name.safetensors", struct.pack("<Q", len(h)) + h + d8)
    out("safetensors", "missing_metadata.safetensors", st(t, d8))
    m = dict(META)
    m["image_std"] = "0.229,0,0.225"
    out("safetensors", "metadata_image_std_zero.safetensors", st({"__metadata__": m, **t}, d8))
    m = dict(META)
    m["format_version"] = "99"
    out("safetensors", "metadata_future_format_version.safetensors", st({"__metadata__": m, **t}, d8))
    m = dict(META)
    m["class_names"] = '["a","b"'
    out("safetensors", "metadata_class_names_malformed.safetensors", st({"__metadata__": m, **t}, d8))
    out("safetensors", "float_model_missing_tensors.safetensors", st({"__metadata__": META, **t}, d8))
    m = dict(META)
    m["precision"] = "int8"
    out("safetensors", "int8_model_missing_scales.safetensors", st({"__metadata__": m, **t}, d8))


# -------------------------------------------------------------------------------------- COCO

def make_coco():
    def js(name, obj):
        out("coco", name, json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    img = {"id": 1, "file_name": "missing_image_0001.jpg", "height": 32, "width": 48}
    cat = {"id": 1, "name": "circle"}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "area": 120, "iscrowd": 0,
           "segmentation": [[1, 2, 11, 2, 11, 14, 1, 14]]}
    out("coco", "malformed_truncated.json", json.dumps({"images": [img], "annotations": [ann]}).encode()[:70])
    out("coco", "malformed_trailing_comma.json", b'{"images": [], "annotations": [], "categories": [],}\n')
    out("coco", "not_json_binary.json", bytes(range(256)))
    out("coco", "deeply_nested.json", b"[" * 5000 + b"]" * 5000)
    js("top_level_is_a_list.json", [img])
    js("no_images_key.json", {"annotations": [], "categories": [cat]})
    js("annotation_references_missing_image.json",
       {"images": [img], "annotations": [dict(ann, image_id=7)], "categories": [cat]})
    js("annotation_references_missing_category.json",
       {"images": [img], "annotations": [dict(ann, category_id=9)], "categories": [cat]})
    js("duplicate_image_id.json", {"images": [img, dict(img, file_name="b.jpg")], "annotations": [],
                                   "categories": [cat]})
    js("image_size_negative.json", {"images": [dict(img, height=-5)], "annotations": [], "categories": [cat]})
    js("rle_counts_bad_character.json", {"images": [img], "annotations": [
        dict(ann, segmentation={"size": [32, 48], "counts": "0a~~"})], "categories": [cat]})
    # Compressed counts: two runs of 7 * 2^60 each, whose sum overflows a 64-bit integer.
    js("rle_counts_overflow.json", {"images": [img], "annotations": [
        dict(ann, segmentation={"size": [32, 48], "counts": ("P" * 12 + "7") * 2})],
        "categories": [cat]})
    js("rle_uncompressed_sum_wrong.json", {"images": [img], "annotations": [
        dict(ann, segmentation={"size": [32, 48], "counts": [5, 5]})], "categories": [cat]})
    js("polygon_with_nan_text.json", {"images": [img], "annotations": [
        dict(ann, segmentation=[[1, 2, "x", 3, 4, 5]])], "categories": [cat]})
    # Valid annotations whose image is not in the --images folder (eval --model).
    js("references_image_file_not_present.json", {"images": [img], "annotations": [ann], "categories": [cat]})
    # Results files (eval --results) against references_image_file_not_present.json.
    js("results_image_id_not_in_annotations.json",
       [{"image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}])
    js("results_not_a_list.json", {"image_id": 1})
    js("results_score_missing.json", [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}])


def main():
    make_jpeg()
    make_pth()
    make_safetensors()
    make_coco()
    n = sum(len(fs) for _, _, fs in os.walk(ROOT))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {n} files, {size} bytes, under {os.path.normpath(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
