"""Training logs: CSV files and TensorBoard, written by rank 0.

A resumed run first calls :meth:`TrainingLogger.truncate_after`, so that the rows and TensorBoard
events of the steps the killed run logged after its last checkpoint are not there twice.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from risam.io.files import atomic_write
from risam.io.logs import append_csv_row, read_csv_rows


def _keep_rows(path: Path, keep: Callable[[dict[str, str]], bool]) -> None:
    """Rewrite the CSV file ``path`` (atomically) with its header and the complete rows, as dicts of strings,
    for which ``keep(row)`` is true; nothing if ``path`` does not exist."""
    rows = read_csv_rows(path)
    if not rows:
        return
    header = rows[0]
    kept = [row for row in rows[1:] if len(row) == len(header) and keep(dict(zip(header, row, strict=True)))]
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(kept)


def _at_most(value: str, limit: int) -> bool:
    """Whether the CSV cell ``value`` is an integer <= ``limit`` (False for anything else: a torn row)."""
    try:
        return int(value) <= limit
    except ValueError:
        return False


class TrainingLogger:
    """Appends rows to ``train.csv`` / ``eval.csv`` and scalars to TensorBoard under ``output_dir``.

    TensorBoard's event file is opened at the first scalar (or by :meth:`truncate_after`).
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        """TensorBoard's writer, opened on first use."""
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))
        return self._writer

    def truncate_after(self, step: int, epoch: int) -> None:
        """Forget what was logged after a checkpoint at global ``step`` with ``epoch`` epochs finished: keep the
        ``train.csv`` rows of steps <= ``step`` and the ``eval.csv`` rows of steps <= ``step`` and epochs <= ``epoch``
        (both files rewritten atomically), and have TensorBoard drop the earlier events of steps > ``step``
        (``purge_step``). Call it before logging anything."""
        if self._writer is not None:
            raise RuntimeError("TrainingLogger.truncate_after must come before the first scalar")
        _keep_rows(self.output_dir / "train.csv", lambda row: _at_most(row["step"], step))
        _keep_rows(
            self.output_dir / "eval.csv",
            lambda row: _at_most(row["step"], step) and _at_most(row["epoch"], epoch),
        )
        self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"), purge_step=step + 1)

    def _append(self, name: str, row: dict[str, Any]) -> None:
        """Append ``row`` to the CSV file ``name``. A new (or empty) file gets ``row``'s keys as its header; an
        existing one keeps its own, so that all rows of a run have the same columns: keys it lacks are dropped
        (they still reach TensorBoard) and its columns that ``row`` lacks are left empty."""
        append_csv_row(self.output_dir / name, row)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """One training step's scalars (loss, lr, throughput, ...)."""
        self._append("train.csv", {"step": step, **values})
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def log_eval(self, step: int, epoch: int, results: dict[str, Any]) -> None:
        """One evaluation's overall IoU, mean IoU, Pr@X and, when the results hold them (RefShapes) and they are
        not None, ``grounding_gap`` and ``sentence_free_baseline``; for a mixed experiment (results with
        ``splits``) the means over the splits, then each split's overall and mean IoU
        (``DATASET/SPLIT:overall_iou``)."""
        values = {"overall_iou": results["overall_iou"], "mean_iou": results["mean_iou"]}
        values.update({f"pr@{key}": value for key, value in results["precision"].items()})
        values.update(
            {key: results[key] for key in ("grounding_gap", "sentence_free_baseline") if results.get(key) is not None}
        )
        for label, split in results.get("splits", {}).items():
            values.update({f"{label}:{key}": split[key] for key in ("overall_iou", "mean_iou")})
        self._append("eval.csv", {"step": step, "epoch": epoch, **values})
        for key, value in values.items():
            self.writer.add_scalar(f"val/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close TensorBoard's files (if opened)."""
        if self._writer is not None:
            self._writer.close()
