#!/usr/bin/env bash
# Kill test: runs a short training run and kills it with SIGKILL: odd trials at a random moment, every fourth trial
# while adapter/ is being written (its staging directory exists), the other even trials while the atomic writer is
# writing a randomly chosen epoch's checkpoint (while its temporary file exists). Then checks
# that the checkpoint on disk (if any) is a complete, loadable safetensors file with finite values, resumes with
# --resume, and checks that the resumed run ends with exactly the same weights as an uninterrupted run with the
# same seed.
#
#   bash scripts/kill_test.sh [trials] [work directory]        # default: 20 trials in /tmp/peft-kill-test
#   PEFT_BIN=path/to/peft bash scripts/kill_test.sh             # use an existing release binary (no build)
#
# Compared bit for bit: best.safetensors and adapter/adapter_model.safetensors (whole files), every tensor of
# checkpoint.safetensors (weights, best weights, AdamW moments; the metadata is not compared because its history
# holds wall-clock timings), and the accuracies and losses in result.json.
# Ends with "kill test: T trials, S survived (K killed mid-run, C with a checkpoint on disk), resume identical in R".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRIALS="${1:-20}"
WORK="${2:-/tmp/peft-kill-test}"
SCRATCH="${PEFT_KILL_SCRATCH:-$ROOT/.build-rel}"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
if [ -z "${PEFT_BIN:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product peft >/dev/null
  PEFT_BIN="$SCRATCH/release/peft"
fi
# A private copy, so a rebuild during the test cannot swap the binary under it.
rm -rf "$WORK"
mkdir -p "$WORK"
PEFT="$WORK/peft"
cp "$PEFT_BIN" "$PEFT"
# A small, fast run (a few seconds): random ViT-S/16 at 32 px, LoRA, 4 epochs of 4 steps, a checkpoint per epoch.
ARGS=(train --model vit-s16-random --task digits-1k --method lora --rank 4 --resolution 32 --batch-size 16
      --epochs 4 --max-steps 4 --max-eval 48 --seed 7)

check_checkpoint() {  # prints "ok <tensors>" or "BAD <reason>"
  python3 - "$1" <<'PY'
import json, math, struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
try:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    state = json.loads(meta["peft_training_state"])
    size = len(data) - 8 - n
    spans = sorted(tuple(v["data_offsets"]) for v in header.values())
    covered = 0
    for begin, end in spans:
        assert begin == covered, "hole or overlap at %d" % begin
        covered = end
    assert covered == size, "buffer has %d bytes, tensors cover %d" % (size, covered)
    body = data[8 + n:]
    for name, v in header.items():
        assert v["dtype"] == "F32", name
        begin, end = v["data_offsets"]
        count = math.prod(v["shape"])
        assert end - begin == 4 * count, name
        values = struct.unpack("<%df" % count, body[begin:end])
        assert all(math.isfinite(x) for x in values), "non-finite value in " + name
    print("ok %d tensors, epoch %d" % (len(header), state["completedEpochs"]))
except Exception as e:
    print("BAD %s: %r" % (path, e))
PY
}

compare_runs() {  # prints "same" or "DIFFERENT <what>"
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
a, b = sys.argv[1], sys.argv[2]
def tensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n]); header.pop("__metadata__", None)
    body = data[8 + n:]
    return {k: (v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
problems = []
for f in ["best.safetensors", "adapter/adapter_model.safetensors"]:
    if open(f"{a}/{f}", "rb").read() != open(f"{b}/{f}", "rb").read():
        problems.append(f)
ta, tb = tensors(f"{a}/checkpoint.safetensors"), tensors(f"{b}/checkpoint.safetensors")
if ta.keys() != tb.keys():
    problems.append("checkpoint tensor names")
else:
    problems += ["checkpoint:" + k for k in ta if ta[k] != tb[k]]
ra, rb = json.load(open(f"{a}/result.json")), json.load(open(f"{b}/result.json"))
for key in ["testAccuracy", "bestValidationAccuracy", "bestEpoch"]:
    if ra[key] != rb[key]: problems.append("result " + key)
if [h["trainLoss"] for h in ra["history"]] != [h["trainLoss"] for h in rb["history"]]:
    problems.append("result train losses")
print("same" if not problems else "DIFFERENT " + ", ".join(problems[:5]))
PY
}

echo "kill test: reference run" >&2
start=$(date +%s.%N)
"$PEFT" "${ARGS[@]}" --out "$WORK/reference" >"$WORK/reference.log" 2>&1
duration=$(echo "$(date +%s.%N) - $start" | bc)
echo "kill test: reference run took ${duration}s" >&2

survived=0; killed_mid=0; with_checkpoint=0; identical=0
for trial in $(seq 1 "$TRIALS"); do
  out="$WORK/trial-$trial"
  # A random moment between 0.1 s and 110% of the reference duration (some kills land after the end).
  delay=$(python3 -c "import random; print(round(random.uniform(0.1, 1.1 * $duration), 2))")
  "$PEFT" "${ARGS[@]}" --out "$out" >"$out.log" 2>&1 &
  pid=$!
  if [ $((trial % 4)) = 0 ]; then
    # Every fourth trial: kill while adapter/ is being written at the end (its staging directory exists).
    state="finished before the adapter write"
    while kill -0 "$pid" 2>/dev/null; do
      for f in "$out"/.adapter.tmp-*; do
        [ -e "$f" ] || continue
        if kill -9 "$pid" 2>/dev/null; then state="killed while writing adapter/"; killed_mid=$((killed_mid + 1)); fi
        break 2
      done
      sleep 0.001
    done
  elif [ $((trial % 2)) = 0 ]; then
    # Even trials: kill while the atomic writer has the N-th checkpoint's temporary file open (N random in 1..3).
    target=$((RANDOM % 3 + 1)); seen=" "; count=0; state="finished before checkpoint write $target"
    while kill -0 "$pid" 2>/dev/null; do
      for f in "$out"/.checkpoint.safetensors.tmp-*; do
        [ -e "$f" ] || continue
        case "$seen" in *" $f "*) continue ;; esac
        seen="$seen$f "; count=$((count + 1))
        if [ "$count" -ge "$target" ] && kill -9 "$pid" 2>/dev/null; then
          state="killed while (or just after) writing checkpoint $count"; killed_mid=$((killed_mid + 1)); break 2
        fi
      done
      sleep 0.002
    done
  else
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then state="killed at ${delay}s"; killed_mid=$((killed_mid + 1)); else state="finished before ${delay}s"; fi
  fi
  wait "$pid" 2>/dev/null || true
  checkpoint="none"
  ok=1
  if [ -f "$out/checkpoint.safetensors" ]; then
    checkpoint="$(check_checkpoint "$out/checkpoint.safetensors")"
    with_checkpoint=$((with_checkpoint + 1))
    case "$checkpoint" in ok*) ;; *) ok=0 ;; esac
  fi
  leftovers=$( (find "$out" -name "*.tmp*" 2>/dev/null || true) | wc -l)
  # --resume needs a checkpoint; a run killed before its first one starts again (without --resume).
  resume=(--resume)
  [ -f "$out/checkpoint.safetensors" ] || resume=()
  if "$PEFT" "${ARGS[@]}" --out "$out" "${resume[@]}" >"$out.resume.log" 2>&1; then
    comparison="$(compare_runs "$WORK/reference" "$out")"
  else
    comparison="RESUME FAILED: $(tail -n 1 "$out.resume.log")"
  fi
  case "$comparison" in same) identical=$((identical + 1)) ;; *) ok=0 ;; esac
  left_after=$( (find "$out" -name "*.tmp*" 2>/dev/null || true) | wc -l)
  [ "$left_after" = 0 ] || ok=0
  [ "$ok" = 1 ] && survived=$((survived + 1))
  echo "trial $trial: $state; checkpoint: $checkpoint; temp files left: $leftovers (after resume: $left_after); resume: $comparison"
done
echo "kill test: $TRIALS trials, $survived survived ($killed_mid killed mid-run, $with_checkpoint with a checkpoint on disk), resume identical in $identical"
[ "$survived" = "$TRIALS" ]
