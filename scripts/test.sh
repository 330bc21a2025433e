#!/usr/bin/env bash
# Fetches the assets (scripts/setup.sh), then runs the whole test suite in release mode.
# Extra arguments go to `swift test`, e.g. scripts/test.sh --filter ModelsTests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec swift test -c release "$@"
