"""Typed architecture configs of a RISAM model.

A :class:`RISAMConfig` fully describes the architecture, so our checkpoints store it and
rebuild the model from it. ``from_dict`` refuses unknown keys and wrong types, naming them.

The exchangeable parts of the model are four slots, each a table here of the names a config
accepts and a human label for each: :data:`IMAGE_ENCODERS` (``image_encoder.backbone``, read
through :attr:`ImageEncoderConfig.family`), :data:`ENHANCEMENTS` (``head.enhancement``),
:data:`FUSIONS` (``head.fusion``) and :data:`DECODERS` (``head.decoder``).

Decision: the tables are plain data in the config layer, because a config must refuse an
unknown name when it is created (``HeadConfig(fusion="attention")`` raises ConfigError) and
``risam.config`` may not import ``risam.modeling``, which lies above it. The modeling layer
registers one builder per name (:mod:`risam.modeling.slots`) and checks at import time that
the names it builds are exactly the names of these tables. Constraints between a choice and
other fields (e.g. ``head.decoder='sam'`` halves the width of its attentions) stay in the
``__post_init__`` checks below, so that they too fail when the config is created.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from risam.config.parse import ConfigError, dataclass_from_dict, dotted_leaves, set_dotted

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)

HIERA_PREFIX = "sam2_hiera_"  # timm's names of SAM 2's image trunks (the "hiera" family)

Stem = Literal["patch", "conv"]

IMAGE_ENCODERS: dict[str, str] = {
    "sam": "SAM ViT image encoder (timm's VisionTransformerSAM, paper Sec. 3.1)",
    "timm": "another timm image model, named by image_encoder.backbone (paper Tab. 7: ViT-B, Swin-B)",
    "hiera": "SAM 2's Hiera trunk (timm's sam2_hiera_*), tapped at its stride-16 global-attention blocks",
}
ENHANCEMENTS: dict[str, str] = {
    "feature_enhancement": "Feature Enhancement (paper Sec. 3.2, Eq. 1-2)",
    "deep_only": "w/o FE: the deep tap projected to C (paper Tab. 2 #1)",
    "simple_pyramid": "ViT-Det's simple feature pyramid from the deep tap (paper Tab. 6 #11)",
}
FUSIONS: dict[str, str] = {
    "mutual_attention": "Mutual-Aware Attention (paper Sec. 3.3, Eq. 3-5)",
    "conv": "convolutions over visual features and the pooled sentence (paper Tab. 2 #2)",
    "transformer": "ReSTR's transformer encoder over both modalities (paper Tab. 3 #5)",
    "spatial_dynamic": "VLT's Spatial Dynamic Fusion (paper Tab. 3 #6)",
    "bidirectional_serial": "BRINet's BCM: the two directions of Mutual-Aware Attention in series (paper Tab. 3 #7)",
    "none": "no fusion: a linear projection of the words (paper Tab. 11, SAM directly)",
}
DECODERS: dict[str, str] = {
    "mutual_aware": "Mutual-Aware Mask Decoder (paper Sec. 3.4, Eq. 6-9)",
    "mutual_aware_t2i": "Mutual-Aware Mask Decoder with SAM's token-to-image attention (paper Tab. 5 #9)",
    "sam": "SAM's two-way mask decoder (paper Tab. 2 #3)",
}
MASK_RULES: dict[str, str] = {
    "sigmoid": "keep a word-pixel pair where sigmoid(S) >= tau (paper Eq. 4)",
    "softmax_share": "keep it where the pixel's softmax weight on the word is >= tau / its word count (not in paper)",
}
# The fusions whose blocks score word-pixel pairs and so can apply the attention mask.
MASKABLE_FUSIONS = ("spatial_dynamic", "bidirectional_serial")


def _check_positive(section: str, config: Any, names: Collection[str]) -> None:
    """ConfigError naming the first of ``names`` (integer fields of ``config``) that is below 1: sizes, depths
    and head counts, by which the checks below divide."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ConfigError(f"{section}.{name}={value}: must be at least 1")


def _check_choice(key: str, value: str, choices: Collection[str]) -> None:
    """ConfigError naming ``key`` and listing ``choices`` unless ``value`` is one of them."""
    if value not in choices:
        raise ConfigError(f"{key}={value!r}; expected one of {list(choices)}")


