"""Eq. 4's attention mask switched on at inference in a model trained without it (tau 0), on RefShapes val.

Evaluates the weights file of a tau-0 model (e.g. an ablation's ``no_attn_mask/seed_0/checkpoints/last.safetensors``,
or an SDF model trained without the mask, ``sdf_fusion/...``) on the val split of DATA as trained, then with the
mask at ``--tau`` (by ``--rule``, default the model's ``head.mask_rule``) switched on in every block, in each block
k alone (``block_k``), and, for MA blocks, in block k's vision-guided branch alone (``block_k_vision_guided``: its
language-guided branch keeps every real word; an SDF block has only that branch). Then,
in each block as trained (``block_k_scores``), it measures over the val sentences:

- the mean word-pixel score S = Z_v Z_l^T / sqrt(C) (Eq. 3) of each kind of pair: target pixels (feature-grid
  cells at least half covered by the referred object) or other pixels, against content words or function words
  (``FUNCTION_WORDS``, and the start and end tokens); padding never counts;
- the share of each pixel's vision-guided attention weight (the softmax over its words) that the mask at
  ``--tau`` would remove, averaged over target pixels and over the other pixels, and the share of pairs removed.

The vision-guided softmax does not change when a constant is added to all of a pixel's scores, so training
leaves the level of a pixel's scores free, while Eq. 4 thresholds that level. Prints one JSON object.

    python -m benchmarks.mask_switch --checkpoint runs/ablation/no_attn_mask/seed_0/checkpoints/last.safetensors \\
        --data data
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.entry import run
from risam.data.dataset import identity_collate
from risam.data.sampler import GroupedBatchSampler
from risam.engine.evaluator import evaluate_model
from risam.engine.experiment import build_dataset
from risam.errors import InputError
from risam.io.config_files import load_config
from risam.modeling.layers import FusionOutput
from risam.modeling.model import RISAM
from risam.modeling.mutual_attention import MutualAwareAttention, attention_keep
from risam.modeling.variants.spatial_dynamic_fusion import SpatialDynamicFusion
from risam.registry.create import create_model

# RefShapes' words that name no property of an object (risam.data.refshapes.grammar's templates).
FUNCTION_WORDS = frozenset({"the", "a", "an", "on", "at", "of", "to", "from", "all", "both", "two", "three"})


class VisionGuidedMask(nn.Module):
    """An MA block with the mask at ``tau`` in its vision-guided branch only; the language-guided branch keeps
    every real word (tau 0). Same parameters as ``block``."""

    def __init__(self, block: MutualAwareAttention, tau: float) -> None:
        super().__init__()
        self.block = block
        self.tau = tau

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v; text: B x L_t x C_t; padding_mask: B x L_t, True at padding."""
        z_visual, z_text, scores = self.block.scores(visual, text)
        rule = self.block.mask_rule
        vision_keep = attention_keep(scores, padding_mask, self.tau, rule)
        language_keep = attention_keep(scores, padding_mask, 0.0, rule)
        return self.block.attend(z_visual, z_text, scores, vision_keep, language_keep)


def settings(model: RISAM) -> list[str]:
    """The settings :func:`switched` knows for ``model`` (SDF blocks have no branch of their own to mask)."""
    branches = ("", "_vision_guided") if isinstance(model.fusion[0], MutualAwareAttention) else ("",)
    per_block = [f"block_{k}{branch}" for k in range(1, len(model.fusion) + 1) for branch in branches]
    return ["trained", "all_blocks", *per_block]


def _mask(block: MutualAwareAttention | SpatialDynamicFusion, tau: float) -> None:
    """Switch ``block``'s mask to ``tau`` (0: off); an SDF block masks only when told to."""
    block.tau = tau
    if isinstance(block, SpatialDynamicFusion):
        block.masked = tau > 0


@contextmanager
def switched(model: RISAM, setting: str, tau: float) -> Iterator[None]:
    """The model with the mask at ``tau`` in ``setting`` (one of :func:`settings`: "trained" is as is); its
    blocks and their mask settings are restored on exit."""
    if setting not in settings(model):
        raise ValueError(f"setting {setting!r}: expected one of {settings(model)}")
    blocks = list(model.fusion)
    trained = [(block.tau, getattr(block, "masked", None)) for block in blocks]
    if setting == "all_blocks":
        for block in blocks:
            _mask(block, tau)
    elif setting.endswith("_vision_guided"):
        index = int(setting.split("_")[1]) - 1
        model.fusion[index] = VisionGuidedMask(blocks[index], tau)
    elif setting != "trained":
        _mask(blocks[int(setting.split("_")[1]) - 1], tau)
    try:
        yield
    finally:
        for index, (block, (block_tau, masked)) in enumerate(zip(blocks, trained, strict=True)):
            model.fusion[index] = block
            block.tau = block_tau
            if masked is not None:
                block.masked = masked


