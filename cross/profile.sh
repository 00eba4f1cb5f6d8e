#!/usr/bin/env bash
# ARM64 speed without a board: instruction counts of an int8 `edge-mrcnn bench` run under qemu.
#
#   bash cross/profile.sh [--model FILE] [--image FILE] [--cpus "cortex-a53 cortex-a76 max"] [--out FILE.md]
#
# For each CPU: instructions per stage, GMAC per stage (bench's own count), MAC per instruction per
# stage and over the whole detect, the 15 busiest functions of the detect, and the instructions
# executed before the first detect (process start, JPEG decode, model load and weight setup) with
# their busiest functions. One image, --threads 1 (the plugin's counters are not atomic), one
# timed run and no warm-up (bench --runs 1 --warmup 0).
#
# Stage boundaries: cross/stagecount.c (a QEMU TCG plugin, built here into
# ${EDGE_MRCNN_PROFILE_CACHE:-~/.cache/edge-mrcnn-profile}) marks every clock_gettime of
# CLOCK_MONOTONIC (1) and CLOCK_PROCESS_CPUTIME_ID (2). MaskRCNN.detect reads the monotonic clock
# then the process CPU clock at its start and at the end of each stage; `bench` reads only the
# monotonic clock (around detect). So the boundaries are exactly the marks "1 followed by 2", and
# their number must be the number of stages bench reports + 1 — checked, else the script stops.
#
# EDGE_MRCNN_PROFILE_LABEL: how the report names the binary (default: its path and git state).
# Needs: the UNSTRIPPED aarch64 binary (.build-aarch64/release/edge-mrcnn from
# cross/build-aarch64.sh; override with EDGE_MRCNN_AARCH64_UNSTRIPPED), the dynamic qemu-aarch64
# (package qemu-user; qemu-aarch64-static takes no plugins), GLib headers, gcc, python3. The
# plugin API header comes from /work/shared/tools/arm-profile/build.sh's cache if present, else
# from Debian's qemu source package through that script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${EDGE_MRCNN_SHARED:-$(cd "$ROOT/.." && pwd)/shared}"
BIN="${EDGE_MRCNN_AARCH64_UNSTRIPPED:-$ROOT/.build-aarch64/release/edge-mrcnn}"
MODEL=""
IMAGE="$SHARED/data/shapes-val/images/shapes_777_00000.jpg"
CPUS="cortex-a53 cortex-a76 max"
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --image) IMAGE="$2"; shift 2 ;;
        --cpus) CPUS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
