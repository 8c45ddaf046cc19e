"""An ablation over several seeds, summarized: per variant the mean and spread of each metric, the paper's number
beside it, and a verdict on each of the paper's claims that the table can test.

A claim compares a baseline (``full`` for the paper's claims) with its rivals on overall IoU. The seeds' spread
decides: the baseline beats a rival beyond the spread when its worst seed beats the rival's best (their min-max
ranges do not overlap), and loses beyond it in the mirror case. A claim *agrees* when the baseline beats every
measured rival beyond the spread, *disagrees* when some rival beats it beyond it, and *can't tell* otherwise (or
with fewer than 2 seeds). Beside each rival, the seeds at which the baseline scores higher: one seed fixes the
initialisation and the batch order of every variant, so a rival behind at every seed is behind more surely than
the ranges say.

Each claim tests one factor. Where its rivals differ from the baseline in more than that factor (the paper's
fusion rivals also run without the attention mask, its SAM decoder is 34% larger), the claim names the other
differences, and a claim beside it holds them equal where the variants exist (``sdf_fusion_masked`` against
``full``; ``sdf_fusion`` against ``no_attn_mask``; ``sam_decoder_unmasked`` and ``decoder_no_text_unmasked``
against ``no_attn_mask``; ``sam_decoder_narrow``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from risam.ablation.variants import REFERENCE_SPLIT, TAU_VARIANTS

PRECISION_KEYS = ("0.5", "0.6", "0.7", "0.8", "0.9")
# The metrics summarized per variant, by name in the summary, and how each is read from a results JSON.
METRICS = ("overall_iou", "mean_iou", *(f"precision@{key}" for key in PRECISION_KEYS), "grounding_gap")


@dataclass(frozen=True)
class Claim:
    """A claim: ``baseline`` beats each of ``rivals`` on overall IoU (``where``: the paper's table or figure, or
    "not in the paper"). ``differences``: how the rivals differ from the baseline besides the claim's factor
    (empty: in that factor only)."""

    text: str
    where: str
    rivals: tuple[str, ...]
    baseline: str = "full"
    differences: str = ""


CLAIMS = (
    Claim("Feature Enhancement helps", "Tab. 2 #1 vs #4", ("no_fe",)),
    Claim(
        "Mutual-Aware Attention beats the other fusions",
        "Tab. 2 #2, Tab. 3 #5-7",
        ("conv_fusion", "te_fusion", "sdf_fusion", "bcm_fusion"),
        differences="the rivals also run without the attention mask, as in the paper",
    ),
    Claim(
        "MA beats SDF and BCM, the mask held equal (on)",
        "Tab. 3 #6-7 masked (not in the paper)",
        ("sdf_fusion_masked", "bcm_fusion_masked"),
    ),
    Claim(
        "MA beats SDF and BCM, the mask held equal (off)",
        "Tab. 3 #6-8 (not in the paper)",
        ("sdf_fusion", "bcm_fusion"),
        baseline="no_attn_mask",
    ),
    Claim("the attention mask helps", "Tab. 3 #8", ("no_attn_mask",)),
    Claim("Eq. 4's sigmoid mask beats a shift-invariant one", "not in the paper", ("share_mask",)),
    Claim("2 MA blocks are best", "Tab. 4", ("ma_blocks_1", "ma_blocks_3")),
    Claim(
        "the Mutual-Aware Mask Decoder beats SAM's decoder and its own ablations",
        "Tab. 2 #3, Tab. 5 #9-10",
        ("sam_decoder", "decoder_t2i", "decoder_no_text"),
        differences="sam_decoder has 34% more trainable parameters; decoder_no_text's decoder is the query token "
        "alone, not VLT's decoder that the paper's #10 uses",
    ),
    Claim(
        "the Mutual-Aware Mask Decoder beats SAM's decoder and its own ablation, the mask held equal (off)",
        "Tab. 2 #3, Tab. 5 #10 without the mask (not in the paper)",
        ("sam_decoder_unmasked", "decoder_no_text_unmasked"),
        baseline="no_attn_mask",
        differences="sam_decoder_unmasked has 34% more trainable parameters; decoder_no_text_unmasked's decoder is the "
        "query token alone, not VLT's decoder that the paper's #10 uses",
    ),
    Claim(
        "the Mutual-Aware Mask Decoder beats SAM's decoder at equal capacity",
        "not in the paper",
        ("sam_decoder_narrow",),
    ),
    Claim("tau = 0.35 is best", "Fig. 8", TAU_VARIANTS),
    Claim(
        "RISAM beats SAM used directly",
        "Tab. 11",
        ("sam_directly",),
        differences="no Feature Enhancement, no fusion, SAM's decoder",
    ),
)


def metric_value(results: Mapping[str, Any], metric: str) -> float | None:
    """One of :data:`METRICS` from an evaluation's results (fractions); None when the results lack it."""
    if metric.startswith("precision@"):
        return results["precision"][metric.removeprefix("precision@")]
    return results.get(metric)


