"""Pictures of predictions: mask overlays with the sentence written on them."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def overlay_mask(
    image: Image.Image, mask: np.ndarray, color: tuple[int, int, int] = (30, 200, 80), alpha: float = 0.5
) -> Image.Image:
    """``image`` with the H x W bool ``mask`` tinted in ``color`` and outlined."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    tint = np.array(color, dtype=np.float32)
    out = base.copy()
    out[mask] = (1 - alpha) * base[mask] + alpha * tint
    edge = mask & ~(
        np.pad(mask, 1)[2:, 1:-1] & np.pad(mask, 1)[:-2, 1:-1] & np.pad(mask, 1)[1:-1, 2:] & np.pad(mask, 1)[1:-1, :-2]
    )
    out[edge] = tint
    return Image.fromarray(out.round().astype(np.uint8))


def prediction_panel(
    image: Image.Image, prediction: np.ndarray, target: np.ndarray | None, sentence: str
) -> Image.Image:
    """Prediction overlay (green), ground-truth overlay (orange) if given, and the sentence above them."""
    panels = [overlay_mask(image, prediction)]
    if target is not None:
        panels.append(overlay_mask(image, target, color=(240, 140, 20)))
    width = sum(p.width for p in panels) + 4 * (len(panels) - 1)
    canvas = Image.new("RGB", (width, image.height + 16), (255, 255, 255))
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 16))
        x += panel.width + 4
    ImageDraw.Draw(canvas).text((2, 2), sentence, fill=(0, 0, 0))
    return canvas
