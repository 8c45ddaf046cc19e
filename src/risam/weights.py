"""Our own model files: the trainable weights and the config that rebuilds the model.

A RISAM weights file is a safetensors file. Its tensors are
:meth:`RISAM.trainable_state_dict`; its metadata holds ``format``, ``risam_version`` and
``config`` (the JSON of :class:`RISAMConfig`). Frozen encoder weights are not stored: they
come from the official SAM and CLIP files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from risam import __version__
from risam.configs import ConfigError, RISAMConfig
from risam.modeling.state_dict import CheckpointError

WEIGHTS_FORMAT = "risam.weights/1"


def save_weights(state_dict: dict[str, torch.Tensor], config: RISAMConfig, path: str | os.PathLike) -> None:
    """Write ``state_dict`` and ``config`` to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state_dict.items()}
    metadata = {
        "format": WEIGHTS_FORMAT,
        "risam_version": __version__,
        "config": json.dumps(config.to_dict()),
    }
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        safetensors.torch.save_file(tensors, temp_name, metadata=metadata)
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def read_config(path: str | os.PathLike) -> RISAMConfig:
    """The config stored in a RISAM weights file, without reading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RISAM weights file not found: {path}")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a RISAM weights file (a safetensors file): {error}") from error
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(
            f"{path}: metadata key 'format' is {metadata.get('format')!r}, expected {WEIGHTS_FORMAT!r}"
        )
    if "config" not in metadata:
        raise CheckpointError(f"{path}: metadata key 'config' is missing")
    try:
        return RISAMConfig.from_dict(json.loads(metadata["config"]))
    except (json.JSONDecodeError, ConfigError) as error:
        raise CheckpointError(f"{path}: metadata key 'config' is not a valid RISAM config: {error}") from error


def load_weights(path: str | os.PathLike) -> tuple[RISAMConfig, dict[str, torch.Tensor]]:
    """The config and the trainable state dict of a RISAM weights file (on the CPU)."""
    config = read_config(path)
    return config, safetensors.torch.load_file(str(path), device="cpu")
