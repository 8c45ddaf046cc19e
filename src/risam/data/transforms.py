"""SAM's preprocessing for images and masks together, and the mapping of logits back.

An image of H x W is resized so that its longest side is S (the encoder's input size),
keeping the aspect ratio (new side = int(side * S / max(H, W) + 0.5), as SAM computes it),
normalized with SAM's pixel mean and std, and zero-padded at the bottom and right to S x S.
A mask follows the same geometry (nearest-neighbour resize, zero padding). Predictions go
the other way: upsample to S x S, crop the padding, resize to H x W (SAM's postprocessing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after resizing the longest side of (height, width) to ``size``."""
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def preprocess_image(
    image: Image.Image, size: int, pixel_mean: Sequence[float], pixel_std: Sequence[float]
) -> tuple[torch.Tensor, tuple[int, int]]:
    """An RGB PIL image -> (3 x size x size normalized, padded tensor; (h, w) of the resized content)."""
    height, width = resized_shape(image.height, image.width, size)
    resized = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.float32)
    tensor = torch.from_numpy(resized).permute(2, 0, 1)
    mean = torch.tensor(pixel_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(pixel_std, dtype=torch.float32)[:, None, None]
    tensor = (tensor - mean) / std
    return F.pad(tensor, (0, size - width, 0, size - height)), (height, width)


def preprocess_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """An H x W bool mask -> size x size float tensor in the geometry of :func:`preprocess_image`."""
    height, width = resized_shape(mask.shape[0], mask.shape[1], size)
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
    tensor = torch.from_numpy(np.asarray(resized) > 127).float()
    return F.pad(tensor, (0, size - width, 0, size - height))


def postprocess_logits(
    logits: torch.Tensor, size: int, resized: tuple[int, int], original: tuple[int, int]
) -> torch.Tensor:
    """Mask logits of one sample, h' x w' (any scale of the padded input) -> H x W at ``original``.

    Bilinear upsampling to size x size, crop to the ``resized`` content, bilinear resize to
    the ``original`` (H, W). Threshold the sigmoid of the result for a mask.
    """
    full = F.interpolate(logits[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    content = full[..., : resized[0], : resized[1]]
    return F.interpolate(content, size=original, mode="bilinear", align_corners=False)[0, 0]