@dataclass(frozen=True)
class ImageEncoderConfig:
    """A SAM ViT image encoder (timm's ``VisionTransformerSAM``).

    ``tap_indices`` are the blocks whose outputs RISAM uses: the 2nd, 3rd and 4th
    global-attention blocks (paper Sec. 3.1). Pixel statistics are SAM's, in 0-255 units.
    ``attention_chunk`` is how many query tokens a global-attention block handles at once; it
    bounds the memory of the relative-position bias and attention matrix (ViT-H at 1024 x 1024
    would otherwise hold 16 x 4096 x 4096 of each) and does not change the result.

    ``backbone`` is ``"sam"`` (the fields above describe the SAM ViT) or the name of another timm
    model (paper Tab. 7: ``vit_base_patch16_224``, ``swin_base_patch4_window12_384``), built at
    ``img_size`` with ``timm_kwargs`` passed to ``timm.create_model`` (e.g. a smaller
    ``embed_dim`` for tests). For a timm backbone ``tap_indices`` are timm's
    ``forward_intermediates`` indices (blocks of a ViT, stages of a Swin), every tap is resampled
    to the ``img_size / patch_size`` grid the head reads, and the SAM-only fields
    (``embed_dim``, ``depth``, ``num_heads``, ``global_attn_indexes``, ``window_size``,
    ``attention_chunk``) are not used.

    A ``sam2_hiera_*`` backbone is SAM 2's Hiera trunk (the ``"hiera"`` family,
    :mod:`risam.modeling.variants.hiera_encoder`): ``tap_indices`` are its block indices, the three
    global-attention blocks of its stride-16 stage, and ``patch_size`` is that stage's stride (16).

    ``stem`` is how pixels become tokens: ``"patch"`` is SAM's patch embedding (one linear map per
    patch); ``"conv"`` is a small CNN with BatchNorm (:func:`risam.modeling.image_encoder.conv_stem`),
    which learns shapes far faster from scratch (docs/training.md). Only the
    pretrained tiny encoder uses it; SAM's checkpoints hold a patch embedding.

    ``high_res_features`` (``"hiera"`` only, off by default): the encoder also returns its stride-8
    and stride-4 stage outputs, and the decoder adds them, each through a trainable 1 x 1
    convolution, to its two upsampling steps, as SAM 2's mask decoder adds its high-resolution
    features (docs/architecture.md, "SAM 2 encoders"). Off, the decoder reads stride-16 features
    only, as the paper's does.
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
    attention_chunk: int = 256
    freeze: bool = True
    backbone: str = "sam"
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    stem: Stem = "patch"
    high_res_features: bool = False

    def __post_init__(self) -> None:
        _check_positive("image_encoder", self, ("embed_dim", "depth", "num_heads", "window_size", "patch_size"))
        _check_positive("image_encoder", self, ("img_size", "attention_chunk"))
        _check_choice("image_encoder.stem", self.stem, typing.get_args(Stem))
        if self.high_res_features and self.family != "hiera":
            raise ConfigError(
                f"image_encoder.high_res_features=true needs a SAM 2 Hiera backbone (sam2_hiera_*), which has "
                f"stride-8 and stride-4 stages; image_encoder.backbone={self.backbone!r} has none"
            )
        if self.stem == "conv" and (self.patch_size & (self.patch_size - 1) or self.patch_size < 2):
            raise ConfigError(
                f"image_encoder.patch_size={self.patch_size}: the conv stem is a stack of stride-2 convolutions, "
                "so the patch size must be a power of two"
            )
        if list(self.tap_indices) != sorted(set(self.tap_indices)) or not self.tap_indices:
            raise ConfigError(f"image_encoder.tap_indices={self.tap_indices}: expected increasing block indices")
        if self.family in ("timm", "hiera"):
            self._check_timm_backbone()
        elif self.timm_kwargs:
            raise ConfigError(
                f"image_encoder.timm_kwargs={self.timm_kwargs}: only used with a timm backbone, "
                "but image_encoder.backbone is 'sam'"
            )
        elif len(self.global_attn_indexes) != 4:
            raise ConfigError(
                f"image_encoder.global_attn_indexes={self.global_attn_indexes}: SAM ViTs have 4 global attention blocks"
            )
        elif self.tap_indices[-1] >= self.depth or self.tap_indices[0] < 0:
            raise ConfigError(
                f"image_encoder.tap_indices={self.tap_indices}: indices must lie in [0, depth={self.depth})"
            )
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"image_encoder.img_size={self.img_size} is not a multiple of patch_size={self.patch_size}"
            )

    def _check_timm_backbone(self) -> None:
        import timm  # only here: configs stay importable without building anything

        if not timm.is_model(self.backbone):
            raise ConfigError(
                f"image_encoder.backbone={self.backbone!r}; expected 'sam' or a timm model name "
                "(e.g. vit_base_patch16_224, swin_base_patch4_window12_384; see timm.list_models())"
            )
        reserved = sorted({"img_size", "num_classes", "pretrained"} & set(self.timm_kwargs))
        if reserved:
            raise ConfigError(
                f"image_encoder.timm_kwargs sets {reserved}; img_size comes from image_encoder.img_size, the "
                "classifier is never built and weights come from a local file (model.sam_checkpoint)"
            )
        if self.tap_indices[0] < 0:
            raise ConfigError(f"image_encoder.tap_indices={self.tap_indices}: indices must be non-negative")

    @property
    def family(self) -> str:
        """The name in :data:`IMAGE_ENCODERS`: ``"sam"``, ``"hiera"`` for SAM 2's trunks (``sam2_hiera_*``), or
        ``"timm"`` for any other ``backbone``."""
        if self.backbone == "sam":
            return "sam"
        return "hiera" if self.backbone.startswith(HIERA_PREFIX) else "timm"

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
        _check_positive(
            "text_encoder", self, ("width", "layers", "heads", "vocab_size", "context_length", "output_dim")
        )
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

    The defaults are the paper's model; the other values are its ablations and baselines
    (docs/ablations.md), named in :data:`ENHANCEMENTS` (``enhancement``), :data:`FUSIONS`
    (``fusion``) and :data:`DECODERS` (``decoder``). ``num_ma_blocks`` blocks of the chosen
    fusion are stacked (``none`` has one projection). ``decoder_text_guidance``: False feeds the
    Mutual-Aware decoders the query token alone, a learned constant, without F_val (Tab. 5 #10
    "w/o ELG", whose decoder the paper says is VLT's: a departure, docs/ablations.md).

    The attention mask (Eq. 4): ``tau`` and ``mask_rule`` (a name in :data:`MASK_RULES`) are read by
    ``mutual_attention``, and by ``spatial_dynamic`` and ``bidirectional_serial`` when ``masked_fusion``
    is true (off, those run without mask, as the paper's Tab. 3 #6-7 rows do). ``"sigmoid"`` is the
    paper's rule; ``"softmax_share"`` keeps the same pairs whatever constant is added to all of a
    pixel's scores (:func:`risam.modeling.mutual_attention.attention_keep`). ``sam_decoder_mlp_ratio``:
    the width of the token MLP of ``decoder='sam'`` in units of C (8 in SAM; 1 brings its parameters
    near the Mutual-Aware decoder's).
    """

    dim: int = 256
    num_ma_blocks: int = 2
    tau: float = 0.35
    decoder_depth: int = 2
    decoder_heads: int = 8
    mask_dim: int = 32
    enhancement: str = "feature_enhancement"
    fusion: str = "mutual_attention"
    decoder: str = "mutual_aware"
    decoder_text_guidance: bool = True
    masked_fusion: bool = False
    mask_rule: str = "sigmoid"
    sam_decoder_mlp_ratio: int = 8

    def __post_init__(self) -> None:
        _check_choice("head.enhancement", self.enhancement, ENHANCEMENTS)
        _check_choice("head.fusion", self.fusion, FUSIONS)
        _check_choice("head.decoder", self.decoder, DECODERS)
        _check_choice("head.mask_rule", self.mask_rule, MASK_RULES)
        _check_positive("head", self, ("dim", "num_ma_blocks", "decoder_depth", "decoder_heads", "mask_dim"))
        _check_positive("head", self, ("sam_decoder_mlp_ratio",))
        self._check_mask_and_widths()
        if not 0.0 <= self.tau < 1.0:
            raise ConfigError(f"head.tau={self.tau}: the attention-mask threshold must lie in [0, 1)")
        if self.dim % self.decoder_heads:
            raise ConfigError(f"head.dim={self.dim} is not divisible by decoder_heads={self.decoder_heads}")
        if self.decoder == "sam" and (self.dim // 2) % self.decoder_heads:
            raise ConfigError(
                f"head.decoder='sam' halves the width of its cross attentions: head.dim/2={self.dim // 2} is not "
                f"divisible by decoder_heads={self.decoder_heads}"
            )
        if self.fusion == "none" and not self.decoder_text_guidance:
            raise ConfigError(
                "head.fusion='none' with head.decoder_text_guidance=false never reads the sentence; "
                "set head.decoder_text_guidance=true or choose another head.fusion"
            )
        if self.decoder == "sam" and not self.decoder_text_guidance:
            raise ConfigError(
                "head.decoder_text_guidance=false applies to the mutual_aware decoders; head.decoder='sam' reads the "
                "words as its prompt tokens (set head.decoder to 'mutual_aware' or 'mutual_aware_t2i')"
            )

    def _check_mask_and_widths(self) -> None:
        """ConfigError for a mask or decoder-width setting that the chosen parts would not read."""
        if self.masked_fusion and self.fusion not in MASKABLE_FUSIONS:
            raise ConfigError(
                f"head.masked_fusion=true applies to head.fusion in {list(MASKABLE_FUSIONS)} "
                f"(mutual_attention always masks); head.fusion={self.fusion!r}"
            )
        if self.mask_rule != "sigmoid" and not (self.fusion == "mutual_attention" or self.masked_fusion):
            raise ConfigError(
                f"head.mask_rule={self.mask_rule!r} is read by the attention mask, which head.fusion={self.fusion!r} "
                "does not apply; use head.fusion='mutual_attention', or head.masked_fusion=true with "
                f"{' or '.join(repr(name) for name in MASKABLE_FUSIONS)}"
            )
        if self.sam_decoder_mlp_ratio != 8 and self.decoder != "sam":
            raise ConfigError(
                f"head.sam_decoder_mlp_ratio={self.sam_decoder_mlp_ratio} is read by head.decoder='sam' only; "
                f"head.decoder={self.decoder!r}"
            )


ABLATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "image_encoder": {"backbone": "sam", "timm_kwargs": {}, "stem": "patch", "high_res_features": False},
    "head": {
        "enhancement": "feature_enhancement",
        "fusion": "mutual_attention",
        "decoder": "mutual_aware",
        "decoder_text_guidance": True,
        "masked_fusion": False,
        "mask_rule": "sigmoid",
        "sam_decoder_mlp_ratio": 8,
    },
}


