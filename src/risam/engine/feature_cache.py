"""Frozen-encoder outputs computed once per image and per sentence, for head-only training.

The paper trains only the head on frozen SAM and CLIP encoders, so their outputs depend on the
image and the sentence alone. With small encoders (``risam_tiny``) all of them fit in memory:
the image encoder runs once per training image and the text encoder once per sentence, and every
training step runs the head only. Paper-sized encoders (ViT-H taps are 3 x 1280 x 64 x 64 floats
per image) don't fit, so the cache is a config switch (``train.cache_features``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from risam.data.dataset import ReferDataset
from risam.data.transforms import preprocess_mask
from risam.modeling.model import RISAM


@dataclass
class CachedBatch:
    """B sentences over N distinct images, with the frozen encoders' outputs instead of pixels and tokens.

    taps: the image encoder's outputs for N images, per tap N x C_i x F x F, then any high-resolution maps
    (N x C_8 x 2F x 2F, N x C_4 x 4F x 4F). image_index: B. text: B x L x C'. padding: B x L (True at padding).
    masks: B x S x S float targets in the padded input geometry.
    """

    taps: list[torch.Tensor]
    image_index: torch.Tensor
    text: torch.Tensor
    padding: torch.Tensor
    masks: torch.Tensor

    def to(self, device: torch.device | str) -> CachedBatch:
        """The tensors moved to ``device``."""
        return CachedBatch(
            taps=[tap.to(device) for tap in self.taps],
            image_index=self.image_index.to(device),
            text=self.text.to(device),
            padding=self.padding.to(device),
            masks=self.masks.to(device),
        )


class FeatureCache:
    """The frozen encoders' outputs for every image and sentence of ``dataset``, and its targets.

    Built once (:meth:`build`); :meth:`batch` then assembles a :class:`CachedBatch` for dataset
    indices as a batch sampler yields them.
    """

    def __init__(
        self,
        image_row: dict[int, int],
        taps: list[torch.Tensor],
        sentence_image: list[int],
        text: torch.Tensor,
        padding: torch.Tensor,
        masks: torch.Tensor,
    ) -> None:
        self.image_row = image_row
        self.taps = taps
        self.sentence_image = sentence_image
        self.text = text
        self.padding = padding
        self.masks = masks

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: RISAM, dataset: ReferDataset, images_per_batch: int = 64, progress: bool = False
    ) -> FeatureCache:
        """Run both frozen encoders of ``model`` over ``dataset`` once."""
        expressions = dataset.split.expressions
        image_ids = list(dict.fromkeys(expression.image_id for expression in expressions))
        first_sentence = {}
        for index, expression in enumerate(expressions):
            first_sentence.setdefault(expression.image_id, index)
        device = next(model.parameters()).device
        taps: list[list[torch.Tensor]] = []
        for start in tqdm(
            range(0, len(image_ids), images_per_batch), desc="cache image features", unit="batch", disable=not progress
        ):
            chunk = [first_sentence[image_id] for image_id in image_ids[start : start + images_per_batch]]
            images = dataset.__getitems__(chunk).images.to(device)
            taps.append([tap.cpu() for tap in model.image_taps(images)])
        texts, paddings = [], []
        for start in range(0, len(expressions), 512):
            tokens = dataset.tokenize([expression.sentence for expression in expressions[start : start + 512]])
            text, padding = model.encode_text(tokens.to(device))
            texts.append(text.cpu())
            paddings.append(padding.cpu())
        masks = torch.stack(
            [preprocess_mask(dataset.split.target_mask(expression), dataset.img_size) > 0 for expression in expressions]
        )
        return cls(
            image_row={image_id: row for row, image_id in enumerate(image_ids)},
            taps=[torch.cat(parts) for parts in zip(*taps, strict=True)],
            sentence_image=[expression.image_id for expression in expressions],
            text=torch.cat(texts),
            padding=torch.cat(paddings),
            masks=masks,
        )

    def batch(self, indices: Sequence[int]) -> CachedBatch:
        """The batch of dataset ``indices``; each distinct image's taps appear once."""
        image_ids = list(dict.fromkeys(self.sentence_image[index] for index in indices))
        position = {image_id: column for column, image_id in enumerate(image_ids)}
        rows = torch.tensor([self.image_row[image_id] for image_id in image_ids])
        index = torch.tensor(list(indices))
        return CachedBatch(
            taps=[tap[rows] for tap in self.taps],
            image_index=torch.tensor([position[self.sentence_image[i]] for i in indices]),
            text=self.text[index],
            padding=self.padding[index],
            masks=self.masks[index].float(),
        )