die() { printf '[profile] ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '[profile] %s\n' "$*" >&2; }
[ -n "$MODEL" ] || die "--model FILE (an int8 .safetensors) is required"
[ -f "$MODEL" ] || die "no model file $MODEL"
[ -f "$IMAGE" ] || die "no image $IMAGE"
[ -x "$BIN" ] || die "no unstripped aarch64 binary at $BIN (bash cross/build-aarch64.sh)"
command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 (package qemu-user) is needed"
command -v python3 >/dev/null || die "python3 is needed"

CACHE="${EDGE_MRCNN_PROFILE_CACHE:-$HOME/.cache/edge-mrcnn-profile}"
mkdir -p "$CACHE"
PLUGIN="$CACHE/libstagecount.so"
if [ ! -s "$PLUGIN" ] || [ "$PLUGIN" -ot "$ROOT/cross/stagecount.c" ]; then
    hdr=$(ls "$HOME"/.cache/arm-profile/qemu-*/qemu-plugin.h 2>/dev/null | head -1 || true)
    if [ -z "$hdr" ] && [ -x "$SHARED/tools/arm-profile/build.sh" ]; then
        bash "$SHARED/tools/arm-profile/build.sh" >/dev/null
        hdr=$(ls "$HOME"/.cache/arm-profile/qemu-*/qemu-plugin.h 2>/dev/null | head -1 || true)
    fi
    [ -n "$hdr" ] || die "no qemu-plugin.h (run $SHARED/tools/arm-profile/build.sh once)"
    gcc -O2 -shared -fPIC -I"$(dirname "$hdr")" $(pkg-config --cflags glib-2.0) -o "$PLUGIN" \
        "$ROOT/cross/stagecount.c" $(pkg-config --libs glib-2.0) || die "plugin build failed"
fi
NM=$(command -v llvm-nm || ls /usr/lib/llvm-*/bin/llvm-nm 2>/dev/null | tail -1 || command -v nm)
DEMANGLE="$(dirname "$(readlink -f "$(command -v swiftc)")")/swift-demangle"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
"$NM" -n -S --defined-only "$BIN" 2>/dev/null | awk 'NF==4 && ($3=="t"||$3=="T"||$3=="W"||$3=="w")' > "$WORK/syms.txt"
[ -s "$WORK/syms.txt" ] || die "$BIN has no function symbols: profile the unstripped binary"

REPORT="$WORK/report.md"
{
    echo "int8 \`bench\` under qemu-user with cross/stagecount.c: model $(basename "$MODEL"), image $(basename "$IMAGE"), --threads 1, --runs 1 --warmup 0."
    echo "Binary: ${EDGE_MRCNN_PROFILE_LABEL:-$BIN (tree $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes'))}."
    echo
} > "$REPORT"
for cpu in $CPUS; do
    log "bench under qemu-aarch64 -cpu $cpu (this takes a few minutes)"
    set +e
    qemu-aarch64 -cpu "$cpu" -plugin "$PLUGIN,syms=$WORK/syms.txt" -d plugin -D "$WORK/plugin-$cpu.txt" \
        "$BIN" --threads 1 bench --model "$MODEL" --image "$IMAGE" --runs 1 --warmup 0 --json \
        > "$WORK/bench-$cpu.json" 2> "$WORK/bench-$cpu.err"
    rc=$?
    set -e
    [ "$rc" = 0 ] || { cat "$WORK/bench-$cpu.err" >&2; die "bench failed under -cpu $cpu (exit $rc)"; }
    python3 - "$cpu" "$WORK/plugin-$cpu.txt" "$WORK/bench-$cpu.json" "$DEMANGLE" >> "$REPORT" <<'PY' || die "could not analyse the -cpu $cpu run"
import json, subprocess, sys
cpu, plug, benchf, demangle = sys.argv[1:5]
bench = json.load(open(benchf))
marks, syms, total = [], [], 0
for line in open(plug):
    f = line.split()
    if not f: continue
    if f[0] == "mark": marks.append((int(f[2]), int(f[3])))
    elif f[0] == "total": total = int(f[1])
    elif f[0] == "sym": syms.append((f[1], [int(x) for x in f[2:]]))
stages = list(bench["stages_median_s"].keys())
gmac = bench.get("stages_gmac", {})
# boundaries: a monotonic read (1) immediately followed by a process-CPU read (2)
bounds = [i for i in range(len(marks) - 1) if marks[i][0] == 1 and marks[i + 1][0] == 2]
if len(bounds) != len(stages) + 1:
    sys.exit(f"profile: {len(bounds)} stage boundaries for {len(stages)} stages {stages}: the clock pattern changed")
def cnt(i): return marks[i][1]
names = [s for s, _ in syms]
try:
    dem = subprocess.run([demangle, "--simplified", "--compact"], input="\n".join(names), capture_output=True, text=True, check=True).stdout.split("\n")
    if len(dem) < len(names): raise RuntimeError
except Exception:
    dem = names
def short(n):
    n = n.replace("EdgeMRCNN.", "").replace("Swift.", "")
    return n if len(n) <= 90 else n[:87] + "..."
det0, det1 = bounds[0], bounds[-1]
det_instr = cnt(det1) - cnt(det0)
det_gmac = sum(gmac.get(s, 0.0) for s in stages)
load_instr = marks[0][1]  # everything before bench's first clock read
print(f"### -cpu {cpu} (kernels: {bench.get('isa', '?')}, {bench.get('detections', '?')} detections, network input {bench.get('network_input', '?')})\n")
print("| stage | instructions (M) | GMAC | MAC per instruction |")
print("|---|---:|---:|---:|")
for k, s in enumerate(stages):
    n = cnt(bounds[k + 1]) - cnt(bounds[k])
    g = gmac.get(s)
    mpi = f"{g * 1e9 / n:.2f}" if g and n else "-"
    print(f"| {s} | {n / 1e6:.0f} | {g:.2f} |" if g is not None else f"| {s} | {n / 1e6:.0f} | - |", mpi, "|")
print(f"| **detect** | **{det_instr / 1e6:.0f}** | **{det_gmac:.2f}** | **{det_gmac * 1e9 / det_instr:.2f}** |")
print(f"\nBefore the first detect (process start, JPEG decode, model load): **{load_instr / 1e6:.0f} M** instructions, "
      f"{100.0 * load_instr / det_instr:.1f}% of one detect. Whole process: {total / 1e6:.0f} M.\n")
rows = sorted(((v[det1] - v[det0], i) for i, (_, v) in enumerate(syms)), reverse=True)[:15]
print("15 busiest functions of the detect:\n")
print("| instructions (M) | share | function |")
print("|---:|---:|---|")
for n, i in rows:
    print(f"| {n / 1e6:.0f} | {100.0 * n / det_instr:.1f}% | `{short(dem[i])}` |")
rows = sorted(((v[0], i) for i, (_, v) in enumerate(syms)), reverse=True)[:5]
print("\nBusiest functions before the first detect:\n")
print("| instructions (M) | function |")
print("|---:|---|")
for n, i in rows:
    print(f"| {n / 1e6:.0f} | `{short(dem[i])}` |")
print()
PY
    log "-cpu $cpu done"
done
cat "$REPORT"
[ -z "$OUT" ] || cp "$REPORT" "$OUT"
