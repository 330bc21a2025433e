#!/usr/bin/env bash
# Coverage-guided fuzzing of the file readers with libFuzzer (Swift's -sanitize=fuzzer, plus AddressSanitizer).
#
#   bash scripts/fuzz.sh [reader|all] [seconds per reader]      # default: all 120
#   readers: safetensors onnx idx json adapter gguf
#
# The harness (fuzz/PEFTFuzz.swift) is not part of Package.swift, so `swift build` / `swift test` never compile it:
# this script builds the library modules with swiftc directly, in checked -O (overflow and bounds checks on, as in
# the package's release build) with fuzzer coverage and ASan, into .build-fuzz/. Seeds are in fuzz/corpus/<reader>/;
# the growing working corpus goes to .build-fuzz/corpus/<reader>/ and crashes to .build-fuzz/findings/<reader>/.
# Each reader ends with a line "fuzz <reader>: <execs> execs in <s> s, cov <edges>, ft <features>, corpus <n>, crashes <k>".
# Limits per input: -timeout=10 s, -rss_limit_mb=2048, -malloc_limit_mb=1024 (one allocation above 1 GB is a finding).
# The binary is rebuilt when missing or when fuzz/PEFTFuzz.swift changed; set PEFT_FUZZ_REBUILD=1 after changing a
# reader. PEFT_FUZZ_SANITIZE=fuzzer drops ASan (faster, fewer checks).
# Reproduce a finding: PEFT_FUZZ_READER=<reader> .build-fuzz/peft-fuzz .build-fuzz/findings/<reader>/crash-...
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
READER="${1:-all}"
SECONDS_EACH="${2:-120}"
OUT="$ROOT/.build-fuzz"
SANITIZE="${PEFT_FUZZ_SANITIZE:-fuzzer,address}"
MODULES=(BLASBinding Engine Layers Checkpoints Models Methods Training)
BINARY="$OUT/peft-fuzz"
CFLAGS_SWIFT=()
mkdir -p "$OUT/modules"

build() {
  echo "fuzz: building modules with -sanitize=$SANITIZE into $OUT (takes a few minutes)" >&2
  local libs=()
  # C targets (a directory of .c files with an include/ folder): compiled with clang, given a module map.
  for dir in "$ROOT"/Sources/*/; do
    local cmodule; cmodule="$(basename "$dir")"
    compgen -G "$dir*.c" >/dev/null || continue
    mkdir -p "$OUT/cmodules/$cmodule"
    local objects=()
    for source in "$dir"*.c; do
      clang -O2 -fPIC -I "$dir/include" -c "$source" -o "$OUT/cmodules/$cmodule/$(basename "$source" .c).o"
      objects+=("$OUT/cmodules/$cmodule/$(basename "$source" .c).o")
    done
    ar rcs "$OUT/modules/lib$cmodule.a" "${objects[@]}"
    { echo "module $cmodule {"
      for header in "$dir"include/*.h; do echo "  header \"$header\""; done
      echo "  export *"; echo "}"; } >"$OUT/cmodules/$cmodule/module.modulemap"
    CFLAGS_SWIFT+=(-I "$OUT/cmodules/$cmodule")
    libs=("-l$cmodule" "${libs[@]}")
  done
  for module in "${MODULES[@]}"; do
    # Retried a few times: a source edited while it compiles (a shared working tree) fails the compile.
    local attempt
    for attempt in 1 2 3 4; do
      mapfile -t files < <(find "$ROOT/Sources/$module" -name '*.swift' | sort)
      if swiftc -module-name "$module" -parse-as-library -swift-version 5 -O -wmo -enable-testing \
        -sanitize="$SANITIZE" -I "$OUT/modules" "${CFLAGS_SWIFT[@]}" \
        -emit-module -emit-module-path "$OUT/modules/$module.swiftmodule" \
        -emit-library -static -o "$OUT/modules/lib$module.a" "${files[@]}"; then break; fi
      [ "$attempt" = 4 ] && { echo "fuzz: cannot build $module" >&2; exit 1; }
      sleep 5
    done
    libs=("-l$module" "${libs[@]}")
  done
  swiftc -module-name PEFTFuzz -parse-as-library -swift-version 5 -O -sanitize="$SANITIZE" \
    -I "$OUT/modules" "${CFLAGS_SWIFT[@]}" -L "$OUT/modules" "$ROOT/fuzz/PEFTFuzz.swift" "${libs[@]}" -o "$BINARY" 2>&1 \
    | { grep -v "Cannot export local symbol" || true; }
  [ -x "$BINARY" ] || { echo "fuzz: build failed" >&2; exit 1; }
}

# Rebuilt when missing, when the harness changed, or on request (PEFT_FUZZ_REBUILD=1, e.g. after fixing a reader).
if [ ! -x "$BINARY" ] || [ "$ROOT/fuzz/PEFTFuzz.swift" -nt "$BINARY" ] || [ -n "${PEFT_FUZZ_REBUILD:-}" ]; then
  rm -f "$BINARY"; build
fi

run_reader() {
  local reader="$1"
  local corpus="$OUT/corpus/$reader" findings="$OUT/findings/$reader" log="$OUT/$reader.log"
  mkdir -p "$corpus" "$findings"
  # Dictionaries of tokens the formats use help the mutator get past the parsers' first checks.
  local dict=()
  [ -f "$ROOT/fuzz/dict/$reader.dict" ] && dict=("-dict=$ROOT/fuzz/dict/$reader.dict")
  set +e
  PEFT_FUZZ_READER="$reader" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0" \
    "$BINARY" "$corpus" "$ROOT/fuzz/corpus/$reader" "${dict[@]}" \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1
  local status=$?
  set -e
  local execs cov ft size crashes
  execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')"
  ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')"
  size="$(find "$corpus" -type f | wc -l)"
  crashes="$(find "$findings" -type f | wc -l)"
  echo "fuzz $reader: ${execs:-?} execs in $SECONDS_EACH s, cov ${cov:-?}, ft ${ft:-?}, corpus $size, crashes $crashes (exit $status; log $log)"
  if [ "$status" -ne 0 ]; then grep -E 'ERROR|Fatal error|SUMMARY|==[0-9]+==' "$log" | head -n 5; fi
}

if [ "$READER" = all ]; then
  for reader in safetensors onnx idx json adapter gguf; do run_reader "$reader"; done
else
  run_reader "$READER"
fi
