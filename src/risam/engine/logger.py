"""Training logs: CSV files and TensorBoard, written by rank 0."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class TrainingLogger:
    """Appends rows to ``train.csv`` / ``eval.csv`` and scalars to TensorBoard under ``output_dir``."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"))

    def _append(self, name: str, row: dict[str, Any]) -> None:
        path = self.output_dir / name
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """One training step's scalars (loss, lr, throughput, ...)."""
        self._append("train.csv", {"step": step, **values})
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def log_eval(self, step: int, epoch: int, results: dict[str, Any]) -> None:
        """One evaluation's overall IoU, mean IoU and Pr@X."""
        values = {"overall_iou": results["overall_iou"], "mean_iou": results["mean_iou"]}
        values.update({f"pr@{key}": value for key, value in results["precision"].items()})
        self._append("eval.csv", {"step": step, "epoch": epoch, **values})
        for key, value in values.items():
            self.writer.add_scalar(f"val/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close TensorBoard's files."""
        self.writer.close()
