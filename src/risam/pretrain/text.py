"""Contrastive pretraining of the tiny text encoder, the CLIP stand-in, against the frozen image encoder.

As in LiT ("locked image tuning"), the image side is frozen: each object's feature is the mean of
the concatenated taps over its mask, computed once. The text encoder learns to map a sentence to
the feature of the object it refers to, against every other object in the batch, those of the same
image included (the hard negatives). Two sentence features are aligned: the end token's row (CLIP's
pooled feature) and the mean of the word rows, so that the per-token features RISAM reads carry
meaning too. A linear map of the object features into the text space and the temperature are
trained with it and dropped afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from risam.modeling.text_encoder import ClipTextEncoder
from risam.pretrain.image import cosine_lr
from risam.pretrain.scenes import PretrainingSet


@torch.no_grad()
def object_features(encoder: nn.Module, data: PretrainingSet, batch: int = 64) -> torch.Tensor:
    """Each object's mean concatenated tap feature over its mask: M x sum(C_i)."""
    encoder.eval()
    features = []
    for start in range(0, len(data.images), batch):
        taps = torch.cat(encoder(data.images[start : start + batch].float()), dim=1)
        rows = torch.nonzero((data.object_image >= start) & (data.object_image < start + batch)).flatten()
        weights = data.object_masks[rows]
        pooled = torch.einsum("mhw,mchw->mc", weights, taps[data.object_image[rows] - start])
        features.append(pooled / weights.sum(dim=(1, 2)).clamp(min=1e-6)[:, None])
    return torch.cat(features)


def sentence_features(text_encoder: ClipTextEncoder, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(end-token rows, mean of the word rows), each B x C', of ``tokens`` (B x L)."""
    features, padding = text_encoder(tokens)
    end = features[torch.arange(len(tokens)), tokens.argmax(dim=1)]
    words = (~padding).float()
    words[:, 0] = 0
    mean = (features * words[..., None]).sum(1) / words.sum(1, keepdim=True).clamp(min=1)
    return end, mean


class ObjectAlignment(nn.Module):
    """Object features -> the text space, and the contrastive temperature (CLIP's initial 1/0.07)."""

    def __init__(self, object_dim: int, text_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(object_dim, text_dim)
        self.log_scale = nn.Parameter(torch.tensor(2.659))

    def logits(self, sentences: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
        """B x C' sentences, M x D objects -> B x M scaled cosine similarities."""
        scale = self.log_scale.clamp(max=4.6).exp()
        return scale * F.normalize(sentences, dim=-1) @ F.normalize(self.project(objects), dim=-1).T


def pretrain_text_encoder(
    text_encoder: ClipTextEncoder,
    objects: torch.Tensor,
    data: PretrainingSet,
    train_images: torch.Tensor,
    held_out_images: torch.Tensor,
    steps: int,
    batch_images: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
    eval_every: int = 500,
) -> dict[str, float]:
    """Train ``text_encoder`` (in place) for ``steps`` steps; each step takes every sentence and object of
    ``batch_images`` images. Returns the held-out share of sentences whose best-scoring object of their
    own image is their target (``own_image_accuracy``) and the same among all objects of the held-out
    batch (``batch_accuracy``)."""
    generator = torch.Generator().manual_seed(seed)
    alignment = ObjectAlignment(objects.shape[1], text_encoder.config.feature_dim)
    task = _AlignmentTask(text_encoder, alignment, objects, data)
    text_encoder.requires_grad_(True)
    parameters = [*text_encoder.parameters(), *alignment.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.05)
    text_encoder.train()
    started = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=min(200, steps // 10 + 1))
        images = train_images[torch.randperm(len(train_images), generator=generator)[:batch_images]]
        loss = task.loss(images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            scores = task.accuracy(held_out_images)
            shown = " ".join(f"{name} {value:.3f}" for name, value in scores.items())
            seconds = time.perf_counter() - started
            log(f"text step {step + 1}/{steps} ({seconds:.0f} s): loss {loss.item():.3f} | {shown}")
    text_encoder.eval()
    return task.accuracy(held_out_images)


class _AlignmentTask:
    """The sentences and objects of a pretraining set, with the text encoder and the object alignment."""

    def __init__(
        self, text_encoder: ClipTextEncoder, alignment: ObjectAlignment, objects: torch.Tensor, data: PretrainingSet
    ) -> None:
        self.text_encoder = text_encoder
        self.alignment = alignment
        self.objects = objects
        self.data = data
        self.tokens = text_encoder.tokenize(data.sentences)
        self.sentence_image = data.object_image[data.sentence_object]

    def batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sentences and objects of ``images``: (sentence rows, object rows, each sentence's target column)."""
        sentences = torch.nonzero(torch.isin(self.sentence_image, images)).flatten()
        candidates = torch.nonzero(torch.isin(self.data.object_image, images)).flatten()
        column = torch.full((len(self.data.object_image),), -1, dtype=torch.long)
        column[candidates] = torch.arange(len(candidates))
        return sentences, candidates, column[self.data.sentence_object[sentences]]

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """The contrastive loss of the sentences of ``images`` against all of their objects, both sentence features."""
        sentences, candidates, targets = self.batch(images)
        features = sentence_features(self.text_encoder, self.tokens[sentences])
        objects = self.objects[candidates]
        return sum(F.cross_entropy(self.alignment.logits(feature, objects), targets) for feature in features) / 2

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor) -> dict[str, float]:
        """Share of the sentences of ``images`` whose end-token feature picks its target, among its own image's
        objects and among all objects of ``images``."""
        self.text_encoder.eval()
        sentences, candidates, targets = self.batch(images)
        end, _ = sentence_features(self.text_encoder, self.tokens[sentences])
        logits = self.alignment.logits(end, self.objects[candidates])
        same_image = self.data.object_image[candidates][None, :] == self.sentence_image[sentences][:, None]
        own = logits.masked_fill(~same_image, float("-inf")).argmax(1) == targets
        self.text_encoder.train()
        return {
            "own_image_accuracy": float(own.float().mean()),
            "batch_accuracy": float((logits.argmax(1) == targets).float().mean()),
        }
