"""Dense pretraining of the tiny image encoder, the SAM stand-in: per-pixel labels the generator knows.

A linear read-out of the concatenated taps predicts, at every cell of the feature grid (its logits
upsampled bilinearly to the label grid): the kind (or background), and on object pixels the colour,
size and texture of the object and the position of its centre. Linear read-outs make the taps
themselves carry these properties, which is what the frozen RISAM head reads. The read-out is
dropped after pretraining.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from risam.pretrain.scenes import ATTRIBUTES, IGNORE, PretrainingSet, centre_maps

CLASSES = {"kind": 1 + len(ATTRIBUTES["kind"])}
CLASSES |= {name: len(ATTRIBUTES[name]) for name in ("colour", "size", "texture")}


class DenseReadout(nn.Module):
    """Taps (each B x C_i x F x F) -> per-cell logits of each attribute and the centre, at G x G."""

    def __init__(self, tap_dims: tuple[int, ...], label_grid: int) -> None:
        super().__init__()
        self.label_grid = label_grid
        self.linear = nn.Conv2d(sum(tap_dims), sum(CLASSES.values()) + 2, kernel_size=1)

    def forward(self, taps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Returns name -> B x classes x G x G logits, and ``centre`` -> B x 2 x G x G."""
        out = self.linear(torch.cat(taps, dim=1))
        out = F.interpolate(out, size=(self.label_grid,) * 2, mode="bilinear", align_corners=False)
        parts = out.split([*CLASSES.values(), 2], dim=1)
        return dict(zip([*CLASSES, "centre"], parts, strict=True))


def dense_losses(
    outputs: dict[str, torch.Tensor], data: PretrainingSet, image_rows: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Cross-entropy of every attribute (background only for the kind) and the L1 error of the centre."""
    losses = {
        name: F.cross_entropy(outputs[name].float(), data.labels[name][image_rows], ignore_index=IGNORE)
        for name in CLASSES
    }
    targets, valid = centre_maps(data, image_rows)
    error = (outputs["centre"].float() - targets).abs().sum(dim=1)
    losses["centre"] = error[valid].mean() * 10
    return losses


@torch.no_grad()
def dense_accuracy(
    encoder: nn.Module, readout: DenseReadout, data: PretrainingSet, image_rows: torch.Tensor, batch: int = 64
) -> dict[str, float]:
    """Accuracy of each attribute on object cells and the mean centre error in input pixels, over ``image_rows``."""
    correct = dict.fromkeys(CLASSES, 0)
    counted = dict.fromkeys(CLASSES, 0)
    centre_error, centre_count = 0.0, 0
    for start in range(0, len(image_rows), batch):
        rows = image_rows[start : start + batch]
        outputs = readout(encoder(data.images[rows].float()))
        for name in CLASSES:
            labels = data.labels[name][rows]
            on = labels > 0 if name == "kind" else labels != IGNORE
            correct[name] += int((outputs[name].argmax(1) == labels)[on].sum())
            counted[name] += int(on.sum())
        targets, valid = centre_maps(data, rows)
        error = (outputs["centre"] - targets).norm(dim=1)[valid]
        centre_error += float(error.sum()) * data.images.shape[-1]
        centre_count += int(valid.sum())
    scores = {f"{name}_accuracy": correct[name] / max(counted[name], 1) for name in CLASSES}
    scores["centre_error_px"] = centre_error / max(centre_count, 1)
    return scores


def cosine_lr(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then a cosine decay to 0 at ``steps``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def pretrain_image_encoder(
    encoder: nn.Module,
    tap_dims: tuple[int, ...],
    data: PretrainingSet,
    train_rows: torch.Tensor,
    held_out_rows: torch.Tensor,
    steps: int,
    batch_images: int = 32,
    lr: float = 1.5e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
    eval_every: int = 250,
) -> dict[str, float]:
    """Train ``encoder`` (in place) and a :class:`DenseReadout` for ``steps`` steps of ``batch_images`` images.

    Returns the held-out scores of :func:`dense_accuracy` at the end.
    """
    generator = torch.Generator().manual_seed(seed)
    readout = DenseReadout(tap_dims, data.labels["kind"].shape[-1])
    encoder.requires_grad_(True)
    parameters = [*encoder.parameters(), *readout.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.05)
    encoder.train()
    started = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=min(200, steps // 10 + 1))
        rows = train_rows[torch.randint(len(train_rows), (batch_images,), generator=generator)]
        losses = dense_losses(readout(encoder(data.images[rows].float())), data, rows)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            encoder.eval()
            scores = dense_accuracy(encoder, readout, data, held_out_rows)
            encoder.train()
            parts = " ".join(f"{name} {value:.3f}" for name, value in losses.items())
            shown = " ".join(f"{name} {value:.3f}" for name, value in scores.items())
            seconds = time.perf_counter() - started
            log(f"image step {step + 1}/{steps} ({seconds:.0f} s): loss {parts} | held out {shown}")
    encoder.eval()
    return dense_accuracy(encoder, readout, data, held_out_rows)
