"""``risam export``: a finished run's weights as one file that says how it was made.

The file is an ordinary RISAM weights file (:mod:`risam.io.weights`) whose metadata also records
the run's experiment (its ``config.yaml``), the command that made it, its seed, its cost and the
results of every ``results_<split>.json`` in the run folder (written by
``risam evaluate --output RUN/results_<split>.json``), keyed by split. The shipped
``risam_tiny_refshapes`` was made this way (docs/training.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from risam.errors import InputError
from risam.io.config_files import load_config
from risam.io.reading import read_json, read_text
from risam.io.weights import load_weights, save_weights

# What a results file keeps in the record: the metrics, not where they were computed.
RESULT_KEYS = (
    "overall_iou",
    "mean_iou",
    "precision",
    "num_samples",
    "grounding_gap",
    "by_type",
    "sentence_free_baseline",
    "dataset",
)


def _run_results(run_dir: Path, weights_name: str) -> dict[str, dict[str, Any]]:
    """The metrics of every ``results_<split>.json`` in ``run_dir``, by split; InputError for a file that is
    not a results file, or that evaluated other weights than ``weights_name``."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(run_dir.glob("results_*.json")):
        try:
            data = read_json(path)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"{path}: not a results file of risam evaluate ({error})") from error
        if not isinstance(data, dict) or not isinstance(data.get("split"), str) or "overall_iou" not in data:
            raise InputError(f"{path}: not a results file of risam evaluate (needs 'split' and 'overall_iou')")
        evaluated = Path(str(data.get("checkpoint", ""))).name
        if evaluated != weights_name:
            raise InputError(
                f"{path}: key 'checkpoint' is {data.get('checkpoint')!r}, but the weights exported are {weights_name}; "
                "evaluate those weights, or move the file out of the run folder"
            )
        results[data["split"]] = {key: data[key] for key in RESULT_KEYS if key in data}
    return results


def export_run(
    run_dir: str | os.PathLike,
    output: str | os.PathLike,
    weights: str = "last",
    command: str | None = None,
    cost: str | None = None,
) -> dict[str, str]:
    """Write the ``weights`` ("last" or "best") of the run in ``run_dir`` to ``output`` with the record
    described in the module docstring; returns the record (metadata key -> string)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise InputError(f"{run_dir}: no config.yaml; give the output folder of a risam train run")
    experiment = load_config(config_path)
    weights_path = run_dir / "checkpoints" / f"{weights}.safetensors"
    model_config, state_dict = load_weights(weights_path)
    record = {
        "experiment": read_text(config_path),
        "command": command or f"risam train --config {config_path}",
        "seed": str(experiment.train.seed),
        "results": json.dumps(_run_results(run_dir, weights_path.name), sort_keys=True),
    }
    if cost:
        record["cost"] = cost
    save_weights(state_dict, model_config, output, record)
    return record
