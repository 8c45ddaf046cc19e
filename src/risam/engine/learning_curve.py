"""The learning curve of a training run: ``learning_curve.png`` in its output folder.

:func:`read_eval_rows` reads the run's ``eval.csv`` (one row per evaluation, written by
:class:`~risam.engine.logger.TrainingLogger`); :func:`draw_learning_curve` draws the validation overall
and mean IoU per epoch, the sentence-free baseline when known and, beside them, the last evaluation's
grounding gap and overall IoU per sentence type; :func:`write_learning_curve` does both and writes the
PNG atomically. matplotlib is imported only when a curve is drawn, and used only through its
object-oriented API on an Agg canvas: no pyplot state, no display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from risam.io.images import atomic_save_image
from risam.io.logs import read_csv_rows

FIGURE_SIZE = (11.0, 6.5)  # inches: 1100 x 650 pixels at DPI
DPI = 100
OVERALL_COLOR = "#1f5fbf"
MEAN_COLOR = "#e07b00"
BASELINE_COLOR = "#c0392b"
PANEL_COLOR = "#f4f4f4"  # the background of the side panel's text box
TITLE_SIZE = 16
LABEL_SIZE = 14
TEXT_SIZE = 12
SPLIT_COLORS = ("#2a9d8f", "#8e44ad", "#6d4c41", "#d81b60", "#546e7a", "#7cb342")  # a mixed run's splits
MAX_VALUE_LABELS = 12  # more evaluations than this: every k-th point (and the last) gets its value written


def read_eval_rows(path: Path) -> list[dict[str, float]]:
    """The rows of the ``eval.csv`` file ``path`` in file order, each a dict column -> float (``step``, ``epoch``,
    ``overall_iou``, ``mean_iou``, ``pr@0.5`` .. ``pr@0.9`` and, in newer runs, ``grounding_gap`` and
    ``sentence_free_baseline``); [] when the file is missing or empty.

    An empty cell leaves its column out of that row; a torn row (a kill mid-write: too few cells, or a cell
    that is not a number) is skipped.
    """
    lines = read_csv_rows(path)
    if not lines:
        return []
    header, rows = lines[0], []
    for line in lines[1:]:
        if len(line) != len(header):
            continue
        try:
            rows.append({key: float(cell) for key, cell in zip(header, line, strict=True) if cell})
        except ValueError:
            continue
    return rows


def _final_notes(final: dict[str, Any]) -> list[str]:
    """The lines of the side panel: ``final``'s grounding gap in points and overall IoU per sentence type
    (``by_type``), each when present; [] when it holds neither."""
    lines = []
    if final.get("grounding_gap") is not None:
        lines += [f"grounding gap {100 * final['grounding_gap']:+.1f} points", "  (about 0: sentence ignored)"]
    by_type = final.get("by_type") or {}
    if by_type:
        width = max(len(kind) for kind in by_type)
        lines += ["", "overall IoU by type"] if lines else ["overall IoU by type"]
        lines += [
            f"  {kind:<{width}} {100 * scores['overall_iou']:5.1f}%  (n={scores['count']})"
            for kind, scores in by_type.items()
        ]
    return lines


def _baseline(rows: Sequence[dict[str, float]], final: dict[str, Any]) -> float | None:
    """The sentence-free baseline (a fraction): ``final``'s, else the last row's that has one; None if unknown."""
    if final.get("sentence_free_baseline") is not None:
        return float(final["sentence_free_baseline"])
    known = [row["sentence_free_baseline"] for row in rows if "sentence_free_baseline" in row]
    return known[-1] if known else None


def draw_learning_curve(rows: Sequence[dict[str, float]], final: dict[str, Any] | None, title: str) -> Image.Image:
    """The learning curve as an RGB image of 1100 x 650 pixels (``FIGURE_SIZE`` at ``DPI``).

    ``rows`` (from :func:`read_eval_rows`; at least one, each with ``epoch``, ``overall_iou`` and ``mean_iou``
    as fractions) give one point per evaluation: x = epoch, y = validation overall and mean IoU in percent,
    with the values written at the points; in a mixed run (columns ``DATASET/SPLIT:overall_iou``) those are
    the means over the splits, and each split's overall IoU is a dotted line of its own. The sentence-free
    baseline, ``final``'s or else the rows', is a dashed horizontal line. ``final`` (the last evaluation's results, as
    :func:`~risam.engine.evaluator.evaluate_model` returns them) adds a panel on the right with its
    ``grounding_gap`` in points and ``by_type`` overall IoU when it holds them; without them (not RefShapes,
    or ``final=None``) the curve fills the figure.
    """
    if not rows:
        raise ValueError("draw_learning_curve: no evaluation rows to draw")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    final = final or {}
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    notes = _final_notes(final)
    if notes:
        axes, panel = figure.subplots(1, 2, width_ratios=[5, 2])
        panel.axis("off")
        panel.set_title("last evaluation", fontsize=LABEL_SIZE, loc="left")
        box = {"boxstyle": "round,pad=0.6", "facecolor": PANEL_COLOR, "edgecolor": "#999999"}
        panel.text(
            0.02, 0.98, "\n".join(notes), va="top", fontsize=TEXT_SIZE, family="monospace", linespacing=1.6, bbox=box
        )
    else:
        axes = figure.subplots()
    figure.suptitle(title, fontsize=TITLE_SIZE)

    epochs = [row["epoch"] for row in rows]
    overall = [100 * row["overall_iou"] for row in rows]
    mean = [100 * row["mean_iou"] for row in rows]
    splits = list(dict.fromkeys(key.rpartition(":")[0] for row in rows for key in row if key.endswith(":overall_iou")))
    of = " (mean of the splits)" if splits else ""
    axes.plot(
        epochs, overall, marker="o", markersize=7, linewidth=2.5, color=OVERALL_COLOR, label=f"val overall IoU{of}"
    )
    axes.plot(epochs, mean, marker="s", markersize=6, linewidth=2, color=MEAN_COLOR, label=f"val mean IoU{of}")
    for index, split in enumerate(splits):
        points = [(row["epoch"], 100 * row[f"{split}:overall_iou"]) for row in rows if f"{split}:overall_iou" in row]
        axes.plot(
            *zip(*points, strict=True),
            marker="^",
            markersize=6,
            linewidth=1.5,
            linestyle=":",
            color=SPLIT_COLORS[index % len(SPLIT_COLORS)],
            label=f"{split} overall IoU",
        )
    every = math.ceil(len(rows) / MAX_VALUE_LABELS)
    for index in range(len(rows) - 1, -1, -every):
        # The higher of the two values is written above its point, the lower below, so that they never overlap.
        for value, other, color in ((overall, mean, OVERALL_COLOR), (mean, overall, MEAN_COLOR)):
            above = value[index] > other[index] or (value[index] == other[index] and value is overall)
            axes.annotate(
                f"{value[index]:.1f}",
                (epochs[index], value[index]),
                xytext=(0, 9 if above else -9),
                textcoords="offset points",
                ha="center",
                va="bottom" if above else "top",
                fontsize=TEXT_SIZE,
                color=color,
                fontweight="bold",
            )
    baseline = _baseline(rows, final)
    if baseline is not None:
        axes.axhline(
            100 * baseline,
            linestyle="--",
            linewidth=2,
            color=BASELINE_COLOR,
            label=f"sentence-free baseline ({100 * baseline:.1f}%)",
        )
    axes.set_xlim(0, max(epochs) + 0.5)
    axes.set_ylim(0, 100)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch", fontsize=LABEL_SIZE)
    axes.set_ylabel("IoU (%)", fontsize=LABEL_SIZE)
    axes.tick_params(labelsize=TEXT_SIZE)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=TEXT_SIZE, loc="best")
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def write_learning_curve(
    output_dir: Path, final: dict[str, Any] | None = None, title: str | None = None
) -> Path | None:
    """Draw the curve of ``output_dir/eval.csv`` with ``final`` (see :func:`draw_learning_curve`) into
    ``output_dir/learning_curve.png``, atomically (:func:`~risam.io.images.atomic_save_image`); returns its path,
    or None, writing nothing, when the run has no evaluation yet. ``title`` defaults to one naming the folder.
    """
    output_dir = Path(output_dir)
    rows = read_eval_rows(output_dir / "eval.csv")
    if not rows:
        return None
    image = draw_learning_curve(rows, final, title or f"Learning curve of {output_dir.name}")
    path = output_dir / "learning_curve.png"
    return atomic_save_image(path, image, "PNG")
