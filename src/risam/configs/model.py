"""Typed architecture configs of a RISAM model.

A :class:`RISAMConfig` fully describes the architecture, so our checkpoints store it and
rebuild the model from it. ``from_dict`` refuses unknown keys and wrong types, naming them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from risam.configs.parse import ConfigError, dataclass_from_dict, set_dotted

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ImageEncoderConfig:
    """A SAM ViT image encoder (timm's ``VisionTransformerSAM``).

    ``tap_indices`` are the blocks whose outputs RISAM uses: the 2nd, 3rd and 4th
    global-attention blocks (paper Sec. 3.1). Pixel statistics are SAM's, in 0-255 units.
    ``attention_chunk`` is how many query tokens a global-attention block handles at once; it
    bounds the memory of the relative-position bias and attention matrix (ViT-H at 1024 x 1024
    would otherwise hold 16 x 4096 x 4096 of each) and does not change the result.
    """

    variant: str = "sam_vit_h"
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    global_attn_indexes: tuple[int, ...] = (7, 15, 23, 31)
    tap_indices: tuple[int, ...] = (15, 23, 31)
    window_size: int = 14
    patch_size: int = 16
    img_size: int = 1024
    pixel_mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = SAM_PIXEL_STD
    attention_chunk: int = 1024
    freeze: bool = True

    def __post_init__(self) -> None:
        if len(self.global_attn_indexes) != 4:
            raise ConfigError(
                f"image_encoder.global_attn_indexes={self.global_attn_indexes}: SAM ViTs have 4 global attention blocks"
            )
        if list(self.tap_indices) != sorted(set(self.tap_indices)) or not self.tap_indices:
            raise ConfigError(f"image_encoder.tap_indices={self.tap_indices}: expected increasing block indices")
        if self.tap_indices[-1] >= self.depth or self.tap_indices[0] < 0:
            raise ConfigError(
                f"image_encoder.tap_indices={self.tap_indices}: indices must lie in [0, depth={self.depth})"
            )
        if self.attention_chunk < 1:
            raise ConfigError(f"image_encoder.attention_chunk={self.attention_chunk}: must be at least 1")
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"image_encoder.img_size={self.img_size} is not a multiple of patch_size={self.patch_size}"
            )

    @property
    def feature_size(self) -> int:
        """Side of the tapped feature maps: img_size / patch_size."""
        return self.img_size // self.patch_size


@dataclass(frozen=True)
class TextEncoderConfig:
    """A CLIP text transformer (open_clip's ``TextTransformer``).

    ``context_length`` is the positional-embedding length stored in the CLIP checkpoint
    (77 for CLIP); ``max_words`` is how many tokens of an expression RISAM reads, start and
    end tokens included (17 for RefCOCO, 25 for RefCOCO+ and G-Ref, paper Sec. 4.2).
    ``project_tokens`` applies CLIP's text projection to every token, so that per-token
    features live in CLIP's joint space (the pooled CLIP feature is the end-token's row).
    ``quick_gelu`` is OpenAI CLIP's activation; open_clip models trained with GELU need False.
    """

    variant: str = "clip_vit_b16"
    width: int = 512
    layers: int = 12
    heads: int = 8
    vocab_size: int = 49408
    context_length: int = 77
    output_dim: int = 512
    max_words: int = 17
    project_tokens: bool = True
    quick_gelu: bool = True
    freeze: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.max_words <= self.context_length:
            raise ConfigError(
                f"text_encoder.max_words={self.max_words}: must lie in [2, context_length={self.context_length}]"
            )
        if self.width % self.heads:
            raise ConfigError(f"text_encoder.width={self.width} is not divisible by heads={self.heads}")

    @property
    def feature_dim(self) -> int:
        """C', the channel size of the per-token linguistic features."""
        return self.output_dim if self.project_tokens else self.width


@dataclass(frozen=True)
class HeadConfig:
    """The trainable part: Feature Enhancement, Mutual-Aware Attention, the decoder.

    ``dim`` is the internal width C. ``mask_dim`` is the channel count after the two
    upsampling blocks, which the query token's MLP projects onto.
    """

    dim: int = 256
    num_ma_blocks: int = 2
    tau: float = 0.35
    decoder_depth: int = 2
    decoder_heads: int = 8
    mask_dim: int = 32

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau < 1.0:
            raise ConfigError(f"head.tau={self.tau}: the sigmoid threshold must lie in [0, 1)")
        if self.num_ma_blocks < 1:
            raise ConfigError(f"head.num_ma_blocks={self.num_ma_blocks}: need at least one block")
        if self.dim % self.decoder_heads:
            raise ConfigError(f"head.dim={self.dim} is not divisible by decoder_heads={self.decoder_heads}")


@dataclass(frozen=True)
class RISAMConfig:
    """Everything that rebuilds a RISAM model."""

    name: str = "risam_vit_h"
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RISAMConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys and wrong types raise ConfigError."""
        return dataclass_from_dict(cls, data)

    def replace(self, **changes: Any) -> RISAMConfig:
        """A copy with dotted keys changed, e.g. ``replace(**{"head.tau": 0.3})``."""
        data = self.to_dict()
        for dotted, value in changes.items():
            set_dotted(data, dotted, value)
        return RISAMConfig.from_dict(data)
