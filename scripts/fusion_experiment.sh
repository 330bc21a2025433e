#!/usr/bin/env bash
# Issue 5 fusion experiment: DINOv2-S/14 adapters trained on different 1k tasks (default fmnist-1k and digits-1k;
# TASKS="fmnist-1k digits-1k count-1k" for three), fused with `peft fuse` (weights 1 each: the updates add; then 1/n
# each: the updates are averaged), and each task evaluated on its full test set with the fused body and its own head
# (`peft eval-adapter --head-from`).
# Conditions: LoRA r=8 (query, value); SHiRA 1% all-linear rand masks, every task with the same mask ("overlap":
# same seed, same mask part); SHiRA with strictly disjoint masks (same seed, --option mask_part=0, 1, 2 ...).
# Reduced budget: 3 epochs, 112 px, batch 32 (25 steps/epoch), validation only after the last epoch, seed 0.
# Writes runs/fusion/ and prints the table for BENCHMARKS.md. About 25 minutes per task on 2 free cores.
# Runs that already have result.json are skipped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PEFT="${PEFT:-.build-fuse/release/peft}"
if [ ! -x "$PEFT" ]; then swift build -c release --scratch-path .build-fuse --product peft >/dev/null; fi
OUT="${OUT:-runs/fusion}"
EPOCHS="${EPOCHS:-3}"
read -r -a TASKS <<< "${TASKS:-fmnist-1k digits-1k}"
COMMON=(--epochs "$EPOCHS" --resolution 112 --batch-size 32 --eval-every "$EPOCHS" --seed 0)

train() {  # train DIR ARGS...
  local dir="$1"; shift
  if [ ! -f "$dir/result.json" ]; then "$PEFT" train "$@" "${COMMON[@]}" --out "$dir" 2>"$dir.log" | tail -n 1; fi
}
mkdir -p "$OUT"
lora=(); overlap=(); disjoint=(); ones=()
for i in "${!TASKS[@]}"; do
  task="${TASKS[$i]}"
  train "$OUT/lora-$task" --task "$task" --method lora --rank 8
  # Part 0 for every task: the same mask. Part i: disjoint from every other part (task 0 reuses its part-0 run).
  train "$OUT/shira-p0-$task" --task "$task" --method shira --density 0.01 --option mask_type=rand
  train "$OUT/shira-p$i-$task" --task "$task" --method shira --density 0.01 --option mask_type=rand --option mask_part="$i"
  lora+=("$OUT/lora-$task/adapter"); overlap+=("$OUT/shira-p0-$task/adapter"); disjoint+=("$OUT/shira-p$i-$task/adapter")
  ones+=(1)
done
weights=$(IFS=,; echo "${ones[*]}")
mean=$(python3 -c "print(','.join(['%.7g' % (1 / ${#TASKS[@]})] * ${#TASKS[@]}))")

RESULTS="$OUT/fused.tsv"
: > "$RESULTS"
evaluate() {  # evaluate CONDITION NAME WEIGHTS ADAPTER...
  local condition="$1" name="$2" fuse_weights="$3"; shift 3
  local adapters=("$@")
  if [ "$condition" != lora ] && [ "$name" = sum ]; then "$PEFT" fuse "${adapters[@]}" --overlap-only; fi
  "$PEFT" fuse "${adapters[@]}" --weights "$fuse_weights" --out "$OUT/fused-$condition-$name"
  for i in "${!adapters[@]}"; do
    accuracy=$("$PEFT" eval-adapter "$OUT/fused-$condition-$name" --head-from "${adapters[$i]}" --task "${TASKS[$i]}" \
               --resolution 112 2>/dev/null | sed -n 's/.*accuracy \([0-9.]*\)%.*/\1/p')
    single=$(python3 -c "import json;print('%.2f'%(100*json.load(open('${adapters[$i]}/../result.json'))['testAccuracy']))")
    printf '%s\t%s\t%s\t%s\t%s\n' "$condition" "$name" "${TASKS[$i]}" "$single" "$accuracy" | tee -a "$RESULTS"
  done
}
# Weights 1 each (the updates add), then 1/n each (the updates are averaged).
for name in sum mean; do
  w="$weights"; [ "$name" = mean ] && w="$mean"
  evaluate lora "$name" "$w" "${lora[@]}"
  evaluate shira-overlap "$name" "$w" "${overlap[@]}"
  evaluate shira-disjoint "$name" "$w" "${disjoint[@]}"
done

echo
echo "| condition | task | single adapter, test | fused, weights 1 (sum) | fused, weights 1/n (mean) |"
echo "|---|---|---|---|---|"
python3 - "$RESULTS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    condition, name, task, single, fused = line.rstrip("\n").split("\t")
    rows.setdefault((condition, task), {"single": single})[name] = fused
for (condition, task), r in rows.items():
    cells = [f"{r[n]}% ({float(r[n]) - float(r['single']):+.2f})" if n in r else "-" for n in ("sum", "mean")]
    print(f"| {condition} | {task} | {r['single']}% | {cells[0]} | {cells[1]} |")
PY
