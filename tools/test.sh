#!/usr/bin/env bash
# The test command: the host XCTest suite (unit tests + parity tests against ../shared).
#   bash tools/test.sh                 # everything
#   bash tools/test.sh --filter Foo    # extra arguments go to `swift test`
# Under CI=true a missing ../shared file is a failure instead of a skip (see TestSupport.swift).
# The aarch64 build is checked separately: bash cross/build-aarch64.sh && bash cross/run-qemu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup-deps.sh   # libjpeg etc. on a fresh machine (no-op when present)
# XCTest only: the suite has no Swift Testing tests, and its empty "0 tests" summary would be the
# closing line of the run.
exec swift test --disable-swift-testing "$@"
