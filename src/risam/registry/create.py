"""``create_model``: a model from its name or weights file, its encoder files and its precision."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from risam.config import ConfigError
from risam.io.state_dict import CheckpointError, load_state_dict_strict
from risam.io.weights import NOT_ARCHITECTURE, encoder_architecture, load_encoders, load_weights
from risam.modeling.build import build_model
from risam.modeling.model import RISAM
from risam.precision import PrecisionChoice, choose_precision
from risam.registry.files import (
    SHIPPED_ENCODERS,
    encoder_file,
    missing_encoder_files,
    resolve_checkpoint,
    shipped_encoders_path,
)
from risam.registry.names import get_config


def create_model(
    name: str | None = None,
    *,
    sam_checkpoint: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    precision: str | PrecisionChoice = "fp32",
    require_encoders: bool = False,
) -> RISAM:
    """Build a RISAM model by registered ``name`` or from a RISAM weights file.

    sam_checkpoint: Meta's official SAM ``.pth`` (or an image-encoder state dict, e.g. timm's
        ``model.safetensors``); for a timm backbone (``image_encoder.backbone``, paper Tab. 7), its timm
        checkpoint. ``"download"``: the official file of the model's SAM
        (:data:`~risam.registry.files.SAM_WEIGHTS`), from the cache or fetched into it; ``"hf-hub:ORG/NAME"``:
        that repo's encoder file from the Hugging Face cache (:func:`~risam.registry.files.encoder_file`).
    clip_checkpoint: OpenAI CLIP ``.pt`` or an open_clip checkpoint; ``"download"`` and ``"hf-hub:"`` as above.
    checkpoint: a RISAM weights file, a shipped model's name, or a model on the Hub
        (``"hf-hub:ORG/NAME[@REVISION]"``, :func:`~risam.registry.files.resolve_checkpoint`); its stored
        config rebuilds the model (``name``, if given, must match it) and its trainable weights are loaded
        strictly.
    overrides: dotted config keys to change (not allowed together with ``checkpoint``).
    device: where to build; "meta" builds without allocating memory (for counting).
    pretrained: load the encoders that ship in the package for this model (``risam_tiny``),
        unless encoder files are given; False keeps them randomly initialised (for tests).
    precision: the frozen encoders' weights, "fp32", "bf16" or "auto" (bf16 where ``device``
        multiplies it natively: :mod:`risam.precision`), or a choice already made
        (:func:`risam.precision.choose_precision`); the trainable parts stay float32.
    require_encoders: for a ``checkpoint`` of a model whose frozen encoders the package does not ship,
        CheckpointError naming the encoder files it needs unless they are given; False warns instead
        and keeps the encoders random (for timing and memory measurements).

    The weights file is read once: its config and its tensors together.
    """
    if checkpoint is not None:
        if overrides:
            raise ConfigError("overrides cannot change the architecture stored in a checkpoint")
        checkpoint = resolve_checkpoint(checkpoint)
        config, state_dict = load_weights(checkpoint)
        if name is not None and name != config.name:
            raise ConfigError(f"{checkpoint} holds a {config.name!r} model, not {name!r}")
    elif name is None:
        raise ValueError("create_model needs a model name or a checkpoint")
    else:
        config = get_config(name, overrides)
    sam_checkpoint = encoder_file(sam_checkpoint, config, "sam")
    clip_checkpoint = encoder_file(clip_checkpoint, config, "clip")
    shipped = pretrained and config.name in SHIPPED_ENCODERS and sam_checkpoint is None and clip_checkpoint is None
    missing = [] if checkpoint is None or shipped else missing_encoder_files(config, sam_checkpoint, clip_checkpoint)
    if missing and require_encoders:
        raise CheckpointError(
            f"{checkpoint} holds a {config.name} model: only its trained head, not the frozen encoders it "
            f"was trained on; pass {' and '.join(missing)}"
        )
    choice = precision if isinstance(precision, PrecisionChoice) else choose_precision(precision, device)
    model = build_model(config, device=device, encoder_dtype=choice.dtype)
    if shipped and torch.device(device).type != "meta":
        load_shipped_encoders(model, shipped_encoders_path(config.name), require_all=False)
    if sam_checkpoint is not None:
        model.image_encoder.load_pretrained(sam_checkpoint)
    if clip_checkpoint is not None:
        model.text_encoder.load_clip_checkpoint(clip_checkpoint)
    if checkpoint is not None:
        model.load_trainable_state_dict(state_dict, source=str(checkpoint))
        if missing:
            warnings.warn(
                f"{checkpoint} holds a {config.name} model trained on frozen encoders that it does not hold; "
                f"they keep random weights unless you pass {' and '.join(missing)}",
                stacklevel=2,
            )
    return model


def load_shipped_encoders(model: RISAM, path: str | os.PathLike, require_all: bool = True) -> None:
    """Load both encoders of ``model`` from an encoders file (``risam pretrain-tiny``), strictly.

    The file records the encoders' architecture (a field it does not record, added later, at its
    default). An encoder whose architecture differs (other
    overrides, e.g. an ablation's backbone) raises ConfigError naming the keys; with
    ``require_all=False`` it keeps its random weights instead, with a warning that says so.
    """
    recorded, tensors = load_encoders(path)
    for part, section in recorded.items():
        module = getattr(model, part)
        actual = encoder_architecture(module.config)
        # A field the file does not record was added after the file was made: it holds its default there.
        section = {**encoder_architecture(type(module.config)()), **section}
        section = {key: value for key, value in section.items() if key not in NOT_ARCHITECTURE}
        differ = sorted(key for key in set(section) | set(actual) if section.get(key) != actual.get(key))
        if differ:
            message = f"{path} holds {part.replace('_', ' ')} weights for another architecture: " + ", ".join(
                f"{part}.{key}={actual.get(key)!r} (file: {section.get(key)!r})" for key in differ
            )
            if require_all:
                raise ConfigError(message + "; pass pretrained=False for random encoders")
            warnings.warn(message + f"; the {part.replace('_', ' ')} keeps random weights", stacklevel=3)
            continue
        part_tensors = {key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith(part + ".")}
        expected = module.state_dict()
        converted = {
            key: value.to(expected[key].dtype) if key in expected else value for key, value in part_tensors.items()
        }
        load_state_dict_strict(module, converted, source=str(path))
