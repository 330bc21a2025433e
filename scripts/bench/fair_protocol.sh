#!/usr/bin/env bash
# The fair protocol (BENCHMARKS.md, "Fair protocol"), in slices: each call works for at most MINUTES of new runs
# and continues where the previous call stopped (every finished run is a record in benchmarks/suite/). Stages:
#   1. main: linear, LoRA and the five methods on fmnist-1k, shapes-loc-1k and count-1k; 10 epochs; learning rate
#      chosen on validation from 0.3x, 1x and 3x each method's default with seed 0; then seeds 1 and 2 at that rate.
#   2. equal budgets: LoRA, SHiRA (on query and value, sized like LoRA by peft's r) and NEAT at r 4, 8 and 16, RLRR
#      and Pear, on fmnist-1k and count-1k, at each method's default rate, seed 0.
#   3. ablations named in the method specs, on fmnist-1k and count-1k, at the default rate, seed 0.
# Then the tables are rewritten (BENCHMARKS.md sections suite-fair, suite-equal-budgets, suite-ablations) and the
# plot is drawn (docs/plots/fair-protocol.svg). Under Open MPI the runs are spread over RANKS processes (default 2).
#   bash scripts/bench/fair_protocol.sh [MINUTES]          (default 120)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PEFT="${PEFT:-$ROOT/.build/release/peft}"
minutes="${1:-120}"
ranks="${RANKS:-2}"
[[ "$minutes" =~ ^[0-9]+$ ]] || { echo "fair_protocol.sh: MINUTES must be a whole number, got '$minutes'" >&2; exit 2; }
[[ -x "$PEFT" ]] || { echo "fair_protocol.sh: no peft binary at $PEFT (swift build -c release)" >&2; exit 1; }
launch=("$PEFT")
if [[ "$ranks" -gt 1 ]] && command -v mpirun >/dev/null; then
  launch=(mpirun --oversubscribe --allow-run-as-root -n "$ranks" "$PEFT")
fi
start=$(date +%s)
left() { echo $(( minutes - ($(date +%s) - start) / 60 )); }

main_tasks=(fmnist-1k shapes-loc-1k count-1k)
main_methods=(linear lora shira neat rlrr ttc pear)
budget_tasks=(fmnist-1k count-1k)
budget_methods=(lora lora:r=4:lora_alpha=4 lora:r=16:lora_alpha=16
                shira:r=4:target_modules=query,value shira:r=8:target_modules=query,value shira:r=16:target_modules=query,value
                neat neat:r=4 neat:r=16 rlrr pear)
ablations=(rlrr rlrr:identity_start=true neat neat:depth=1 ttc ttc:score_site=mlp ttc:global_channels=true ttc:zero_init_maps=true
           ttc:train_norms=false pear pear:knowledge_checkpoint=false pear:gates=false pear:sharing=nearest pear:score=l1)

stage() {  # stage SECTION TASKS... -- METHODS... -- SUITE-OPTIONS...
  local section="$1"; shift
  local tasks=() methods=() options=()
  while [[ "$1" != "--" ]]; do tasks+=("$1"); shift; done; shift
  while [[ "$1" != "--" ]]; do methods+=("$1"); shift; done; shift
  options=("$@")
  local remaining; remaining="$(left)"
  if [[ "$remaining" -gt 0 ]]; then
    echo "fair_protocol.sh: stage $section, $remaining minutes left" >&2
    "${launch[@]}" bench suite --tasks "${tasks[@]}" --methods "${methods[@]}" "${options[@]}" --epochs 10 \
      --table '' --time-limit "$remaining"
  fi
  "$PEFT" bench suite --tasks "${tasks[@]}" --methods "${methods[@]}" "${options[@]}" --epochs 10 \
    --table BENCHMARKS.md --section "$section" --table-only >/dev/null
}

stage fair "${main_tasks[@]}" -- "${main_methods[@]}" -- --seeds 3 --lr-grid 0.3,1,3
stage equal-budgets "${budget_tasks[@]}" -- "${budget_methods[@]}" -- --seeds 1 --lr-grid 1
stage ablations "${budget_tasks[@]}" -- "${ablations[@]}" -- --seeds 1 --lr-grid 1
drawn=()
for method in "${main_methods[@]}" "${budget_methods[@]}"; do drawn+=(--methods "$method"); done
"$PEFT" report --budget e10-b32-r112 --tasks fmnist-1k --tasks shapes-loc-1k --tasks count-1k "${drawn[@]}" \
  --title "DINOv2-S/14, 10 epochs: test accuracy against trainable parameters" \
  --plot docs/plots/fair-protocol.svg benchmarks/suite >/dev/null
echo "fair_protocol.sh: tables in BENCHMARKS.md, plot in docs/plots/fair-protocol.svg" >&2
