#!/usr/bin/env bash
# The main job: build edge-mrcnn (release) and run a detection with overlay output.
#
#   bash tools/demo.sh [IMAGE_OR_DIR...]
#
# Model: $EDGE_MRCNN_MODEL if set; otherwise torchvision's public COCO checkpoint, downloaded once
# into ~/.cache/edge-mrcnn and converted to an edge-mrcnn model file there. When it cannot be
# downloaded (no network), the shapes test model in ../shared is used instead, and the script says
# so. Output: out/demo/detections.json (COCO results with RLE masks) and out/demo/overlays/*.jpg.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tools/setup-deps.sh

echo "== building edge-mrcnn (release)" >&2
swift build -c release 2>&1 | tail -n 1 >&2
bin="$root/.build/release/edge-mrcnn"

cache="${EDGE_MRCNN_CACHE:-$HOME/.cache/edge-mrcnn}"
mkdir -p "$cache"
coco_name="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
coco_url="https://download.pytorch.org/models/$coco_name"
shared="$root/../shared"

model="${EDGE_MRCNN_MODEL:-}"
default_images=()
if [ -z "$model" ]; then
  coco_pth="$cache/$coco_name"
  if [ ! -s "$coco_pth" ]; then
    echo "== downloading torchvision's COCO checkpoint ($coco_url, ~170 MB, once)" >&2
    if command -v curl >/dev/null && curl -fsSL --connect-timeout 10 --max-time 1800 -o "$coco_pth.part" "$coco_url" 2>/dev/null; then
      mv "$coco_pth.part" "$coco_pth"
    else
      rm -f "$coco_pth.part"
      echo "edge-mrcnn demo: cannot download $coco_url (no network?)." >&2
    fi
  fi
  if [ -s "$coco_pth" ]; then
    model="$cache/maskrcnn_resnet50_fpn_coco.safetensors"
    if [ ! -s "$model" ]; then
      "$bin" convert "$coco_pth" -o "$model"
    fi
    echo "== model: torchvision COCO Mask R-CNN R50-FPN ($model)" >&2
    default_images=("$shared/data/photos")
  elif [ -s "$shared/models/shapes-r50fpn/model.pth" ]; then
    model="$cache/shapes-r50fpn.safetensors"
    if [ ! -s "$model" ]; then
      "$bin" convert "$shared/models/shapes-r50fpn/model.pth" -o "$model"
    fi
    echo "== falling back to the shapes test model from ../shared ($shared/models/shapes-r50fpn/model.pth):" >&2
    echo "   circles, squares and triangles, not COCO objects" >&2
    default_images=("$shared/data/shapes-val/images/shapes_777_00000.jpg"
                    "$shared/data/shapes-val/images/shapes_777_00001.jpg"
                    "$shared/data/shapes-val/images/shapes_777_00002.jpg"
                    "$shared/data/shapes-val/images/shapes_777_00003.jpg")
  else
    echo "edge-mrcnn demo: no model: the COCO checkpoint could not be downloaded and ../shared has no shapes model." >&2
    echo "Set EDGE_MRCNN_MODEL=/path/to/model.pth (or .safetensors) and run again." >&2
    exit 1
  fi
else
  echo "== model: $model" >&2
fi

if [ $# -gt 0 ]; then images=("$@"); else images=("${default_images[@]}"); fi
if [ ${#images[@]} -eq 0 ]; then
  echo "edge-mrcnn demo: no images given (pass IMAGE_OR_DIR...)" >&2
  exit 1
fi

out="$root/out/demo"
mkdir -p "$out/overlays"
"$bin" detect --model "$model" --json "$out/detections.json" --overlay-dir "$out/overlays" "${images[@]}"
echo "== wrote $out/detections.json and $(ls "$out/overlays" | wc -l) overlay image(s) in $out/overlays" >&2
