"""Experiment configs: YAML files in ``configs/`` plus ``--set key=value`` overrides.

Every section is a typed dataclass; unknown keys and wrong types raise ConfigError naming
the key. Data and checkpoint paths are never part of the shipped files: they come from
``--set data.root=...`` (or a copy of the file).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from risam.config.parse import ConfigError, dataclass_from_dict, set_dotted
from risam.errors import conversion_problem


@dataclass
class ModelSection:
    """Which registered model, with dotted architecture overrides, and the encoder files.

    ``sam_checkpoint`` is the image encoder's file: Meta's SAM checkpoint, or the timm
    checkpoint of another backbone (``image_encoder.backbone``); ``clip_checkpoint`` the CLIP file.
    Each may also be ``download`` (the official file, fetched into the cache) or a Hub repo of the
    same weights, ``hf-hub:timm/samvit_huge_patch16.sa1b`` (:func:`risam.registry.files.encoder_file`).
    """

    name: str = "risam_vit_h"
    overrides: dict[str, Any] = field(default_factory=dict)
    sam_checkpoint: str | None = None
    clip_checkpoint: str | None = None


@dataclass
class DatasetEntry:
    """One dataset of a mixed experiment (``data.datasets``): its name (a key of
    :data:`risam.data.catalog.DATASETS`), its data root and image folder (default: the data section's),
    its training and validation splits, and its ``weight``: the share of training sentences drawn from
    it (default: proportional to its sentences, each sentence once per epoch). A bare name stands for an
    entry with the defaults (``datasets: [refcoco, refcoco+, refcocog_umd]``).
    """

    name: str
    root: str | None = None
    image_root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    weight: float | None = None

    @classmethod
    def from_name(cls, name: str) -> DatasetEntry:
        """The entry of dataset ``name`` with every other key at its default."""
        return cls(name=name)


@dataclass
class DataSection:
    """The dataset under a data root (REFER layout) and how it is read.

    ``datasets``, when not empty, trains on several datasets at once (:mod:`risam.data.mixture`) and
    replaces ``dataset``, ``train_split`` and ``val_split``; every entry's ``val_split`` is evaluated.
    ``exclude_eval_images`` is the leakage rule of a mixed experiment: no training image may be an image
    of any val or test split of any listed dataset, nor of ``held_out_splits`` (``DATASET/SPLIT``, splits
    evaluated elsewhere, e.g. ``refcocog_umd/test`` when it is not in the list).
    """

    root: str | None = None
    dataset: str = "refcoco"
    train_split: str = "train"
    val_split: str = "val"
    image_root: str | None = None
    max_words: int = 17
    num_workers: int = 4
    datasets: list[DatasetEntry] = field(default_factory=list)
    exclude_eval_images: bool = True
    held_out_splits: list[str] = field(default_factory=list)


@dataclass
class BatchSection:
    """How sentences are batched.

    ``mode: grouped`` batches whole images with their sentences (chunks of at most
    ``sentences_per_image``), so the frozen image encoder runs once per image;
    ``mode: sentence`` batches independent sentences. ``global_groups`` is the number of
    groups (images, or sentences) per optimizer step over all ranks and accumulation steps.
    """

    mode: Literal["grouped", "sentence"] = "grouped"
    global_groups: int = 4
    sentences_per_image: int | None = 8
    accumulation_steps: int = 1


@dataclass
class OptimSection:
    """Adam, and the learning rate multiplied by ``gamma`` at each milestone epoch."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    epochs: int = 50
    milestones: list[int] = field(default_factory=lambda: [30, 42])
    gamma: float = 0.1


@dataclass
class LossSection:
    """Eq. 12's weights and the focal loss's gamma."""

    focal_weight: float = 0.5
    dice_weight: float = 0.5
    focal_gamma: float = 2.0


@dataclass
class TrainSection:
    """Run settings. ``max_steps`` (if set) ends training early, for tests and smoke runs.

    ``cache_features`` runs the frozen encoders once per training image and sentence and trains
    the head on their stored outputs (both encoders must be frozen; for small encoders such as
    ``risam_tiny``, whose outputs fit in memory: :mod:`risam.engine.feature_cache`).
    ``deterministic`` trains with torch's deterministic kernels, so that a run and its resumed
    copy end with identical weights; without it, some CPU backward kernels (attention over
    more than one block of queries) accumulate in a varying order and runs differ in the last bits.
    ``bf16`` runs the trainable head under bfloat16 autocast on CUDA (its weights and optimizer state
    stay float32). ``encoder_precision`` keeps the frozen encoders' weights in "fp32" or "bf16";
    "auto" is bf16 where the device multiplies it natively (:mod:`risam.precision`), in training
    and evaluation alike (``--precision`` of ``risam train`` and ``risam evaluate`` sets it).
    """

    output_dir: str = "runs/experiment"
    seed: int = 0
    bf16: bool = True
    encoder_precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every_steps: int = 1000
    log_every_steps: int = 50
    eval_every_epochs: int = 1
    max_steps: int | None = None
    progress: bool = True
    cache_features: bool = False
    deterministic: bool = True


DEFAULT_THRESHOLD = 0.35  # the sigmoid threshold of a mask, for evaluation, the predictor and the CLI


# The precisions of the frozen encoders that a config, a command or create_model takes (risam.precision).
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class EvalSection:
    """Inference: sigmoid threshold of the mask and evaluation batch size (images per batch).

    ``compile`` runs the frozen image encoder through ``torch.compile`` during evaluation
    (:mod:`risam.modeling.compiled`; ``risam evaluate --compile``). Off by default: compiling takes
    minutes, and on a CPU the eager encoder was as fast (README, "Speed").
    """

    threshold: float = DEFAULT_THRESHOLD
    images_per_batch: int = 8
    compile: bool = False


@dataclass
class ExperimentConfig:
    """A whole experiment."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    batch: BatchSection = field(default_factory=BatchSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ExperimentConfig:
        """Build from nested dicts; ``source`` names the file in errors."""
        return dataclass_from_dict(cls, data, source=source)

    def model_overrides(self) -> dict[str, Any]:
        """The architecture overrides, with the text length of the data section applied."""
        return {"text_encoder.max_words": self.data.max_words, **self.model.overrides}


RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A config file: the path itself, or the name of a shipped experiment (``refcoco``, ``refshapes_tiny``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"{name_or_path}: is a folder; give an experiment YAML file or a shipped name")
    shipped = RECIPES_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"config file not found: {name_or_path}; shipped experiments: {', '.join(names)}")


def _parse_yaml(text: str, source: str) -> Any:
    """``text`` as YAML (safe: tags such as ``!!python/object`` are refused, never run), or
    ConfigError naming ``source`` and the line and column of the problem."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())  # one line
        raise ConfigError(f"{source}{where}: not valid YAML ({problem})") from error
    except RecursionError as error:
        raise ConfigError(f"{source}: not YAML this reader reads (nested too deeply)") from error
    except ValueError as error:  # a number over Python's int digits limit, or a date out of range
        raise ConfigError(f"{source}: not YAML this reader reads ({conversion_problem(error)})") from error


def config_from_yaml(
    document: bytes | None, source: str = "defaults", overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """The experiment config of a YAML ``document`` (the bytes of a UTF-8 file; None: the defaults) with
    ``overrides`` applied; ``source`` names the document in errors (the file's path).

    Override values are parsed as YAML (``optim.lr=1e-3``, ``optim.milestones=[3,4]``,
    ``model.overrides={head.tau: 0.3}``, ``data.root=/data``). The file-reading counterpart is
    :func:`risam.io.config_files.load_config`.
    """
    data: dict[str, Any] = {}
    if document is not None:
        try:
            text = document.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(f"{source}: not UTF-8 text (byte {error.start}); save the config as UTF-8") from error
        loaded = _parse_yaml(text, source)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of sections, got {type(loaded).__name__}")
        data = loaded or {}
    for item in overrides:
        key, separator, raw = item.partition("=")
        if not separator or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. optim.lr=1e-4")
        set_dotted(data, key, _parse_yaml(raw, f"override {item}") if raw else None)
    return ExperimentConfig.from_dict(data, source=source)
