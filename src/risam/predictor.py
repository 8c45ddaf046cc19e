"""``RISAMPredictor``: encode an image once, then segment any number of expressions.

In the spirit of segment-anything's ``SamPredictor``: :meth:`set_image` runs the frozen image
encoder and Feature Enhancement once and caches F_v; :meth:`predict` then runs only the text
encoder, the Mutual-Aware Attention blocks and the decoder.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from risam.data.transforms import postprocess_logits, preprocess_image
from risam.image_io import MAX_PIXELS, ImageSource, load_image
from risam.modeling.mutual_attention import MutualAttentionOutput
from risam.modeling.risam import RISAM
from risam.registry import create_model


class ExpressionError(ValueError):
    """An expression cannot be segmented (for example, it is empty)."""


@dataclass
class Prediction:
    """One expression's result at the original image resolution.

    mask: H x W bool. probability: H x W float32 in [0, 1]. score: the mean probability inside
    the mask (0 for an empty mask). bbox: (x0, y0, x1, y1) of the mask, inclusive pixel
    coordinates, or None when the mask is empty.
    """

    text: str
    mask: np.ndarray
    probability: np.ndarray
    score: float
    bbox: tuple[int, int, int, int] | None


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the True pixels of an H x W mask, inclusive; None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


class RISAMPredictor:
    """Segment expressions in one image at a time with a RISAM model."""

    def __init__(self, model: RISAM, threshold: float = 0.35, max_pixels: int = MAX_PIXELS) -> None:
        self.model = model.eval()
        self.threshold = threshold
        self.max_pixels = max_pixels
        self.device = next(model.parameters()).device
        self.visual: torch.Tensor | None = None
        self.original_size: tuple[int, int] | None = None
        self.resized_size: tuple[int, int] | None = None

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike,
        sam_checkpoint: str | os.PathLike | None = None,
        clip_checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        threshold: float = 0.35,
        encoder_dtype: torch.dtype | None = None,
    ) -> RISAMPredictor:
        """A predictor for a RISAM weights file (the format ``risam evaluate`` takes).

        The frozen encoders are kept in ``encoder_dtype``; by default bfloat16 on a GPU (half
        the memory) and float32 elsewhere.
        """
        model = create_model(checkpoint=checkpoint, sam_checkpoint=sam_checkpoint, clip_checkpoint=clip_checkpoint)
        model = model.to(device)
        if encoder_dtype is None:
            encoder_dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        return cls(model.store_frozen_encoders(encoder_dtype), threshold=threshold)

    @torch.no_grad()
    def set_image(self, image: ImageSource) -> None:
        """Encode ``image`` (a path, PIL image or H x W x 3 uint8 RGB array) and cache its features."""
        rgb = load_image(image, max_pixels=self.max_pixels)
        config = self.model.image_encoder.config
        tensor, self.resized_size = preprocess_image(rgb, config.img_size, config.pixel_mean, config.pixel_std)
        self.original_size = (rgb.height, rgb.width)
        self.visual = self.model.encode_image(tensor[None].to(self.device))

    def predict(self, text: str | Sequence[str]) -> Prediction | list[Prediction]:
        """Segment one expression (returns a Prediction) or several (returns a list)."""
        texts = [text] if isinstance(text, str) else list(text)
        predictions, _, _ = self._segment(texts, return_attention=False)
        return predictions[0] if isinstance(text, str) else predictions

    def predict_with_attention(self, text: str) -> tuple[Prediction, list[MutualAttentionOutput], torch.Tensor]:
        """One expression's prediction, every MA block's outputs (attention maps included) and its
        token ids (L), from a single pass."""
        predictions, attention, tokens = self._segment([text], return_attention=True)
        return predictions[0], attention, tokens[0]

    @torch.no_grad()
    def _segment(
        self, texts: list[str], return_attention: bool
    ) -> tuple[list[Prediction], list[MutualAttentionOutput], torch.Tensor]:
        if self.visual is None:
            raise RuntimeError("call set_image(image) before predict(text)")
        if not texts:
            raise ExpressionError("no expression given")
        for item in texts:
            if not isinstance(item, str) or not item.strip():
                raise ExpressionError(f"expression {item!r} is empty; describe the region to segment")
        tokens = self.tokenize(texts)
        features, padding = self.model.encode_text(tokens.to(self.device))
        visual = self.visual.expand(len(texts), -1, -1, -1)
        attention: list[MutualAttentionOutput] = []
        if return_attention:
            logits, attention = self.model.decode(visual, features, padding, return_attention=True)
        else:
            logits = self.model.decode(visual, features, padding)
        size = self.model.image_encoder.config.img_size
        results = []
        for item, row in zip(texts, logits.float().cpu(), strict=True):
            probability = torch.sigmoid(postprocess_logits(row, size, self.resized_size, self.original_size)).numpy()
            mask = probability > self.threshold
            score = float(probability[mask].mean()) if mask.any() else 0.0
            results.append(Prediction(item, mask, probability.astype(np.float32), score, mask_bbox(mask)))
        return results, attention, tokens

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids, warning about expressions longer than the model reads (they are truncated)."""
        encoder = self.model.text_encoder
        limit = encoder.config.max_words
        for item, length in zip(texts, encoder.token_counts(texts), strict=True):
            if length > limit:
                warnings.warn(
                    f"expression of {length} tokens truncated to the model's {limit}: {item[:60]!r}...", stacklevel=3
                )
        return encoder.tokenize(texts)
