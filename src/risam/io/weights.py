"""Our own model files: the trainable weights and the config that rebuilds the model.

A RISAM weights file is a safetensors file. Its tensors are
:meth:`RISAM.trainable_state_dict`; its metadata holds ``format``, ``risam_version`` and
``config`` (the JSON of :class:`RISAMConfig`). Frozen encoder weights are not stored: they
come from the official SAM and CLIP files. A file made by ``risam export`` also records how it
was made (:data:`RECORD_KEYS`: the experiment, the command, the seed, the results per split as
JSON and the cost).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import safetensors
import safetensors.torch
import torch

from risam.config import ConfigError, RISAMConfig
from risam.io.files import atomic_write, readable_file
from risam.io.state_dict import CheckpointError
from risam.version import __version__

WEIGHTS_FORMAT = "risam.weights/1"
ENCODERS_FORMAT = "risam.encoders/1"
RECORD_KEYS = ("experiment", "command", "seed", "results", "cost")


def save_weights(
    state_dict: dict[str, torch.Tensor],
    config: RISAMConfig,
    path: str | os.PathLike,
    record: Mapping[str, str] | None = None,
) -> None:
    """Write ``state_dict`` and ``config`` to ``path`` atomically (temp file, then rename), with ``record``
    (keys from :data:`RECORD_KEYS`, string values) in the metadata."""
    metadata = {
        "format": WEIGHTS_FORMAT,
        "risam_version": __version__,
        "config": json.dumps(config.to_dict()),
    }
    unknown = sorted(set(record or {}) - set(RECORD_KEYS))
    if unknown:
        raise ValueError(f"record keys {unknown} are not among {RECORD_KEYS}")
    metadata.update(record or {})
    atomic_save_safetensors(state_dict, path, metadata)


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a RISAM weights file: format, version, config and, if recorded, :data:`RECORD_KEYS`."""
    return _metadata(path, WEIGHTS_FORMAT, "RISAM weights file")


def _metadata(path: str | os.PathLike, expected_format: str, what: str) -> dict[str, str]:
    """The metadata of a safetensors file of ours; CheckpointError unless its ``format`` is ``expected_format``
    and it holds a ``config``. ``what`` names the kind of file in messages."""
    path = readable_file(path, what)
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (safetensors.SafetensorError, OSError, ValueError) as error:  # the header's own text may hold newlines
        raise CheckpointError(f"{path} is not a {what} (a safetensors file): {' '.join(str(error).split())}") from error
    if metadata.get("format") != expected_format:
        raise CheckpointError(
            f"{path}: metadata key 'format' is {metadata.get('format')!r}, expected {expected_format!r}"
        )
    if "config" not in metadata:
        raise CheckpointError(f"{path}: metadata key 'config' is missing")
    return metadata


def read_config(path: str | os.PathLike) -> RISAMConfig:
    """The config stored in a RISAM weights file, without reading its tensors."""
    metadata = _metadata(path, WEIGHTS_FORMAT, "RISAM weights file")
    try:
        return RISAMConfig.from_dict(json.loads(metadata["config"]))
    except (json.JSONDecodeError, ConfigError) as error:
        raise CheckpointError(f"{path}: metadata key 'config' is not a valid RISAM config: {error}") from error


def _finite_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU); CheckpointError, in one line naming the file and the
    first offending keys, if a floating-point tensor holds NaN or inf."""
    tensors = safetensors.torch.load_file(str(path), device="cpu")
    bad = [key for key, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        tensor_holds = "1 tensor holds" if len(bad) == 1 else f"{len(bad)} tensors hold"
        raise CheckpointError(
            f"{path}: {tensor_holds} NaN or inf values ({shown}); the file is damaged or came from a diverged run"
        )
    return tensors


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path`` by name, on the CPU, as stored (any file, not only ours);
    raises what ``safetensors.torch.load_file`` raises for a file that is not one."""
    return safetensors.torch.load_file(str(path), device="cpu")


def load_weights(path: str | os.PathLike) -> tuple[RISAMConfig, dict[str, torch.Tensor]]:
    """The config and the trainable state dict of a RISAM weights file (on the CPU); CheckpointError if a
    floating-point tensor holds NaN or inf."""
    config = read_config(path)
    return config, _finite_tensors(path)


# Encoder config keys that are not architecture: whether it trains, and how many query tokens a global
# attention block takes at once (the same result in chunks of any size).
NOT_ARCHITECTURE = ("freeze", "attention_chunk")


def encoder_architecture(config: Any) -> dict[str, Any]:
    """An encoder config section as JSON-ready data, without the keys of :data:`NOT_ARCHITECTURE`
    (also where an encoders file records them)."""
    section = {key: value for key, value in dataclasses.asdict(config).items() if key not in NOT_ARCHITECTURE}
    return json.loads(json.dumps(section))


def load_encoders(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """An encoders file (``risam pretrain-tiny``): its recorded architecture per encoder and its tensors;
    CheckpointError if a floating-point tensor holds NaN or inf."""
    metadata = _metadata(path, ENCODERS_FORMAT, "encoders file")
    try:
        sections = json.loads(metadata["config"])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: metadata key 'config' is not JSON: {error}") from error
    return sections, _finite_tensors(path)


def encoders_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an encoders file: format, config, command, seed, scores, wall time, version."""
    return _metadata(path, ENCODERS_FORMAT, "encoders file")


def atomic_save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]
) -> None:
    """Write a safetensors file at ``path`` with :func:`atomic_write`: never a half-written file,
    permissions from the umask.

    The file is serialised in memory first: ``safetensors.torch.save_file`` would write through a
    temporary file of its own (``.tmpXXXXXX``), which a kill would leave behind.
    """
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    data = safetensors.torch.save(tensors, metadata=metadata)
    with atomic_write(path, "wb") as handle:
        handle.write(data)