def _words(model: RISAM, tokens: torch.Tensor) -> torch.Tensor:
    """B x L_t bool: True at content words (not padding, start, end or ``FUNCTION_WORDS``)."""
    rows = []
    for row in tokens:
        words = model.text_encoder.token_words(row)
        rows.append([word not in FUNCTION_WORDS | {"<start>", "<end>", ""} for word in words])
    return torch.tensor(rows, dtype=torch.bool)


@torch.no_grad()
def block_scores(model: RISAM, dataset: Any, index: int, tau: float, images_per_batch: int) -> dict[str, Any]:
    """Block ``index``'s (from 0) mean scores and the attention weight the mask at ``tau`` would remove, by pixel
    and word kind, as trained; ``counts``: the pairs (scores) or pixels (removed shares) averaged."""
    block = model.fusion[index]
    captured: list[tuple[torch.Tensor, ...]] = []
    handle = block.register_forward_pre_hook(lambda _module, args: captured.append(args))
    sums: dict[str, list[float]] = {}

    def add(key: str, values: torch.Tensor) -> None:
        total = sums.setdefault(key, [0.0, 0])
        total[0] += float(values.sum())
        total[1] += values.numel()

    sampler = GroupedBatchSampler(dataset.image_ids, images_per_batch, shuffle=False)
    try:
        for batch in DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate):
            captured.clear()
            model(batch.images, batch.tokens, image_index=batch.image_index)
            visual, text, padding = captured[0]
            _, _, scores = block.scores(visual, text)
            side = int(visual.shape[1] ** 0.5)
            target = F.adaptive_avg_pool2d(batch.masks[:, None].float(), side).flatten(1) >= 0.5  # B x L_v
            content = _words(model, batch.tokens)
            real = ~padding
            for pixels, pixel_name in ((target, "target"), (~target, "other")):
                for words, word_name in ((content, "content"), (real & ~content, "function")):
                    add(f"{pixel_name}_pixel_x_{word_name}_word", scores[pixels[:, :, None] & words[:, None, :]])
            weights = torch.softmax(scores.masked_fill(padding[:, None, :], float("-inf")), dim=2)
            removed = real[:, None, :] & ~attention_keep(scores, padding, tau, block.mask_rule)
            removed_weight = (weights * removed).sum(dim=2)  # B x L_v
            add("removed_weight_target", removed_weight[target])
            add("removed_weight_other", removed_weight[~target])
            removed_pairs = removed.sum(dim=2) / real.sum(dim=1, keepdim=True)  # B x L_v, share of its words
            add("removed_pairs_target", removed_pairs[target])
            add("removed_pairs_other", removed_pairs[~target])
    finally:
        handle.remove()
    return {key: total / count if count else None for key, (total, count) in sums.items()} | {
        "counts": {key: count for key, (_, count) in sums.items()}
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="weights file of a model trained without the mask (MA at head.tau 0, or SDF)",
    )
    parser.add_argument("--data", required=True, help="RefShapes data root")
    parser.add_argument("--tau", type=float, default=0.35, help="the mask's threshold switched on")
    parser.add_argument(
        "--rule",
        choices=("sigmoid", "softmax_share"),
        help="the mask rule switched on (default: the model's head.mask_rule)",
    )
    parser.add_argument("--images-per-batch", type=int, default=16)
    print(json.dumps(measure(parser.parse_args()), indent=2))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The scores of every setting and each block's score means, for the parsed command line ``args``."""
    torch.manual_seed(0)
    config = load_config("refshapes_tiny_ablation", [f"data.root={args.data}", "train.progress=false"])
    model = create_model(checkpoint=args.checkpoint).eval()
    trained_without_mask = all(
        (isinstance(block, MutualAwareAttention) and block.tau == 0)
        or (isinstance(block, SpatialDynamicFusion) and not block.masked)
        for block in model.fusion
    )
    if not trained_without_mask:
        raise InputError(
            f"{args.checkpoint}: expected Mutual-Aware Attention blocks trained with head.tau 0 or SDF blocks trained "
            "without head.masked_fusion"
        )
    if args.rule is not None:
        for block in model.fusion:
            block.mask_rule = args.rule
    dataset = build_dataset(config, model, "val", for_eval=True)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "tau": args.tau, "rule": model.fusion[0].mask_rule}
    for setting in settings(model):
        with switched(model, setting, args.tau):
            metrics = evaluate_model(
                model,
                dataset,
                threshold=config.eval.threshold,
                images_per_batch=args.images_per_batch,
                device=torch.device("cpu"),
                progress=False,
            )
        results[setting] = {key: metrics[key] for key in ("overall_iou", "mean_iou", "grounding_gap")}
    for index in range(len(model.fusion)):
        results[f"block_{index + 1}_scores"] = block_scores(model, dataset, index, args.tau, args.images_per_batch)
    return results


if __name__ == "__main__":
    run(main)
