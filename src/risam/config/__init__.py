"""Every config of risam, and its one error.

- :mod:`risam.config.model`: what a model is (``RISAMConfig``: image encoder, text encoder, head).
- :mod:`risam.config.experiment`: what a run does (``ExperimentConfig``: model files, data, batch,
  optimizer, training, evaluation), read from the YAML recipes in ``risam/recipes/``.
- :mod:`risam.config.parse`: typed dataclasses from plain dicts, and :class:`ConfigError`.
"""

from risam.config.experiment import DEFAULT_THRESHOLD, ExperimentConfig, load_config
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
    "load_config",
]
