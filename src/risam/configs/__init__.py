"""Architecture configs."""

from risam.configs.model import (
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    ConfigError,
    HeadConfig,
    ImageEncoderConfig,
    RISAMConfig,
    TextEncoderConfig,
)

__all__ = [
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "ConfigError",
    "HeadConfig",
    "ImageEncoderConfig",
    "RISAMConfig",
    "TextEncoderConfig",
]
