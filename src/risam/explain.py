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

from risam.config import ConfigError
from risam.errors import InputError
from risam.modeling.text_encoder import PAD_ID
from risam.predictor import EncodedImage, Prediction, RISAMPredictor

MAP_SIDE = 320


class ExplainError(InputError):
    """The pixel or block asked for does not exist; the message names the valid range."""


@dataclass
class Explanation:
    """words: the expression's tokens (start and end included). word_maps: per word an h x w
    float map, the word's attention over the image at the display size (the image scaled so
    that its long side is at most MAP_SIDE, never enlarged), so memory does not grow with the
    image. pixel: (x, y) in original image coordinates, where the word weights were read.
    word_weights: per word, its vision-guided weight there. prediction: the expression's mask
    (at the original resolution) and scores."""

    words: list[str]
    word_maps: np.ndarray
    pixel: tuple[int, int]
    word_weights: np.ndarray
    prediction: Prediction


def display_size(height: int, width: int, side: int = MAP_SIDE) -> tuple[int, int]:
    """(h, w) of a ``height`` x ``width`` image scaled so that its long side is at most ``side``."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


@torch.no_grad()
def explain(
    predictor: RISAMPredictor,
    text: str,
    pixel: tuple[int, int] | None = None,
    block: int = -1,
    encoded: EncodedImage | None = None,
) -> Explanation:
    """Attention maps of ``text`` on ``encoded`` (from ``predictor.encode``; nothing of the predictor's
    changes) or on the image set in ``predictor``, from MA block ``block`` (negative counts from the last).

    ``pixel`` (x, y) in original image coordinates; by default the centre of the predicted
    mask's pixels (the image centre if the mask is empty). A pixel outside the image or a
    block the model lacks raises ExplainError before anything is computed.
    """
    model = predictor.model
    image = encoded if encoded is not None else predictor.encoded
    if image is None:
        raise RuntimeError("call set_image(image) before explain(predictor, text), or pass encoded=")
    height, width = image.original_size
    blocks = len(model.fusion)
    if not -blocks <= block < blocks:
        raise ExplainError(
            f"block={block}: the model has {blocks} fusion blocks; give 0..{blocks - 1} or -1 for the last"
        )
    if pixel is not None and not (0 <= pixel[0] < width and 0 <= pixel[1] < height):
        raise ExplainError(
            f"pixel=({pixel[0]}, {pixel[1]}): outside the {width}x{height} image; "
            f"give 0 <= x < {width} and 0 <= y < {height}"
        )
    prediction, outputs, tokens = predictor.predict_with_attention(text, image)
    attention = outputs[block]
    if attention.vision_guided is None or attention.language_guided is None:
        raise ConfigError(
            f"fusion block {block} ({type(model.fusion[block]).__name__}) has no vision- and language-guided "
            "attention maps to explain; explain needs head.fusion 'mutual_attention' or 'bidirectional_serial'"
        )
    valid = int((tokens != PAD_ID).sum())
    words = model.text_encoder.token_words(tokens[:valid])
    grid = image.visual.enhanced.shape[-1]
    content = [max(1, round(side * grid / model.image_encoder.config.img_size)) for side in image.resized_size]
    maps = attention.language_guided[0, :valid].float().reshape(valid, 1, grid, grid)[:, :, : content[0], : content[1]]
    size = display_size(height, width)
    word_maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0].cpu().numpy()
    if pixel is None:
        ys, xs = np.nonzero(prediction.mask)
        pixel = (int(xs.mean()), int(ys.mean())) if xs.size else (width // 2, height // 2)
    x, y = pixel
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
    """One figure: the prediction, each word's attention map over the image (labelled panels at
    the display size of :func:`display_size`), and the word weights at the chosen pixel as bars."""
    from risam.drawing.viz import CAPTION_SIZE, LABEL_SIZE, TEXT_COLOR, load_font, overlay_mask

    height, width = explanation.word_maps.shape[1:]
    small = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    tiles = [(overlay_mask(small, explanation.prediction.mask), f"mask: {explanation.prediction.text}")]
    base = np.asarray(small, dtype=np.float32)
    for word, word_map in zip(explanation.words, explanation.word_maps, strict=True):
        tiles.append((Image.fromarray((0.45 * base + 0.55 * _heat(word_map)).astype(np.uint8)), word))
    label_font, bar_font = load_font(LABEL_SIZE), load_font(CAPTION_SIZE)
    gap, caption = 12, LABEL_SIZE + 8
    rows = -(-len(tiles) // columns)
    bar_row = CAPTION_SIZE + 8
    chart_height = bar_row * (len(explanation.words) + 1) + 16
    figure_width = max(columns * (width + gap) + gap, 760)
    figure = Image.new("RGB", (figure_width, rows * (height + caption + gap) + gap + chart_height), "white")
    draw = ImageDraw.Draw(figure)
    for index, (tile, label) in enumerate(tiles):
        x0 = gap + (index % columns) * (width + gap)
        y0 = gap + (index // columns) * (height + caption + gap)
        while len(label) > 4 and draw.textlength(label, font=label_font) > width:
            label = label[:-2] + "…"
        draw.text((x0, y0), label, fill=TEXT_COLOR, font=label_font)
        figure.paste(tile, (x0, y0 + caption))
    px, py = explanation.pixel
    original_height, original_width = explanation.prediction.mask.shape
    for index in range(1, len(tiles)):
        x0 = gap + (index % columns) * (width + gap) + int(px * width / original_width)
        y0 = gap + (index // columns) * (height + caption + gap) + caption + int(py * height / original_height)
        draw.ellipse((x0 - 5, y0 - 5, x0 + 5, y0 + 5), outline="red", width=2)
    top = gap + rows * (height + caption + gap)
    draw.text((gap, top), f"word weights at pixel (x={px}, y={py}), the red circle", fill=TEXT_COLOR, font=bar_font)
    longest = max(float(explanation.word_weights.max()), 1e-9)
    word_column = gap + max(int(draw.textlength(word, font=bar_font)) for word in explanation.words) + 12
    for index, (word, weight) in enumerate(zip(explanation.words, explanation.word_weights, strict=True)):
        y = top + bar_row + 8 + bar_row * index
        draw.text((gap, y), word, fill=TEXT_COLOR, font=bar_font)
        draw.rectangle(
            (word_column, y + 4, word_column + int(400 * weight / longest), y + bar_row - 6), fill=(200, 40, 60)
        )
        draw.text((word_column + 410, y), f"{weight:.3f}", fill=TEXT_COLOR, font=bar_font)
    return figure
