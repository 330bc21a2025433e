"""Token ids of SmolLM2-135M-Instruct's byte-level BPE tokenizer (from the GGUF file, as transformers builds it)
for a fixed set of strings and chat conversations, for Tests/ModelsTests/BytePairTokenizerTests.

Run once (needs transformers, gguf; the asset from scripts/setup.sh):
    python3 scripts/reference/make_smollm2_tokenizer_fixture.py
Writes Tests/ModelsTests/Fixtures/smollm2_tokenizer_cases.json and the Hugging Face files in
Tests/ModelsTests/Fixtures/smollm2-tokenizer/.
"""
import json
import os
import random

from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "smollm2_tokenizer_cases.json")

FIXED = [
    "", " ", "  ", "\n", "\n\n", " \n ", "\t", "a", " a", "a ", "Hello world", "Hello, world!", "  leading spaces",
    "trailing spaces   ", "multiple   spaces   inside", "tabs\tand\ttabs", "line\nbreaks\r\nand\rreturns",
    "don't you're I'm we've they'll she'd it's", "DON'T YOU'RE", "rock 'n' roll", "''quoted''", "'s 't 're",
    "12345", "1,000,000.50", "3.14159", "version 2.0.1-beta", "phone: +1 (555) 010-9999", "2026-12-02T01:47:06Z",
    "x=1; y=2; z=x+y", "0x1F 0b1010 1e-5", "１２３ full-width digits", "Ⅻ roman numeral", "½ ¾ fractions",
    "naïve café résumé", "Ærø Ångström façade", "Straße groß", "İstanbul ı", "Ελληνικά κείμενα", "Русский текст",
    "עברית", "العربية", "हिन्दी", "ไทย", "東京は日本の首都です。", "中文测试，标点符号！", "한국어 문장", "カタカナとひらがな",
    "😀", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "emoji😀inside", "♠♥♦♣", "€100 £50 ¥1000 ₹20",
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "let x: [Int] = [1, 2, 3]", "SELECT * FROM users WHERE id = 42;", "<div class=\"a\">text</div>",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct", "user@example.com", "#hashtag @mention",
    "C:\\Windows\\System32", "path/to/file.txt", "a_b_c snake_case camelCase PascalCase", "--flag=value -x",
    "!!!???...", "...", "—dash–en dash-hyphen", "“curly quotes” ‘single’", "«guillemets»", "¡Hola! ¿Qué tal?",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>", "a<|im_end|>b",
    "<repo_name>x<file_sep>y", "<|im_start", "im_start|>", "<< >> <|", "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth", "combining e\u0301 accent", "\u3000ideographic space", "mixed 中文 and English words",
    "ALL CAPS SENTENCE", "MiXeD CaSe", "a1b2c3", "abc123def", "123abc", "   123", " 1 2 3 ", "1\n2\n3",
    "The quick brown fox jumps over the lazy dog.", "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
]

WORDS = ["the", "model", "adapter", "LoRA", "SHiRA", "fine-tune", "weights", "token", "émigré", "数据", "🙂",
         "42", "3.5", "x", "(", ")", "{", "}", ",", ".", "'s", "n't", "\n", "\t", "  ", "--", "==", "!"]


def generated(count):
    rng = random.Random(7)
    cases = []
    for _ in range(count):
        n = rng.randint(1, 12)
        pieces = [rng.choice(WORDS) for _ in range(n)]
        text = ""
        for piece in pieces:
            text += piece + rng.choice(["", " ", " ", " ", "  ", "\n"])
        cases.append(text)
    for _ in range(20):
        cases.append("".join(chr(rng.choice([rng.randint(32, 126), rng.randint(160, 0x2FF), rng.randint(0x4E00, 0x4FFF),
                                             rng.randint(0x1F600, 0x1F64F)])) for _ in range(rng.randint(1, 24))))
    return cases


CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke about cats."}],
    [{"role": "user", "content": "Code:\n```python\nprint('x')\n```"}],
    [{"role": "user", "content": "東京について教えて 😀"}],
]


def main():
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(ROOT, "assets", "smollm2"),
                                              gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    texts = FIXED + generated(120)
    cases = [{"text": t, "ids": tokenizer.encode(t, add_special_tokens=False)} for t in texts]
    chats = []
    for messages in CONVERSATIONS:
        for generation_prompt in (False, True):
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
            ids = tokenizer.encode(rendered, add_special_tokens=False)
            chats.append({"messages": messages, "add_generation_prompt": generation_prompt, "text": rendered, "ids": ids})
    decoded = [{"ids": c["ids"], "text": tokenizer.decode(c["ids"])} for c in cases[:40]]
    with open(OUT, "w") as f:
        json.dump({"generator": "transformers " + __import__("transformers").__version__ + " from the GGUF file",
                   "cases": cases, "chats": chats, "decoded": decoded}, f, indent=1, ensure_ascii=False)
    print(len(cases), "cases,", len(chats), "chats ->", OUT)



def save_hugging_face_files():
    """The same tokenizer as Hugging Face files (tokenizer.json, tokenizer_config.json, chat_template.jinja), for
    the test of BytePairTokenizer(directory:)."""
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(ROOT, "assets", "smollm2"),
                                              gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer.save_pretrained(os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "smollm2-tokenizer"))



if __name__ == "__main__":
    main()
    save_hugging_face_files()
