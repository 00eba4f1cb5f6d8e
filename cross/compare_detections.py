#!/usr/bin/env python3
"""Compares two edge-mrcnn detection JSON files (e.g. the aarch64 binary under qemu vs the x86 one).

    python3 cross/compare_detections.py A.json B.json [--box-tol 0.05] [--score-tol 1e-3]
                                        [--mask-iou 0.95] [--score-thresh 0.05] [--max-dets 100]

Standard library only. Accepted layouts: a COCO results array ({"image_id", "file_name",
"category_id", "bbox": [x, y, w, h], "score", "segmentation": {"size", "counts"}}), or an object
with "detections" (that array) or "images" ([{"file_name", "detections": [...]}]). A detection may
give "box" as [x1, y1, x2, y2] instead of "bbox", and "label" instead of "category_id".

Per image (by file_name, else image_id), detections of the same label are matched one-to-one by
IoU (greedy, highest first, IoU >= 0.5): the two files must have the same number of detections
and the same labels, matched boxes must agree within --box-tol px on every corner, scores within
--score-tol, and (when both have RLE masks) mask IoU >= --mask-iou. A detection without a partner
is tolerated only when its score is borderline: within --score-tol of --score-thresh, or, when the
other side has --max-dets detections for that image, within --score-tol of its lowest score.
Exit status 0 when the files agree, 1 when they differ, 2 on unreadable input.
"""
import json
import sys


def die(msg, code=2):
    print("compare_detections: " + msg, file=sys.stderr)
    sys.exit(code)


