#!/usr/bin/env bash
# The XCTest suite under AddressSanitizer + UndefinedBehaviorSanitizer (issue 5): Swift and C
# (CShim: kernels, libjpeg wrapper) instrumented with ASan, the C also with UBSan, in its own scratch
# path (.build-asan) so that the normal build is untouched. Any report fails the run
# (halt_on_error; UBSan reports in C are fatal too).
#   bash tools/sanitize.sh                    # the whole suite (classes two at a time: tools/xctest-jobs.sh)
#   bash tools/sanitize.sh --filter IOTests   # extra arguments go to `swift test`
# Leak checking is off: the Swift runtime keeps metadata caches and the tests hold a few
# process-lifetime singletons, which LeakSanitizer would report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup-deps.sh
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# (StreamedOutputTests' peak-RSS bound is not checked under the sanitizers: see the test)
export EDGE_MRCNN_SANITIZER="address,undefined"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
t0=$(date +%s)
# Swift has no UBSan (its arithmetic and bounds are checked anyway): --sanitize=address covers
# Swift and C; -fsanitize=undefined is added for the C, with its runtime at link time.
FLAGS=(--scratch-path .build-asan --sanitize=address
       -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined -Xcc -fno-omit-frame-pointer
       -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined)
swift build --build-tests "${FLAGS[@]}"
t1=$(date +%s)
rc=0
# A time limit (SANITIZE_TIMEOUT seconds: per test class for the whole suite, default 900; for the
# whole `swift test` run with arguments, default 2700): after an aborted test process swift-test
# has been seen to wait forever.
# Skipped here, all run in the plain test step (tools/test.sh):
#  - ArenaTests' steady-state page-fault bound (ASan's allocator quarantines freed memory and
#    touches shadow pages, so fresh pages are faulted in by design under the sanitizer);
#  - four end-to-end repeats whose code the sanitized suite already runs on the same inputs: the
#    same detect run three times (determinism), the same frames through stdin instead of files, the
#    same detect through `serve`, and a second calibration with layers kept in float. Together they
#    were ~40% of this step's time; they compare outputs, which the sanitizer adds nothing to.
# and, within StreamedOutputTests.testOutputStageMemoryIsOneMask, its peak-RSS bound (skipped when
# EDGE_MRCNN_SANITIZER is set: ASan's shadow memory and quarantine grow the RSS).
SKIPS=('ArenaTests.testSecondDetectOfTheSameShapeAllocatesNothing'
       'BadInputCorpusTests.testDeterministicJSON'
       'StreamCLITests.testFramesOnStdinEqualFiles'
       'ServeTests.testPredictionsMatchDetect'
       'MixedPrecisionTests.testLayersKeptInFloat')
SKIP_ARGS=()
for s in "${SKIPS[@]}"; do SKIP_ARGS+=(--skip "$s"); done
echo "== not run under the sanitizers (run in the plain test step): ${SKIPS[*]}"
if [ "$#" = 0 ]; then
    # The whole suite: one process per test class, two at a time (tools/xctest-jobs.sh; it checks
    # that every test but the skipped ones was executed). The time limit is per class process.
    LOG="$(mktemp /tmp/edge-mrcnn-asan.XXXXXX)"
    EDGE_MRCNN_CLASS_TIMEOUT="${SANITIZE_TIMEOUT:-900}" \
        bash tools/xctest-jobs.sh "$(swift build --show-bin-path "${FLAGS[@]}")/edge-mrcnnPackageTests.xctest" "$LOG" \
        "${SKIP_ARGS[@]}" || rc=$?
    rm -f "$LOG"
else
    timeout --kill-after=30 "${SANITIZE_TIMEOUT:-2700}" \
        swift test --skip-build --disable-swift-testing "${FLAGS[@]}" "${SKIP_ARGS[@]}" "$@" || rc=$?
fi
t2=$(date +%s)
echo "== sanitizers (ASan + UBSan): build $((t1 - t0)) s, tests $((t2 - t1)) s, exit $rc"
exit $rc
