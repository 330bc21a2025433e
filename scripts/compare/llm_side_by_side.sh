#!/usr/bin/env bash
# Causal-LM speed, three implementations one after the other on the same machine and the same GGUF file
# (SmolLM2-135M-Instruct Q4_1): `peft bench llm` (quantised weights in memory, and float32), transformers float32
# (scripts/compare/llm_speed.py), and llama.cpp's llama-bench when $LLAMA_BENCH names one (batch 1 only:
# pp128 = prefill of 128 tokens, tg64 = decode of 64 tokens). Prints each side's own table.
#
# Usage: [LLAMA_BENCH=/path/to/llama-bench] [PEFT_TORCH_PYTHON=python3] scripts/compare/llm_side_by_side.sh [--repeats 3]
# llama-bench comes from PyPI's llama-cpp-python source package, which carries llama.cpp (vendor/llama.cpp):
#   pip download --no-deps --no-binary :all: llama-cpp-python   (or fetch the .tar.gz from the index), unpack,
#   cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF && ninja -C build llama-bench
# Sides that are not available are skipped with a note; not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --repeats) repeats="$2"; shift 2 ;;
        *) echo "llm_side_by_side.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
model=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[[ -f "$model" ]] || { echo "llm_side_by_side.sh: $model is missing; run scripts/setup.sh" >&2; exit 1; }
echo "date: $(date -u +%Y-%m-%d), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
swift build -c release --product peft >/dev/null
echo "## SwiftPEFT"
.build/release/peft bench llm --repeats "$repeats"
python="${PEFT_TORCH_PYTHON:-python3}"
echo "## transformers"
if "$python" -c "import torch, transformers, gguf" 2>/dev/null; then
    "$python" scripts/compare/llm_speed.py --threads "$(nproc)" --repeats "$repeats"
else
    echo "(skipped: $python cannot import torch, transformers and gguf)"
fi
echo "## llama.cpp"
if [[ -n "${LLAMA_BENCH:-}" && -x "${LLAMA_BENCH}" ]]; then
    "$LLAMA_BENCH" -m "$model" -p 128 -n 64 -t "$(nproc)" -r "$repeats"
else
    echo "(skipped: set LLAMA_BENCH to a llama-bench executable)"
fi
