"""Validation during training: one split, or every listed dataset's val split in a mixed experiment.

A mixed experiment's results hold each split's results under ``splits`` (keyed ``DATASET/SPLIT``) and, at
the top, the mean over the splits of overall IoU, mean IoU and each Pr@X: the mean overall IoU chooses
``best.safetensors``, and every split's curve is drawn (:mod:`risam.engine.learning_curve`). The trainer
writes them, all splits in one file, to ``val_results.json`` after every evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from risam.config.experiment import ExperimentConfig
from risam.data.dataset import ReferDataset
from risam.engine.evaluator import evaluate_model
from risam.engine.experiment import split_root
from risam.modeling.model import RISAM

VAL_RESULTS_FILE = "val_results.json"


def validate(
    model: RISAM,
    val_sets: Sequence[tuple[str, ReferDataset]],
    config: ExperimentConfig,
    device: torch.device,
    progress: bool,
) -> dict[str, Any]:
    """The validation results of ``model`` on ``val_sets`` (label, dataset), as the module docstring says; for
    one split without a dataset list, that split's results as they are."""
    per_split = {}
    for label, dataset in val_sets:
        per_split[label] = evaluate_model(
            model,
            dataset,
            threshold=config.eval.threshold,
            images_per_batch=config.eval.images_per_batch,
            device=device,
            bf16=config.train.bf16,
            progress=progress,
            data_root=split_root(config, label),
        )
    if not config.data.datasets:
        return per_split[val_sets[0][0]]
    return mean_over_splits(per_split)


def mean_over_splits(per_split: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"splits": per_split}`` with the mean over the splits of overall IoU, mean IoU and Pr@X."""
    count = len(per_split)
    results = list(per_split.values())
    thresholds = results[0]["precision"]
    return {
        "overall_iou": sum(r["overall_iou"] for r in results) / count,
        "mean_iou": sum(r["mean_iou"] for r in results) / count,
        "precision": {t: sum(r["precision"][t] for r in results) / count for t in thresholds},
        "num_samples": sum(r["num_samples"] for r in results),
        "splits": per_split,
    }
