"""What ``risam segment`` writes: per expression a mask PNG and an overlay JPEG, and ``predictions.json``.

- ``{index:02d}_mask.png``: the mask at the image's full resolution, a 1-bit PNG (white inside).
- ``{index:02d}_overlay.jpg``: the mask over the image, for looking at: scaled down so that its long
  side is at most :data:`OVERLAY_MAX_SIDE` pixels (the record's ``overlay_size`` says at what size), a
  JPEG of quality :data:`OVERLAY_QUALITY` without chroma subsampling. On a 12 MP photo a 2048-pixel
  overlay takes 0.03 s to write as JPEG (0.25 MB) against 0.32 s as PNG (3.5 MB): the overlays were
  most of the writing (``benchmarks/postprocess_scaling.py``). The mask PNG is the exact result.
- ``predictions.json``: the image and checkpoint labels, the frozen encoders' precision (``fp32`` or
  ``bf16``) and the sigmoid threshold (when the writer is told them), the image size and, per expression, its text,
  score, bbox (full-resolution pixels, inclusive), compressed COCO RLE of the full-resolution mask and
  the two file names. Texts are valid UTF-8: arguments that were not (lone surrogates) have the bad
  bytes replaced by U+FFFD.

Every file is written atomically (:func:`risam.io.files.atomic_path`): a reader sees the old file or the
complete new one, created with the process umask. A folder's earlier ``predictions.json`` is deleted
before the first new file is written, the folder is synced once for all masks and overlays, and then
``predictions.json`` is written last: when it is there, so are the files it lists, and none of them was
replaced by a write that stopped midway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from risam.data.masks import encode_mask
from risam.drawing.viz import overlay_mask, shrink_to
from risam.io.files import atomic_write_text, fsync_path
from risam.io.images import atomic_save_image
from risam.predictor import Prediction

PREDICTIONS_FILE = "predictions.json"
OVERLAY_MAX_SIDE = 2048
OVERLAY_QUALITY = 90
WRITERS = 2  # expressions written at once


def valid_utf8(text: str) -> str:
    """``text`` with what cannot be written as UTF-8 replaced by U+FFFD: bytes that a non-UTF-8 command
    line smuggled in as lone surrogates (``surrogateescape``), and any other lone surrogate."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # lone U+DC80..U+DCFF: back to the bytes they stand for
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")  # other lone surrogates: bytes that are not UTF-8
    return raw.decode("utf-8", "replace")


def save_png(picture: Image.Image, path: Path) -> None:
    """Save ``picture`` as a PNG at ``path`` atomically (the folder's sync left to the caller)."""
    atomic_save_image(path, picture, "PNG", sync_folder=False, compress_level=1)


def save_overlay(picture: Image.Image, path: Path) -> None:
    """Save the RGB ``picture`` as a JPEG (quality :data:`OVERLAY_QUALITY`, 4:4:4) at ``path`` atomically
    (the folder's sync left to the caller)."""
    atomic_save_image(path, picture, "JPEG", sync_folder=False, quality=OVERLAY_QUALITY, subsampling=0)


class SegmentationWriter:
    """Writes the files of one image's predictions as they come, chunk by chunk, so that only the masks of
    the chunk being written are held: :meth:`add` each chunk, then :meth:`finish` writes ``predictions.json``.

    The image (RGB, W x H) is shrunk once for all overlays. ``writers`` expressions are written at a time
    (PNG encoding runs outside the GIL); 1 writes them in the calling thread, for a caller that is itself
    a background writer. An earlier ``predictions.json`` in ``output_dir`` is deleted at once.
    """

    def __init__(self, image: Image.Image, output_dir: Path, writers: int = WRITERS) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / PREDICTIONS_FILE).unlink(missing_ok=True)
        self.output_dir = output_dir
        self.writers = writers
        self.image_size = [image.width, image.height]
        self.shown = shrink_to(image, OVERLAY_MAX_SIDE)
        self.records: list[dict[str, Any]] = []

    def add(self, predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
        """Write the mask PNGs and overlay JPEGs of ``predictions`` (masks H x W bool), numbered after those
        already added; returns their records."""
        first = len(self.records)
        numbers = range(first, first + len(predictions))
        if self.writers == 1:
            records = [self._write(number, prediction) for number, prediction in zip(numbers, predictions, strict=True)]
        else:
            with ThreadPoolExecutor(max_workers=self.writers) as pool:
                records = list(pool.map(self._write, numbers, predictions))
        self.records.extend(records)
        return records

    def _write(self, index: int, prediction: Prediction) -> dict[str, Any]:
        mask_name, overlay_name = f"{index:02d}_mask.png", f"{index:02d}_overlay.jpg"
        save_png(Image.fromarray(prediction.mask), self.output_dir / mask_name)
        overlay = overlay_mask(self.shown, prediction.mask)
        save_overlay(overlay, self.output_dir / overlay_name)
        return {
            "text": valid_utf8(prediction.text),
            "score": prediction.score,
            "bbox": prediction.bbox,
            "rle": encode_mask(prediction.mask),
            "mask": mask_name,
            "overlay": overlay_name,
            "overlay_size": [overlay.width, overlay.height],
        }

    def finish(
        self, image_label: str, checkpoint_label: str, precision: str | None = None, threshold: float | None = None
    ) -> None:
        """Write ``predictions.json``: the labels, the frozen encoders' ``precision`` (when given: "fp32"
        or "bf16"), the sigmoid ``threshold`` (when given), the image size and every record added."""
        summary = {
            "image": valid_utf8(image_label),
            "checkpoint": valid_utf8(checkpoint_label),
            **({"precision": precision} if precision is not None else {}),
            **({"threshold": threshold} if threshold is not None else {}),
            "image_size": self.image_size,
            "overlay_max_side": OVERLAY_MAX_SIDE,
            "predictions": self.records,
        }
        text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        if os.name == "posix":
            fsync_path(self.output_dir)  # the masks' and overlays' renames, before the record that lists them
        atomic_write_text(self.output_dir / PREDICTIONS_FILE, text)


def write_segmentation(
    image: Image.Image,
    predictions: Sequence[Prediction],
    output_dir: Path,
    image_label: str,
    checkpoint_label: str,
) -> list[dict[str, Any]]:
    """Write the masks, overlays and ``predictions.json`` of ``predictions`` (masks H x W bool, of the
    RGB ``image`` of W x H) into ``output_dir`` (created if missing) at once; returns the records that
    ``predictions.json`` holds. :class:`SegmentationWriter` writes them chunk by chunk instead."""
    writer = SegmentationWriter(image, output_dir)
    writer.add(predictions)
    writer.finish(image_label, checkpoint_label)
    return writer.records
