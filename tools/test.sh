#!/usr/bin/env bash
# The test command: the host XCTest suite (unit tests + parity tests against ../shared), then
# `edge-mrcnn selftest` (the checks the aarch64 binary carries), which must end "N passed, 0 failed".
#   bash tools/test.sh                 # everything (the XCTest classes two at a time: tools/xctest-jobs.sh)
#   bash tools/test.sh --filter Foo    # extra arguments go to `swift test` (selftest is then not run)
# Under CI=true a missing ../shared file or fixture is a failure instead of a skip (see
# TestSupport.swift). The run ends with the list of tests that were skipped and why.
# EDGE_MRCNN_REQUIRE_ISAS="scalar avx2 ..." makes the kernel tests and selftest fail when this CPU
# cannot run one of those ISAs (.ci/run sets it to the ISAs the README says are tested).
# The aarch64 build is checked separately: bash cross/build-aarch64.sh && bash cross/run-qemu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup-deps.sh   # libjpeg etc. on a fresh machine (no-op when present)
LOG="$(mktemp /tmp/edge-mrcnn-test.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

# XCTest only: the suite has no Swift Testing tests, and its empty "0 tests" summary would be the
# closing line of the run.
rc=0
if [ "$#" = 0 ]; then
    # The whole suite: built once, then run by tools/xctest-jobs.sh, one process per test class,
    # two classes at a time on a 2-core machine (about half the time of one `swift test` process;
    # it checks that every test the bundle lists was executed).
    swift build --build-tests 2>&1 | tee "$LOG" || rc=$?
    if [ "$rc" = 0 ]; then
        bash tools/xctest-jobs.sh "$(swift build --show-bin-path)/edge-mrcnnPackageTests.xctest" "$LOG" || rc=$?
    fi
else
    swift test --disable-swift-testing "$@" 2>&1 | tee "$LOG" || rc=$?
fi

if [ "$#" = 0 ]; then
    # StreamedOutputTests' peak-RSS bound means something only in a fresh process (in the suite,
    # freed memory of earlier tests is reused and the test reports the bound as not checked): run
    # that test once more alone. When it is checked there, its skip in the suite run is not listed.
    ONE='StreamedOutputTests.testOutputStageMemoryIsOneMask'
    echo "== $ONE alone (a fresh process, so that its peak-RSS bound is checked)"
    orc=0
    swift test --skip-build --disable-swift-testing --filter "$ONE" > "$LOG.one" 2>&1 || orc=$?
    grep -E "STREAMED OUTPUT|error|Test skipped|Test Case '.*' (passed|failed|skipped)" "$LOG.one" || true
    if [ "$orc" != 0 ]; then
        echo "== $ONE FAILED when run alone (exit $orc)"; [ "$rc" != 0 ] || rc=1
    fi
    if grep -q ': Test skipped' "$LOG.one"; then
        grep ': Test skipped' "$LOG.one" | sed 's/Test skipped - /Test skipped - (run alone) /' >> "$LOG"
    elif [ "$orc" = 0 ]; then
        grep -v "$ONE : Test skipped" "$LOG" > "$LOG.f" || true; mv "$LOG.f" "$LOG"
    fi
    rm -f "$LOG.one"

    echo "== edge-mrcnn selftest (debug build)"
    BIN="$(swift build --show-bin-path)/edge-mrcnn"
    src=0
    "$BIN" selftest > "$LOG.selftest" 2>&1 || src=$?
    cat "$LOG.selftest"
    last="$(grep -v '^[[:space:]]*$' "$LOG.selftest" | tail -n1 || true)"
    rm -f "$LOG.selftest"
    if [ "$src" != 0 ] || ! printf '%s\n' "$last" | grep -Eq '^[0-9]+ passed, 0 failed$'; then
        echo "== selftest FAILED (exit $src, last line: '$last')"
        [ "$rc" != 0 ] || rc=1
    fi
fi

# Which tests were skipped, and why (XCTest prints "<file>:<line>: <Class.test> : Test skipped - why").
skips="$(grep -E ': Test skipped' "$LOG" | sed -E 's/^.*: ([A-Za-z0-9_]+\.[A-Za-z0-9_]+) : Test skipped( - )?/\1: /' | sort -u || true)"
if [ -n "$skips" ]; then
    report="skipped tests ($(printf '%s\n' "$skips" | wc -l)), and why:
$(printf '%s\n' "$skips" | sed 's/^/  /')"
else
    report="skipped tests: none"
fi
echo "== $report"
# .ci/run prints this again in its closing summary.
if [ -n "${EDGE_MRCNN_SKIP_REPORT:-}" ]; then printf '%s\n' "$report" > "$EDGE_MRCNN_SKIP_REPORT"; fi
exit "$rc"
