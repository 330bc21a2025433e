"""An adapter saved by Hugging Face peft itself, for Tests/MethodsTests/PeftSavedAdapterTests: LoRA (r 2, alpha 4,
q_proj and v_proj, the classifier in modules_to_save) on transformers' Dinov2ForImageClassification built from the
tiny DINOv2 fixture (Tests/ModelsTests/Fixtures/dinov2_tiny_weights.safetensors) with a 3-class head, every adapter
and head value random, and its logits on fixed pixels.

Run once (needs torch, transformers, peft):
    python3 scripts/reference/make_peft_fixtures.py
Writes Tests/MethodsTests/Fixtures/peft-lora-dinov2/ (the adapter as peft saves it) and expected.json.
"""
import json
import os

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import Dinov2Config, Dinov2ForImageClassification

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
WEIGHTS = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "dinov2_tiny_weights.safetensors")
OUT = os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "peft-lora-dinov2")

RENAMES = [(".attention.attention.query.", ".attention.q_proj."), (".attention.attention.key.", ".attention.k_proj."),
           (".attention.attention.value.", ".attention.v_proj."), (".attention.output.dense.", ".attention.o_proj.")]


def main():
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                          image_size=56, patch_size=14, layerscale_value=0.5, num_labels=3, layer_norm_eps=1e-6)
    model = Dinov2ForImageClassification(config).eval()
    state = {}
    for name, value in load_file(WEIGHTS).items():
        for old, new in RENAMES:
            name = name.replace(old, new)
        state["dinov2." + name] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(m.startswith("classifier") or m.endswith("mask_token") for m in missing), (missing, unexpected)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn_like(model.classifier.weight) * 0.2)
        model.classifier.bias.copy_(torch.randn_like(model.classifier.bias) * 0.2)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                  modules_to_save=["classifier"], lora_dropout=0.0))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
            if "modules_to_save" in name:
                p.copy_(p + torch.randn_like(p) * 0.2)
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = peft_model(pixel_values=pixels).logits
    peft_model.save_pretrained(OUT)
    with open(os.path.join(OUT, "..", "peft-lora-dinov2-expected.json"), "w") as f:
        json.dump({"generator": "peft " + __import__("peft").__version__ + ", transformers " + __import__("transformers").__version__,
                   "pixels": pixels.flatten().tolist(), "logits": logits.flatten().tolist()}, f)
    print("saved", os.listdir(OUT))


if __name__ == "__main__":
    main()
