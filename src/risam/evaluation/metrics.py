"""Referring-segmentation metrics, as the field computes them.

Every sentence is one sample, compared at the original image resolution.

- overall IoU (the paper's "IoU", also oIoU or cIoU): sum of intersections / sum of unions
  over the whole split;
- mean IoU: mean of the per-sample IoU;
- Pr@X: the share of samples with IoU >= X, X in 0.5 ... 0.9 (LAVT's evaluation code);
- gRefCOCO (ReLA's evaluation): a sample is *predicted empty* when its mask has no pixel.
  gIoU is the mean per-sample IoU in which a no-target sample scores 1 if predicted empty
  and 0 otherwise; N-acc = TN / (TN + FP) over no-target samples, T-acc = TP / (TP + FN)
  over target samples (TP: a non-empty prediction). cIoU is the overall IoU.

A sample whose target and prediction are both empty has IoU 1. All statistics are sums, so
distributed evaluation sums them across ranks (:func:`all_reduce_sums`) before dividing.

RefShapes evaluations also report whether the model reads (:mod:`risam.evaluation.grounding`):
``sentence_free_baseline``, ``grounding_gap`` and ``by_type``; :func:`results_table` shows them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)

_FIELDS = ("intersection", "union", "iou_sum", "count", "tn", "fp", "tp", "fn", "no_target")


def all_reduce_sums(sums: torch.Tensor) -> torch.Tensor:
    """``sums`` summed over every rank of the default process group (``sums`` itself without one).

    Any shape; the result is on the CPU. nccl reduces CUDA tensors only, so there the sums pass
    through the current CUDA device.
    """
    if dist.is_available() and dist.is_initialized():
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        reduced = sums.to(device)
        dist.all_reduce(reduced)
        return reduced.cpu()
    return sums


def intersection_and_union(prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """The pixel counts of ``prediction & target`` and ``prediction | target`` (two H x W bool masks)."""
    return int((prediction & target).sum()), int((prediction | target).sum())


def mask_iou(prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Intersection over union of two H x W bool masks; 1 when both are empty (a correct empty answer)."""
    intersection, union = intersection_and_union(prediction, target)
    return intersection / union if union else 1.0


class MetricAccumulator:
    """Sums of per-sample statistics; :meth:`summary` turns them into the metrics."""

    def __init__(self) -> None:
        self.sums = torch.zeros(len(_FIELDS) + len(PRECISION_THRESHOLDS), dtype=torch.float64)

    def _add(self, name: str, value: float) -> None:
        self.sums[_FIELDS.index(name)] += value

    def _get(self, name: str) -> float:
        return float(self.sums[_FIELDS.index(name)])

    def add(self, prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
        """Add one sample (H x W bool masks at the original resolution); returns its IoU."""
        prediction = torch.as_tensor(prediction, dtype=torch.bool)
        target = torch.as_tensor(target, dtype=torch.bool)
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in size; "
                "compare at the original image resolution"
            )
        intersection, union = intersection_and_union(prediction, target)
        iou = intersection / union if union else 1.0
        predicted_empty = not bool(prediction.any())
        if target.any():
            self._add("tp" if not predicted_empty else "fn", 1)
        else:
            self._add("no_target", 1)
            self._add("tn" if predicted_empty else "fp", 1)
        self._add("intersection", intersection)
        self._add("union", union)
        self._add("iou_sum", iou)
        self._add("count", 1)
        for offset, threshold in enumerate(PRECISION_THRESHOLDS):
            if iou >= threshold:
                self.sums[len(_FIELDS) + offset] += 1
        return iou

    def all_reduce(self) -> None:
        """Sum the statistics over every rank of the default process group (if one is running)."""
        self.sums = all_reduce_sums(self.sums)

    def summary(self) -> dict[str, Any]:
        """overall_iou, mean_iou, precision {"0.5": ...}, num_samples; gRefCOCO metrics too.

        Values are fractions in [0, 1]. ``ciou``, ``giou``, ``n_acc`` and ``t_acc`` are added
        when the split has no-target samples (N-acc is undefined otherwise).
        """
        count = self._get("count")
        if count == 0:
            raise ValueError("no samples were evaluated")
        union = self._get("union")
        overall = self._get("intersection") / union if union else 1.0
        result: dict[str, Any] = {
            "overall_iou": overall,
            "mean_iou": self._get("iou_sum") / count,
            "precision": {
                f"{threshold:.1f}": float(self.sums[len(_FIELDS) + offset]) / count
                for offset, threshold in enumerate(PRECISION_THRESHOLDS)
            },
            "num_samples": int(count),
        }
        if self._get("no_target"):
            targets = self._get("tp") + self._get("fn")
            # Per-sample IoU of a no-target sample is already 1 (empty prediction) or 0.
            result.update(
                ciou=overall,
                giou=self._get("iou_sum") / count,
                n_acc=self._get("tn") / self._get("no_target"),
                t_acc=self._get("tp") / targets if targets else 1.0,
                num_no_target=int(self._get("no_target")),
            )
        return result


def results_table(results: dict[str, Any]) -> str:
    """A markdown table in percent, laid out like the paper's tables (Pr@50 ... Pr@90, IoU).

    RefShapes results add the sentence-free baseline ("Sentence-free"), the grounding gap
    ("Gap"; "-" where no sentence could be measured) and the overall IoU of each sentence type.
    """
    columns = [f"Pr@{int(float(t) * 100)}" for t in results["precision"]] + ["IoU", "mIoU"]
    values = [100 * v for v in results["precision"].values()] + [
        100 * results["overall_iou"],
        100 * results["mean_iou"],
    ]
    if "giou" in results:
        columns += ["cIoU", "gIoU", "N-acc", "T-acc"]
        values += [100 * results[key] for key in ("ciou", "giou", "n_acc", "t_acc")]
    for key, column in (("sentence_free_baseline", "Sentence-free"), ("grounding_gap", "Gap")):
        if key in results:
            columns.append(column)
            values.append(None if results[key] is None else 100 * results[key])
    for kind, scores in results.get("by_type", {}).items():
        columns.append(f"IoU {kind}")
        values.append(100 * scores["overall_iou"])
    header = ["Model", "Dataset", "Split", *columns]
    row = [results.get("model", "-"), results.get("dataset", "-"), results.get("split", "-")]
    row += ["-" if value is None else f"{value:.2f}" for value in values]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(columns)) + "|"]
    lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)
