"""Training loss (paper Sec. 3.5, Eq. 10-12): 0.5 * focal + 0.5 * dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Eq. 10, the binary focal loss averaged over every pixel of the batch.

    With p_t the probability given to the true class of a pixel (p for foreground pixels,
    1 - p for background ones), the pixel's loss is -(1 - p_t)^gamma * log(p_t). No class
    weight alpha: the paper uses none.

    logits, target: B x H x W (target in {0, 1}). Returns a scalar.
    """
    target = target.to(logits.dtype)
    log_p_t = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = log_p_t.exp()
    return (-((1.0 - p_t) ** gamma) * log_p_t).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Eq. 11 per sample, averaged over the batch: 1 - (2 |P ∩ T| + s) / (|P| + |T| + s).

    |.| sums probabilities over pixels. The smoothing term s (1 by default) keeps a sample
    with an empty target defined: predicting nothing for it costs 0.

    logits, target: B x H x W. Returns a scalar.
    """
    probs = torch.sigmoid(logits).flatten(1)
    target = target.to(probs.dtype).flatten(1)
    intersection = (probs * target).sum(1)
    total = probs.sum(1) + target.sum(1)
    return (1.0 - (2.0 * intersection + smooth) / (total + smooth)).mean()


def risam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    focal_weight: float = 0.5,
    dice_weight: float = 0.5,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Eq. 12: focal_weight * focal + dice_weight * dice. logits, target: B x H x W."""
    return focal_weight * focal_loss(logits, target, gamma) + dice_weight * dice_loss(logits, target)
