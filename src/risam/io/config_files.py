"""An experiment's config written as YAML, atomically (the reader is :func:`risam.config.load_config`)."""

from __future__ import annotations

import os

import yaml

from risam.config.experiment import ExperimentConfig
from risam.io.files import atomic_write


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML, atomically (:func:`risam.io.files.atomic_write`)."""
    with atomic_write(path, "w") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
