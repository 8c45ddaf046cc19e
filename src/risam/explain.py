"""The paper's Fig. 1/7 views of the Mutual-Aware Attention of one expression.

- Language-Guided Attention: for every word, its distribution over the image (A_lg, a map
  over the visual tokens), cropped to the image content and resized to the original size.
- Vision-Guided Attention: at one pixel, the weight of every word (a row of A_vg).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from risam.configs.parse import ConfigError
from risam.modeling.text_encoder import PAD_ID
from risam.predictor import Prediction, RISAMPredictor


@dataclass
class Explanation:
    """words: the expression's tokens (start and end included). word_maps: per word an H x W
    float map (the word's attention over the image, at the original resolution). pixel: (x, y)
    where the word weights were read. word_weights: per word, its vision-guided weight there.
    prediction: the expression's mask and scores."""

    words: list[str]
    word_maps: np.ndarray
    pixel: tuple[int, int]
    word_weights: np.ndarray
    prediction: Prediction


@torch.no_grad()
def explain(predictor: RISAMPredictor, text: str, pixel: tuple[int, int] | None = None, block: int = -1) -> Explanation:
    """Attention maps of ``text`` on the image set in ``predictor``, from MA block ``block``.

    ``pixel`` (x, y) in original image coordinates; by default the centre of the predicted
    mask's pixels (the image centre if the mask is empty).
    """
    prediction, outputs, tokens = predictor.predict_with_attention(text)
    model = predictor.model
    attention = outputs[block]
    if attention.vision_guided is None or attention.language_guided is None:
        raise ConfigError(
            f"fusion block {block} ({type(model.fusion[block]).__name__}) has no vision- and language-guided "
            "attention maps to explain; explain needs head.fusion 'mutual_attention' or 'bidirectional_serial'"
        )
    valid = int((tokens != PAD_ID).sum())
    words = model.text_encoder.token_words(tokens[:valid])
    grid = predictor.visual.shape[-1]
    height, width = predictor.original_size
    content = [max(1, round(side * grid / model.image_encoder.config.img_size)) for side in predictor.resized_size]
    maps = attention.language_guided[0, :valid].float().reshape(valid, 1, grid, grid)[:, :, : content[0], : content[1]]
    word_maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)[:, 0].cpu().numpy()
    if pixel is None:
        ys, xs = np.nonzero(prediction.mask)
        pixel = (int(xs.mean()), int(ys.mean())) if xs.size else (width // 2, height // 2)
    x, y = pixel
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"pixel {pixel} is outside the {width}x{height} image")
    row = min(int(y / height * content[0]), content[0] - 1)
    col = min(int(x / width * content[1]), content[1] - 1)
    weights = attention.vision_guided[0, row * grid + col, :valid].float().cpu().numpy()
    return Explanation(words, word_maps, (x, y), weights, prediction)


def _heat(values: np.ndarray) -> np.ndarray:
    """H x W values -> H x W x 3 uint8, dark blue (low) to yellow (high), scaled to the map's range."""
    span = values.max() - values.min()
    t = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    low, mid, high = np.array([20, 20, 90.0]), np.array([200, 40, 60.0]), np.array([255, 230, 60.0])
    rgb = np.where(
        t[..., None] < 0.5, low + (mid - low) * (2 * t[..., None]), mid + (high - mid) * (2 * t[..., None] - 1)
    )
    return rgb.astype(np.uint8)


def render_explanation(image: Image.Image, explanation: Explanation, columns: int = 4) -> Image.Image:
    """One figure: the prediction, each word's attention map over the image, and the word
    weights at the chosen pixel as bars."""
    from risam.viz import overlay_mask

    width, height = image.size
    tiles = [(overlay_mask(image, explanation.prediction.mask), f"mask: {explanation.prediction.text}")]
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    for word, word_map in zip(explanation.words, explanation.word_maps, strict=True):
        blended = (0.45 * base + 0.55 * _heat(word_map)).astype(np.uint8)
        tiles.append((Image.fromarray(blended), word))
    rows = -(-len(tiles) // columns)
    caption = 14
    chart_height = 22 + 16 * len(explanation.words)
    figure = Image.new("RGB", (columns * (width + 6), rows * (height + caption + 6) + chart_height), "white")
    draw = ImageDraw.Draw(figure)
    for index, (tile, label) in enumerate(tiles):
        x0 = (index % columns) * (width + 6)
        y0 = (index // columns) * (height + caption + 6)
        draw.text((x0 + 2, y0), label[: max(4, width // 6)], fill="black")
        figure.paste(tile, (x0, y0 + caption))
    px, py = explanation.pixel
    marker = (px, py + caption)
    draw.ellipse((marker[0] - 3, marker[1] - 3, marker[0] + 3, marker[1] + 3), outline="red", width=2)
    top = rows * (height + caption + 6)
    draw.text((2, top + 2), f"word weights at pixel (x={px}, y={py}) (red circle)", fill="black")
    longest = max(explanation.word_weights.max(), 1e-9)
    for index, (word, weight) in enumerate(zip(explanation.words, explanation.word_weights, strict=True)):
        y = top + 20 + 16 * index
        draw.text((2, y), f"{word[:12]:>12}", fill="black")
        draw.rectangle((90, y + 2, 90 + int(200 * weight / longest), y + 12), fill=(200, 40, 60))
        draw.text((296, y), f"{weight:.3f}", fill="black")
    return figure
