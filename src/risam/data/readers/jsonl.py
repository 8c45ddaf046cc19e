"""Users' own data: ``refs.jsonl`` in the data root, one JSON object per line (docs/data.md, "Your own data").

A line is ``{"image": str, "sentences": [str, ...], "mask": ..., "split": "train" | "val" | "test"}``
with optional ``"height"`` and ``"width"`` (positive ints, both or neither); other keys are
ignored. Lines holding only whitespace are skipped; there are no comments (JSON has none). The
first line may start with a UTF-8 byte order mark.

- ``image``: the image file, relative to the image folder (the data root, or ``image_root``) or
  absolute. Lines naming the same path share one image. Without ``height`` and ``width`` the size
  is read from the image file's header (the stored pixels, EXIF orientation not applied, as
  training reads them); the pixels are not decoded.
- ``sentences``: a non-empty list of non-empty strings, each one expression referring to the
  line's mask.
- ``mask``: the object the sentences refer to, in the image's H x W pixels: COCO polygons (a list
  of flat ``[x1, y1, x2, y2, ...]`` lists), a COCO RLE dict (``{"size": [H, W], "counts": ...}``),
  the path of a PNG relative to the data root (or absolute) whose nonzero pixels are the object
  (grayscale, palette indices or RGB; no alpha channel), or ``null`` when the sentences refer to
  nothing in the image. Every mask is decoded once here: one that does not decode, does not
  match the image's size or covers no pixel is refused. A PNG becomes a compressed RLE, so
  :attr:`ReferSplit.segmentations` holds COCO segmentations whatever the line gave.

Ids are stable whichever split is read: a line's ``ref_id`` and its object's id are its line
number (1-based, as in error messages); images are numbered from 1 in order of first appearance
in the whole file, sentences from 1 in file order. ``objects_by_image`` lists, per image, the
objects of the split's lines on it. A split that no line names is an empty split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from risam.data.masks import AnnotationError, decode_segmentation, encode_mask
from risam.data.readers.base import SplitReader
from risam.data.readers.fields import checked_size, get_key, report
from risam.data.records import Expression, ImageRecord, ReferSplit
from risam.io.images import open_image_file
from risam.io.reading import read_lines

# What Pillow raises on a file it cannot read (UnidentifiedImageError is an OSError).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class JsonLinesReader(SplitReader):
    """``refs.jsonl`` (``spec.refs_file``) in the data root: one line per object, its sentences and its mask."""

    no_target_refs = True

    @property
    def path(self) -> Path:
        """The JSON lines file; the same for every split (each line names its split)."""
        return self.folder / self.spec.refs_file

    def annotation_files(self, split: str) -> tuple[Path, ...]:
        """The JSON lines file."""
        return (self.path,)

    def segmentation_file(self, split: str) -> Path:
        """The JSON lines file, whose lines hold the masks."""
        return self.path

    def layout(self) -> str:
        """The file and the keys of a line."""
        return (
            f"{self.path}, one JSON object per line with keys 'image', 'sentences', 'mask' and 'split' "
            "(see docs/data.md, 'Your own data')"
        )

    def read(self, split: str, image_dir: Path, problems: list[str] | None) -> ReferSplit:
        """The lines of ``split``: images (under ``image_dir``), sentences and masks (see the module docstring)."""
        image_ids: dict[Path, int] = {}
        first_line: dict[int, int] = {}  # image id: the first line of the split on it
        images: dict[int, ImageRecord] = {}
        expressions: list[Expression] = []
        segmentations: dict[int, Any] = {}
        objects_by_image: dict[int, list[int]] = {}
        sentence_count = 0
        for number, raw in enumerate(read_lines(self.path), start=1):
            where = f"{self.path} line {number}"
            try:
                entry = _parse(raw, where, first=number == 1)
                if entry is None:
                    continue
                line_split = _split(entry, self.spec.splits, where)
                image = Path(_file_name(get_key(entry, "image", where), "image", where))
                sentences = _sentences(entry, where)
                image_id = image_ids.setdefault(image, len(image_ids) + 1)
                sentence_count += len(sentences)
                if line_split != split:
                    continue
                record = images.get(image_id)
                stated = _stated_size(entry, where)
                if record is None:
                    height, width = stated or _header_size(image_dir / image, where)
                    record = ImageRecord(image_id, image_dir / image, height, width)
                elif stated is not None and stated != (record.height, record.width):
                    raise AnnotationError(
                        f"{where}: 'height' and 'width' are {stated[0]} and {stated[1]}, but the same image "
                        f"is {record.height}x{record.width} on line {first_line[image_id]}"
                    )
                segmentation = self._segmentation(get_key(entry, "mask", where), record, where)
            except AnnotationError as error:
                report(error, problems)
                continue
            first_line.setdefault(image_id, number)
            images[image_id] = record
            objects = objects_by_image.setdefault(image_id, [])
            if segmentation is not None:
                segmentations[number] = segmentation
                objects.append(number)
            first_sent_id = sentence_count - len(sentences) + 1
            expressions.extend(
                Expression(
                    sent_id=first_sent_id + index,
                    ref_id=number,
                    image_id=image_id,
                    sentence=sentence,
                    target_ids=() if segmentation is None else (number,),
                )
                for index, sentence in enumerate(sentences)
            )
        return self.split_record(split, images, expressions, segmentations, objects_by_image)

    def _segmentation(self, mask: Any, image: ImageRecord, where: str) -> list[Any] | dict[str, Any] | None:
        """The COCO segmentation of a line's ``mask`` (a PNG read as RLE), None for ``null``; checked by decoding."""
        if mask is None:
            return None
        if isinstance(mask, str):
            pixels = _png_mask(self.folder / _file_name(mask, "mask", where), image, where)
            segmentation: list[Any] | dict[str, Any] = encode_mask(pixels)
        elif isinstance(mask, (list, dict)):
            segmentation = mask
            pixels = decode_segmentation(mask, image.height, image.width, where=f"{where}: 'mask'")
        else:
            raise AnnotationError(
                f"{where}: 'mask' must be a list of polygons, an RLE dict, a PNG path or null, "
                f"got {type(mask).__name__}"
            )
        if not pixels.any():
            raise AnnotationError(
                f"{where}: 'mask' covers no pixel of the {image.height}x{image.width} image; "
                'sentences that refer to nothing take "mask": null'
            )
        return segmentation


