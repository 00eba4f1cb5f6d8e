#!/usr/bin/env python3
"""Where a detect's time goes against the machine's int8 peak, from `edge-mrcnn bench --layers --json`.

    edge-mrcnn bench ... --layers --json > run.json
    python3 bench/layer_losses.py run.json [--target 0.85] [--top 25]

Prints, from one bench run (medians over its runs):
- per stage: wall ms, the sum of its weight layers' ms, and the gap (the stage's work outside the
  weight layers: preprocess, pooling, decoding, top-k, NMS, RoIAlign, paste...);
- per weight layer, the ms it loses against running at `target` of the in-run peak
  (ms - gmac / (target * peak)), the largest first, and the same summed per layer family;
- what the whole run's efficiency would be if every layer ran at exactly `target` of the peak
  (slower layers sped up, faster ones slowed down) with the time outside the layers unchanged, and
  if that time were zero too.
On x86 avx512vnni rpn.head.cls_logits and bbox_pred run inside rpn.head.conv (on each pixel chunk
while it is in cache): bench splits the three layers' time by their MACs, so compare their sum.
Medians of parts do not add up exactly to the median of the whole; the figures are for finding
where time goes, not for accounting to the millisecond. Standard library only.
"""
import argparse
import collections
import json
import sys

STAGE_PREFIX = {
    "backbone": "backbone.body.",
    "fpn": "backbone.fpn.",
    "rpn": "rpn.",
    "roi_heads": "roi_heads.box_",
    "masks": "roi_heads.mask_",
    "keypoints": "roi_heads.keypoint_",
}


def family(name):
    # backbone.body.layer1.0.conv3 -> backbone.body.layer1 conv3; the rest by name
    parts = name.split(".")
    if name.startswith("backbone.body.layer") and len(parts) >= 5:
        return "%s %s" % (".".join(parts[:3]), parts[-1])
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", help="output of `edge-mrcnn bench ... --layers --json` ('-': stdin)")
    ap.add_argument("--target", type=float, default=0.85, help="per-layer efficiency to compare with (default 0.85)")
    ap.add_argument("--top", type=int, default=25, help="layers to list (default 25)")
    a = ap.parse_args()
    try:
        d = json.load(sys.stdin if a.json == "-" else open(a.json))
    except (OSError, ValueError) as e:
        sys.exit("layer_losses: cannot read %s: %s" % (a.json, e))
    layers = d.get("layers")
    if not layers:
        sys.exit("layer_losses: no per-layer figures in %s (run bench with --layers --json)" % a.json)
    if not 0 < a.target <= 1:
        sys.exit("layer_losses: --target must be in (0, 1]")
    peak = d["peak_gmac_per_s"]
    median_ms = d["median_s"] * 1e3
    gmac = d["gmac"]
    print("run: median %.1f ms, %.1f GMAC, %.1f%% of the in-run peak %.1f GMAC/s (load %s)"
          % (median_ms, gmac, 100 * d["efficiency"], peak, d.get("load_average", "?")))

    stages = d.get("stages_median_s", {})
    outside = 0.0
    print("\n%-12s %9s %11s %8s" % ("stage", "wall ms", "layers ms", "gap ms"))
    for s, t in stages.items():
        pre = STAGE_PREFIX.get(s)
        lt = sum(l["median_s"] for l in layers if pre and l["name"].startswith(pre))
        gap = t - lt
        outside += gap
        print("%-12s %9.1f %11.1f %8.1f" % (s, t * 1e3, lt * 1e3, gap * 1e3))
    layers_ms = sum(l["median_s"] for l in layers) * 1e3
    print("%-12s %9.1f %11.1f %8.1f" % ("all", sum(stages.values()) * 1e3, layers_ms, outside * 1e3))

    rows = []
    for l in layers:
        t = l["median_s"] * 1e3
        ideal = l["gmac"] / (a.target * peak) * 1e3
        rows.append((t - ideal, l["name"], t, 100 * l["efficiency"]))
    rows.sort(reverse=True)
    print("\nlayers losing most against %.0f%% of the peak:" % (100 * a.target))
    print("%8s  %-48s %8s %7s" % ("loss ms", "layer", "ms", "% peak"))
    for r in rows[: a.top]:
        print("%8.2f  %-48s %8.2f %6.1f%%" % r)
    fam = collections.defaultdict(float)
    for r in rows:
        fam[family(r[1])] += r[0]
    print("\nper family (loss ms):")
    for v, k in sorted(((v, k) for k, v in fam.items()), reverse=True)[: a.top]:
        print("%8.2f  %s" % (v, k))

    at_target = sum(l["gmac"] for l in layers) / (a.target * peak) * 1e3
    whole = at_target + outside * 1e3
    print("\nevery layer at %.0f%%: layers %.1f ms + outside %.1f ms = %.1f ms -> %.1f%% of the peak; "
          "with nothing outside the layers: %.1f%%"
          % (100 * a.target, at_target, outside * 1e3, whole, 100 * gmac / peak / whole * 1e3,
             100 * gmac / peak / at_target * 1e3))


if __name__ == "__main__":
    main()
