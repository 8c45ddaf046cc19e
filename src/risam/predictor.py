"""``RISAMPredictor``: encode an image once, then segment any number of expressions.

In the spirit of segment-anything's ``SamPredictor``: :meth:`set_image` runs the frozen image
encoder and Feature Enhancement once and caches F_v; :meth:`predict` then runs only the text
encoder, the Mutual-Aware Attention blocks and the decoder, on chunks of ``expression_chunk``
expressions, and keeps each result as a boolean mask at the original resolution (no float map of
the image is kept), so memory grows with the expressions only by H x W bytes each.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from risam.config import DEFAULT_THRESHOLD
from risam.data.image_stream import EncoderInput, StreamedImage, stream_images
from risam.data.transforms import logits_to_masks, preprocess_image
from risam.errors import InputError
from risam.io.hub import is_hub_name
from risam.io.images import MAX_PIXELS, ImageSource, load_image
from risam.modeling.compiled import compile_or_eager
from risam.modeling.layers import FusionOutput, VisualFeatures
from risam.modeling.model import RISAM
from risam.precision import PrecisionChoice, choose_precision, warn_if_emulated
from risam.registry.create import create_model
from risam.registry.files import DEFAULT_PRETRAINED, pretrained_path, resolve_checkpoint

MAX_EXPRESSIONS = 100  # expressions per predict call (risam segment); the demo has its own smaller bound
EXPRESSION_CHUNK = 8  # expressions decoded together


class ExpressionError(InputError):
    """An expression cannot be segmented (for example, it is empty), or there are too many."""


def check_expressions(texts: Sequence[str], limit: int = MAX_EXPRESSIONS) -> None:
    """ExpressionError unless ``texts`` holds 1 to ``limit`` non-blank strings."""
    if not texts:
        raise ExpressionError("no expression given")
    if len(texts) > limit:
        raise ExpressionError(f"{len(texts)} expressions given; at most {limit} are segmented per request")
    for item in texts:
        if not isinstance(item, str) or not item.strip():
            raise ExpressionError(f"expression {item!r} is empty; describe the region to segment")


@dataclass
class Prediction:
    """One expression's result at the original image resolution.

    mask: H x W bool. score: the mean sigmoid probability inside the mask (0 for an empty mask).
    bbox: (x0, y0, x1, y1) of the mask, inclusive pixel coordinates, or None when the mask is empty.
    No probability map is kept: at the original resolution it would take 4 bytes per pixel per expression.
    """

    text: str
    mask: np.ndarray
    score: float
    bbox: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class EncodedImage:
    """What :meth:`RISAMPredictor.encode` computes for an image: its visual features (F_v, 1 x C x S/16 x S/16,
    and any high-resolution maps), the (H, W) masks are produced at (the image's size) and the (h, w) of its
    content in the S x S input."""

    visual: VisualFeatures
    original_size: tuple[int, int]
    resized_size: tuple[int, int]


@dataclass
class ImageResult:
    """One image of :meth:`RISAMPredictor.segment_many`: its ``index`` in the items, the ``source`` it
    was given as, and either its RGB ``image`` and one :class:`Prediction` per expression, or ``error``,
    one line naming the image (or its expressions) and why it was skipped."""

    index: int
    source: ImageSource
    image: Image.Image | None = None
    predictions: list[Prediction] | None = None
    error: str | None = None


def default_workers(device: torch.device) -> int:
    """Image-reading worker processes for :meth:`RISAMPredictor.segment_many` on ``device``: on a GPU, up
    to 4, leaving a core to the main process; on the CPU none, since the encoder already keeps every
    core busy and a worker only adds the cost of sending each image between processes (on 2 cores,
    RefShapes images with the tiny model: 0.074 s per image with one worker against 0.063 s without)."""
    if device.type == "cpu":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the True pixels of an H x W mask, inclusive; None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


class RISAMPredictor:
    """Segment expressions in one image at a time with a RISAM model.

    The core calls take an image's :class:`EncodedImage` (from :meth:`encode`) and change nothing, so
    threads may share one predictor without a lock: ``predict(texts, encoded)``, ``predict_logits``,
    ``predict_with_attention`` and ``risam.explain.explain(..., encoded=)``. :meth:`set_image` keeps one
    image (``encoded``) for the calls given none, the convenience of SAM's predictor; threads that use
    it share that one image.

    ``precision`` ("auto", "fp32" or "bf16"; :mod:`risam.precision`) sets the model's frozen encoders
    to that precision, as does a choice already made (:func:`risam.precision.choose_precision`); None leaves
    them as they are. :attr:`precision` records the choice and its reason.
    """

    def __init__(
        self,
        model: RISAM,
        threshold: float = DEFAULT_THRESHOLD,
        max_pixels: int = MAX_PIXELS,
        max_expressions: int = MAX_EXPRESSIONS,
        expression_chunk: int = EXPRESSION_CHUNK,
        precision: str | PrecisionChoice | None = None,
    ) -> None:
        if not 0 < threshold < 1:
            raise InputError(f"threshold={threshold}: must be a probability strictly between 0 and 1")
        self.device = next(model.parameters()).device
        # None keeps the model's frozen encoders as they are; "auto", "fp32" or "bf16" sets them.
        if isinstance(precision, str):
            precision = choose_precision(precision, self.device)
        self.precision = precision
        if self.precision is not None:
            warn_if_emulated(self.precision)
            model.store_frozen_encoders(self.precision.dtype)
        self.model = model.eval()
        self.threshold = threshold
        self.max_pixels = max_pixels
        self.max_expressions = max_expressions
        self.expression_chunk = expression_chunk
        # The image of set_image, for the calls that are given none; the core calls take it as an argument.
        self.encoded: EncodedImage | None = None

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike | None = None,
        sam_checkpoint: str | os.PathLike | None = None,
        clip_checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        threshold: float = DEFAULT_THRESHOLD,
        precision: str = "auto",
        random_encoders: bool = False,
        compile: bool = False,
    ) -> RISAMPredictor:
        """A predictor for a RISAM weights file (the format ``risam evaluate`` takes), the name of a shipped
        model, or a model on the Hub (``hf-hub:ORG/NAME[@REVISION]``, as in :meth:`from_pretrained`); None is
        the default shipped model, ``risam_tiny_refshapes``.

        A paper model's file holds only the trainable head: CheckpointError names the SAM and CLIP files it
        needs unless they are given (``random_encoders=True`` runs it on random frozen encoders, which is
        for timing and memory measurements only). ``precision`` ("auto", "fp32" or "bf16") sets the frozen
        encoders' weights; "auto" is bf16 where ``device`` multiplies it natively (:mod:`risam.precision`).
        ``compile`` runs the image encoder through ``torch.compile`` (:mod:`risam.modeling.compiled`: the
        first image takes minutes; a failed compile warns once and runs eager).
        """
        choice = choose_precision(precision, device)  # chosen once: the encoders are built in it, not converted
        model = create_model(
            checkpoint=resolve_checkpoint(checkpoint),
            sam_checkpoint=sam_checkpoint,
            clip_checkpoint=clip_checkpoint,
            device=device,
            precision=choice,
            require_encoders=not random_encoders,
        )
        predictor = cls(model, threshold=threshold, precision=choice)
        if compile:
            compile_or_eager(model.image_encoder, "image encoder")
        return predictor

    @classmethod
    def from_pretrained(
        cls,
        name: str = DEFAULT_PRETRAINED,
        device: str | torch.device = "cpu",
        threshold: float = DEFAULT_THRESHOLD,
        precision: str = "auto",
        compile: bool = False,
        sam_checkpoint: str | os.PathLike | None = None,
        clip_checkpoint: str | os.PathLike | None = None,
    ) -> RISAMPredictor:
        """A predictor for a trained model by name: one that ships in the package
        (:data:`risam.registry.files.SHIPPED_MODELS`; it needs no file), or one on the Hugging Face Hub,
        ``"hf-hub:ORG/NAME"`` or ``"hf-hub:ORG/NAME@REVISION"`` (a branch, tag or commit id), taken from the
        Hugging Face cache or fetched into it (``HF_HUB_OFFLINE=1`` keeps to the cache).

        A Hub model of a paper config needs its frozen encoder files: ``sam_checkpoint`` and
        ``clip_checkpoint`` take paths, ``"download"`` (the official files) or ``hf-hub:`` names of the
        encoders' Hub repos (:data:`risam.registry.files.SAM_HUB_REPOS`). ``risam_tiny_refshapes`` knows only
        RefShapes' world (see its metadata).
        """
        if not is_hub_name(name):
            name = pretrained_path(name)
        return cls.from_checkpoint(
            name,
            sam_checkpoint,
            clip_checkpoint,
            device=device,
            threshold=threshold,
            precision=precision,
            compile=compile,
        )

    @torch.no_grad()
    def encode(self, image: ImageSource) -> EncodedImage:
        """The features of ``image`` (a path, PIL image or H x W x 3 uint8 RGB array); no state changes."""
        rgb = load_image(image, max_pixels=self.max_pixels)
        config = self.model.image_encoder.config
        tensor, resized = preprocess_image(rgb, config.img_size, config.pixel_mean, config.pixel_std)
        return EncodedImage(self.model.encode_image(tensor[None].to(self.device)), (rgb.height, rgb.width), resized)

    def segment_many(
        self,
        items: Iterable[tuple[ImageSource, Sequence[str]]],
        batch_size: int = 1,
        num_workers: int | None = None,
    ) -> Iterator[ImageResult]:
        """Segment many images in one process: ``items`` are (image, expressions) pairs; yields one
        :class:`ImageResult` per item, in order, as each is done.

        ``num_workers`` DataLoader worker processes read and preprocess the next images while the encoder
        runs (0: in this process; None: :func:`default_workers`); ``batch_size`` images go through the
        image encoder together. A result
        depends on its own image and expressions only up to the rounding of batched kernels, so
        ``batch_size=1`` gives exactly the masks of :meth:`set_image` + :meth:`predict`. An image that
        cannot be read, or expressions that cannot be segmented, give a result with ``error`` and the
        others go on; memory holds the images of a few batches, however many items there are.
        """
        pairs = [(source, list(texts)) for source, texts in items]
        config = self.model.image_encoder.config
        encoder_input = EncoderInput(
            config.img_size, tuple(config.pixel_mean), tuple(config.pixel_std), self.max_pixels
        )
        sources = [source for source, _ in pairs]
        workers = default_workers(self.device) if num_workers is None else num_workers
        for batch in stream_images(sources, encoder_input, batch_size, workers):
            ready: list[StreamedImage] = []
            for streamed in batch:
                error = streamed.error or self._expressions_error(streamed.index, pairs[streamed.index])
                if error is None:
                    ready.append(streamed)
                else:
                    yield ImageResult(streamed.index, sources[streamed.index], error=error)
            if not ready:
                continue
            with torch.no_grad():
                visual = self.model.encode_image(torch.stack([item.tensor for item in ready]).to(self.device))
            for row, streamed in enumerate(ready):
                image = streamed.image
                encoded = EncodedImage(visual[row : row + 1], (image.height, image.width), streamed.resized_size)
                predictions, _, _ = self._segment(pairs[streamed.index][1], encoded, return_attention=False)
                yield ImageResult(streamed.index, sources[streamed.index], image, predictions)

    def _expressions_error(self, index: int, item: tuple[ImageSource, list[str]]) -> str | None:
        """Why the expressions of ``item`` (number ``index``) cannot be segmented, in one line naming its
        image; None if they can."""
        source, texts = item
        try:
            check_expressions(texts, self.max_expressions)
        except ExpressionError as error:
            label = str(source) if isinstance(source, (str, os.PathLike)) else f"item {index}"
            return f"{label}: {error}"
        return None

    def set_encoded(self, encoded: EncodedImage) -> None:
        """Make ``encoded`` the image that the calls given no image segment."""
        self.encoded = encoded

    def set_image(self, image: ImageSource) -> None:
        """Encode ``image`` (a path, PIL image or H x W x 3 uint8 RGB array) and keep its features for the
        calls given no image (the convenience of SAM's predictor; the core calls take an EncodedImage)."""
        self.set_encoded(self.encode(image))

    def predict(self, text: str | Sequence[str], encoded: EncodedImage | None = None) -> Prediction | list[Prediction]:
        """Segment one expression (returns a Prediction) or several (returns a list) in ``encoded``
        (from :meth:`encode`; nothing of the predictor's changes), or in the image of :meth:`set_image`.

        ExpressionError for a blank expression or more than ``max_expressions`` of them.
        """
        texts = [text] if isinstance(text, str) else list(text)
        predictions, _, _ = self._segment(texts, self._image(encoded), return_attention=False)
        return predictions[0] if isinstance(text, str) else predictions

    @torch.no_grad()
    def predict_logits(self, text: str | Sequence[str], encoded: EncodedImage | None = None) -> torch.Tensor:
        """The mask logits of each expression, N x 4G x 4G for the image encoder's G x G grid (256 x 256 for
        the paper's models at S = 1024), before sigmoid and threshold. They cover the S x S input: the
        image's content is the top-left ``resized_size`` scaled by 4G / S, the rest is padding
        (``risam.data.transforms.logits_to_masks`` turns them into masks at the image's size)."""
        texts = [text] if isinstance(text, str) else list(text)
        check_expressions(texts, self.max_expressions)
        logits, _ = self._rows_logits(self._image(encoded), self.tokenize(texts, stacklevel=3), return_attention=False)
        return logits

    def predict_with_attention(
        self, text: str, encoded: EncodedImage | None = None
    ) -> tuple[Prediction, list[FusionOutput], torch.Tensor]:
        """One expression's prediction, every MA block's outputs (attention maps included) and its
        token ids (L), from a single pass, in ``encoded`` or the image of :meth:`set_image`."""
        predictions, attention, tokens = self._segment([text], self._image(encoded), return_attention=True)
        return predictions[0], attention, tokens[0]

    def _image(self, encoded: EncodedImage | None) -> EncodedImage:
        """``encoded``, else the image of :meth:`set_image`."""
        if encoded is not None:
            return encoded
        if self.encoded is None:
            raise RuntimeError("call set_image(image) first, or pass the EncodedImage of encode(image)")
        return self.encoded

    def _segment(
        self, texts: list[str], encoded: EncodedImage, return_attention: bool
    ) -> tuple[list[Prediction], list[FusionOutput], torch.Tensor]:
        """Predictions for ``texts`` (decoded ``expression_chunk`` at a time), the MA blocks' outputs of
        the last chunk when ``return_attention`` (asked for one expression), and the token ids, N x L."""
        check_expressions(texts, self.max_expressions)
        results: list[Prediction] = []
        attention: list[FusionOutput] = []
        token_chunks = []
        for start in range(0, len(texts), self.expression_chunk):
            chunk = texts[start : start + self.expression_chunk]
            tokens = self.tokenize(chunk, stacklevel=4)  # the warning points at the caller of predict
            predictions, attention = self._decode(chunk, tokens, encoded, return_attention)
            results.extend(predictions)
            token_chunks.append(tokens)
        return results, attention, torch.cat(token_chunks)

    @torch.no_grad()
    def _rows_logits(
        self, encoded: EncodedImage, tokens: torch.Tensor, return_attention: bool
    ) -> tuple[torch.Tensor, list[FusionOutput]]:
        """The logits of N expressions, N x 4G x 4G, from their token ids (N x L), and with
        ``return_attention`` the last expression's MA block outputs."""
        # Each expression runs through the text encoder and the head alone (batch 1): in bf16 (and, by a
        # few 1e-5 of a logit, in fp32) a kernel's rounding depends on the batch it runs in, so a batched
        # call would let the other expressions of the call move a mask's border pixels. Alone, a mask
        # depends only on its own expression and the image.
        attention: list[FusionOutput] = []
        rows_logits = []
        for row in tokens.to(self.device).split(1):
            features, padding = self.model.encode_text(row)
            if return_attention:
                logits, attention = self.model.decode(encoded.visual, features, padding, return_attention=True)
            else:
                logits = self.model.decode(encoded.visual, features, padding)
            rows_logits.append(logits)
        return torch.cat(rows_logits), attention

    def _decode(
        self, texts: list[str], tokens: torch.Tensor, encoded: EncodedImage, return_attention: bool
    ) -> tuple[list[Prediction], list[FusionOutput]]:
        """Predictions for one chunk of N ``texts`` with token ids ``tokens`` (N x L) in ``encoded``, and
        with ``return_attention`` every MA block's outputs."""
        logits, attention = self._rows_logits(encoded, tokens, return_attention)
        size = self.model.image_encoder.config.img_size
        masks, scores = logits_to_masks(logits, size, encoded.resized_size, encoded.original_size, self.threshold)
        rows = zip(texts, masks, scores, strict=True)
        return [Prediction(item, mask, float(score), mask_bbox(mask)) for item, mask, score in rows], attention

    def tokenize(self, texts: list[str], stacklevel: int = 2) -> torch.Tensor:
        """Token ids, N x L, warning about expressions longer than the model reads (they are truncated);
        the warning points ``stacklevel`` frames up (2: the caller of this method)."""
        encoder = self.model.text_encoder
        limit = encoder.config.max_words
        for item, length in zip(texts, encoder.token_counts(texts), strict=True):
            if length > limit:
                warnings.warn(
                    f"expression of {length} tokens truncated to the model's {limit}: {item[:60]!r}...",
                    stacklevel=stacklevel,
                )
        return encoder.tokenize(texts)
