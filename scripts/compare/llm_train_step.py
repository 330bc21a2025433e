"""PyTorch + Hugging Face peft reference for `peft train-lm`: seconds per LoRA training step (forward, backward,
AdamW) of SmolLM2-135M-Instruct in float32 (transformers loads the Q4_1 GGUF from the assets and dequantizes it),
LoRA r 8 on q_proj and v_proj, batch 8 x 128 tokens, every token a target, 2 threads.
Optional: needs torch, transformers, peft, gguf.
Usage: python3 scripts/compare/llm_train_step.py [--batch 8] [--tokens 128] [--steps 5]"""
import argparse, os, statistics, time, resource
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=8)
parser.add_argument("--tokens", type=int, default=128)
parser.add_argument("--steps", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
root = os.path.join(os.path.dirname(__file__), "..", "..", "assets", "smollm2")
model = AutoModelForCausalLM.from_pretrained(root, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", torch_dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
ids = torch.randint(0, model.config.vocab_size, (args.batch, args.tokens))
times = []
for step in range(args.steps + 2):
    start = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    if step >= 2:
        times.append(time.perf_counter() - start)
median = statistics.median(times)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch {torch.__version__}: {median:.3f} s/step, {args.batch * args.tokens / median:.0f} tokens/s, peak RSS {rss:.0f} MB")
