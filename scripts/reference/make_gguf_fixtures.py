#!/usr/bin/env python3
"""Generates the GGUF reader fixtures in Tests/CheckpointsTests/Fixtures/ with the `gguf` Python package
(llama.cpp's reference implementation of the format and of its quantisations).

Run once (outputs are committed; the Swift tests never run Python):
    pip install gguf==0.19.0 numpy
    python3 scripts/reference/make_gguf_fixtures.py

small.gguf         GGUF v3: metadata of every value type (and arrays of numbers and strings), general.alignment 64,
                   and tensors of type F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K of a few shapes.
small.expected.json the metadata as plain JSON, and for every tensor its type, its shape as GGUF stores it
                   (innermost first) and its values as gguf's own dequantisation gives them (float32, row-major
                   with the innermost dimension last), printed with 9 significant digits (exact for float32).
"""
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "Tests", "CheckpointsTests", "Fixtures")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "small.gguf")
    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4_000_000_000)
    writer.add_int32("test.i32", -2_000_000_000)
    writer.add_float32("test.f32", 0.15625)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo, GGUF")
    writer.add_uint64("test.u64", 18_000_000_000_000_000_000)
    writer.add_int64("test.i64", -9_000_000_000_000_000_000)
    writer.add_float64("test.f64", -2.5e-300)
    writer.add_array("test.array_i32", [1, -2, 3])
    writer.add_array("test.array_strings", ["a", "bc", ""])
    writer.add_array("test.array_f32", [0.5, -1.25])

    tensors = {
        "f32": (rng.standard_normal((3, 5)).astype(np.float32), T.F32),
        "f16": (rng.standard_normal((2, 8)).astype(np.float32), T.F16),
        "bf16": (rng.standard_normal((4, 3)).astype(np.float32), T.BF16),
        "q8_0": (rng.standard_normal((2, 64)).astype(np.float32), T.Q8_0),
        "q4_0": (rng.standard_normal((3, 32)).astype(np.float32), T.Q4_0),
        "q4_1": (rng.standard_normal((2, 96)).astype(np.float32) + 0.3, T.Q4_1),
        "blk.0.vector": (rng.standard_normal((7,)).astype(np.float32), T.F32),
    }
    expected = {}
    # gguf cannot quantise to the K-quants; their blocks are random bytes with sane f16 scales, and gguf's
    # dequantisation gives the expected values.
    for name, kind, rows in [("q4_k", T.Q4_K, 2), ("q6_k", T.Q6_K, 3)]:
        block_elements, block_bytes = gguf.GGML_QUANT_SIZES[kind]
        raw = rng.integers(0, 256, size=(rows, block_bytes), dtype=np.uint8)
        scales = (rng.uniform(0.01, 0.1, size=(rows, 2))).astype(np.float16).view(np.uint8)
        if kind == T.Q4_K:
            raw[:, 0:4] = scales.reshape(rows, 4)          # d, dmin
        else:
            raw[:, 208:210] = scales.reshape(rows, 4)[:, :2]  # d
        writer.add_tensor(name, raw, raw_dtype=kind)
        stored = np.asarray(gguf.quants.dequantize(raw, kind), dtype=np.float32).reshape(rows, block_elements)
        expected[name] = {"type": kind.name, "ne": [block_elements, rows],
                          "values": [float(f"{v:.9g}") for v in stored.reshape(-1).tolist()]}
    for name, (values, kind) in tensors.items():
        if kind == T.F32:
            data = values
        elif kind == T.F16:
            data = values.astype(np.float16)
        else:
            data = gguf.quants.quantize(values, kind)
        writer.add_tensor(name, data, raw_dtype=kind)
        stored = data if kind in (T.F32, T.F16) else gguf.quants.dequantize(data, kind)
        stored = np.asarray(stored, dtype=np.float32).reshape(values.shape)
        expected[name] = {
            "type": kind.name,
            "ne": list(reversed(values.shape)),
            "values": [float(f"{v:.9g}") for v in stored.reshape(-1).tolist()],
        }
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    metadata = {
        "general.architecture": "llama", "general.alignment": 64,
        "test.u8": 200, "test.i8": -100, "test.u16": 60000, "test.i16": -30000,
        "test.u32": 4_000_000_000, "test.i32": -2_000_000_000, "test.f32": 0.15625, "test.bool": True,
        "test.string": "héllo, GGUF", "test.u64": 18_000_000_000_000_000_000, "test.i64": -9_000_000_000_000_000_000,
        "test.f64": -2.5e-300, "test.array_i32": [1, -2, 3], "test.array_strings": ["a", "bc", ""],
        "test.array_f32": [0.5, -1.25],
    }
    with open(os.path.join(OUT, "small.expected.json"), "w") as f:
        json.dump({"gguf_package": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                   "metadata": metadata, "tensors": expected}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and small.expected.json")


if __name__ == "__main__":
    main()