@dataclass(frozen=True)
class RISAMConfig:
    """Everything that rebuilds a RISAM model."""

    name: str = "risam_vit_h"
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.head.enhancement == "feature_enhancement" and len(self.image_encoder.tap_indices) != 3:
            raise ConfigError(
                f"image_encoder.tap_indices={self.image_encoder.tap_indices}: head.enhancement='feature_enhancement' "
                "fuses exactly three taps (shallow, middle, deep); 'deep_only' and 'simple_pyramid' read the last one"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested dict (tuples become lists).

        The ablation switches (:data:`ABLATION_DEFAULTS`) are left out where they hold the paper
        model's value, so the paper's models serialize exactly as before the switches existed:
        older weights files and training checkpoints (whose stored config ``--resume`` compares)
        still match. :meth:`from_dict` fills them in.
        """
        data = dataclasses.asdict(self)
        for section, defaults in ABLATION_DEFAULTS.items():
            for key, default in defaults.items():
                if data[section][key] == default:
                    del data[section][key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RISAMConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys and wrong types raise ConfigError."""
        return dataclass_from_dict(cls, data)

    def replace(self, **changes: Any) -> RISAMConfig:
        """A copy with dotted keys changed, e.g. ``replace(**{"head.tau": 0.3})``.

        A mapping given for a section changes only the keys it names, as the same keys dotted would
        (``{"head": {"tau": 0.3}}`` is ``{"head.tau": 0.3}``); a mapping for a field that is a mapping
        itself (``image_encoder.timm_kwargs``) replaces it.
        """
        data = self.to_dict()
        for dotted, value in changes.items():
            for key, leaf in dotted_leaves(RISAMConfig, dotted, value):
                set_dotted(data, key, leaf)
        return RISAMConfig.from_dict(data)
