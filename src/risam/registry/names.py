"""Model names -> configs: the paper's models and the test-sized one.

The paper's models pair a SAM ViT image encoder with the text tower of OpenAI's CLIP
ViT-B/16 (C' = 512); with the head width C = 256 this gives the paper's ~6M trainable
parameters. ``risam_tiny`` is test-sized: small encoders at 128 x 128 input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from risam.config import ConfigError, HeadConfig, ImageEncoderConfig, RISAMConfig, TextEncoderConfig

_MODELS: dict[str, Callable[[], RISAMConfig]] = {}


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


def _sam2(name: str, backbone: str, variant: str, global_att_blocks: tuple[int, int, int]) -> RISAMConfig:
    """SAM 2.1's Hiera trunk ``backbone`` tapped at its stride-16 global-attention blocks, at 1024 px
    (:mod:`risam.modeling.variants.hiera_encoder`), with the CLIP ViT-B/16 text encoder and the paper's head."""
    image = ImageEncoderConfig(
        variant=variant, backbone=backbone, tap_indices=global_att_blocks, img_size=1024, patch_size=16
    )
    return RISAMConfig(name=name, image_encoder=image)


@register_model
def risam_sam2_t() -> RISAMConfig:
    """SAM 2.1 Hiera-T (taps after blocks 5, 7, 9), CLIP ViT-B/16 text encoder."""
    return _sam2("risam_sam2_t", "sam2_hiera_tiny", "sam2.1_hiera_tiny", (5, 7, 9))


@register_model
def risam_sam2_s() -> RISAMConfig:
    """SAM 2.1 Hiera-S (taps after blocks 7, 10, 13), CLIP ViT-B/16 text encoder."""
    return _sam2("risam_sam2_s", "sam2_hiera_small", "sam2.1_hiera_small", (7, 10, 13))


@register_model
def risam_sam2_bp() -> RISAMConfig:
    """SAM 2.1 Hiera-B+ (taps after blocks 12, 16, 20), CLIP ViT-B/16 text encoder."""
    return _sam2("risam_sam2_bp", "sam2_hiera_base_plus", "sam2.1_hiera_base_plus", (12, 16, 20))


@register_model
def risam_sam2_l() -> RISAMConfig:
    """SAM 2.1 Hiera-L (taps after blocks 23, 33, 43), CLIP ViT-B/16 text encoder."""
    return _sam2("risam_sam2_l", "sam2_hiera_large", "sam2.1_hiera_large", (23, 33, 43))


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
