"""Train and evaluate the paper's systems alike, and tabulate them like the paper.

:func:`run_ablation` trains every requested variant (:mod:`risam.ablation.variants`) with the same
data, seed and budget through the ordinary trainer (:func:`risam.engine.trainer.train`), evaluates
each one's last weights with the ordinary evaluator (:func:`risam.engine.evaluator.run_evaluation`),
and writes one table laid out like the paper's (Pr@50 ... Pr@90 and overall IoU per variant, plus the
trainable parameter count and the wall time), over several seeds with their spread and a verdict on each
of the paper's claims (:mod:`~risam.ablation.summary`), and a bar chart (:mod:`~risam.ablation.figure`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from risam.ablation.figure import draw_ablation
from risam.ablation.summary import CLAIMS, ablation_markdown, judge, summarize_runs
from risam.ablation.variants import REFERENCE_SPLIT, VARIANTS
from risam.config import ConfigError
from risam.config.experiment import ExperimentConfig
from risam.engine.distributed import init_distributed
from risam.engine.evaluator import run_evaluation
from risam.engine.trainer import train
from risam.io.files import atomic_write_json, atomic_write_text
from risam.io.reading import read_json
from risam.modeling.build import build_model
from risam.registry.names import get_config

RUN_RECORD = "run.json"  # in each variant-seed folder: the finished run's settings, times and results


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


def run_ablation(
    config: ExperimentConfig,
    variants: str | Sequence[str],
    out: str | os.PathLike,
    split: str | None = None,
    seeds: Sequence[int] | None = None,
    run_missing: bool = True,
) -> dict[str, Any]:
    """Train and evaluate every variant of ``variants`` ("a,b" or a list) under ``config``, once per seed.

    Each variant-seed run trains into ``out/NAME/seed_S`` with the same data and budget (``config``'s optim,
    batch and train sections; ``train.seed`` = S; ``seeds`` defaults to the config's seed), and its last
    weights (``checkpoints/last.safetensors``, the end of the budget) are evaluated on ``split`` (default:
    the config's val split) into ``results_SPLIT.json``; ``run.json`` then records the run. A run whose
    ``run.json`` exists is not run again (a training cut short resumes from its checkpoint), so the table
    can be built over several sittings; a ``run.json`` written under other settings is an error. After every
    run, rank 0 writes ``out/ablation.json`` (fractions; the paper's numbers in percent), ``out/ablation.md``
    (percent) and ``out/ablation.png`` (:func:`~risam.ablation.figure.draw_ablation`) from the runs so far.
    Every variant is checked before any trains. ``run_missing=False`` only tabulates the runs recorded so far.
    Returns the JSON's content.
    """
    out = Path(out)
    split = split or config.data.val_split
    seeds = list(dict.fromkeys(seeds if seeds is not None else [config.train.seed]))
    names = parse_variants(variants)
    configs = {
        (name, seed): _seeded(variant_config(config, name, out / name / f"seed_{seed}"), seed)
        for name in names
        for seed in seeds
    }
    records = {key: _recorded_run(cfg, split) for key, cfg in configs.items()}
    is_main = init_distributed().is_main
    variant_rows = {name: _variant_row(config, name, configs[(name, seeds[0])]) for name in names}
    table = _table(config, variant_rows, seeds, split, records)
    if is_main:
        _write_table(table, out)
    for key, variant_cfg in configs.items():
        if records[key] is not None or not run_missing:
            continue
        run_dir = Path(variant_cfg.train.output_dir)
        started = time.perf_counter()
        train(variant_cfg, resume=(run_dir / "checkpoints" / "last.pt").is_file())
        trained = time.perf_counter()
        results = run_evaluation(
            variant_cfg, run_dir / "checkpoints" / "last.safetensors", split, run_dir / f"results_{split}.json"
        )
        records[key] = {
            "seed": key[1],
            "settings": _settings(variant_cfg, split),
            "train_seconds": trained - started,
            "eval_seconds": time.perf_counter() - trained,
            "results": results,
        }
        table = _table(config, variant_rows, seeds, split, records)
        if is_main:
            atomic_write_json(run_dir / RUN_RECORD, records[key])
            _write_table(table, out)
    return table


def _seeded(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``config`` with ``train.seed`` = ``seed``."""
    config.train.seed = seed
    return config


def _settings(config: ExperimentConfig, split: str) -> dict[str, Any]:
    """What makes runs comparable: the model and its overrides, dataset, batch, optimizer, budget, seed and split.
    The data root is not among them, so that recorded runs carry over to a copy of the same data elsewhere."""
    return json.loads(
        json.dumps(
            {
                "model": config.model.name,
                "overrides": config.model.overrides,
                "data": {"dataset": config.data.dataset, "train": config.data.train_split},
                "batch": dataclasses.asdict(config.batch),
                "optim": dataclasses.asdict(config.optim),
                "max_steps": config.train.max_steps,
                "seed": config.train.seed,
                "split": split,
            },
            default=str,
        )
    )


def _recorded_run(config: ExperimentConfig, split: str) -> dict[str, Any] | None:
    """The ``run.json`` of a finished run in ``config``'s output folder, or None; ConfigError when it was run with
    other settings (another budget, data or split would mix incomparable runs in one table)."""
    path = Path(config.train.output_dir) / RUN_RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    if record.get("settings") != _settings(config, split):
        raise ConfigError(
            f"{path} records a run with other settings than this command's (budget, data, split or overrides); "
            "give another out= folder, or delete that run's folder to run it again"
        )
    return record


def _variant_row(config: ExperimentConfig, name: str, variant_cfg: ExperimentConfig) -> dict[str, Any]:
    """What the table says of variant ``name`` whatever its runs: description, paper row and numbers, overrides,
    the trainable parameters of ``variant_cfg``'s model and its attention-mask threshold tau."""
    variant = VARIANTS[name]
    return {
        "name": name,
        "description": variant.description,
        "paper": variant.paper,
        "overrides": variant.overrides_for(config.model.name),
        "trainable_params": trainable_parameters(variant_cfg),
        "tau": get_config(variant_cfg.model.name, variant_cfg.model_overrides()).head.tau,
        "paper_results": {
            key: {"iou": value.iou, "precision": list(value.precision) if value.precision else None}
            for key, value in variant.results.items()
        },
    }


def _table(
    config: ExperimentConfig,
    variant_rows: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    split: str,
    records: dict[tuple[str, int], dict[str, Any] | None],
) -> dict[str, Any]:
    """The table of the runs recorded so far (see :func:`run_ablation`): per variant its row with its runs and
    their summary, then the verdicts on the paper's claims."""
    rows = []
    for name, row in variant_rows.items():
        runs = [records[(name, seed)] for seed in seeds if records[(name, seed)] is not None]
        rows.append({**row, "runs": runs, "summary": summarize_runs(runs)})
    baselines = [run["results"].get("sentence_free_baseline") for row in rows for run in row["runs"]]
    table = {
        "model": config.model.name,
        "dataset": config.data.dataset,
        "split": split,
        "seeds": list(seeds),
        "budget": {
            "epochs": config.optim.epochs,
            "max_steps": config.train.max_steps,
            "global_groups": config.batch.global_groups,
        },
        "sentence_free_baseline": next((value for value in baselines if value is not None), None),
        "variants": rows,
    }
    table["claims"] = [judge(claim, {row["name"]: row["summary"] for row in rows}) for claim in CLAIMS]
    return table


def _write_table(table: dict[str, Any], out: Path) -> None:
    """``out/ablation.json``, ``.md`` and ``.png`` of ``table``, once it holds a run."""
    if not any(row["runs"] for row in table["variants"]):
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ablation.json", table)
    atomic_write_text(out / "ablation.md", ablation_markdown(table) + "\n")
    draw_ablation(table, out / "ablation.png")


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
