"""A torch Dataset over one split: one sample per sentence, batches that share images.

``dataset[i]`` is one sentence. A DataLoader with a batch sampler calls
:meth:`ReferDataset.__getitems__` with a whole batch of indices: each distinct image is read
and preprocessed once and ``image_index`` maps every sentence to its image, so the model's
image encoder also runs once per image (``RISAM.forward(images, tokens, image_index)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from risam.data.masks import AnnotationError
from risam.data.records import ImageRecord, ReferSplit
from risam.data.transforms import preprocess_image, preprocess_mask
from risam.io.images import read_rgb_image

Tokenizer = Callable[[Sequence[str]], torch.Tensor]


@dataclass
class ReferBatch:
    """A batch of B sentences over N distinct images.

    images: N x 3 x S x S, SAM-normalized and padded. image_index: B, the image of each
    sentence. tokens: B x L. masks: B x S x S targets in the padded geometry (float 0/1).
    resized_sizes / original_sizes: per image, (h, w) of the resized content and of the
    original image. original_masks: per sentence, the H x W bool target at the original
    resolution (only when the dataset keeps them, for evaluation). no_target: B bool.
    """

    images: torch.Tensor
    image_index: torch.Tensor
    tokens: torch.Tensor
    masks: torch.Tensor
    no_target: torch.Tensor
    sent_ids: list[int]
    image_ids: list[int]
    resized_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]
    original_masks: list[np.ndarray] = field(default_factory=list)

    def to(self, device: torch.device | str) -> ReferBatch:
        """The tensors moved to ``device`` (non-blocking where possible)."""
        move = {"non_blocking": True}
        return ReferBatch(
            images=self.images.to(device, **move),
            image_index=self.image_index.to(device, **move),
            tokens=self.tokens.to(device, **move),
            masks=self.masks.to(device, **move),
            no_target=self.no_target.to(device, **move),
            sent_ids=self.sent_ids,
            image_ids=self.image_ids,
            resized_sizes=self.resized_sizes,
            original_sizes=self.original_sizes,
            original_masks=self.original_masks,
        )


def read_image(record: ImageRecord) -> Image.Image:
    """The RGB image of ``record``; its size must be the annotated one (names the file otherwise)."""
    if not record.path.is_file():
        raise FileNotFoundError(f"image {record.image_id} not found: {record.path}")
    rgb = read_rgb_image(record.path)
    if (rgb.height, rgb.width) != (record.height, record.width):
        raise AnnotationError(
            f"{record.path} is {rgb.height}x{rgb.width} (height x width), but the annotations say "
            f"{record.height}x{record.width}"
        )
    return rgb


def identity_collate(batch: ReferBatch) -> ReferBatch:
    """``collate_fn`` for DataLoaders over :class:`ReferDataset`: batches come assembled."""
    return batch


class ReferDataset(Dataset):
    """Sentences of a :class:`ReferSplit`, preprocessed for a model of input size ``img_size``.

    tokenize: turns sentences into B x L token ids (``model.text_encoder.tokenize``).
    keep_original_masks: also return the targets at original resolution (for evaluation).
    """

    def __init__(
        self,
        split: ReferSplit,
        img_size: int,
        tokenize: Tokenizer,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        keep_original_masks: bool = False,
    ) -> None:
        self.split = split
        self.img_size = img_size
        self.tokenize = tokenize
        self.pixel_mean = tuple(pixel_mean)
        self.pixel_std = tuple(pixel_std)
        self.keep_original_masks = keep_original_masks

    @property
    def image_ids(self) -> list[int]:
        """The image of every sample, for :class:`GroupedBatchSampler`."""
        return [expression.image_id for expression in self.split.expressions]

    def __len__(self) -> int:
        return len(self.split.expressions)

    def __getitem__(self, index: int) -> ReferBatch:
        """Sample ``index`` as a batch of one."""
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> ReferBatch:
        """The batch of ``indices``; each distinct image is read and preprocessed once."""
        expressions = [self.split.expressions[i] for i in indices]
        image_ids = list(dict.fromkeys(e.image_id for e in expressions))
        position = {image_id: i for i, image_id in enumerate(image_ids)}
        images, resized, original = [], [], []
        for image_id in image_ids:
            record = self.split.images[image_id]
            tensor, content = preprocess_image(read_image(record), self.img_size, self.pixel_mean, self.pixel_std)
            images.append(tensor)
            resized.append(content)
            original.append((record.height, record.width))
        masks = [self.split.target_mask(e) for e in expressions]
        return ReferBatch(
            images=torch.stack(images),
            image_index=torch.tensor([position[e.image_id] for e in expressions]),
            tokens=self.tokenize([e.sentence for e in expressions]),
            masks=torch.stack([preprocess_mask(m, self.img_size) for m in masks]),
            no_target=torch.tensor([e.no_target for e in expressions]),
            sent_ids=[e.sent_id for e in expressions],
            image_ids=image_ids,
            resized_sizes=resized,
            original_sizes=original,
            original_masks=masks if self.keep_original_masks else [],
        )
