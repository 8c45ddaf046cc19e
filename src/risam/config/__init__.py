"""Every config of risam, and its one error.

- :mod:`risam.config.model`: what a model is (``RISAMConfig``: image encoder, text encoder, head).
- :mod:`risam.config.experiment`: what a run does (``ExperimentConfig``: model files, data, batch,
  optimizer, training, evaluation), parsed from YAML such as the recipes in ``risam/recipes/`` (the files are
  read by :func:`risam.io.config_files.load_config`).
- :mod:`risam.config.parse`: typed dataclasses from plain dicts, and :class:`ConfigError`.
"""

from risam.config.experiment import DEFAULT_THRESHOLD, ExperimentConfig, config_from_yaml
from risam.config.model import (
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    HeadConfig,
    ImageEncoderConfig,
    RISAMConfig,
    TextEncoderConfig,
)
from risam.config.parse import ConfigError

__all__ = [
    "DEFAULT_THRESHOLD",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "ConfigError",
    "ExperimentConfig",
    "HeadConfig",
    "ImageEncoderConfig",
    "RISAMConfig",
    "TextEncoderConfig",
    "config_from_yaml",
]
