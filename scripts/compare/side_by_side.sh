#!/usr/bin/env bash
# Side-by-side training-step comparison: our `peft bench step` and PyTorch + Hugging Face peft
# (scripts/compare/torch_step.py) on the same model (DINOv2-S/14, 10-class head), batch and resolution, 2 threads,
# in float32 and in bfloat16 (ours: PEFT_GEMM=bf16; theirs: CPU autocast). Prints one table per precision with
# the speed-up torch s/step / ours s/step. SHiRA targets query and value on both sides (ours 1%, peft r=2: 1.04%).
#
# Usage: scripts/compare/side_by_side.sh [--resolution 112] [--batch 32] [--repeats 10] [--methods "linear full lora shira"]
#                                        [--rounds 1] [--precisions "fp32 bf16"]
# With --rounds N, each precision runs N rounds of (ours, then PyTorch), so both see the same spells of machine
# load; a summary then gives each side's median s/step over the rounds, their ratio, and the range of the
# per-round speed-ups.
# Python: $PEFT_TORCH_PYTHON (default python3) must import torch, transformers and peft (>= 0.17 for SHiRA), e.g.
#   python3 -m venv ~/torchenv && ~/torchenv/bin/pip install torch transformers peft
#   PEFT_TORCH_PYTHON=~/torchenv/bin/python scripts/compare/side_by_side.sh
# Without them the script says so and exits 0 (it is optional, and not part of CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
resolution=112 batch=32 repeats=10 methods="linear full lora shira" rounds=1 precisions="fp32 bf16"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --resolution) resolution="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --repeats) repeats="$2"; shift 2 ;;
        --methods) methods="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --precisions) precisions="$2"; shift 2 ;;
        *) echo "side_by_side.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
python="${PEFT_TORCH_PYTHON:-python3}"
if ! "$python" -c "import torch, transformers, peft" 2>/dev/null; then
    echo "side_by_side.sh: skipped: '$python' cannot import torch, transformers and peft (set PEFT_TORCH_PYTHON)"
    exit 0
fi
peft=.build/release/peft
[[ -x "$peft" ]] || swift build -c release
lscpu | grep -E "Model name" || true
common=(--batch "$batch" --resolution "$resolution" --repeats "$repeats")
# Ours: "| method | params | s/step | ..." rows -> "method=seconds".
ours() { "$@" | awk -F'|' 'NF > 5 && $4 ~ /^ *[0-9.]+ *$/ { gsub(/ /, "", $2); gsub(/ /, "", $4); printf "%s=%s ", $2, $4 }'; }
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for precision in $precisions; do
    flag=(); [[ $precision == bf16 ]] && flag=(--bf16)
    for round in $(seq "$rounds"); do
        # shellcheck disable=SC2086
        mine=$(PEFT_GEMM=$precision ours "$peft" bench step --methods $methods --target-modules query,value "${common[@]}")
        echo
        echo "## $precision (ours: PEFT_GEMM=$precision), round $round of $rounds"
        # shellcheck disable=SC2086
        table=$("$python" scripts/compare/torch_step.py --methods $methods "${common[@]}" "${flag[@]}" --ours $mine 2>/dev/null)
        echo "$table"
        echo "$table" | awk -F'|' -v p="$precision" 'NF > 6 && $4 ~ /[0-9]/ && $6 ~ /[0-9]/ {
            gsub(/ /, "", $2); gsub(/ /, "", $4); gsub(/ /, "", $6); print p, $2, $4, $6 }' >> "$results"
    done
done
if [[ $rounds -gt 1 ]]; then
    echo
    echo "## Summary over $rounds rounds ($resolution px, batch $batch): median s/step per side"
    "$python" - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    precision, method, torch_s, ours_s = line.split()
    rows.setdefault((precision, method), []).append((float(torch_s), float(ours_s)))
print("| precision | method | torch s/step (median) | ours s/step (median) | speed-up of medians | per-round speed-ups |")
print("|---|---|---|---|---|---|")
for (precision, method), pairs in rows.items():
    torch_m = statistics.median(t for t, _ in pairs)
    ours_m = statistics.median(o for _, o in pairs)
    ratios = sorted(t / o for t, o in pairs)
    print(f"| {precision} | {method} | {torch_m:.3f} | {ours_m:.3f} | {torch_m / ours_m:.2f}x | "
          + ", ".join(f"{r:.2f}" for r in ratios) + " |")
PY
fi
