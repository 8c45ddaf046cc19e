"""Images read and preprocessed in DataLoader workers while the encoder runs (``segment_many``).

Each item is read (:func:`risam.io.images.load_image`) and resized, normalised and padded for the
image encoder (:func:`risam.data.transforms.preprocess_image`) in a worker process. An image that
cannot be used comes back as its error's one line instead of a tensor, so one bad file among
thousands is reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from risam.data.transforms import preprocess_image
from risam.errors import InputError, error_line
from risam.io.images import ImageSource, load_image


@dataclass
class StreamedImage:
    """One item as a worker prepared it: its ``index`` in the input; on success the RGB ``image``, its
    encoder input ``tensor`` (3 x S x S) and the (h, w) of its content there (``resized_size``); on
    failure ``error``, one line naming the image and why."""

    index: int
    image: Image.Image | None = None
    tensor: torch.Tensor | None = None
    resized_size: tuple[int, int] | None = None
    error: str | None = None


@dataclass(frozen=True)
class EncoderInput:
    """What the image encoder takes: the input side S, the normalisation and the largest image accepted."""

    img_size: int
    pixel_mean: tuple[float, ...]
    pixel_std: tuple[float, ...]
    max_pixels: int


class ImageStream(Dataset):
    """The images of ``sources`` (paths, PIL images or arrays) prepared for ``encoder_input``, by index."""

    def __init__(self, sources: Sequence[ImageSource], encoder_input: EncoderInput) -> None:
        self.sources = sources
        self.encoder_input = encoder_input

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> StreamedImage:
        config = self.encoder_input
        try:
            image = load_image(self.sources[index], max_pixels=config.max_pixels)
        except (InputError, OSError) as error:
            return StreamedImage(index, error=error_line(error, self.sources[index]))
        tensor, resized = preprocess_image(image, config.img_size, config.pixel_mean, config.pixel_std)
        return StreamedImage(index, image=image, tensor=tensor, resized_size=resized)


def stream_images(
    sources: Sequence[ImageSource], encoder_input: EncoderInput, batch_size: int, num_workers: int
) -> DataLoader:
    """Batches (lists) of up to ``batch_size`` :class:`StreamedImage`, in input order, prepared by
    ``num_workers`` worker processes (0: in this process), at most two batches per worker ahead."""
    return DataLoader(
        ImageStream(sources, encoder_input),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=list,
        prefetch_factor=2 if num_workers else None,
        persistent_workers=False,
    )
