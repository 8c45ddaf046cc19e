"""The model and datasets an experiment config describes."""

from __future__ import annotations

import torch

from risam.config import ConfigError
from risam.config.experiment import DatasetEntry, ExperimentConfig
from risam.data.dataset import ReferDataset
from risam.data.mixture import (
    MixedSplit,
    Overlap,
    entry_for,
    entry_root,
    load_entry_split,
    mixed_train_split,
    split_label,
)
from risam.data.readers import load_split
from risam.data.records import ReferSplit
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


def _check_root(config: ExperimentConfig) -> None:
    datasets = config.data.datasets
    if config.data.root is None and not (datasets and all(entry.root for entry in datasets)):
        raise ConfigError(
            "data.root is not set; give it in the config or as the override data.root=/path/to/data (a REFER-layout "
            "data root)"
        )


def _as_dataset(data: ReferSplit | MixedSplit, model: RISAM, for_eval: bool) -> ReferDataset:
    image = model.image_encoder.config
    return ReferDataset(
        data,
        image.img_size,
        model.text_encoder.tokenize,
        image.pixel_mean,
        image.pixel_std,
        keep_original_masks=for_eval,
    )


def _mixed_entry(config: ExperimentConfig, split: str) -> tuple[DatasetEntry, str]:
    """The listed dataset and its split that ``split`` (``DATASET/SPLIT``) names in a mixed experiment."""
    name, slash, part = split.rpartition("/")
    if not slash:
        listed = ", ".join(entry.name for entry in config.data.datasets)
        raise ConfigError(f"split {split!r}: a mixed experiment names splits as DATASET/SPLIT (datasets: {listed})")
    return entry_for(config.data, name), part


def split_root(config: ExperimentConfig, split: str) -> str | None:
    """The data root that ``split`` is read from: ``data.root``, or in a mixed experiment its dataset's root."""
    if config.data.datasets:
        return entry_root(_mixed_entry(config, split)[0], config.data)
    return config.data.root


def build_dataset(config: ExperimentConfig, model: RISAM, split: str, for_eval: bool) -> ReferDataset:
    """The ``split`` of the configured dataset, preprocessed for ``model`` (original masks kept for eval).

    In a mixed experiment (``data.datasets``) ``split`` is ``DATASET/SPLIT``, a split of a listed dataset.
    """
    _check_root(config)
    if config.data.datasets:
        entry, part = _mixed_entry(config, split)
        data = load_entry_split(entry, config.data, part)
    else:
        data = load_split(config.data.root, config.data.dataset, split, image_root=config.data.image_root)
    if not data.expressions:
        raise ConfigError(
            f"split {split!r} of {data.dataset} under {split_root(config, split)} has no sentences ({data.source}); "
            "risam data check counts the sentences of every split"
        )
    return _as_dataset(data, model, for_eval)


def build_train_dataset(
    config: ExperimentConfig, model: RISAM
) -> tuple[ReferDataset, list[Overlap], list[float] | None]:
    """The training set: the configured train split, or in a mixed experiment the joined train splits with
    the leakage rule applied (:func:`risam.data.mixture.mixed_train_split`), what the rule found per dataset,
    and the sentences' sampling weights (None for one dataset)."""
    if not config.data.datasets:
        return build_dataset(config, model, config.data.train_split, for_eval=False), [], None
    _check_root(config)
    mixed, overlaps, weights = mixed_train_split(config.data)
    return _as_dataset(mixed, model, for_eval=False), overlaps, weights


def val_splits(config: ExperimentConfig) -> list[str]:
    """The splits evaluated during training: ``data.val_split``, or every listed dataset's as DATASET/SPLIT."""
    if config.data.datasets:
        return [split_label(entry, entry.val_split) for entry in config.data.datasets]
    return [config.data.val_split]
