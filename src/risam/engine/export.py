"""``risam export``: a finished run's weights as one file that says how it was made, or as a folder for the Hub.

The file is an ordinary RISAM weights file (:mod:`risam.io.weights`) whose metadata also records
the run's experiment (its ``config.yaml``), the command that made it, its seed, its cost and the
results of every ``results_<split>.json`` in the run folder (written by
``risam evaluate --output RUN/results_<split>.json``), keyed by split. The shipped
``risam_tiny_refshapes`` was made this way (docs/training.md).

An output that is not a ``.safetensors`` file is a folder as the Hugging Face Hub shows it:
``model.safetensors`` (that file), ``config.json`` and the model card ``README.md``
(:mod:`risam.engine.model_card`); ``risam export ... --push-to-hub ORG/NAME`` uploads it
(:func:`risam.io.hub.push_folder`). The source may also be a weights file that records its run already
(a shipped model's name, an ``hf-hub:`` name, or a path), whose record is kept: that is how the shipped
model's card under ``docs/models/`` was made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from risam.config import RISAMConfig
from risam.engine.model_card import DEFAULT_LICENSE, hub_config, model_card
from risam.errors import InputError
from risam.io.config_files import load_config
from risam.io.files import atomic_write_json, atomic_write_text
from risam.io.hub import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, is_hub_name, parse_hub_name
from risam.io.reading import read_json, read_text
from risam.io.weights import RECORD_KEYS, load_weights, save_weights, weights_metadata
from risam.registry.files import SHIPPED_MODELS, resolve_checkpoint

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
    "ciou",
    "giou",
    "n_acc",
    "t_acc",
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


def _run_weights(
    run_dir: Path, weights: str, command: str | None
) -> tuple[RISAMConfig, dict[str, torch.Tensor], dict[str, str]]:
    """The config, the ``weights`` ("last" or "best") and the record of the train run in ``run_dir``."""
    config_path = run_dir / "config.yaml"
    experiment = load_config(config_path)
    weights_path = run_dir / "checkpoints" / f"{weights}.safetensors"
    model_config, state_dict = load_weights(weights_path)
    record = {
        "experiment": read_text(config_path),
        "command": command or f"risam train --config {config_path}",
        "seed": str(experiment.train.seed),
        "results": json.dumps(_run_results(run_dir, weights_path.name), sort_keys=True),
    }
    return model_config, state_dict, record


def export_run(
    source: str | os.PathLike,
    output: str | os.PathLike,
    weights: str = "last",
    command: str | None = None,
    cost: str | None = None,
    license: str = DEFAULT_LICENSE,
    repo_id: str | None = None,
) -> dict[str, str]:
    """Export the model of ``source`` to ``output``, as described in the module docstring; returns the record
    (metadata key -> string).

    source: a train run's output folder (its ``weights``, "last" or "best", and ``config.yaml``), or a RISAM
        weights file, a shipped model's name or an ``hf-hub:`` name, whose record is kept (``command`` and
        ``cost``, where given, replace the recorded ones).
    output: a ``.safetensors`` file, or a folder for the Hub (``license`` and ``repo_id``, the repo it is meant
        for, go into its card).
    """
    if not is_hub_name(source) and Path(source).is_dir():
        run_dir = Path(source)
        if not (run_dir / "config.yaml").is_file():
            raise InputError(f"{run_dir}: no config.yaml; give the output folder of a risam train run")
        model_config, state_dict, record = _run_weights(run_dir, weights, command)
    else:
        path = resolve_checkpoint(source)
        model_config, state_dict = load_weights(path)
        metadata = weights_metadata(path)
        record = {key: metadata[key] for key in RECORD_KEYS if key in metadata}
        if command:
            record["command"] = command
    if cost:
        record["cost"] = cost
    output = Path(output)
    if output.suffix == ".safetensors":
        save_weights(state_dict, model_config, output, record)
        return record
    if output.is_file():
        raise InputError(f"{output}: a file; give a folder to write the Hub's files into, or a .safetensors file")
    save_weights(state_dict, model_config, output / WEIGHTS_FILE, record)
    trainable = sum(tensor.numel() for tensor in state_dict.values())
    atomic_write_json(output / CONFIG_FILE, hub_config(model_config, record, trainable))
    name = _model_name(source, output, repo_id)
    atomic_write_text(output / CARD_FILE, model_card(name, model_config, record, trainable, license, repo_id))
    return record


def _model_name(source: str | os.PathLike, output: Path, repo_id: str | None) -> str:
    """The name the card gives the model: the repo's, a shipped model's or a Hub model's, else the folder's."""
    if repo_id:
        return repo_id.rsplit("/", 1)[-1]
    if str(source) in SHIPPED_MODELS:
        return str(source)
    if is_hub_name(source):
        return parse_hub_name(source).repo_id.rsplit("/", 1)[-1]
    return output.resolve().name