def load(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        die("cannot read %s: %s" % (path, e))
    if isinstance(doc, dict):
        if isinstance(doc.get("detections"), list):
            doc = doc["detections"]
        elif isinstance(doc.get("images"), list):
            flat = []
            for im in doc["images"]:
                for d in im.get("detections", []):
                    d = dict(d)
                    d.setdefault("file_name", im.get("file_name", im.get("image", "")))
                    if "image_id" in im:
                        d.setdefault("image_id", im["image_id"])
                    flat.append(d)
            doc = flat
    if not isinstance(doc, list):
        die("%s: expected a JSON array of detections (or an object with 'detections'/'images')" % path)
    groups = {}
    for i, d in enumerate(doc):
        if not isinstance(d, dict):
            die("%s: item %d is not an object" % (path, i))
        if "bbox" in d:
            x, y, w, h = [float(v) for v in d["bbox"]]
            box = (x, y, x + w, y + h)
        elif "box" in d:
            box = tuple(float(v) for v in d["box"])
        else:
            die("%s: item %d has neither 'bbox' nor 'box'" % (path, i))
        if len(box) != 4:
            die("%s: item %d: a box needs 4 numbers" % (path, i))
        label = d.get("category_id", d.get("label"))
        if label is None:
            die("%s: item %d has neither 'category_id' nor 'label'" % (path, i))
        if "score" not in d:
            die("%s: item %d has no 'score'" % (path, i))
        key = d.get("file_name")
        if key is None:
            key = str(d.get("image_id", ""))
        key = key.rsplit("/", 1)[-1]
        seg = d.get("segmentation")
        groups.setdefault(key, []).append({
            "box": box, "score": float(d["score"]), "label": label,
            "name": d.get("category_name"), "seg": seg if isinstance(seg, dict) else None, "index": i,
        })
    return groups


def box_iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def rle_counts(seg):
    """Run lengths (zeros first, column-major) of a COCO RLE: compressed string or plain list."""
    counts = seg.get("counts")
    if isinstance(counts, list):
        return [int(c) for c in counts]
    if not isinstance(counts, str):
        return None
    out, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def ones_intervals(counts):
    iv, pos = [], 0
    for j, c in enumerate(counts):
        if j % 2 == 1 and c > 0:
            iv.append((pos, pos + c))
        pos += c
    return iv


def mask_iou(sa, sb):
    if sa.get("size") != sb.get("size"):
        return 0.0
    ca, cb = rle_counts(sa), rle_counts(sb)
    if ca is None or cb is None:
        return None
    a, b = ones_intervals(ca), ones_intervals(cb)
    area_a = sum(e - s for s, e in a)
    area_b = sum(e - s for s, e in b)
    inter, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if e > s:
            inter += e - s
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    union = area_a + area_b - inter
    return 1.0 if union == 0 else inter / union


def main(argv):
    opts = {"--box-tol": 0.05, "--score-tol": 1e-3, "--mask-iou": 0.95, "--score-thresh": 0.05,
            "--max-dets": 100}
    files = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if a in opts:
            if i + 1 >= len(argv):
                die("%s needs a value" % a)
            try:
                opts[a] = float(argv[i + 1])
            except ValueError:
                die("%s: not a number: %s" % (a, argv[i + 1]))
            i += 2
            continue
        if a.startswith("--"):
            die("unknown option " + a)
        files.append(a)
        i += 1
    if len(files) != 2:
        die("usage: compare_detections.py A.json B.json [options] (see --help)")
    box_tol, score_tol = opts["--box-tol"], opts["--score-tol"]
    A, B = load(files[0]), load(files[1])
    problems, notes = [], []
    n_matched = 0
    worst_box, worst_score, worst_mask = 0.0, 0.0, 1.0
    for key in sorted(set(A) | set(B)):
        da, db = A.get(key, []), B.get(key, [])
        pairs = []
        for ia, x in enumerate(da):
            for ib, y in enumerate(db):
                if x["label"] == y["label"]:
                    iou = box_iou(x["box"], y["box"])
                    if iou >= 0.5:
                        pairs.append((-iou, abs(x["score"] - y["score"]), ia, ib))
        pairs.sort()
        used_a, used_b, matches = set(), set(), []
        for _, _, ia, ib in pairs:
            if ia in used_a or ib in used_b:
                continue
            used_a.add(ia)
            used_b.add(ib)
            matches.append((ia, ib))
        for ia, ib in matches:
            x, y = da[ia], db[ib]
            n_matched += 1
            dbox = max(abs(p - q) for p, q in zip(x["box"], y["box"]))
            dsc = abs(x["score"] - y["score"])
            worst_box, worst_score = max(worst_box, dbox), max(worst_score, dsc)
            what = "%s: label %s, A#%d vs B#%d" % (key, x["label"], x["index"], y["index"])
            if dbox > box_tol:
                problems.append("%s: boxes differ by %.4f px (> %g): %s vs %s"
                                % (what, dbox, box_tol, fmt(x["box"]), fmt(y["box"])))
            if dsc > score_tol:
                problems.append("%s: scores differ by %.2e (> %g): %.6f vs %.6f"
                                % (what, dsc, score_tol, x["score"], y["score"]))
            if x["name"] is not None and y["name"] is not None and x["name"] != y["name"]:
                problems.append("%s: category names differ: %r vs %r" % (what, x["name"], y["name"]))
            if (x["seg"] is None) != (y["seg"] is None):
                problems.append("%s: only one side has a mask" % what)
            elif x["seg"] is not None:
                miou = mask_iou(x["seg"], y["seg"])
                if miou is None:
                    problems.append("%s: unreadable RLE mask" % what)
                else:
                    worst_mask = min(worst_mask, miou)
                    if miou < opts["--mask-iou"]:
                        problems.append("%s: mask IoU %.4f (< %g)" % (what, miou, opts["--mask-iou"]))
        for side, dets, used, other in (("A", da, used_a, db), ("B", db, used_b, da)):
            floor = min((d["score"] for d in other), default=None)
            for k, d in enumerate(dets):
                if k in used:
                    continue
                borderline = d["score"] <= opts["--score-thresh"] + score_tol or (
                    len(other) >= opts["--max-dets"] and floor is not None and d["score"] <= floor + score_tol)
                msg = "%s: %s#%d (label %s, score %.6f, box %s) has no partner" % (
                    key, side, d["index"], d["label"], d["score"], fmt(d["box"]))
                if borderline:
                    notes.append(msg + " (borderline score: tolerated)")
                else:
                    problems.append(msg)
    na, nb = sum(len(v) for v in A.values()), sum(len(v) for v in B.values())
    for n in notes:
        print("note: " + n)
    for p in problems[:50]:
        print("DIFF: " + p)
    if len(problems) > 50:
        print("... and %d more differences" % (len(problems) - 50))
    print("compared %s (%d detections) with %s (%d detections): %d matched; max box diff %.4f px, "
          "max score diff %.2e, min mask IoU %.4f"
          % (files[0], na, files[1], nb, n_matched, worst_box, worst_score, worst_mask))
    if problems:
        print("RESULT: the detections DIFFER (%d problems)" % len(problems))
        return 1
    print("RESULT: the detections agree")
    return 0


def fmt(b):
    return "[" + ", ".join("%.3f" % v for v in b) + "]"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
