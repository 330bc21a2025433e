#!/usr/bin/env python3
"""Generates the tiny-model parity fixtures in Tests/ModelsTests/Fixtures/.

Run once (outputs are committed; the Swift tests never run Python):
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install -r scripts/reference/requirements.txt
    /tmp/refenv/bin/python scripts/reference/make_tiny_fixtures.py

Three tiny randomly initialised models, named exactly as their reference libraries name them:
  dinov2_tiny_{weights,io}.safetensors  Hugging Face Dinov2Model, checkpoint names (as save_pretrained
                                        writes them: attention.attention.query, attention.output.dense, ...)
  vit_tiny_{weights,io}.safetensors     timm VisionTransformer
  bert_tiny_{weights,io}.safetensors    Hugging Face BertModel (no pooler)

Every parameter is random, drawn in float32 from a fixed seed with standard deviation 0.2 around
0 (LayerNorm gains around 1, DINOv2 layer scales around 0.5), so no value is trivially 0 or 1.
The stored weights are float32. Forward passes and gradients are computed from those float32
values in float64 and the results rounded to float32, so the fixtures hold the exact answer for
the stored inputs (a float32 run is also made and its distance printed as a sanity check).
Dropout is 0 and every model is in eval() mode.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
SEED = 20240611
STD = 0.2


def randomise(model, gen, means):
    """Overwrites every parameter with N(mean, STD) drawn in float32; `means(name)` gives the mean."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            value = torch.randn(p.shape, generator=gen, dtype=torch.float32) * STD + means(name)
            p.copy_(value)


# transformers 5 renamed DINOv2's attention modules in memory (q_proj, k_proj, v_proj, o_proj) but
# still reads and writes checkpoints with the classic names, which are also the ONNX file's names.
# The fixtures use the checkpoint names (what save_pretrained writes).
DINOV2_CHECKPOINT_NAMES = [
    (".attention.q_proj.", ".attention.attention.query."),
    (".attention.k_proj.", ".attention.attention.key."),
    (".attention.v_proj.", ".attention.attention.value."),
    (".attention.o_proj.", ".attention.output.dense."),
]


def dinov2_checkpoint_name(name):
    for new, old in DINOV2_CHECKPOINT_NAMES:
        name = name.replace(new, old)
    return name


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def save(tensors, name, meta):
    path = os.path.join(OUT, name)
    save_file({k: f32(v) for k, v in tensors.items()}, path,
              metadata={"info": json.dumps(meta, sort_keys=True, ensure_ascii=False)})
    os.chmod(path, 0o644)
    print(f"  wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path):,} bytes, {len(tensors)} tensors)")


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


