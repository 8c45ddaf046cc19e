"""The model and datasets an experiment config describes."""

from __future__ import annotations

import torch

from risam.config import ConfigError
from risam.config.experiment import ExperimentConfig
from risam.data.dataset import ReferDataset
from risam.data.readers import load_split
from risam.modeling.model import RISAM
from risam.precision import choose_precision, warn_if_emulated
from risam.registry.create import create_model


def build_experiment_model(config: ExperimentConfig) -> RISAM:
    """The model of ``config.model``, with its encoder files and the data section's text length."""
    return create_model(
        config.model.name,
        sam_checkpoint=config.model.sam_checkpoint,
        clip_checkpoint=config.model.clip_checkpoint,
        overrides=config.model_overrides(),
    )


def place_model(model: RISAM, config: ExperimentConfig, device: torch.device) -> RISAM:
    """``model`` on ``device``, its frozen encoders in the precision ``train.encoder_precision`` picks there."""
    choice = choose_precision(config.train.encoder_precision, device)
    warn_if_emulated(choice)
    return model.to(device).store_frozen_encoders(choice.dtype)


def build_dataset(config: ExperimentConfig, model: RISAM, split: str, for_eval: bool) -> ReferDataset:
    """The ``split`` of the configured dataset, preprocessed for ``model`` (original masks kept for eval)."""
    if config.data.root is None:
        raise ConfigError(
            "data.root is not set; give it in the config or as the override data.root=/path/to/data (a REFER-layout "
            "data root)"
        )
    data = load_split(config.data.root, config.data.dataset, split, image_root=config.data.image_root)
    if not data.expressions:
        raise ConfigError(
            f"split {split!r} of {config.data.dataset} under {config.data.root} has no sentences ({data.source}); "
            "risam data check counts the sentences of every split"
        )
    image = model.image_encoder.config
    return ReferDataset(
        data,
        image.img_size,
        model.text_encoder.tokenize,
        image.pixel_mean,
        image.pixel_std,
        keep_original_masks=for_eval,
    )
