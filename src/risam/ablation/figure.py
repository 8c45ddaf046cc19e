"""The ablation table as a picture: overall IoU per variant with the seeds' spread as error bars, and Fig. 8's
sweep of the attention-mask threshold tau as a curve below the bars once one of its points is measured."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from risam.ablation.variants import TAU_VARIANTS
from risam.io.images import atomic_save_image

FULL_COLOUR = "#c0392b"
VARIANT_COLOUR = "#5d7fa3"
# The variants that differ from ``full`` only in tau (``no_attn_mask`` is tau = 0), drawn as Fig. 8's curve.
TAU_SWEEP = ("no_attn_mask", *TAU_VARIANTS, "full")


def _iou(row: Mapping[str, Any], key: str) -> float:
    """``key`` ("mean", "min" or "max") of the row's overall IoU over its seeds, in percent."""
    return 100 * row["summary"]["overall_iou"][key]


def _seeds_label(row: Mapping[str, Any]) -> str:
    count = len(row["runs"])
    return f"{count} seed{'s' * (count != 1)}"


def _draw_bars(axes: Any, rows: Sequence[Mapping[str, Any]], baseline: float | None) -> None:
    """One horizontal bar per row (top to bottom): mean, whiskers from the worst to the best seed."""
    names = [row["name"] for row in rows]
    means = [_iou(row, "mean") for row in rows]
    low = [mean - _iou(row, "min") for mean, row in zip(means, rows, strict=True)]
    high = [_iou(row, "max") - mean for mean, row in zip(means, rows, strict=True)]
    positions = list(range(len(rows)))[::-1]
    colours = [FULL_COLOUR if name == "full" else VARIANT_COLOUR for name in names]
    axes.barh(positions, means, xerr=[low, high], color=colours, capsize=3, error_kw={"elinewidth": 1})
    axes.set_yticks(positions, [f"{row['name']} ({row['paper']}; {_seeds_label(row)})" for row in rows])
    for position, mean, extra in zip(positions, means, high, strict=True):
        axes.text(mean + extra + 0.8, position, f"{mean:.1f}", va="center", fontsize=8)
    if "full" in names:
        axes.axvline(means[names.index("full")], color=FULL_COLOUR, linewidth=1, label="full (mean)")
    if baseline is not None:
        axes.axvline(baseline, color="black", linestyle="--", linewidth=1, label="sentence-free answer")
    axes.set_xlim(0, max(_iou(row, "max") for row in rows) * 1.12)
    axes.grid(axis="x", alpha=0.3)


def _draw_tau_sweep(axes: Any, rows: Sequence[Mapping[str, Any]], baseline: float | None) -> None:
    """Overall IoU against tau (mean, whiskers min-max), ``full``'s point in its colour, as the paper's Fig. 8."""
    rows = sorted(rows, key=lambda row: row["tau"])
    taus = [row["tau"] for row in rows]
    means = [_iou(row, "mean") for row in rows]
    errors = [
        [mean - _iou(row, "min") for mean, row in zip(means, rows, strict=True)],
        [_iou(row, "max") - mean for mean, row in zip(means, rows, strict=True)],
    ]
    axes.errorbar(taus, means, yerr=errors, color=VARIANT_COLOUR, marker="o", capsize=3, linewidth=1.2)
    for row, tau, mean in zip(rows, taus, means, strict=True):
        if row["name"] == "full":
            axes.plot([tau], [mean], marker="o", markersize=8, color=FULL_COLOUR, linestyle="none", label="full")
        axes.annotate(f"{mean:.1f}", (tau, mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if baseline is not None:
        axes.axhline(baseline, color="black", linestyle="--", linewidth=1, label="sentence-free answer")
    axes.set_xticks(taus, [f"{tau:g}" for tau in taus])
    axes.set_xlabel("attention-mask threshold tau (0: no mask, no_attn_mask)")
    axes.set_ylabel("overall IoU (%)")
    counts = sorted({len(row["runs"]) for row in rows})
    axes.set_title(
        f"Fig. 8 re-run: the tau sweep ({' or '.join(str(count) for count in counts)} seeds per point)", fontsize=10
    )
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def draw_ablation(table: Mapping[str, Any], path: str | os.PathLike) -> None:
    """The measured variants of ``table`` as an RGBA PNG, written atomically.

    Top: a horizontal bar per variant in table order (the tau sweep's points left out when it is drawn): mean
    overall IoU over the seeds, error bars from the worst to the best seed, ``full`` in its own colour with a
    line through its mean, and the sentence-free baseline dashed. Below, once a point of the tau sweep is
    measured: the overall IoU of the measured variants of :data:`TAU_SWEEP` against tau. matplotlib is imported
    only here, and used through its object API (no global figure state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measured = [row for row in table["variants"] if "overall_iou" in row["summary"]]
    sweep = [row for row in measured if row["name"] in TAU_SWEEP and "tau" in row]
    if not any(row["name"] in TAU_VARIANTS for row in sweep):
        sweep = []
    bars = [row for row in measured if row["name"] not in TAU_VARIANTS or not sweep]
    baseline = table.get("sentence_free_baseline")
    baseline = None if baseline is None else 100 * baseline

    bar_height = 1.0 + 0.34 * len(bars) if bars else 0.0
    sweep_height = 3.2 if sweep else 0.0
    figure = Figure(figsize=(9.5, 0.5 + bar_height + sweep_height), dpi=110, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    heights = [height for height in (bar_height, sweep_height) if height]
    panels = list(figure.subplots(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0])
    if bars:
        bar_axes = panels.pop(0)
        _draw_bars(bar_axes, bars, baseline)
        seeds = ", ".join(str(seed) for seed in table["seeds"])  # those asked for; each label counts those measured
        bar_axes.set_xlabel(f"overall IoU on {table['dataset']} {table['split']} (%), bars: mean, whiskers: min-max")
        epochs = table["budget"]["epochs"]
        bar_axes.set_title(f"Ablations of {table['model']}, {epochs} epochs, seeds {seeds}", fontsize=11)
        if bar_axes.get_legend_handles_labels()[0]:
            bar_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if sweep:
        _draw_tau_sweep(panels.pop(0), sweep, baseline)
    canvas.draw()
    picture = Image.fromarray(np.asarray(canvas.buffer_rgba()))
    atomic_save_image(path, picture, "PNG", dpi=(figure.dpi, figure.dpi))
