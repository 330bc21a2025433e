#!/usr/bin/env python3
"""Generates the WordPiece tokenizer fixtures in Tests/ModelsTests/Fixtures/ (committed; the Swift tests never run
Python), with the real Hugging Face `tokenizers` library:
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch "transformers==5.24.*" safetensors numpy
    /tmp/hfenv/bin/python scripts/reference/make_tokenizer_fixtures.py

  tokenizer-json/NAME.json      tokenizer.json files of BertWordPieceTokenizer with one vocabulary and the
                                normaliser options uncased, cased, cased-strip-accents, no-chinese-split
  tokenizer-json/expected.json  for each of them and each text, the ids `encode` gives (with [CLS] ... [SEP])
  hf/bert-tiny-cased/           a tiny BertModel saved by transformers with only tokenizer.json (cased) beside it
  hf/bert-tiny-cased-vocab/     the same weights with vocab.txt and tokenizer_config.json saying do_lower_case false
"""
import json
import os
import shutil
import sys

import torch
import transformers
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "ModelsTests", "Fixtures")

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
    [chr(c) for c in range(ord("A"), ord("Z") + 1)] + \
    ["the", "The", "cat", "Cat", "sat", "##s", "on", "mat", "dog", "ran", "café", "cafe", "##é", "é", "e", "naïve",
     "naive", ".", ",", "!", "日", "本", "日本", "##本", "##a", "##t", "##e"]

TEXTS = ["The Cat sat on the mat.", "the cat SAT, cats ran!", "Café naïve cafe", "日本 dog", "[MASK] The dog",
         "cats\tran\non\u00a0mat", "zzzzzzzzzzz unknownword", "Ca\u0301fe\u0301", "", "a" * 120]

OPTIONS = {
    "uncased": dict(lowercase=True),
    "cased": dict(lowercase=False),
    "cased-strip-accents": dict(lowercase=False, strip_accents=True),
    "no-chinese-split": dict(lowercase=True, handle_chinese_chars=False),
}


def tokenizer(options):
    return BertWordPieceTokenizer({token: i for i, token in enumerate(VOCABULARY)}, **options)


def main():
    folder = os.path.join(FIXTURES, "tokenizer-json")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    expected = []
    for name, options in OPTIONS.items():
        t = tokenizer(options)
        t.save(os.path.join(folder, name + ".json"))
        for text in TEXTS:
            expected.append({"tokenizer": name, "text": text, "ids": t.encode(text).ids})
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)

    generator = torch.Generator().manual_seed(4)
    bert = BertModel(BertConfig(vocab_size=len(VOCABULARY), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                intermediate_size=48, max_position_embeddings=160), add_pooling_layer=False).eval()
    with torch.no_grad():
        for _, parameter in bert.named_parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    for name in ["bert-tiny-cased", "bert-tiny-cased-vocab"]:
        model_folder = os.path.join(FIXTURES, "hf", name)
        shutil.rmtree(model_folder, ignore_errors=True)
        bert.save_pretrained(model_folder)
    tokenizer(OPTIONS["cased"]).save(os.path.join(FIXTURES, "hf", "bert-tiny-cased", "tokenizer.json"))
    vocab_folder = os.path.join(FIXTURES, "hf", "bert-tiny-cased-vocab")
    with open(os.path.join(vocab_folder, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCABULARY) + "\n")
    with open(os.path.join(vocab_folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}, f)
    print(f"wrote {folder} with tokenizers from transformers {transformers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
