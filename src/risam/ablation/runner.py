"""Train and evaluate the paper's systems alike, and tabulate them like the paper.

:func:`run_ablation` trains every requested variant (:mod:`risam.ablation.variants`) with the same
data, seed and budget through the ordinary trainer (:func:`risam.engine.trainer.train`), evaluates
each one's last weights with the ordinary evaluator (:func:`risam.engine.evaluator.run_evaluation`),
and writes one table laid out like the paper's (Pr@50 ... Pr@90 and overall IoU per variant, plus the
trainable parameter count and the wall time).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from risam.ablation.variants import REFERENCE_SPLIT, VARIANTS
from risam.config import ConfigError
from risam.config.experiment import ExperimentConfig
from risam.engine.distributed import init_distributed
from risam.engine.evaluator import run_evaluation
from risam.engine.trainer import train
from risam.files import atomic_write_json, atomic_write_text
from risam.modeling.build import build_model
from risam.registry import get_config

PRECISION_KEYS = ("0.5", "0.6", "0.7", "0.8", "0.9")


def list_variants() -> list[str]:
    """Variant names, in the order of the paper's tables."""
    return list(VARIANTS)


def parse_variants(names: str | Sequence[str]) -> list[str]:
    """``"a,b,c"`` or ``["a", "b"]`` -> the names, checked; ConfigError names the unknown ones and lists the valid."""
    parts = names.split(",") if isinstance(names, str) else names
    items = [part.strip() for part in parts if part.strip()]
    valid = ", ".join(list_variants())
    if not items:
        raise ConfigError(f"no variant given; valid variants: {valid}")
    unknown = [item for item in items if item not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; valid variants: {valid}")
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise ConfigError(f"variant(s) {duplicates} given more than once")
    return items


def variant_config(config: ExperimentConfig, name: str, output_dir: str | os.PathLike) -> ExperimentConfig:
    """``config`` with variant ``name``'s overrides added to ``model.overrides`` (they win over the
    config's own) and ``train.output_dir`` set to ``output_dir``.

    Raises ConfigError when the overrides do not apply to the configured model, or when a
    variant other than "full" would build the same model as "full" (e.g. ``unfrozen_text`` on a
    config whose text encoder is already trained).
    """
    variant = VARIANTS[parse_variants([name])[0]]
    changed = copy.deepcopy(config)
    changed.model.overrides = {**config.model.overrides, **variant.overrides_for(config.model.name)}
    changed.train.output_dir = str(output_dir)
    try:
        built = get_config(changed.model.name, changed.model_overrides())
    except ConfigError as error:
        raise ConfigError(f"variant {name!r} does not apply to {config.model.name}: {error}") from error
    if name != "full" and built == get_config(config.model.name, config.model_overrides()):
        raise ConfigError(
            f"variant {name!r} ({variant.overrides_for(config.model.name)}) builds the same {config.model.name} as "
            "'full' with this config's model.overrides; leave it out"
        )
    return changed


def trainable_parameters(config: ExperimentConfig) -> int:
    """Trainable parameter count of the model ``config`` describes (built on the meta device)."""
    model = build_model(get_config(config.model.name, config.model_overrides()), device="meta")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def ablation_markdown(table: Mapping[str, Any]) -> str:
    """The table :func:`run_ablation` returns as markdown, in percent, laid out like the paper's ablation tables."""
    budget = table["budget"]
    steps = f", at most {budget['max_steps']} steps" if budget["max_steps"] is not None else ""
    lines = [
        f"Ablations of {table['model']} on {table['dataset']} {table['split']}: seed {table['seed']}, "
        f"{budget['epochs']} epochs{steps}, {budget['global_groups']} groups per step; last weights evaluated.",
        "",
        "| Variant | Paper | Pr@50 | Pr@60 | Pr@70 | Pr@80 | Pr@90 | IoU | Paper IoU (RefCOCO val) "
        "| Trainable params | Train (s) | Eval (s) |",
        "|---|---|" + "---:|" * 10,
    ]
    for row in table["variants"]:
        results = row["results"]
        paper = row["paper_results"].get(REFERENCE_SPLIT)
        cells = [
            row["name"],
            row["paper"],
            *(_percent(results["precision"][key]) for key in PRECISION_KEYS),
            _percent(results["overall_iou"]),
            f"{paper['iou']:.2f}" if paper else "-",
            f"{row['trainable_params']:,}",
            f"{row['train_seconds']:.1f}",
            f"{row['eval_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_ablation(
    config: ExperimentConfig,
    variants: str | Sequence[str],
    out: str | os.PathLike,
    split: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate every variant of ``variants`` ("a,b" or a list) under ``config``.

    Each variant trains into ``out/NAME`` with the same data, seed and budget (``config``'s
    optim, batch and train sections), and its last weights (``checkpoints/last.safetensors``,
    the end of the budget) are evaluated on ``split`` (default: the config's val split) into
    ``out/NAME/results_SPLIT.json``. Every variant is checked before any trains. Writes
    ``out/ablation.json`` (fractions, with the paper's numbers in percent) and
    ``out/ablation.md`` (percent) on rank 0, and returns the JSON's content.
    """
    out = Path(out)
    split = split or config.data.val_split
    configs = {name: variant_config(config, name, out / name) for name in parse_variants(variants)}
    rows = []
    for name, variant_cfg in configs.items():
        variant = VARIANTS[name]
        started = time.perf_counter()
        train(variant_cfg)
        trained = time.perf_counter()
        run_dir = Path(variant_cfg.train.output_dir)
        results = run_evaluation(
            variant_cfg, run_dir / "checkpoints" / "last.safetensors", split, run_dir / f"results_{split}.json"
        )
        rows.append(
            {
                "name": name,
                "description": variant.description,
                "paper": variant.paper,
                "overrides": variant.overrides_for(config.model.name),
                "trainable_params": trainable_parameters(variant_cfg),
                "train_seconds": trained - started,
                "eval_seconds": time.perf_counter() - trained,
                "results": results,
                "paper_results": {
                    key: {"iou": value.iou, "precision": list(value.precision) if value.precision else None}
                    for key, value in variant.results.items()
                },
            }
        )
    table = {
        "model": config.model.name,
        "dataset": config.data.dataset,
        "split": split,
        "seed": config.train.seed,
        "budget": {
            "epochs": config.optim.epochs,
            "max_steps": config.train.max_steps,
            "global_groups": config.batch.global_groups,
        },
        "variants": rows,
    }
    if init_distributed().is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "ablation.json", table)
        atomic_write_text(out / "ablation.md", ablation_markdown(table) + "\n")
    return table


def describe_variants(config: ExperimentConfig) -> str:
    """A markdown list of every variant for ``config``'s model: paper row, RefCOCO val IoU in the
    paper, trainable parameters (built on the meta device) and the overrides; variants that do
    not apply to the config say why."""
    lines = [
        f"Variants of {config.model.name}:",
        "",
        "| Variant | Paper | Paper IoU (RefCOCO val) | Trainable params | Overrides |",
        "|---|---|---:|---:|---|",
    ]
    for name, variant in VARIANTS.items():
        paper = variant.results.get(REFERENCE_SPLIT)
        try:
            count = f"{trainable_parameters(variant_config(config, name, '.')):,}"
        except ConfigError as error:
            count = f"n/a ({error})"
        overrides = ", ".join(f"{k}={v}" for k, v in variant.overrides_for(config.model.name).items()) or "-"
        iou = f"{paper.iou:.2f}" if paper else "-"
        lines.append(f"| {name} | {variant.paper} | {iou} | {count} | {overrides} |")
    return "\n".join(lines)
