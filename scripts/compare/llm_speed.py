"""transformers' side of `peft bench llm`: prefill tokens/s (batch 1 and 8, 128 random tokens per row) and greedy
decode tokens/s with the KV cache (64 new tokens per row), float32, from the same GGUF file.

    python3 scripts/compare/llm_speed.py [--threads 2]
"""
import argparse
import os
import time

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "assets", "smollm2"),
                                                 gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
    model.eval()
    generator = torch.Generator().manual_seed(1)
    print(f"torch {torch.__version__}, {args.threads} threads")
    print("| batch | prefill tokens/s (128 tokens per row) | decode tokens/s (64 new per row, all rows) |")
    print("|---|---|---|")
    for batch in (1, 8):
        ids = torch.randint(17, 40_000, (batch, 128), generator=generator)
        with torch.no_grad():
            model(ids)
            prefill = []
            for _ in range(args.repeats):
                start = time.perf_counter(); model(ids); prefill.append(time.perf_counter() - start)
            decode = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                first = model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False, pad_token_id=2)
                mid = time.perf_counter()
                model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=2)
                end = time.perf_counter()
                decode.append((end - start) - 2 * (mid - start))  # the 63 steps after the first token
        print(f"| {batch} | {batch * 128 / median(prefill):.0f} | {batch * 63 / median(decode):.1f} |")


if __name__ == "__main__":
    main()
