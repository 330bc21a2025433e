#!/usr/bin/env bash
# Fetches the assets (scripts/setup.sh), builds and runs the example package (Examples/OwnModelLoRA), then runs the
# whole test suite (XCTest) in release mode and ends with
# a one-line summary "N passed, N failed". Extra arguments go to `swift test`, e.g. scripts/test.sh --filter ModelsTests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# The example package depends on the library by path, as another package would: it must build and run.
swift build -c release --package-path Examples/OwnModelLoRA
Examples/OwnModelLoRA/.build/release/OwnModelLoRA
# setup.sh installed Open MPI, so the 2-rank tests (Tests/CLITests/DataParallelTests.swift) must run, not skip.
export PEFT_REQUIRE_MPI=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
swift test -c release --disable-swift-testing "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# XCTest prints "Executed N tests, with [S tests skipped and] F failures" for the whole run last.
summary="$(grep -E '^[[:space:]]*Executed [0-9]+ tests?, with ' "$log" | tail -n 1)"
if [ -n "$summary" ]; then
  total="$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')"
  failed="$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')"
  skipped=0
  if echo "$summary" | grep -qE '[0-9]+ tests? skipped'; then
    skipped="$(echo "$summary" | sed -E 's/.* ([0-9]+) tests? skipped.*/\1/')"
  fi
  echo "tests: $((total - failed - skipped)) passed, $skipped skipped, $failed failed"
fi
exit "$status"
