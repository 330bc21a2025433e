#!/usr/bin/env python3
"""Generates the Hugging Face model-folder fixtures in Tests/ModelsTests/Fixtures/hf/ (committed; the Swift tests
never run Python):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch "transformers==5.24.*" safetensors numpy
    /tmp/hfenv/bin/python scripts/reference/make_hf_folder_fixtures.py

Each folder is what `save_pretrained` writes for a tiny randomly initialised model of the real library, plus
`expected.safetensors` (an input and the model's last_hidden_state for it, computed by transformers in float64 from
the stored float32 weights):
  dinov2-tiny/         Dinov2Model, saved in shards (model.safetensors.index.json), with preprocessor_config.json
  vit-tiny/            ViTModel (checkpoint names: layernorm_before, intermediate.dense, output.dense)
  vit-tiny-t5-names/   the same weights under transformers 5's module names (layers.N.attention.q_proj, o_proj),
                       written from the loaded model's state_dict()
  bert-tiny/           BertModel and its vocab.txt
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, Dinov2Config, Dinov2Model, ViTConfig, ViTModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "ModelsTests", "Fixtures", "hf")


def randomise(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            base = 1.0 if ("norm" in name.lower() and name.endswith("weight")) else 0.0
            if "lambda1" in name:
                base = 0.5
            parameter.copy_(base + 0.2 * torch.randn(parameter.shape, generator=generator))


def expected(model, inputs, folder):
    reference = model.double().eval()
    with torch.no_grad():
        out = reference(**{k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}).last_hidden_state
    tensors = {k: (v.float() if v.is_floating_point() else v.to(torch.int32)).contiguous() for k, v in inputs.items()}
    tensors["last_hidden_state"] = out.float().contiguous()
    save_file(tensors, os.path.join(folder, "expected.safetensors"))


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    pixels = torch.Generator().manual_seed(7)
    image = torch.rand((2, 3, 16, 16), generator=pixels) * 2 - 1

    dinov2 = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, patch_size=4,
                                      image_size=16, mlp_ratio=2)).eval()
    randomise(dinov2, 1)
    folder = os.path.join(ROOT, "dinov2-tiny")
    dinov2.save_pretrained(folder, max_shard_size="20KB")
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}, f)
    expected(dinov2, {"pixel_values": image}, folder)

    vit = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                             patch_size=4, image_size=16), add_pooling_layer=False).eval()
    randomise(vit, 2)
    folder = os.path.join(ROOT, "vit-tiny")
    vit.save_pretrained(folder)
    expected(vit, {"pixel_values": image}, folder)
    renamed = os.path.join(ROOT, "vit-tiny-t5-names")
    os.makedirs(renamed)
    shutil.copy(os.path.join(folder, "config.json"), renamed)
    save_file({k: v.float().contiguous() for k, v in ViTModel.from_pretrained(folder).state_dict().items()},
              os.path.join(renamed, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(os.path.join(folder, "expected.safetensors"), renamed)

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
        ["the", "cat", "sat", "##s", "on", "mat", "dog", "ran"]
    bert = BertModel(BertConfig(vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=48, max_position_embeddings=32), add_pooling_layer=False).eval()
    randomise(bert, 3)
    folder = os.path.join(ROOT, "bert-tiny")
    bert.save_pretrained(folder)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(vocabulary) + "\n")
    ids = torch.tensor([[2, 31, 32, 33, 3, 0], [2, 37, 38, 35, 36, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    expected(bert, {"input_ids": ids, "attention_mask": mask}, folder)
    print(f"wrote {ROOT} with transformers {transformers.__version__}, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
