"""Model names -> configs, and ``create_model``.

The paper's models pair a SAM ViT image encoder with the text tower of OpenAI's CLIP
ViT-B/16 (C' = 512); with the head width C = 256 this gives the paper's ~6M trainable
parameters. ``risam_tiny`` is test-sized: small encoders at 128 x 128 input.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from risam.config import ConfigError, HeadConfig, ImageEncoderConfig, RISAMConfig, TextEncoderConfig
from risam.io.download import RemoteFile, fetch, risam_home
from risam.io.state_dict import load_state_dict_strict
from risam.io.weights import NOT_ARCHITECTURE, encoder_architecture, load_encoders, load_weights
from risam.modeling.build import build_model
from risam.modeling.model import RISAM
from risam.precision import choose_precision

# The official encoder files, fetched by ``risam download`` and by ``"download"`` in place of a file.
# SAM: Meta's URLs from the segment-anything README. Meta publishes no checksum; each file name ends
# in the first 6 hex digits of the file's MD5 (sam_vit_h_4b8939.pth: MD5 4b8939a8...), and the SHA-256
# here is that of the files as Meta serves them, as independent projects' download manifests record it.
# CLIP: OpenAI's URL from clip/clip.py, whose path carries the file's SHA-256 (OpenAI's loader checks it).
SAM_WEIGHTS = {
    "sam_vit_b": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    "sam_vit_l": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "sam_vit_h": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
}
CLIP_WEIGHTS = {
    "clip_vit_b16": RemoteFile(
        "https://openaipublic.azureedge.net/clip/models/"
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        "ViT-B-16.pt",
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    ),
}
# What an encoder file argument may say instead of a path: fetch the official file into the cache.
DOWNLOAD = "download"
WEIGHTS_CACHE = "weights"  # the folder of :func:`risam.io.download.risam_home` that holds encoder files

_MODELS: dict[str, Callable[[], RISAMConfig]] = {}
# Encoder weights that ship inside the package (risam/pretrained/), made by a committed command.
SHIPPED_ENCODERS = {"risam_tiny": "risam_tiny_encoders.safetensors"}
# Trained RISAM weights that ship inside the package, made by a committed recipe (docs/training.md).
SHIPPED_MODELS = {"risam_tiny_refshapes": "risam_tiny_refshapes.safetensors"}
# What segment, explain, the demo and RISAMPredictor.from_pretrained use when given no weights file.
DEFAULT_PRETRAINED = "risam_tiny_refshapes"
# The one sentence that says what the shipped model can do; README, --help and the demo page show it.
SHIPPED_MODEL_LIMITS = (
    "The built-in model risam_tiny_refshapes knows only RefShapes' world (shapes, colours, textures and "
    "positions on generated scenes): on a photo it segments whatever looks like a shape. For real photos, "
    "train a paper config (e.g. risam train --config refcoco) with the official SAM and CLIP files."
)


def register_model(builder: Callable[[], RISAMConfig]) -> Callable[[], RISAMConfig]:
    """Register a config builder under its function name."""
    _MODELS[builder.__name__] = builder
    return builder


@register_model
def risam_vit_b() -> RISAMConfig:
    """SAM ViT-B image encoder (taps after blocks 5, 8, 11), CLIP ViT-B/16 text encoder."""
    image = ImageEncoderConfig(
        variant="sam_vit_b",
        embed_dim=768,
        depth=12,
        num_heads=12,
        global_attn_indexes=(2, 5, 8, 11),
        tap_indices=(5, 8, 11),
    )
    return RISAMConfig(name="risam_vit_b", image_encoder=image)


@register_model
def risam_vit_l() -> RISAMConfig:
    """SAM ViT-L image encoder (taps after blocks 11, 17, 23), CLIP ViT-B/16 text encoder."""
    image = ImageEncoderConfig(
        variant="sam_vit_l",
        embed_dim=1024,
        depth=24,
        num_heads=16,
        global_attn_indexes=(5, 11, 17, 23),
        tap_indices=(11, 17, 23),
    )
    return RISAMConfig(name="risam_vit_l", image_encoder=image)


@register_model
def risam_vit_h() -> RISAMConfig:
    """The paper's model: SAM ViT-H (taps after blocks 15, 23, 31), CLIP ViT-B/16 text encoder."""
    return RISAMConfig(name="risam_vit_h")


