#!/usr/bin/env bash
# One process with two threads against two ranks (mpirun -n 2) with one thread each, on this machine: seconds per
# step of `peft train` (median over the run's steps) and the gradient allreduce per step, for LoRA, SHiRA and full
# fine-tuning, alternating the two set-ups for --rounds rounds; then the allreduce alone per buffer size. Prints a
# markdown table (BENCHMARKS.md, "Several processes").
#   bash scripts/bench/data_parallel.sh [--rounds 3] [--steps 12] [--resolution 112] [--batch-size 32]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEFT="${PEFT:-$ROOT/.build/release/peft}"
rounds=3; steps=12; resolution=112; batch=32; methods="lora shira full"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --resolution) resolution="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    *) echo "data_parallel.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "data_parallel.sh: mpirun not found (bash scripts/setup.sh installs Open MPI)" >&2; exit 1; }
[[ -x "$PEFT" ]] || { echo "data_parallel.sh: no peft binary at $PEFT (swift build -c release)" >&2; exit 1; }
MPIRUN=(mpirun --oversubscribe --allow-run-as-root -n 2)
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
run() {  # run MODE METHOD -> "s/step allreduce-s MB"
  local mode="$1" method="$2" out="$work/$1-$2" args
  args=(train --task fmnist-1k --method "$method" --epochs 1 --max-steps "$steps" --batch-size "$batch"
        --resolution "$resolution" --max-eval 32 --out "$out" --overwrite)
  if [[ "$mode" == ranks ]]; then
    "${MPIRUN[@]}" "$PEFT" "${args[@]}" >"$out.stdout" 2>"$out.stderr"
  else
    "$PEFT" "${args[@]}" >"$out.stdout" 2>"$out.stderr"
  fi
  local step reduce mb
  step="$(sed -nE 's/.* ([0-9.]+) s\/step.*/\1/p' "$out.stdout" | tail -1)"
  reduce="$(sed -nE 's/gradient allreduce: ([0-9.]+) s per step, ([0-9.]+) MB.*/\1 \2/p' "$out.stderr" | tail -1)"
  echo "$step ${reduce:-- -}"
}
declare -A results
for ((r = 1; r <= rounds; r++)); do
  for method in $methods; do
    for mode in threads ranks; do
      results[$method,$mode]+="$(run "$mode" "$method");"
      echo "round $r $method $mode: $(echo "${results[$method,$mode]}" | tr ';' '\n' | tail -2 | head -1)" >&2
    done
  done
done
echo "CPU: $(lscpu | sed -nE 's/^Model name:[[:space:]]+//p') (family $(lscpu | sed -nE 's/^CPU family:[[:space:]]+//p') model $(lscpu | sed -nE 's/^Model:[[:space:]]+//p'); $(grep -o -w -E 'avx512f|avx512_bf16|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')), $(nproc) cores; $(mpirun --version | head -1); $(date -u +%Y-%m-%d)"
echo
echo "| method | 1 process x 2 threads s/step | 2 ranks x 1 thread s/step | speed-up per round | allreduce s/step (share) | MB per step and rank |"
echo "|---|---|---|---|---|---|"
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for method in $methods; do
  IFS=';' read -r -a t <<<"${results[$method,threads]}"; IFS=';' read -r -a k <<<"${results[$method,ranks]}"
  ts=(); ks=(); as=(); speed=(); mb="-"
  for ((i = 0; i < ${#t[@]}; i++)); do
    read -r a _ _ <<<"${t[$i]}"; read -r b c d <<<"${k[$i]}"
    ts+=("$a"); ks+=("$b"); as+=("$c"); mb="$d"
    speed+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')")
  done
  mt="$(echo "${ts[*]}" | median)"; mk="$(echo "${ks[*]}" | median)"; ma="$(echo "${as[*]}" | median)"
  share="$(awk -v a="$ma" -v b="$mk" 'BEGIN {printf "%.0f%%", 100 * a / b}')"
  echo "| $method | $mt | $mk | $(printf '%s, ' "${speed[@]}" | sed 's/, $//') | $ma ($share) | $mb |"
done
echo
"${MPIRUN[@]}" "$PEFT" bench allreduce --megabytes 0.6 0.9 8 32 88 2>/dev/null
