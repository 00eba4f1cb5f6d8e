#!/usr/bin/env bash
# Runs the static aarch64 build (from cross/build-aarch64.sh) under qemu user-mode emulation and
# checks it against the x86_64 build:
#   1. `edge-mrcnn selftest` on each emulated CPU (default: cortex-a76, which has dotprod and
#      fp16 arithmetic (int8 kernels: neondot), cortex-a53, which has neither (neon: 8-bit
#      smull/smlal2 + sadalp), and max, which has i8mm (neoi8mm: usmmla)): must exit 0 and end
#      with "N passed, 0 failed". Every ISA the CPU supports is checked against the reference.
#   2. `edge-mrcnn detect --json --max-detections 20` on one shapes-val image with the shapes
#      model (on cortex-a76 by default: float detect is all floating point, which qemu emulates in
#      software, ~300x slower than native), and the x86_64 release binary on the same input;
#      cross/compare_detections.py must find the same detections (labels, boxes within 0.05 px,
#      scores within 1e-3, masks by IoU). At most 20 detections: with this image's ~75-79 the
#      mask head is ~55% of the MACs (38 of 67 GMAC, bench/results/arm_profile_after.md) and it
#      is the same code for every RoI; 20 still makes two mask batches (16 + a partial 4). With all 79 the
#      float run took ~380 s under qemu here. The int8 runs below keep every detection.
# The model is first converted to .safetensors by the x86 binary (much faster to load under
# emulation than the .pth); if that convert fails, the run fails (no silent fallback to the .pth).
#
# Environment: EDGE_MRCNN_SHARED (default ../shared beside the repository),
#   EDGE_MRCNN_QEMU_CPUS (selftest; default "cortex-a76 cortex-a53 max"),
#   EDGE_MRCNN_QEMU_DETECT_CPUS (detect; default "cortex-a76"; "" skips detect),
#   EDGE_MRCNN_QEMU_FLOAT_DETS (the float detect's --max-detections, default 20),
#   EDGE_MRCNN_QEMU_TIMEOUT (seconds per qemu detect run, default 2400),
#   EDGE_MRCNN_QEMU_KPT_CPUS (keypoint int8 detect; default "cortex-a76"; "" skips it),
#   EDGE_MRCNN_QEMU_KPT_DETS (its --max-detections, default 4),
#   EDGE_MRCNN_QEMU_THREADS (--threads for detect; default nproc, at most 4), EDGE_MRCNN_AARCH64_BIN,
#   EDGE_MRCNN_X86_BIN (default .build/release/edge-mrcnn, brought up to date with
#   `swift build -c release` first),
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${EDGE_MRCNN_SHARED:-$(cd "$ROOT/.." && pwd)/shared}"
ABIN="${EDGE_MRCNN_AARCH64_BIN:-$ROOT/.build-aarch64/edge-mrcnn-aarch64}"
XBIN="${EDGE_MRCNN_X86_BIN:-$ROOT/.build/release/edge-mrcnn}"
CPUS="${EDGE_MRCNN_QEMU_CPUS-cortex-a76 cortex-a53 max}"
DETECT_CPUS="${EDGE_MRCNN_QEMU_DETECT_CPUS-cortex-a76}"
FLOAT_DETS="${EDGE_MRCNN_QEMU_FLOAT_DETS:-20}"
QEMU_TIMEOUT="${EDGE_MRCNN_QEMU_TIMEOUT:-2400}"
# Kernel threads for both detect runs (qemu runs guest threads on host threads; this also checks the
# pthread pool in the static aarch64 binary). Results do not depend on the thread count.
NCPU="$(nproc 2>/dev/null || echo 1)"
THREADS="${EDGE_MRCNN_QEMU_THREADS:-$(( NCPU > 4 ? 4 : NCPU ))}"
WORK="$ROOT/.build-aarch64/qemu-run"
IMAGE="$SHARED/data/shapes-val/images/shapes_777_00000.jpg"
PTH="$SHARED/models/shapes-r50fpn/model.pth"
MODEL_OPTS=(--min-size 256 --max-size 416 --classes circle,square,triangle)

