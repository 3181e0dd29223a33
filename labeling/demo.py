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