# ---------------------------------------------------------------------------------------------
# a. DINOv2 (Hugging Face)
# ---------------------------------------------------------------------------------------------
def make_dinov2(gen):
    from transformers import Dinov2Config, Dinov2Model

    cfg = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4,
        patch_size=14, image_size=56, num_channels=3, layerscale_value=0.5,
        layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True, use_swiglu_ffn=False,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
        use_mask_token=False,  # the real ONNX backbone has none either
    )
    cfg._attn_implementation = "eager"
    model = Dinov2Model(cfg).eval()

    def mean(name):
        if name.endswith("lambda1"):
            return 0.5
        if ("norm" in name) and name.endswith("weight"):
            return 1.0
        return 0.0

    randomise(model, gen, mean)
    assert set(model.state_dict()) == {n for n, _ in model.named_parameters()}, "unexpected buffers"
    weights = {dinov2_checkpoint_name(k): v for k, v in model.state_dict().items()}
    assert weights["embeddings.position_embeddings"].shape == (1, 17, 32)
    with tempfile.TemporaryDirectory() as tmp:  # the names must be exactly what save_pretrained writes
        model.save_pretrained(tmp)
        saved = load_file(os.path.join(tmp, "model.safetensors"))
    assert set(saved) == set(weights), sorted(set(saved) ^ set(weights))
    assert all(torch.equal(saved[k], weights[k]) for k in saved)

    pixels_56 = torch.randn(2, 3, 56, 56, generator=gen)
    pixels_28 = torch.randn(2, 3, 28, 28, generator=gen)
    probe_56 = torch.randn(2, 17, 32, generator=gen)
    probe_28 = torch.randn(2, 5, 32, generator=gen)

    def run(dtype, pixels, probe):
        m = model.to(dtype)
        m.zero_grad(set_to_none=True)
        x = pixels.to(dtype).clone().requires_grad_(True)
        hidden = m(pixel_values=x).last_hidden_state
        (hidden * probe.to(dtype)).sum().backward()
        grads = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
        return hidden.detach(), x.grad.detach(), grads

    # The 28 px input must use the documented resampling: size-based bicubic, no antialias.
    with torch.no_grad():
        emb = model.embeddings
        pos = emb.position_embeddings
        grid = pos[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(2, 2), mode="bicubic", align_corners=False, antialias=False)
        want_pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 4, 32)], dim=1)
        patches = emb.patch_embeddings(pixels_28)
        want = torch.cat([emb.cls_token.expand(2, -1, -1), patches], dim=1) + want_pos
        got = emb(pixels_28)
        assert max_diff(got, want) < 1e-6, max_diff(got, want)
        assert max_diff(emb(pixels_56), torch.cat([emb.cls_token.expand(2, -1, -1),
                        emb.patch_embeddings(pixels_56)], dim=1) + pos) < 1e-6

    h56_32, gx56_32, g56_32 = run(torch.float32, pixels_56, probe_56)
    h28_32, gx28_32, _ = run(torch.float32, pixels_28, probe_28)
    h56, gx56, g56 = run(torch.float64, pixels_56, probe_56)
    h28, gx28, g28 = run(torch.float64, pixels_28, probe_28)
    model.to(torch.float32)
    print(f"  dinov2 float32 vs float64: hidden_56 {max_diff(h56, h56_32):.2e}, "
          f"hidden_28 {max_diff(h28, h28_32):.2e}, grad_pixels_56 {max_diff(gx56, gx56_32):.2e}, "
          f"grads max {max(max_diff(g56[n], g56_32[n]) for n in g56):.2e}")

    io = {
        "pixels_56": pixels_56, "pixels_28": pixels_28,
        "probe_56": probe_56, "probe_28": probe_28,
        "hidden_56": h56, "hidden_28": h28,
        "grad_pixels_56": gx56, "grad_pixels_28": gx28,
    }
    for n, g in g56.items():
        io[f"grad.{dinov2_checkpoint_name(n)}"] = g
    io["grad28.embeddings.position_embeddings"] = g28["embeddings.position_embeddings"]

    meta = {
        "model": "transformers.Dinov2Model", "config": cfg.to_dict(),
        "loss": "sum(last_hidden_state * probe)",
        "position_interpolation": "28px input: 4x4 grid -> 2x2 with torch interpolate(size=(2,2), "
                                  "mode=bicubic, align_corners=False, antialias=False), class row untouched",
    }
    meta["config"] = {k: v for k, v in meta["config"].items() if isinstance(v, (int, float, str, bool, type(None)))}
    save(weights, "dinov2_tiny_weights.safetensors", {"model": meta["model"], "config": meta["config"]})
    save(io, "dinov2_tiny_io.safetensors", meta)


# ---------------------------------------------------------------------------------------------
# b. Classic ViT (timm)
# ---------------------------------------------------------------------------------------------
def make_vit(gen):
    from timm.models.vision_transformer import VisionTransformer

    kwargs = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=32, depth=2, num_heads=4,
                  mlp_ratio=4.0, qkv_bias=True, class_token=True, global_pool="token",
                  num_classes=5, init_values=None, drop_rate=0.0, attn_drop_rate=0.0,
                  drop_path_rate=0.0)
    model = VisionTransformer(**kwargs).eval()

    def mean(name):
        if ("norm" in name) and name.endswith("weight"):
            return 1.0
        return 0.0

    randomise(model, gen, mean)
    weights = {k: v for k, v in model.state_dict().items()}
    assert set(weights) == {n for n, _ in model.named_parameters()}, "unexpected buffers"

    pixels = torch.randn(2, 3, 32, 32, generator=gen)
    labels = torch.tensor([3, 1])

    def run(dtype):
        m = model.to(dtype)
        m.zero_grad(set_to_none=True)
        x = pixels.to(dtype).clone().requires_grad_(True)
        features = m.forward_features(x)
        logits = m.forward_head(features)
        loss = F.cross_entropy(logits, labels, reduction="mean", label_smoothing=0.1)
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
        # forward() must be forward_head(forward_features())
        assert max_diff(m(x), logits) == 0.0
        return features.detach(), logits.detach(), loss.detach(), x.grad.detach(), grads

    f32_, l32, loss32, gx32, g32 = run(torch.float32)
    feats, logits, loss, gx, grads = run(torch.float64)
    model.to(torch.float32)
    print(f"  vit float32 vs float64: logits {max_diff(logits, l32):.2e}, loss {max_diff(loss, loss32):.2e}, "
          f"grad_pixels {max_diff(gx, gx32):.2e}, grads max {max(max_diff(grads[n], g32[n]) for n in grads):.2e}")
    assert feats.shape == (2, 17, 32) and logits.shape == (2, 5)

    io = {"pixels": pixels, "logits": logits, "features": feats, "labels": labels.float(),
          "loss": loss.reshape(1), "grad_pixels": gx}
    for n, g in grads.items():
        io[f"grad.{n}"] = g
    meta = {"model": "timm.models.vision_transformer.VisionTransformer", "kwargs": kwargs,
            "loss": "cross_entropy(logits, labels, reduction=mean, label_smoothing=0.1), stored with shape [1]",
            "features": "forward_features (after final norm)"}
    save(weights, "vit_tiny_weights.safetensors", {"model": meta["model"], "kwargs": kwargs})
    save(io, "vit_tiny_io.safetensors", meta)