log()  { printf "[qemu] %s\n" "$*"; }
die()  { printf '[qemu] ERROR: %s\n' "$*" >&2; exit 1; }
now()  { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# The CLI (or the library under it) is not finished yet: the skeleton prints this.

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
    log "installing qemu-user-static"
    $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends qemu-user-static >&2 || die "cannot install qemu-user-static"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed for cross/compare_detections.py"
[ -x "$ABIN" ] || die "no aarch64 binary at $ABIN: run bash cross/build-aarch64.sh first"
file -b "$ABIN" | grep -q 'ARM aarch64' || die "$ABIN is not an aarch64 executable: $(file -b "$ABIN")"

rm -rf "$WORK"; mkdir -p "$WORK"
FAILED=0
SUMMARY=()

qemu() {   # qemu CPU ARGS... (binfmt_misc is not mounted here: call qemu explicitly)
    local cpu="$1"; shift
    qemu-aarch64-static -cpu "$cpu" "$ABIN" "$@"
}

# ---------------------------------------------------------------------------------------------
# 1. selftest on each CPU
# ---------------------------------------------------------------------------------------------
for cpu in $CPUS; do
    out="$WORK/selftest-$cpu.log"
    log "selftest on $cpu"
    t0=$(now)
    set +e; qemu "$cpu" selftest > "$out" 2>&1; rc=$?; set -e
    dt=$(since "$t0")
    sed "s/^/[qemu $cpu] /" "$out"
    last="$(grep -v '^[[:space:]]*$' "$out" | tail -n1 || true)"
    if [ "$rc" = 0 ] && printf '%s\n' "$last" | grep -Eq '^([A-Za-z-]+: )?[0-9]+ passed, 0 failed(, [0-9]+ skipped)?$'; then
        log "selftest on $cpu: PASS in $dt s ($last)"
        SUMMARY+=("selftest $cpu: pass, $dt s")
    else
        log "selftest on $cpu: FAIL (exit $rc, last line: '$last') after $dt s"
        SUMMARY+=("selftest $cpu: FAIL"); FAILED=1
    fi
done

# ---------------------------------------------------------------------------------------------
# 2. detect: aarch64 under qemu vs x86_64
# ---------------------------------------------------------------------------------------------
[ -f "$IMAGE" ] || die "missing $IMAGE (is ../shared beside the repository? EDGE_MRCNN_SHARED overrides)"
[ -f "$PTH" ] || die "missing $PTH"
if [ -z "${EDGE_MRCNN_X86_BIN:-}" ]; then   # make sure it is built from the same sources
    log "x86_64 release binary: swift build -c release --product edge-mrcnn"
    (cd "$ROOT" && swift build -c release --product edge-mrcnn 2>&1 | tail -n 3) || die "x86_64 release build failed"
fi
[ -x "$XBIN" ] || die "no x86_64 binary at $XBIN"

detect_stage() {
    # Model: the .safetensors converted by the x86 binary. A failed convert is a failure of the
    # run (the x86 binary is the one under test too), not a reason to fall back to the .pth.
    MODEL="$WORK/shapes.safetensors"
    local conv="$WORK/convert.log" t0
    t0=$(now)
    set +e; "$XBIN" convert "$PTH" -o "$MODEL" "${MODEL_OPTS[@]}" > "$conv" 2>&1; local rc=$?; set -e
    if [ "$rc" != 0 ] || [ ! -s "$MODEL" ]; then
        sed 's/^/[convert] /' "$conv" | tail -n 5
        die "x86_64 convert of $PTH failed (exit $rc): $(head -n1 "$conv")"
    fi
    log "converted the model with the x86 binary in $(since "$t0") s: $(stat -c %s "$MODEL") bytes"

    log "detect on x86_64: $(basename "$IMAGE") ($THREADS threads, at most $FLOAT_DETS detections)"
    local xjson="$WORK/x86_64.json" xout="$WORK/detect-x86_64.log"
    t0=$(now)
    set +e; "$XBIN" --threads "$THREADS" detect --model "$MODEL" --json "$xjson" --max-detections "$FLOAT_DETS" "${MODEL_OPTS[@]}" "$IMAGE" > "$xout" 2>&1; rc=$?; set -e
    local xdt; xdt=$(since "$t0")
    sed 's/^/[x86_64] /' "$xout"
    [ "$rc" = 0 ] && [ -s "$xjson" ] || { log "detect on x86_64 FAILED (exit $rc, no JSON)"; SUMMARY+=("detect x86_64: FAIL"); FAILED=1; return 0; }
    SUMMARY+=("detect x86_64: $xdt s")

    local cpu ajson aout adt
    for cpu in $DETECT_CPUS; do
        ajson="$WORK/aarch64-$cpu.json"; aout="$WORK/detect-$cpu.log"
        log "detect on aarch64 ($cpu, qemu, $THREADS threads)"
        t0=$(now)
        set +e; timeout "$QEMU_TIMEOUT" qemu-aarch64-static -cpu "$cpu" "$ABIN" --threads "$THREADS" detect --model "$MODEL" --json "$ajson" --max-detections "$FLOAT_DETS" "${MODEL_OPTS[@]}" "$IMAGE" > "$aout" 2>&1; rc=$?; set -e
        adt=$(since "$t0")
        sed "s/^/[qemu $cpu] /" "$aout"
        [ "$rc" != 124 ] || log "detect on $cpu: timed out after $QEMU_TIMEOUT s (EDGE_MRCNN_QEMU_TIMEOUT)"
        if [ "$rc" != 0 ] || [ ! -s "$ajson" ]; then
            log "detect on $cpu FAILED (exit $rc, no JSON) after $adt s"; SUMMARY+=("detect $cpu: FAIL"); FAILED=1; continue
        fi
        if cmp -s "$xjson" "$ajson"; then log "the aarch64 ($cpu) and x86_64 JSON files are byte-identical"; fi
        if python3 "$ROOT/cross/compare_detections.py" "$xjson" "$ajson" --box-tol 0.05 --score-tol 1e-3; then
            log "detect on $cpu: PASS, same detections as x86_64 ($adt s under qemu, x86_64 native $xdt s)"
            SUMMARY+=("detect $cpu: pass, $adt s, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$ajson" 2>/dev/null || echo '?') detections")
        else
            log "detect on $cpu: FAIL: detections differ from x86_64 (JSONs in $WORK)"
            SUMMARY+=("detect $cpu: FAIL (differs)"); FAILED=1
        fi
    done
}
# int8: calibrate with the x86 binary on a few shapes-calib images, then detect with the int8 model
# on x86_64 and under qemu on every INT8_CPUS CPU (cortex-a76: neondot kernels; cortex-a53: neon;
# max: neoi8mm). The int8 kernels are bit-exact across ISAs, so the JSON files must be
# byte-identical.
INT8_CPUS="${EDGE_MRCNN_QEMU_INT8_CPUS-cortex-a76 cortex-a53 max}"
int8_stage() {
    local calib="$WORK/calib-images" q="$WORK/shapes-int8.safetensors" t0 rc
    mkdir -p "$calib"
    local n=0 f
    for f in "$SHARED"/data/shapes-calib/images/*.jpg; do
        ln -sf "$f" "$calib/"; n=$((n + 1)); [ "$n" -lt 6 ] || break
    done
    log "int8: calibrate on $n shapes-calib images with the x86 binary"
    t0=$(now)
    set +e; "$XBIN" calibrate --model "$MODEL" --images "$calib" -o "$q" > "$WORK/calibrate.log" 2>&1; rc=$?; set -e
    if [ "$rc" != 0 ] || [ ! -s "$q" ]; then
        tail -n 3 "$WORK/calibrate.log"; log "int8: calibrate FAILED (exit $rc)"; SUMMARY+=("int8 calibrate: FAIL"); FAILED=1; return 0
    fi
    log "int8: calibrated in $(since "$t0") s"
    local xjson="$WORK/int8-x86_64.json"
    set +e; "$XBIN" --threads "$THREADS" detect --model "$q" --json "$xjson" "$IMAGE" > "$WORK/int8-x86_64.log" 2>&1; rc=$?; set -e
    [ "$rc" = 0 ] && [ -s "$xjson" ] || { log "int8 detect on x86_64 FAILED (exit $rc)"; SUMMARY+=("int8 x86_64: FAIL"); FAILED=1; return 0; }
    local cpu ajson adt
    for cpu in $INT8_CPUS; do
        ajson="$WORK/int8-aarch64-$cpu.json"
        log "int8: detect on aarch64 ($cpu, qemu)"
        t0=$(now)
        set +e; timeout "$QEMU_TIMEOUT" qemu-aarch64-static -cpu "$cpu" "$ABIN" --threads "$THREADS" detect --model "$q" --json "$ajson" "$IMAGE" > "$WORK/int8-$cpu.log" 2>&1; rc=$?; set -e
        adt=$(since "$t0")
        if [ "$rc" = 0 ] && cmp -s "$xjson" "$ajson"; then
            log "int8 detect on $cpu: PASS, JSON byte-identical to x86_64 ($adt s under qemu)"
            SUMMARY+=("int8 detect $cpu: pass (byte-identical), $adt s")
        else
            sed "s/^/[qemu $cpu] /" "$WORK/int8-$cpu.log" | tail -n 5
            python3 "$ROOT/cross/compare_detections.py" "$xjson" "$ajson" --box-tol 0 --score-tol 0 || true
            log "int8 detect on $cpu: FAIL (exit $rc; the JSON must be byte-identical to x86_64's)"
            SUMMARY+=("int8 detect $cpu: FAIL"); FAILED=1
        fi
    done
}

# Keypoint R-CNN int8: the seeded synthetic keypointrcnn model calibrated in memory on noise
# images (x86 binary), detect at most KPT_DETS detections (the keypoint head is ~3.7 GMAC per
# detection) on x86_64 and under qemu on each KPT_CPUS CPU: the JSON (boxes, keypoints, heatmap
# logits) must be byte-identical (int8 kernels bit-exact, the float decoding the same operations).
KPT_CPUS="${EDGE_MRCNN_QEMU_KPT_CPUS-cortex-a76}"
KPT_DETS="${EDGE_MRCNN_QEMU_KPT_DETS:-4}"
keypoint_stage() {
    local q="$WORK/keypointrcnn-int8.safetensors" t0 rc cpu ajson adt
    local opts=(--min-size 256 --max-size 416 --max-detections "$KPT_DETS")
    log "keypoints: synthetic keypointrcnn int8 (calibrated on noise with the x86 binary)"
    t0=$(now)
    set +e; "$XBIN" convert --synthetic-coco --arch keypointrcnn --int8 --size 256x320 --min-size 256 --max-size 416 -o "$q" \
        > "$WORK/keypointrcnn-convert.log" 2>&1; rc=$?; set -e
    if [ "$rc" != 0 ] || [ ! -s "$q" ]; then
        tail -n 3 "$WORK/keypointrcnn-convert.log"; log "keypoints: model FAILED (exit $rc)"; SUMMARY+=("keypoint model: FAIL"); FAILED=1; return 0
    fi
    log "keypoints: model in $(since "$t0") s"
    local xjson="$WORK/keypoints-x86_64.json"
    set +e; "$XBIN" --threads "$THREADS" detect --model "$q" --json "$xjson" "${opts[@]}" "$IMAGE" > "$WORK/keypoints-x86_64.log" 2>&1; rc=$?; set -e
    [ "$rc" = 0 ] && [ -s "$xjson" ] && grep -q '"keypoints"' "$xjson" || {
        log "keypoint detect on x86_64 FAILED (exit $rc, or no keypoints)"; SUMMARY+=("keypoints x86_64: FAIL"); FAILED=1; return 0; }
    for cpu in $KPT_CPUS; do
        ajson="$WORK/keypoints-aarch64-$cpu.json"
        log "keypoints: int8 detect on aarch64 ($cpu, qemu)"
        t0=$(now)
        set +e; timeout "$QEMU_TIMEOUT" qemu-aarch64-static -cpu "$cpu" "$ABIN" --threads "$THREADS" detect --model "$q" --json "$ajson" "${opts[@]}" "$IMAGE" > "$WORK/keypoints-$cpu.log" 2>&1; rc=$?; set -e
        adt=$(since "$t0")
        if [ "$rc" = 0 ] && cmp -s "$xjson" "$ajson"; then
            log "keypoint int8 detect on $cpu: PASS, JSON byte-identical to x86_64 ($adt s under qemu)"
            SUMMARY+=("keypoint int8 detect $cpu: pass (byte-identical), $adt s")
        else
            sed "s/^/[qemu $cpu] /" "$WORK/keypoints-$cpu.log" | tail -n 5
            log "keypoint int8 detect on $cpu: FAIL (exit $rc; the JSON must be byte-identical to x86_64's)"
            SUMMARY+=("keypoint int8 detect $cpu: FAIL"); FAILED=1
        fi
    done
}

if [ -n "${DETECT_CPUS// /}" ]; then
    detect_stage
    [ -z "${INT8_CPUS// /}" ] || int8_stage
    [ -z "${KPT_CPUS// /}" ] || keypoint_stage
else
    log "detect skipped: EDGE_MRCNN_QEMU_DETECT_CPUS is empty"
fi

log "summary:"
for s in "${SUMMARY[@]+"${SUMMARY[@]}"}"; do log "  $s"; done
[ "$FAILED" = 0 ] || die "aarch64 checks under qemu failed"
log "OK"
