"""An adapter saved by Hugging Face peft itself, for Tests/MethodsTests/PeftSavedAdapterTests: LoRA (r 2, alpha 4,
q_proj and v_proj, the classifier in modules_to_save) on transformers' Dinov2ForImageClassification built from the
tiny DINOv2 fixture (Tests/ModelsTests/Fixtures/dinov2_tiny_weights.safetensors) with a 3-class head, every adapter
and head value random, and its logits on fixed pixels.

Also a LoRA (r 2, alpha 4, q_proj, v_proj, fc1 and fc2) on transformers 5's ViTForImageClassification built from
the tiny ViT folder (Tests/ModelsTests/Fixtures/hf/vit-tiny) with a 3-class head: ViT's blocks are `vit.layers.N`
there, so the adapter's names are transformers 5's.

And a SHiRA (peft's sizing: r 2, so r*(in+out) = 128 random positions per 32x32 matrix; q_proj and v_proj; the
classifier in modules_to_save) on the same Dinov2ForImageClassification, and a LayerNorm tuning (LN_TUNING of every
LayerNorm: norm1, norm2, layernorm) of it, and a PEANuT (NEAT here: r 4, depth 1, scaling 0.5, q_proj and v_proj)
saved in float16 and again in bfloat16 (adapter and head tensors in that dtype; logits from the rounded values).

Run once (needs torch, transformers, peft):
    python3 scripts/reference/make_peft_fixtures.py [dinov2|vit|shira|ln|peanut ...]   (default: all)
The other direction, adapters this library saved read by real peft:
    PEFT_EXPORT=/tmp/ours swift test -c release --filter PeftSavedAdapterTests
    python3 scripts/reference/make_peft_fixtures.py check /tmp/ours
loads /tmp/ours/vit-5 (our save of the ViT fixture, transformers 5 names) and /tmp/ours/shira-5 (our save of the
SHiRA fixture) and /tmp/ours/ln-5 with PeftModel.from_pretrained and compares their logits with the -expected.json files.
Writes Tests/MethodsTests/Fixtures/peft-lora-dinov2/, peft-lora-vit/, peft-shira-dinov2/ and peft-ln-dinov2/ (the
adapters as peft saves them) and their -expected.json files.
"""
import sys
import json
import os

import torch
from peft import LNTuningConfig, LoraConfig, PeanutConfig, ShiraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import Dinov2Config, Dinov2ForImageClassification, ViTForImageClassification

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
WEIGHTS = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "dinov2_tiny_weights.safetensors")
OUT = os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "peft-lora-dinov2")

RENAMES = [(".attention.attention.query.", ".attention.q_proj."), (".attention.attention.key.", ".attention.k_proj."),
           (".attention.attention.value.", ".attention.v_proj."), (".attention.output.dense.", ".attention.o_proj.")]


def dinov2_base():
    """The tiny DINOv2 fixture as transformers 5's Dinov2ForImageClassification with a random 3-class head."""
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
    return model


def dinov2():
    peft_model = get_peft_model(dinov2_base(), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                          modules_to_save=["classifier"], lora_dropout=0.0))
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(5))
    randomize_and_save(peft_model, pixels, OUT)


def shira():
    peft_model = get_peft_model(dinov2_base(), ShiraConfig(r=2, target_modules=["q_proj", "v_proj"], random_seed=3,
                                                           modules_to_save=["classifier"]))
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(7))
    randomize_and_save(peft_model, pixels, os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "peft-shira-dinov2"))


def randomize_and_save(peft_model, pixels, out, dtype=None):
    """Random adapter and head values (rounded to `dtype` when given, and saved in it), the logits, the files."""
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name or "shira_weight" in name or "peanut_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
            if "modules_to_save" in name or "ln_tuning_layers" in name:
                p.copy_(p + torch.randn_like(p) * 0.2)
            if dtype is not None and p.requires_grad:
                p.copy_(p.to(dtype).float())
        logits = peft_model(pixel_values=pixels).logits
        if dtype is not None:
            for name, p in peft_model.named_parameters():
                if p.requires_grad:
                    p.data = p.data.to(dtype)
    peft_model.save_pretrained(out)
    with open(os.path.join(out, "adapter_config.json")) as f:
        config = json.load(f)
    if (config.get("base_model_name_or_path") or "").startswith("/"):  # not this machine's path in a committed fixture
        config["base_model_name_or_path"] = os.path.relpath(config["base_model_name_or_path"], ROOT)
        with open(os.path.join(out, "adapter_config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
    with open(out + "-expected.json", "w") as f:
        json.dump({"generator": "peft " + __import__("peft").__version__ + ", transformers " + __import__("transformers").__version__,
                   "pixels": pixels.flatten().tolist(), "logits": logits.flatten().tolist()}, f)
    print("saved", out, os.listdir(out))


def ln():
    peft_model = get_peft_model(dinov2_base(), LNTuningConfig(target_modules=["norm1", "norm2", "layernorm"],
                                                              modules_to_save=["classifier"]))
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(8))
    randomize_and_save(peft_model, pixels, os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "peft-ln-dinov2"))


def peanut():
    for dtype, suffix in [(torch.float16, ""), (torch.bfloat16, "-bf16")]:
        peft_model = get_peft_model(dinov2_base(), PeanutConfig(r=4, depth=1, scaling=0.5, target_modules=["q_proj", "v_proj"],
                                                                modules_to_save=["classifier"]))
        torch.manual_seed(11)
        pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(9))
        randomize_and_save(peft_model, pixels, os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "peft-peanut-dinov2" + suffix), dtype)


def vit():
    torch.manual_seed(1)
    folder = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "hf", "vit-tiny")
    model = ViTForImageClassification.from_pretrained(folder, num_labels=3).eval()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn_like(model.classifier.weight) * 0.2)
        model.classifier.bias.copy_(torch.randn_like(model.classifier.bias) * 0.2)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", "fc1", "fc2"],
                                                  modules_to_save=["classifier"], lora_dropout=0.0))
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    randomize_and_save(peft_model, pixels, os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", "peft-lora-vit"))


def check(directory):
    from peft import PeftModel
    folder = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "hf", "vit-tiny")
    bases = {"vit-5": (lambda: ViTForImageClassification.from_pretrained(folder, num_labels=3), "peft-lora-vit", 16),
             "shira-5": (dinov2_base, "peft-shira-dinov2", 56), "ln-5": (dinov2_base, "peft-ln-dinov2", 56),
             "peanut-5": (dinov2_base, "peft-peanut-dinov2", 56)}
    for name, (base, fixture, side) in bases.items():
        model = PeftModel.from_pretrained(base().eval(), os.path.join(directory, name)).eval()
        with open(os.path.join(ROOT, "Tests", "MethodsTests", "Fixtures", fixture + "-expected.json")) as f:
            expected = json.load(f)
        pixels = torch.tensor(expected["pixels"]).reshape(2, 3, side, side)
        with torch.no_grad():
            logits = model(pixel_values=pixels).logits.flatten()
        difference = (logits - torch.tensor(expected["logits"])).abs().max().item()
        print(f"our {name} adapter in peft: max |logits - expected| = {difference}")
        assert difference < 1e-4, difference


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        check(sys.argv[2])
        sys.exit(0)
    for which in sys.argv[1:] or ["dinov2", "vit", "shira", "ln", "peanut"]:
        {"dinov2": dinov2, "vit": vit, "shira": shira, "ln": ln, "peanut": peanut}[which]()