def _parse(raw: bytes, where: str, first: bool) -> dict[str, Any] | None:
    """The JSON object on one line (bytes, newline included); None for a blank line."""
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{where}: not UTF-8 text ({error})") from error
    if not text.strip():
        return None
    try:
        entry = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        raise AnnotationError(f"{where}: not JSON ({error})") from error
    except RecursionError as error:
        raise AnnotationError(f"{where}: not JSON this reader reads (nested too deeply)") from error
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    return entry


def _refuse_constant(name: str) -> float:
    """``json.loads``'s hook for ``NaN`` and ``Infinity``, which Python accepts but JSON does not."""
    raise ValueError(f"{name} is not a JSON value")


def _text(value: Any, key: str, where: str) -> str:
    """``value``, which must be a non-empty string, the value of ``key``."""
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _file_name(value: Any, key: str, where: str) -> str:
    """``value``, the value of ``key``, a file's path: a non-empty string without newlines or control characters."""
    if not _text(value, key, where).isprintable():
        raise AnnotationError(f"{where}: {key!r} {value!r} holds a newline or control character; give a file's path")
    return value


def _split(entry: dict[str, Any], splits: tuple[str, ...], where: str) -> str:
    """The line's ``split``, one of ``splits``."""
    split = get_key(entry, "split", where)
    if split not in splits:
        raise AnnotationError(f"{where}: 'split' must be one of {', '.join(map(repr, splits))}, got {split!r}")
    return split


def _sentences(entry: dict[str, Any], where: str) -> list[str]:
    """The line's ``sentences``: a non-empty list of non-empty strings."""
    sentences = get_key(entry, "sentences", where)
    if not isinstance(sentences, list) or not sentences:
        raise AnnotationError(f"{where}: 'sentences' must be a non-empty list of strings, got {sentences!r}")
    return [_text(sentence, f"sentences[{index}]", where) for index, sentence in enumerate(sentences)]


def _stated_size(entry: dict[str, Any], where: str) -> tuple[int, int] | None:
    """(height, width) as the line states them, or None when it states neither."""
    stated = [key for key in ("height", "width") if key in entry]
    if not stated:
        return None
    if len(stated) == 1:
        raise AnnotationError(
            f"{where}: {stated[0]!r} without {({'height', 'width'} - set(stated)).pop()!r}; give both"
        )
    return checked_size(entry["height"], entry["width"], where)


def _header_size(path: Path, where: str) -> tuple[int, int]:
    """(height, width) of the image file ``path`` from its header, for a line without ``height`` and ``width``."""
    if not _is_file(path, "image", where):
        raise AnnotationError(
            f"{where}: 'image' {path} does not exist (its size is read from it when the line gives no "
            "'height' and 'width')"
        )
    try:
        with open_image_file(path) as image:
            width, height = image.size
    except PILLOW_ERRORS as error:
        raise AnnotationError(f"{where}: 'image' {path} is not an image Pillow can read ({error})") from error
    return checked_size(height, width, f"{where}: 'image' {path}")


def _is_file(path: Path, key: str, where: str) -> bool:
    """Whether ``path``, the value of ``key``, is a file; AnnotationError when the system cannot tell (a name
    too long, a loop of links)."""
    try:
        return path.is_file()
    except OSError as error:
        raise AnnotationError(f"{where}: {key!r} {str(path)[:200]}: {error.strerror}") from error


def _png_mask(path: Path, image: ImageRecord, where: str) -> np.ndarray:
    """The nonzero pixels of the PNG ``path`` (any channel, or the palette index), H x W bool.

    The PNG must have the image's size and no alpha channel (transparency or colour: which one
    would mark the object is ambiguous).
    """
    if not _is_file(path, "mask", where):
        raise AnnotationError(f"{where}: 'mask' {path} does not exist")
    try:
        with open_image_file(path) as png:
            if png.format != "PNG":
                raise AnnotationError(f"{where}: 'mask' {path} is a {png.format} file; masks must be PNG (lossless)")
            if "A" in png.getbands():
                raise AnnotationError(
                    f"{where}: 'mask' {path} has an alpha channel (mode {png.mode}); save it as grayscale, "
                    "palette or RGB, the object nonzero"
                )
            if png.size != (image.width, image.height):
                raise AnnotationError(
                    f"{where}: 'mask' {path} is {png.height}x{png.width} (height x width), but the image is "
                    f"{image.height}x{image.width}"
                )
            pixels = np.asarray(png)
    except AnnotationError:
        raise
    except PILLOW_ERRORS as error:
        raise AnnotationError(f"{where}: 'mask' {path} is not a PNG Pillow can read ({error})") from error
    return pixels.any(axis=2) if pixels.ndim == 3 else pixels != 0
