"""Generated demo images: the seed command, tests and benchmarks use them (no data set is downloaded)."""

from __future__ import annotations

import io


def demo_image(seed: int, size: int = 96) -> bytes:
    """A small generated PNG, for the demo project and tests: a gradient with a seeded colour block."""
    from PIL import Image, ImageDraw

    r, g, b = (seed * 67) % 256, (seed * 131) % 256, (seed * 199) % 256
    image = Image.new("RGB", (size, size), (r, g, b))
    draw = ImageDraw.Draw(image)
    for y in range(0, size, 4):
        draw.line([(0, y), (size, y)], fill=((r + y) % 256, (g + 2 * y) % 256, b))
    draw.rectangle([seed % (size // 2), seed % (size // 3), size // 2 + seed % 20, size // 2 + seed % 30], fill=(b, r, g))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


PLANTED_KINDS = ("photo", "cartoon", "neither")


def _field(rng: object, size: int) -> object:
    """A photograph-like smooth colour field: a few octaves of random colour, upsampled and summed."""
    import numpy as np
    from PIL import Image

    out = np.zeros((size, size, 3))
    for cells, weight in ((3, 1.0), (6, 0.5), (12, 0.25)):
        coarse = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)  # type: ignore[attr-defined]
        out += weight * np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), float)
    return out / 1.75


def planted_image(kind: str, seed: int, size: int = 64) -> bytes:
    """A generated PNG of one of three kinds with known truth, for tests and benchmarks/assisted.py:

    * photo: a smooth colour field with light and sensor noise, like an out-of-focus photograph;
    * cartoon: another such field rendered as a cartoon (flat colours, dark outlines);
    * neither: text on paper, a bar chart, or noise.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    if kind == "photo":
        field = _field(rng, size)
        light = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.9, 1.3), size)[:, None, None]
        pixels = field * light + rng.normal(0, 6, field.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    elif kind == "cartoon":
        field = _field(np.random.default_rng(seed + 1_000_003), size)
        levels = int(rng.integers(3, 5))
        flat = (np.floor(field / 256 * levels) + 0.5) * (256 / levels)
        key = flat[..., 0] * 7 + flat[..., 1] * 3 + flat[..., 2]
        edge = np.zeros((size, size), bool)
        edge[1:, :] |= key[1:, :] != key[:-1, :]
        edge[:, 1:] |= key[:, 1:] != key[:, :-1]
        flat[edge] = 20
        image = Image.fromarray(np.clip(flat, 0, 255).astype(np.uint8))
    elif kind == "neither":
        style = int(rng.integers(3))  # from the seed's generator: no pattern of seeds picks one style
        if style == 2:
            image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        else:
            image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 256, 3)))
            draw = ImageDraw.Draw(image)
            if style == 0:  # text on paper
                letters = "abcdefghijklmnopqrstuvwxyz"
                for y in range(2, size - 8, 10):
                    line = "".join(letters[int(i)] if i < 26 else " " for i in rng.integers(0, 32, 12))
                    draw.text((2, y), line, fill=(20, 20, 20))
            else:  # a bar chart
                draw.line([(6, 4), (6, size - 6), (size - 4, size - 6)], fill=(0, 0, 0))
                bars = int(rng.integers(3, 7))
                width = (size - 14) // bars
                for i in range(bars):
                    top = int(rng.integers(8, size - 10))
                    colour = tuple(int(v) for v in rng.integers(0, 200, 3))
                    draw.rectangle([8 + i * width, top, 8 + (i + 1) * width - 3, size - 7], fill=colour)
    else:
        raise ValueError(f"kind must be one of {PLANTED_KINDS}")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
