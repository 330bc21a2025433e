"""Writes the JPEG fixtures of Tests/CLITests/Fixtures/jpeg with Pillow (a real, independent JPEG encoder and decoder).

For each case: NAME.jpg (Pillow's encoding of a seeded picture) and NAME.decoded.png (Pillow's own decoding of that
JPEG, stored losslessly), so the Swift tests check our JPEG decoding against Pillow's without Python.
Run once: python3 -m venv /tmp/pilenv && /tmp/pilenv/bin/pip install pillow numpy &&
/tmp/pilenv/bin/python scripts/reference/make_jpeg_fixtures.py
"""
import io
import pathlib

import numpy as np
from PIL import Image

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests" / "CLITests" / "Fixtures" / "jpeg"


def picture(width, height, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)), ((x + y) * 3) % 256], axis=-1)
    noise = rng.integers(-20, 21, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = [
        ("rgb-420-baseline", picture(48, 40, 1), dict(quality=90, subsampling=2)),
        ("rgb-444-progressive", picture(37, 29, 2), dict(quality=95, subsampling=0, progressive=True)),
        ("grey-baseline", picture(32, 32, 3)[..., 0], dict(quality=85)),
    ]
    for name, pixels, options in cases:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", **options)
        (OUT / f"{name}.jpg").write_bytes(buffer.getvalue())
        decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        decoded.save(OUT / f"{name}.decoded.png")
        print(name, decoded.size, len(buffer.getvalue()), "bytes")


if __name__ == "__main__":
    main()