# ---------------------------------------------------------------------------------------------
# c. BERT (Hugging Face)
# ---------------------------------------------------------------------------------------------
def make_bert(gen):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
                     layer_norm_eps=1e-12, hidden_act="gelu", hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, pad_token_id=0)
    cfg._attn_implementation = "eager"
    model = BertModel(cfg, add_pooling_layer=False).eval()

    def mean(name):
        if "LayerNorm" in name and name.endswith("weight"):
            return 1.0
        return 0.0

    randomise(model, gen, mean)
    params = dict(model.named_parameters())
    weights = {k: v for k, v in model.state_dict().items() if k in params}
    skipped = sorted(set(model.state_dict()) - set(params))
    if skipped:
        print(f"  bert: state_dict buffers not saved: {skipped}")
    assert set(weights) == set(params)

    # Row 0: 10 real tokens; row 1: 7 real tokens then 3 padding tokens (id 0, mask 0).
    input_ids = torch.randint(1, 120, (2, 10), generator=gen)
    attention_mask = torch.ones(2, 10, dtype=torch.long)
    attention_mask[1, 7:] = 0
    input_ids[1, 7:] = 0
    token_type_ids = torch.zeros(2, 10, dtype=torch.long)
    token_type_ids[0, 6:] = 1
    token_type_ids[1, 4:7] = 1
    probe = torch.randn(2, 32, generator=gen)

    def run(dtype):
        m = model.to(dtype)
        m.zero_grad(set_to_none=True)
        hidden = m(input_ids=input_ids, attention_mask=attention_mask,
                   token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.to(dtype).unsqueeze(-1)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        (pooled * probe.to(dtype)).sum().backward()
        grads = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
        return hidden.detach(), pooled.detach(), grads

    h32, p32, g32 = run(torch.float32)
    hidden, pooled, grads = run(torch.float64)
    model.to(torch.float32)
    print(f"  bert float32 vs float64: hidden {max_diff(hidden, h32):.2e}, pooled {max_diff(pooled, p32):.2e}, "
          f"grads max {max(max_diff(grads[n], g32[n]) for n in grads):.2e}")

    io = {"input_ids": input_ids.float(), "attention_mask": attention_mask.float(),
          "token_type_ids": token_type_ids.float(), "hidden": hidden, "pooled": pooled, "probe": probe}
    for n, g in grads.items():
        io[f"grad.{n}"] = g
    config = {k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool, type(None)))}
    meta = {"model": "transformers.BertModel(add_pooling_layer=False)", "config": config,
            "pooled": "masked mean of last_hidden_state over attention_mask (not normalised)",
            "loss": "sum(pooled * probe)",
            "attention_mask": "additive mask: masked keys get finfo(dtype).min before softmax"}
    save(weights, "bert_tiny_weights.safetensors", {"model": meta["model"], "config": config})
    save(io, "bert_tiny_io.safetensors", meta)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, numpy {np.__version__}, seed {SEED}")
    # One generator per model so each fixture is reproducible on its own.
    print("DINOv2 tiny:")
    make_dinov2(torch.Generator().manual_seed(SEED))
    print("ViT tiny:")
    make_vit(torch.Generator().manual_seed(SEED + 1))
    print("BERT tiny:")
    make_bert(torch.Generator().manual_seed(SEED + 2))


if __name__ == "__main__":
    sys.exit(main())