@register_model
def risam_tiny() -> RISAMConfig:
    """The paper's recipe in miniature: 128 x 128 input, a 4-block ViT (width 64) with a conv stem to a
    16 x 16 grid, a 2-layer text transformer (width 64), C = 64.

    Its encoders are pretrained on generated RefShapes (``risam pretrain-tiny``) and ship in the
    package (:data:`SHIPPED_ENCODERS`); ``create_model`` loads them unless ``pretrained=False``.
    The text width is 64 per head, the rule by which open_clip rebuilds OpenAI CLIP files; at
    width 64 CLIP's 49,408-token embedding fits the 10 MB budget of a shipped file in float16.
    """
    image = ImageEncoderConfig(
        variant="tiny",
        embed_dim=64,
        depth=4,
        num_heads=2,
        global_attn_indexes=(0, 1, 2, 3),
        tap_indices=(1, 2, 3),
        window_size=4,
        patch_size=8,
        img_size=128,
        stem="conv",
    )
    text = TextEncoderConfig(variant="tiny", width=64, layers=2, heads=1, output_dim=64)
    head = HeadConfig(dim=64, decoder_heads=4, mask_dim=16)
    return RISAMConfig(name="risam_tiny", image_encoder=image, text_encoder=text, head=head)


def list_models() -> list[str]:
    """Registered model names."""
    return sorted(_MODELS)


def get_config(name: str, overrides: Mapping[str, Any] | None = None) -> RISAMConfig:
    """The config registered as ``name``, with dotted-key ``overrides`` (e.g. {"head.tau": 0.3})."""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _MODELS[name]().replace(**dict(overrides or {}))


def create_model(
    name: str | None = None,
    *,
    sam_checkpoint: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    precision: str = "fp32",
) -> RISAM:
    """Build a RISAM model by registered ``name`` or from a RISAM weights file.

    sam_checkpoint: Meta's official SAM ``.pth`` (or an image-encoder state dict); for a timm
        backbone (``image_encoder.backbone``, paper Tab. 7), its timm checkpoint. ``"download"``:
        the official file of the model's SAM (:data:`SAM_WEIGHTS`), from the cache or fetched into
        it (:func:`official_weights`).
    clip_checkpoint: OpenAI CLIP ``.pt`` or an open_clip checkpoint; ``"download"`` as above.
    checkpoint: a RISAM weights file; its stored config rebuilds the model (``name``, if
        given, must match it) and its trainable weights are loaded strictly.
    overrides: dotted config keys to change (not allowed together with ``checkpoint``).
    device: where to build; "meta" builds without allocating memory (for counting).
    pretrained: load the encoders that ship in the package for this model (``risam_tiny``),
        unless encoder files are given; False keeps them randomly initialised (for tests).
    precision: the frozen encoders' weights, "fp32", "bf16" or "auto" (bf16 where ``device``
        multiplies it natively: :mod:`risam.precision`); the trainable parts stay float32.
    """
    if checkpoint is not None:
        if overrides:
            raise ConfigError("overrides cannot change the architecture stored in a checkpoint")
        config, state_dict = load_weights(checkpoint)
        if name is not None and name != config.name:
            raise ConfigError(f"{checkpoint} holds a {config.name!r} model, not {name!r}")
    elif name is None:
        raise ValueError("create_model needs a model name or a checkpoint")
    else:
        config = get_config(name, overrides)
    if sam_checkpoint is not None and str(sam_checkpoint) == DOWNLOAD:
        if config.image_encoder.family == "timm":
            raise ConfigError(
                f"image_encoder.backbone={config.image_encoder.backbone!r} is a timm model: '{DOWNLOAD}' fetches "
                "only Meta's SAM files; pass the timm checkpoint's path as sam_checkpoint"
            )
        sam_checkpoint = official_weights(SAM_WEIGHTS, config.image_encoder.variant, "image_encoder.variant")
    if clip_checkpoint is not None and str(clip_checkpoint) == DOWNLOAD:
        clip_checkpoint = official_weights(CLIP_WEIGHTS, config.text_encoder.variant, "text_encoder.variant")
    choice = choose_precision(precision, device)
    model = build_model(config, device=device, encoder_dtype=choice.dtype)
    shipped = pretrained and config.name in SHIPPED_ENCODERS and sam_checkpoint is None and clip_checkpoint is None
    if shipped and torch.device(device).type != "meta":
        load_shipped_encoders(model, shipped_encoders_path(config.name), require_all=False)
    if sam_checkpoint is not None:
        model.image_encoder.load_pretrained(sam_checkpoint)
    if clip_checkpoint is not None:
        model.text_encoder.load_clip_checkpoint(clip_checkpoint)
    if checkpoint is not None:
        model.load_trainable_state_dict(state_dict, source=str(checkpoint))
        missing = [] if shipped else missing_encoder_files(config, sam_checkpoint, clip_checkpoint)
        if missing:
            warnings.warn(
                f"{checkpoint} holds a {config.name} model trained on frozen encoders that it does not hold; "
                f"they keep random weights unless you pass {' and '.join(missing)}",
                stacklevel=2,
            )
    return model


