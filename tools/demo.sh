#!/usr/bin/env bash
# The main job: build edge-mrcnn (release), calibrate an int8 model once, run the int8 model with
# overlay output, and time float vs int8 on one image.
#
#   bash tools/demo.sh [IMAGE_OR_DIR...]
#
# Model: $EDGE_MRCNN_MODEL if set; otherwise torchvision's public COCO checkpoint, downloaded once
# into ~/.cache/edge-mrcnn ($EDGE_MRCNN_CACHE) and converted to an edge-mrcnn model file there.
# When it cannot be downloaded (no network), the shapes test model in ../shared is used instead,
# and the script says so. The int8 model is calibrated once on Calibration/samples (the shapes
# model: on ../shared/data/shapes-calib, images like the ones it detects on) and cached beside
# the converted model as <model>-int8.safetensors; it is made again when the float model is newer.
# Output: out/demo/detections.json (COCO results with RLE masks, int8 model) and
# out/demo/overlays/*.jpg, then one line: float32 vs int8 time for one image (bench, median of 3).
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
calib_images="$root/Calibration/samples"
calib_flags=()
case "$model" in
  */shapes-r50fpn.safetensors)
    calib_images="$shared/data/shapes-calib/images"; calib_flags=(--max-images 24)
    echo "   (the shapes model is calibrated on ../shared/data/shapes-calib: images like those it detects on)" >&2 ;;
esac

if [ $# -gt 0 ]; then images=("$@"); else images=("${default_images[@]}"); fi
if [ ${#images[@]} -eq 0 ]; then
  echo "edge-mrcnn demo: no images given (pass IMAGE_OR_DIR...)" >&2
  exit 1
fi

# int8: calibrated once, cached beside the converted model (a user's model: in the cache).
precision=$("$bin" info "$model" 2>/dev/null | sed -n 's/^precision: *//p' | head -1 || true)
if [ "$precision" = "int8" ]; then
  echo "== $model is already an int8 model: no calibration, no float comparison" >&2
  int8="$model"; float=""
else
  case "$model" in
    "$cache"/*.safetensors) int8="${model%.safetensors}-int8.safetensors" ;;
    *) base="$(basename "$model")"; int8="$cache/${base%.*}-int8.safetensors" ;;
  esac
  if [ ! -s "$int8" ] || [ "$model" -nt "$int8" ]; then
    echo "== calibrating the int8 model once on $calib_images -> $int8" >&2
    "$bin" calibrate --model "$model" --images "$calib_images" "${calib_flags[@]+"${calib_flags[@]}"}" -o "$int8"
  else
    echo "== int8 model: $int8 (calibrated before; delete it to calibrate again)" >&2
  fi
  float="$model"
fi

out="$root/out/demo"
rm -rf "$out/overlays"
mkdir -p "$out/overlays"
"$bin" detect --model "$int8" --json "$out/detections.json" --overlay-dir "$out/overlays" "${images[@]}"
echo "== wrote $out/detections.json and $(ls "$out/overlays" | wc -l) overlay image(s) of the int8 model in $out/overlays" >&2

# float vs int8 on one image: `bench` (decoded image in, masks out; median of 3 after 1 warm-up)
one=""
for i in "${images[@]}"; do
  if [ -d "$i" ]; then
    one=$(find "$i" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | sort | head -1)
  else
    one="$i"
  fi
  [ -n "$one" ] && break
done
median_ms() {  # median_ms MODEL: bench's median latency in ms
  "$bin" bench --model "$1" --image "$one" --runs 3 --warmup 1 --json 2>/dev/null \
    | sed -n 's/.*"median_s":\([0-9.eE+-]*\).*/\1/p' | awk '{ printf "%.0f", $1 * 1000 }'
}
if [ -n "$float" ] && [ -n "$one" ]; then
  echo "== timing float32 and int8 on $one (bench, median of 3 runs)" >&2
  tf=$(median_ms "$float" || true); ti=$(median_ms "$int8" || true)
  if [ -n "$tf" ] && [ -n "$ti" ] && [ "$ti" -gt 0 ]; then
    echo "float32: $tf ms   int8: $ti ms   ($(awk -v a="$tf" -v b="$ti" 'BEGIN { printf "%.1f", a / b }')x faster) on $(basename "$one"), $(nproc) thread(s)"
  else
    echo "edge-mrcnn demo: timing failed (bench gave no figure)" >&2
    exit 1
  fi
fi
