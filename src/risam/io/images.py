"""Image files in and out: the images users really send, dataset files, and the pictures risam writes.

:func:`load_image` reads what users send (paths, PIL images, numpy arrays, in any common mode): every image
becomes an RGB PIL image in its displayed orientation (EXIF rotation applied). Problems raise
:class:`ImageInputError` with a message that names the input and what would be right; no input leaves a
traceback from deep inside Pillow. :func:`open_image_file` and :func:`read_rgb_image` read files as stored
(annotation masks, dataset images), leaving the wording of errors to the caller; :func:`atomic_save_image`
writes a picture atomically.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from risam.errors import InputError
from risam.io.files import atomic_path

MAX_PIXELS = 50_000_000


class ImageInputError(InputError):
    """An image cannot be used; the message says why and what is accepted."""


ImageSource = str | os.PathLike | Image.Image | np.ndarray


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS, name: str | None = None) -> Image.Image:
    """An RGB image from a path, a PIL image or an H x W x 3 (or H x W) uint8 array.

    Paths are checked against ``max_pixels`` from the header, before the pixels are decoded
    (a header declaring a decompression bomb is refused the same way). 16-bit images are
    scaled from their full range (0-65535) to 8 bits, whatever values they hold; alpha is
    dropped (composited on white), CMYK and palette images are converted, EXIF orientation
    is applied. ``name`` names the input in errors (defaults to the path).
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, name or "the array")
    if isinstance(source, Image.Image):
        label = name or "the image"
        _check_size(source, label, max_pixels)
        try:
            return _to_rgb(ImageOps.exif_transpose(source), label)
        except (OSError, SyntaxError, ValueError) as error:  # Pillow parses the EXIF bytes the image carries
            raise ImageInputError(f"{label}: its EXIF data is damaged ({error})") from error
    path = Path(source)
    label = name or str(path)
    if path.is_dir():
        raise ImageInputError(f"{label}: is a folder, not an image file")
    if not path.exists():
        raise ImageInputError(f"{label}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image_file = Image.open(path)
    except PermissionError as error:
        raise ImageInputError(f"{label}: cannot read the file (permission denied)") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError(
            f"{label}: the header declares more pixels than Pillow decodes safely, over the limit of "
            f"{max_pixels:,} pixels (a decompression bomb, or an image too large to segment)"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageInputError(f"{label}: not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, GIF)") from error
    except OSError as error:
        if error.errno is not None:
            raise ImageInputError(f"{label}: cannot read the file ({error.strerror})") from error
        raise ImageInputError(f"{label}: the image data is damaged or truncated ({error})") from error
    except (SyntaxError, ValueError) as error:
        raise ImageInputError(f"{label}: the image data is damaged or truncated ({error})") from error
    try:
        with image_file as image:
            _check_size(image, label, max_pixels)
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image), label)
    except ImageInputError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"{label}: the image data is damaged or truncated ({error})") from error
    except MemoryError as error:  # a chunk length of gigabytes in a small file: Pillow asks for that much at once
        raise ImageInputError(f"{label}: the image data is damaged (a chunk declares more bytes than fit)") from error


def atomic_save_image(
    path: str | os.PathLike, image: Image.Image, format: str, sync_folder: bool = True, **options: Any
) -> Path:
    """Write the PIL ``image`` (any size and mode ``format`` accepts) to ``path`` atomically; returns ``path``.

    ``format`` is Pillow's format name (``"PNG"``, ``"JPEG"``, ...) and ``options`` its save options
    (``compress_level=1``, ``quality=90``, ...). The file goes through :func:`risam.io.files.atomic_path`:
    readers see the old file or the complete new one, the permissions follow the user's umask, and the
    missing parent folders are created. ``sync_folder`` as for :func:`~risam.io.files.atomic_path`.
    """
    path = Path(path)
    with atomic_path(path, sync_folder=sync_folder) as temporary:
        image.save(temporary, format=format, **options)
    return path


@contextlib.contextmanager
def open_image_file(path: str | os.PathLike) -> Iterator[Image.Image]:
    """The image file ``path`` as Pillow opens it, for the block: header read (size, mode, ``format``), pixels
    decoded on first use, in the file's own mode and orientation; the file is closed when the block ends.

    A header declaring more pixels than Pillow decodes safely raises ``Image.DecompressionBombWarning`` (as an
    error) or ``Image.DecompressionBombError``; Pillow's other errors (``OSError``, ``SyntaxError``,
    ``ValueError``) come as they are.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            yield image


def read_rgb_image(path: str | os.PathLike) -> Image.Image:
    """The image file ``path`` decoded and converted to RGB as it is stored: no size limit, no EXIF rotation
    (dataset images, whose annotations refer to the stored pixels). Pillow's errors come as they are."""
    with Image.open(path) as image:
        return image.convert("RGB")


def _check_size(image: Image.Image, label: str, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageInputError(f"{label}: the image is empty ({width}x{height})")
    if width * height > max_pixels:
        raise ImageInputError(
            f"{label}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} pixels"
        )


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float32)
        return Image.fromarray((pixels * (255 / 65535)).round().clip(0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        return Image.fromarray((pixels.clip(0, 1) * 255).round().astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageInputError(f"{label}: image mode {image.mode!r} cannot be converted to RGB") from error


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ImageInputError(
            f"{label}: expected an H x W x 3 uint8 RGB array (or H x W grayscale), got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageInputError(f"{label}: the array is empty ({array.shape})")
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)), label)
