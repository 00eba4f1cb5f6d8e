#!/usr/bin/env bash
# Runs the whole XCTest suite of a built test bundle, one process per test class, JOBS classes at a
# time (the tests are nearly single-threaded in a debug build, so on 2 cores two classes at a time
# take about half the time of `swift test`, which runs them one after another in one process; two
# `swift test` processes cannot share a scratch path, hence the bundle is run directly).
#   bash tools/xctest-jobs.sh BUNDLE LOG [--skip Class.test ...]
# Every test the bundle lists (`BUNDLE --list-tests`) runs, less the --skip ones; the run fails if
# a class process fails or crashes, or if the number of tests executed differs from the number
# selected (nothing may drop out silently). Each class's output is kept whole (not interleaved) and
# appended to LOG and to standard output when the class ends.
# Environment: EDGE_MRCNN_TEST_JOBS (default: the number of online CPUs, at most 2),
#   EDGE_MRCNN_CLASS_TIMEOUT (seconds per class process, default 900; 0: none; the slowest class
#   takes ~55 s in the debug build and ~100 s under ASan on an idle 2-core machine).
set -uo pipefail
BUNDLE="$1"; LOG="$2"; shift 2
SKIP=()
while [ $# -gt 0 ]; do
    case "$1" in
        --skip) SKIP+=("$2"); shift 2 ;;
        *) echo "xctest-jobs: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$BUNDLE" ] || { echo "xctest-jobs: no test bundle at $BUNDLE" >&2; exit 2; }
NCPU="$(nproc 2>/dev/null || echo 1)"
JOBS="${EDGE_MRCNN_TEST_JOBS:-$(( NCPU > 2 ? 2 : NCPU ))}"
CLASS_TIMEOUT="${EDGE_MRCNN_CLASS_TIMEOUT:-900}"
DIR="$(mktemp -d /tmp/edge-mrcnn-xctest.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT

# "Module.Class/test" lines
"$BUNDLE" --list-tests 2>/dev/null | grep -E '^[A-Za-z0-9_]+\.[A-Za-z0-9_]+/[A-Za-z0-9_]+$' > "$DIR/all" || true
total=$(wc -l < "$DIR/all")
[ "$total" -gt 0 ] || { echo "xctest-jobs: $BUNDLE lists no tests" >&2; exit 2; }
cp "$DIR/all" "$DIR/selected"
for s in "${SKIP[@]+"${SKIP[@]}"}"; do   # Class.test -> Module.Class/test
    pat="\\.${s%%.*}/${s#*.}\$"
    grep -qE "$pat" "$DIR/selected" || { echo "xctest-jobs: --skip $s names no test of the bundle" >&2; exit 2; }
    grep -vE "$pat" "$DIR/selected" > "$DIR/s.tmp"; mv "$DIR/s.tmp" "$DIR/selected"
done
selected=$(wc -l < "$DIR/selected")

# One work item per class: the class name when all its tests run, else its selected tests joined
# with commas. The longest classes first (measured in CI, debug and ASan builds), so that the last
# ones to finish are short; a class missing from this list still runs, after them.
HEAVY="StreamCLITests QuantTests BadInputCorpusTests ArchParityTests ParityTests ServeTests
ThreadDeterminismTests KeypointParityTests ShapesModelIOTests ArenaTests CLITests MixedPrecisionTests
EvalTests PipelineRobustnessTests QKernelTests"
classes=$(sed -E 's|/.*||' "$DIR/selected" | uniq)
{ for h in $HEAVY; do printf '%s\n' "$classes" | grep -E "\\.$h\$" || true; done
  printf '%s\n' "$classes" | grep -vE "\\.($(echo $HEAVY | tr ' ' '|'))\$" || true; } > "$DIR/order"
: > "$DIR/items"
while IFS= read -r c; do
    if [ "$(grep -c "^$c/" "$DIR/all")" = "$(grep -c "^$c/" "$DIR/selected")" ]; then
        echo "$c" >> "$DIR/items"
    else
        grep "^$c/" "$DIR/selected" | paste -sd, - >> "$DIR/items"
    fi
done < "$DIR/order"

run_item() {   # run_item ITEM (in a worker): the class's output goes to its own file
    local item="$1" name rc t0
    name="${item%%/*}"; name="${name#*.}"
    t0=$(date +%s)
    if [ "$CLASS_TIMEOUT" != 0 ]; then
        timeout --kill-after=30 "$CLASS_TIMEOUT" "$BUNDLE" "$item" > "$DIR/$name.log" 2>&1; rc=$?
    else
        "$BUNDLE" "$item" > "$DIR/$name.log" 2>&1; rc=$?
    fi
    [ "$rc" != 124 ] || echo "== $name: stopped after $CLASS_TIMEOUT s (EDGE_MRCNN_CLASS_TIMEOUT)" >> "$DIR/$name.log"
    echo "$rc $(( $(date +%s) - t0 ))" > "$DIR/$name.rc"
    # whole, under a lock, so that two classes' output never interleaves
    { flock 9; cat "$DIR/$name.log"; echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s"; } 9> "$DIR/lock"
}
export -f run_item
export BUNDLE DIR CLASS_TIMEOUT
echo "== XCTest: $selected of $total tests (${#SKIP[@]} skipped by name), $(wc -l < "$DIR/items") classes, $JOBS at a time"
t0=$(date +%s)
tr '\n' '\0' < "$DIR/items" | xargs -0 -P "$JOBS" -I{} bash -c 'run_item "$1"' _ {} | tee -a "$LOG"

# Results: every class process exited 0 and the tests executed are the tests selected.
rc=0
failed=()
while IFS= read -r c; do
    name="${c#*.}"
    if [ ! -f "$DIR/$name.rc" ]; then failed+=("$name (did not run)"); continue; fi
    read -r crc _ < "$DIR/$name.rc"
    [ "$crc" = 0 ] || failed+=("$name (exit $crc)")
done < "$DIR/order"
ran=$(cat "$DIR"/*.log 2>/dev/null | grep -cE "^Test Case '.*' (passed|failed|skipped) \(" || true)
nfail=$(cat "$DIR"/*.log 2>/dev/null | grep -cE "^Test Case '.*' failed \(" || true)
nskip=$(cat "$DIR"/*.log 2>/dev/null | grep -cE "^Test Case '.*' skipped \(" || true)
echo "== XCTest: executed $ran of $selected selected tests ($nskip skipped, $nfail failed) in $(( $(date +%s) - t0 )) s, $JOBS classes at a time" | tee -a "$LOG"
if [ "${#failed[@]}" != 0 ]; then
    echo "== XCTest FAILED: ${failed[*]}" | tee -a "$LOG"; rc=1
fi
if [ "$ran" != "$selected" ]; then
    echo "== XCTest FAILED: $ran tests executed, $selected selected (a class stopped early, or a name did not match)" | tee -a "$LOG"; rc=1
fi
exit $rc