def spread(values: Sequence[float], seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """``{"mean", "sd", "min", "max", "values"}`` of one metric over the seeds (sd 0 for one seed), and
    ``"seeds"``, the seed of each value, when given."""
    summary = {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }
    if seeds is not None:
        summary["seeds"] = list(seeds)
    return summary


def summarize_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric of :data:`METRICS` present in every run's ``results``, its :func:`spread` over the runs."""
    summary = {}
    for metric in METRICS:
        values = [metric_value(run["results"], metric) for run in runs]
        if values and all(value is not None for value in values):
            summary[metric] = spread(values, [run["seed"] for run in runs])
    return summary


def judge(claim: Claim, summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict on ``claim`` from the variants' summaries (:func:`summarize_runs` by variant name; see the
    module docstring): ``{"claim", "where", "baseline", "differences", "verdict", "rivals": [{"name",
    "difference", "outcome"}]}``, ``difference`` being the baseline's mean overall IoU minus the rival's, in
    points. Where both summaries name their seeds, a rival also has ``"paired": [k, n]``: the baseline scores
    higher at k of the n seeds both ran (a seed fixes the initialisation and the order of the batches, so runs of
    one seed are paired); it does not change the verdict. ``outcome`` names the baseline ("base better beyond
    the spread", "no_attn_mask better beyond the spread") or says "rival better beyond the spread", "within the
    spread" or "one seed"."""
    base = summaries.get(claim.baseline, {}).get("overall_iou")
    rivals = []
    for name in claim.rivals:
        rival = summaries.get(name, {}).get("overall_iou")
        if base is None or rival is None:
            continue
        if len(base["values"]) < 2 or len(rival["values"]) < 2:
            outcome = "one seed"
        elif base["min"] > rival["max"]:
            outcome = f"{claim.baseline} better beyond the spread"
        elif base["max"] < rival["min"]:
            outcome = "rival better beyond the spread"
        else:
            outcome = "within the spread"
        entry = {"name": name, "difference": 100 * (base["mean"] - rival["mean"]), "outcome": outcome}
        if "seeds" in base and "seeds" in rival:
            base_by_seed = dict(zip(base["seeds"], base["values"], strict=True))
            rival_by_seed = dict(zip(rival["seeds"], rival["values"], strict=True))
            common = base_by_seed.keys() & rival_by_seed.keys()
            entry["paired"] = [sum(base_by_seed[seed] > rival_by_seed[seed] for seed in common), len(common)]
        rivals.append(entry)
    outcomes = {rival["outcome"] for rival in rivals}
    if not rivals:
        verdict = "not measured"
    elif "rival better beyond the spread" in outcomes:
        verdict = "disagrees"
    elif outcomes == {f"{claim.baseline} better beyond the spread"}:
        verdict = "agrees"
    else:
        verdict = "can't tell"
    if rivals and len(rivals) < len(claim.rivals):
        verdict += f" ({len(rivals)} of {len(claim.rivals)} rivals measured)"
    return {
        "claim": claim.text,
        "where": claim.where,
        "baseline": claim.baseline,
        "differences": claim.differences,
        "verdict": verdict,
        "rivals": rivals,
    }


def _cell(summary: Mapping[str, Any], metric: str, paper: float | None = None) -> str:
    """``mean ± sd`` in percent (points for the gap), then the paper's RefCOCO val number in parentheses where
    it gives one; ``-`` when the metric was not measured."""
    if metric not in summary:
        return "-"
    value = summary[metric]
    beside = f" ({paper:.2f})" if paper is not None else ""
    return f"{100 * value['mean']:.2f} ± {100 * value['sd']:.2f}{beside}"


def _paired(rival: Mapping[str, Any]) -> str:
    """``; ahead at k of n seeds`` from a rival of :func:`judge`, or nothing without paired seeds."""
    if not rival.get("paired") or not rival["paired"][1]:
        return ""
    ahead, count = rival["paired"]
    return f"; ahead at {ahead} of {count} seed{'s' * (count != 1)}"


def ablation_markdown(table: Mapping[str, Any]) -> str:
    """The table of :func:`risam.ablation.runner.run_ablation` as markdown in percent: one row per variant (mean ±
    standard deviation over the seeds, overall IoU also min-max), then the verdict on each claim."""
    budget = table["budget"]
    steps = f", at most {budget['max_steps']} steps" if budget["max_steps"] is not None else ""
    baseline = table.get("sentence_free_baseline")
    lines = [
        f"Ablations of {table['model']} on {table['dataset']} {table['split']}: seeds "
        f"{', '.join(str(seed) for seed in table['seeds'])}, {budget['epochs']} epochs{steps}, "
        f"{budget['global_groups']} groups per step; last weights evaluated. Cells: mean ± standard deviation "
        f"over the seeds, in percent (the grounding gap in points), and in parentheses the paper's {REFERENCE_SPLIT} "
        "number where it gives one.",
        "",
        "| Variant | Paper | Seeds | IoU | IoU min-max | mIoU | Pr@50 | Pr@60 | Pr@70 | Pr@80 | Pr@90 | Gap "
        "| Trainable params | Train (s/run) |",
        "|---|---|" + "---:|" * 12,
    ]
    for row in table["variants"]:
        summary = row["summary"]
        paper = row["paper_results"].get(REFERENCE_SPLIT) or {"iou": None, "precision": None}
        paper_precision = paper["precision"] or [None] * len(PRECISION_KEYS)
        iou = summary.get("overall_iou")
        cells = [
            f"**{row['name']}**" if row["name"] == "full" else row["name"],
            row["paper"],
            str(len(row["runs"])),
            _cell(summary, "overall_iou", paper["iou"]),
            f"{100 * iou['min']:.2f}-{100 * iou['max']:.2f}" if iou else "-",
            _cell(summary, "mean_iou"),
            *(
                _cell(summary, f"precision@{key}", value)
                for key, value in zip(PRECISION_KEYS, paper_precision, strict=True)
            ),
            _cell(summary, "grounding_gap"),
            f"{row['trainable_params']:,}",
            f"{statistics.fmean(run['train_seconds'] for run in row['runs']):.0f}" if row["runs"] else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if baseline is not None:
        lines += ["", f"The best answer that ignores the sentences scores {100 * baseline:.2f}% overall IoU."]
    if table.get("claims"):
        lines += [
            "",
            "| Claim | Where | Baseline | Verdict | baseline minus rival, IoU points (outcome; seeds where the "
            "baseline is ahead) | Other differences |",
            "|---|---|---|---|---|---|",
        ]
        for claim in table["claims"]:
            detail = "; ".join(
                f"{rival['name']} {rival['difference']:+.2f} ({rival['outcome']}{_paired(rival)})"
                for rival in claim["rivals"]
            )
            cells = [claim["claim"], claim["where"], claim.get("baseline", "full"), claim["verdict"], detail or "-"]
            lines.append("| " + " | ".join([*cells, claim.get("differences") or "none"]) + " |")
    return "\n".join(lines)
