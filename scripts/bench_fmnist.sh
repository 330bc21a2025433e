#!/usr/bin/env bash
# Issue 3 benchmark: DINOv2-S/14 on fmnist-1k at 112 px, linear probe / full fine-tuning / LoRA r=8 (query, value).
# Writes runs/bench-fmnist-<method>/ and prints the table for BENCHMARKS.md. Takes about 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
swift build -c release --product peft >/dev/null
PEFT=.build/release/peft
EPOCHS="${EPOCHS:-10}"
for method in linear lora full; do
  "$PEFT" train --task fmnist-1k --method "$method" --epochs "$EPOCHS" --resolution 112 --out "runs/bench-fmnist-$method"
done
"$PEFT" report runs/bench-fmnist-linear runs/bench-fmnist-lora runs/bench-fmnist-full
