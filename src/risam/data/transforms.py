"""SAM's preprocessing for images and masks together, and the mapping of logits back.

An image of H x W is resized so that its longest side is S (the encoder's input size),
keeping the aspect ratio (new side = int(side * S / max(H, W) + 0.5), as SAM computes it),
normalized with SAM's pixel mean and std, and zero-padded at the bottom and right to S x S.
A mask follows the same geometry (nearest-neighbour resize, zero padding). Predictions go
the other way: upsample to S x S, crop the padding, resize to H x W (SAM's postprocessing);
:func:`logits_to_masks` does this for boolean masks in bands of rows, never holding an H x W float map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

BAND_ELEMENTS = 1 << 18  # output pixels per band of rows in logits_to_masks: 1 MiB of float32, cache-sized


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after resizing the longest side of (height, width) to ``size``; a side is at least 1 pixel (a
    1 x 3000 image would otherwise shrink to nothing)."""
    scale = size / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def preprocess_image(
    image: Image.Image, size: int, pixel_mean: Sequence[float], pixel_std: Sequence[float]
) -> tuple[torch.Tensor, tuple[int, int]]:
    """An RGB PIL image -> (3 x size x size normalized, padded tensor; (h, w) of the resized content)."""
    height, width = resized_shape(image.height, image.width, size)
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy of a large RGB image
    resized = np.asarray(rgb.resize((width, height), Image.BILINEAR), dtype=np.float32)
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


def logit_threshold(threshold: float) -> float:
    """The logit x with sigmoid(x) = ``threshold``, so that p > threshold <=> logit > x.

    A threshold at or below 0 gives -inf (every pixel is in the mask), one at or above 1 gives +inf (none is).
    """
    if math.isnan(threshold):
        raise ValueError("threshold is NaN")
    if threshold <= 0:
        return -math.inf
    if threshold >= 1:
        return math.inf
    return math.log(threshold / (1 - threshold))


def _linear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear resize (align_corners=False) along one axis of ``in_size`` -> ``out_size``:
    out[j] = w0[j] * x[i0[j]] + w1[j] * x[i1[j]]. Returns (i0, i1, w0, w1), each of ``out_size``,
    computed in float32 as PyTorch's CPU kernel does."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = np.maximum(scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    first = source.astype(np.int64)
    after = np.clip(source - first, 0, 1, dtype=np.float32)
    return first, np.minimum(first + 1, in_size - 1), 1 - after, after


def logits_to_masks(
    logits: torch.Tensor,
    size: int,
    resized: tuple[int, int],
    original: tuple[int, int],
    threshold: float,
    band_elements: int = BAND_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask logits of N samples of one image, N x h' x w' (any scale of the padded input) -> (masks,
    N x H x W bool at ``original``; scores, N float64: the mean sigmoid probability inside each mask,
    0 for an empty mask).

    SAM's postprocessing geometry (bilinear upsampling to S x S, crop to the ``resized`` content,
    bilinear resize to ``original``): the mask equals ``sigmoid(upsampled logits) > threshold``
    except at pixels within float rounding of the threshold (see :func:`logit_threshold` for
    thresholds outside (0, 1)). Only the N x S x S upsampling is done whole; the final bilinear
    resize to (H, W) is separable (along rows first, then across them, as PyTorch's kernel computes
    it) and runs on bands of about ``band_elements`` output pixels of one sample at a time,
    thresholded in logit space band by band, so memory beyond the boolean masks stays bounded
    whatever N and H x W are. The bands run in NumPy on one thread: small operations that do not
    compete with PyTorch's thread pool (which other requests of a server may be using).
    """
    with torch.no_grad():
        full = F.interpolate(logits[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    content = full[:, 0, : resized[0], : resized[1]].cpu().numpy()
    height, width = original
    rows0, rows1, top, bottom = _linear_weights(resized[0], height)
    cols0, cols1, left, right = _linear_weights(resized[1], width)
    top, bottom = top[:, None], bottom[:, None]
    cut = np.float32(logit_threshold(threshold))
    masks = np.empty((content.shape[0], height, width), dtype=bool)
    scores = np.zeros(content.shape[0], dtype=np.float64)
    step = max(1, band_elements // width)
    for sample, (plane, mask) in enumerate(zip(content, masks, strict=True)):
        excess, pixels = 0.0, 0  # the sum of p - t over the mask's pixels; their count
        for start in range(0, height, step):
            band = slice(start, min(start + step, height))
            needed = np.unique(np.concatenate((rows0[band], rows1[band])))  # sorted source rows of the band
            source = plane[needed]
            horizontal = source[:, cols0] * left
            horizontal += source[:, cols1] * right  # len(needed) x W
            values = horizontal[np.searchsorted(needed, rows0[band])] * top[band]
            values += horizontal[np.searchsorted(needed, rows1[band])] * bottom[band]
            np.greater(values, cut, out=mask[band])
            pixels += int(np.count_nonzero(mask[band]))
            excess += _sum_above(values, threshold)
        if pixels:
            scores[sample] = excess / pixels + threshold
    return masks, scores


def _sum_above(values: np.ndarray, threshold: float) -> float:
    """The sum of max(sigmoid(v) - threshold, 0) over float32 ``values`` (overwritten): the sum of p - t
    over the pixels with p > t, without masked indexing."""
    with np.errstate(over="ignore"):  # exp(-v) overflows to inf for very negative v: sigmoid 0, as it should
        np.negative(values, out=values)
        np.exp(values, out=values)
    values += 1
    np.reciprocal(values, out=values)
    values -= np.float32(threshold)
    np.maximum(values, 0, out=values)
    return float(values.sum())
