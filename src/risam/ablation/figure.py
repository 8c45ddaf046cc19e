"""The ablation table as a picture: overall IoU per variant, the seeds' spread as error bars."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from risam.files import atomic_path


def draw_ablation(table: Mapping[str, Any], path: str | os.PathLike) -> None:
    """A horizontal bar per measured variant (table order, top to bottom): mean overall IoU over the seeds,
    error bars from the worst to the best seed, ``full`` in its own colour with a line through its mean,
    and the sentence-free baseline dashed. Written atomically as a PNG. matplotlib is imported only here, and
    used through its object API (no global figure state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [row for row in table["variants"] if "overall_iou" in row["summary"]]
    names = [row["name"] for row in rows]
    means = [100 * row["summary"]["overall_iou"]["mean"] for row in rows]
    low = [mean - 100 * row["summary"]["overall_iou"]["min"] for mean, row in zip(means, rows, strict=True)]
    high = [100 * row["summary"]["overall_iou"]["max"] - mean for mean, row in zip(means, rows, strict=True)]
    colours = ["#c0392b" if name == "full" else "#5d7fa3" for name in names]
    positions = list(range(len(rows)))[::-1]

    figure = Figure(figsize=(9.5, 1.4 + 0.34 * len(rows)), dpi=110, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.barh(positions, means, xerr=[low, high], color=colours, capsize=3, error_kw={"elinewidth": 1})
    labels = [
        f"{name} ({row['paper']}; {len(row['runs'])} seed{'s' * (len(row['runs']) != 1)})"
        for name, row in zip(names, rows, strict=True)
    ]
    axes.set_yticks(positions, labels)
    for position, mean, extra in zip(positions, means, high, strict=True):
        axes.text(mean + extra + 0.8, position, f"{mean:.1f}", va="center", fontsize=8)
    if "full" in names:
        axes.axvline(means[names.index("full")], color="#c0392b", linewidth=1, label="full (mean)")
    baseline = table.get("sentence_free_baseline")
    if baseline is not None:
        axes.axvline(100 * baseline, color="black", linestyle="--", linewidth=1, label="sentence-free answer")
    seeds = ", ".join(str(seed) for seed in table["seeds"])  # those asked for; each label counts those measured
    axes.set_xlabel(f"overall IoU on {table['dataset']} {table['split']} (%), bars: mean, whiskers: min-max")
    axes.set_title(f"Ablations of {table['model']}, seeds {seeds}", fontsize=11)
    axes.set_xlim(0, max(100 * row["summary"]["overall_iou"]["max"] for row in rows) * 1.12 if rows else 100)
    axes.grid(axis="x", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    with atomic_path(path) as temporary:
        canvas.print_png(temporary)
