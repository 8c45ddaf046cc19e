"""An experiment's config read from and written to a YAML file (written atomically).

The parsing and checking are :func:`risam.config.experiment.config_from_yaml`'s; here the file is found and read.
"""

from __future__ import annotations

import os

import yaml

from risam.config.experiment import ExperimentConfig, config_from_yaml, resolve_config_path
from risam.config.parse import ConfigError
from risam.io.files import atomic_write


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML experiment config (a path or a shipped name; None: the defaults), apply overrides.

    Override values are parsed as YAML (``optim.lr=1e-3``, ``optim.milestones=[3,4]``,
    ``model.overrides={head.tau: 0.3}``, ``data.root=/data``). ConfigError, in one line naming the file, for a
    file that cannot be read, is not UTF-8 YAML or holds a wrong section or key; FileNotFoundError for a path
    that is neither a file nor a shipped name.
    """
    if path is None:
        return config_from_yaml(None, "defaults", overrides)
    path = resolve_config_path(path)
    try:
        document = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config ({error.strerror or error})") from error
    return config_from_yaml(document, str(path), overrides)


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML, atomically (:func:`risam.io.files.atomic_write`)."""
    with atomic_write(path, "w") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