def official_weights(table: Mapping[str, RemoteFile], variant: str, key: str, recheck: bool = False) -> Path:
    """The official encoder file of ``variant`` in ``table`` (:data:`SAM_WEIGHTS` or :data:`CLIP_WEIGHTS`):
    the cached copy under ``$RISAM_HOME/weights`` (with ``recheck``, checked against its SHA-256 again),
    else fetched there and checked.

    ``key`` names the config key in the error for a variant with no official file (e.g. the tiny encoders).
    """
    if variant not in table:
        raise ConfigError(
            f"{key}={variant!r} has no official weights to download; those with: {', '.join(table)}. "
            "Pass the encoder file's path instead"
        )
    return fetch(table[variant], risam_home() / WEIGHTS_CACHE, recheck=recheck)


def pretrained_path(name: str) -> Path:
    """The weights file of the shipped trained model ``name`` (:data:`SHIPPED_MODELS`) inside the package."""
    if name not in SHIPPED_MODELS:
        raise ConfigError(f"no shipped model {name!r}; shipped models: {', '.join(sorted(SHIPPED_MODELS))}")
    return Path(__file__).parent / "pretrained" / SHIPPED_MODELS[name]


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """The weights file a command uses: the default shipped model for None, a shipped model for its name
    (unless a file of that name exists), else ``checkpoint`` itself."""
    if checkpoint is None:
        return pretrained_path(DEFAULT_PRETRAINED)
    if str(checkpoint) in SHIPPED_MODELS and not Path(checkpoint).exists():
        return pretrained_path(str(checkpoint))
    return Path(checkpoint)


def missing_encoder_files(
    config: RISAMConfig,
    sam_checkpoint: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
) -> list[str]:
    """The frozen encoder files a model of ``config`` was trained on that neither the package ships nor the
    caller gave, each as "<option> <file> (<where it comes from>)"; [] when nothing is missing.

    A weights file holds only the trainable parts, so a paper model needs the official SAM and CLIP files
    back to predict anything meaningful. (The encoders that ship in the package are not counted here.)
    """
    missing = []
    image, text = config.image_encoder, config.text_encoder
    if image.freeze and sam_checkpoint is None:
        official = SAM_WEIGHTS.get(image.variant)
        if image.family == "timm":
            source = f"the timm weights of {image.backbone}"
        elif official:
            source = f"{official.file_name} from {official.url} (or '{DOWNLOAD}' to fetch it into the cache)"
        else:
            source = f"the {image.variant} encoder weights"
        missing.append(f"--sam-checkpoint / sam_checkpoint= {source}")
    if text.freeze and clip_checkpoint is None:
        official = CLIP_WEIGHTS.get(text.variant)
        source = (
            f"{official.file_name} from {official.url} (or '{DOWNLOAD}' to fetch it into the cache)"
            if official
            else f"the {text.variant} encoder weights"
        )
        missing.append(f"--clip-checkpoint / clip_checkpoint= {source}")
    return missing


def shipped_encoders_path(name: str) -> Path:
    """The encoders file of model ``name`` inside the installed package."""
    return Path(__file__).parent / "pretrained" / SHIPPED_ENCODERS[name]


def load_shipped_encoders(model: RISAM, path: str | os.PathLike, require_all: bool = True) -> None:
    """Load both encoders of ``model`` from an encoders file (``risam pretrain-tiny``), strictly.

    The file records the encoders' architecture. An encoder whose architecture differs (other
    overrides, e.g. an ablation's backbone) raises ConfigError naming the keys; with
    ``require_all=False`` it keeps its random weights instead, with a warning that says so.
    """
    recorded, tensors = load_encoders(path)
    for part, section in recorded.items():
        module = getattr(model, part)
        actual = encoder_architecture(module.config)
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
