"""The exchangeable parts of RISAM: one registry (slot) each, from a config name to its builder.

- ``IMAGE_ENCODER``: ``image_encoder.backbone`` ("sam", or a timm model name: ``ImageEncoderConfig.family``
  is "timm"); names in ``IMAGE_ENCODERS``; builder (ImageEncoderConfig) -> image encoder.
- ``ENHANCEMENT``: ``head.enhancement``; names in ``ENHANCEMENTS``; builder (HeadConfig, tap_dims) -> module.
- ``FUSION``: ``head.fusion``; names in ``FUSIONS``; builder (HeadConfig, C') -> list of blocks.
- ``DECODER``: ``head.decoder``; names in ``DECODERS``; builder (HeadConfig, high_res_dims) -> module.

The names a config accepts and their human labels are plain data in :mod:`risam.config.model`
(a config refuses an unknown name when it is created, and the config layer may not import
this one); each :class:`Slot` below gives every one of those names exactly one
:class:`Component` and checks, when this module is imported, that the two lists agree.
:func:`risam.modeling.build.build_model` builds a model from the slots, ``risam info``
names its parts with them.

What a part must do, whichever is chosen:

- image encoder: a module with ``config``, ``tap_dims`` (channels of each tap),
  ``global_attn_indexes`` and ``load_pretrained(path)``; images -> a list of taps, each
  B x C_i x H x W on the head's grid; one that can return high-resolution maps (``hiera``) also has
  ``high_res_dims`` and, with ``image_encoder.high_res_features``, returns its stride-8 and stride-4
  maps after the taps;
- enhancement: taps -> F_v, B x C x H x W;
- fusion: blocks, each (B x L_v x C, B x L_t x C' or C, padding) -> ``FusionOutput``;
- decoder: (F_lav, words, padding, *high-resolution maps) -> mask logits, B x 4H x 4W; its builder
  takes the channels of the high-resolution maps (empty without them).

Adding a fusion block: write its module (e.g. ``variants/my_fusion.py``, taking and returning
what :class:`MutualAwareAttention` does); name it with a label in ``FUSIONS`` of
``risam/config/model.py``; add its :class:`Component` to ``FUSION`` below (for a stack of
blocks: ``_stacked`` of a function (head, word width, text_output) -> block). The other slots
work the same way; for the image encoder, a new family also needs ``ImageEncoderConfig.family``
to return its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Generic, TypeVar

from torch import nn

from risam.config.model import DECODERS, ENHANCEMENTS, FUSIONS, IMAGE_ENCODERS, HeadConfig, ImageEncoderConfig
from risam.modeling.decoder import MaskDecoder
from risam.modeling.enhance import FeatureEnhancement
from risam.modeling.image_encoder import SamImageEncoder
from risam.modeling.mutual_attention import MutualAwareAttention
from risam.modeling.variants.bidirectional_fusion import BidirectionalSerialFusion
from risam.modeling.variants.conv_fusion import ConvFusion
from risam.modeling.variants.deep_projection import DeepProjection
from risam.modeling.variants.hiera_encoder import HieraEncoder
from risam.modeling.variants.sam_mask_decoder import SamMaskDecoder
from risam.modeling.variants.simple_pyramid import SimpleFeaturePyramid
from risam.modeling.variants.spatial_dynamic_fusion import SpatialDynamicFusion
from risam.modeling.variants.text_projection import TextProjection
from risam.modeling.variants.timm_backbone import TimmBackbone
from risam.modeling.variants.transformer_fusion import TransformerFusion

S = TypeVar("S")  # the config section a slot reads: ImageEncoderConfig or HeadConfig
B = TypeVar("B")  # the slot's builder


@dataclass(frozen=True)
class Component(Generic[S, B]):
    """One choice of a slot: ``build`` makes the part, ``describe`` names it in ``risam info``."""

    build: B
    describe: Callable[[S], str]


class Slot(Generic[S, B]):
    """The components of one slot, by the names of ``labels`` (a table of :mod:`risam.config.model`).

    Raises RuntimeError, when built, unless every name of ``labels`` has a component and every
    component a name there.
    """

    def __init__(self, key: str, labels: Mapping[str, str], components: Mapping[str, Component[S, B]]) -> None:
        missing, unnamed = sorted(labels.keys() - components.keys()), sorted(components.keys() - labels.keys())
        if missing or unnamed:
            raise RuntimeError(
                f"{key}: names without a builder {missing}, builders without a name in risam.config.model {unnamed}"
            )
        self.labels = labels
        self.components = dict(components)

    def __getitem__(self, name: str) -> Component[S, B]:
        """The component registered as ``name`` (a name the config accepted)."""
        return self.components[name]

    def label(self, name: str) -> str:
        """The human label of ``name``, e.g. "Mutual-Aware Attention (paper Sec. 3.3, Eq. 3-5)"."""
        return self.labels[name]


ImageEncoderBuilder = Callable[[ImageEncoderConfig], nn.Module]
EnhancementBuilder = Callable[[HeadConfig, tuple[int, ...]], nn.Module]
FusionBuilder = Callable[[HeadConfig, int], list[nn.Module]]
FusionBlock = Callable[[HeadConfig, int, bool], nn.Module]
DecoderBuilder = Callable[[HeadConfig, tuple[int, ...]], nn.Module]


IMAGE_ENCODER: Slot[ImageEncoderConfig, ImageEncoderBuilder] = Slot(
    "image_encoder.backbone",
    IMAGE_ENCODERS,
    {
        "sam": Component(SamImageEncoder, attrgetter("variant")),
        "timm": Component(TimmBackbone, lambda image: f"{image.variant}, timm {image.backbone}"),
        "hiera": Component(HieraEncoder, lambda image: f"{image.variant}, timm {image.backbone}"),
    },
)


def _feature_enhancement(head: HeadConfig, tap_dims: tuple[int, ...]) -> nn.Module:
    shallow, middle, deep = tap_dims
    return FeatureEnhancement((shallow, middle, deep), head.dim)


_enhancement_name = attrgetter("enhancement")
ENHANCEMENT: Slot[HeadConfig, EnhancementBuilder] = Slot(
    "head.enhancement",
    ENHANCEMENTS,
    {
        "feature_enhancement": Component(_feature_enhancement, _enhancement_name),
        "deep_only": Component(lambda head, tap_dims: DeepProjection(tap_dims[-1], head.dim), _enhancement_name),
        "simple_pyramid": Component(
            lambda head, tap_dims: SimpleFeaturePyramid(tap_dims[-1], head.dim), _enhancement_name
        ),
    },
)


def _stacked(block: FusionBlock) -> FusionBuilder:
    """``head.num_ma_blocks`` blocks; the first reads the C'-wide words, the others C-wide ones."""

    def build(head: HeadConfig, text_dim: int) -> list[nn.Module]:
        last = head.num_ma_blocks - 1
        # The last block's vision-aware words are skipped when the decoder reads no words.
        return [
            block(head, text_dim if index == 0 else head.dim, head.decoder_text_guidance or index < last)
            for index in range(head.num_ma_blocks)
        ]

    return build


def _blocks(part: str) -> Callable[[HeadConfig], str]:
    return lambda head: f"{part} ({head.num_ma_blocks} blocks)"


def _mask(head: HeadConfig) -> str:
    """The attention mask in words, e.g. ``tau=0.35`` or ``tau=0.35, softmax_share mask``."""
    return f"tau={head.tau}" + ("" if head.mask_rule == "sigmoid" else f", {head.mask_rule} mask")


def _masked_blocks(part: str) -> Callable[[HeadConfig], str]:
    return lambda head: f"{part} ({head.num_ma_blocks} blocks{f', masked, {_mask(head)}' * head.masked_fusion})"


FUSION: Slot[HeadConfig, FusionBuilder] = Slot(
    "head.fusion",
    FUSIONS,
    {
        "mutual_attention": Component(
            _stacked(
                lambda head, words, text: MutualAwareAttention(
                    head.dim, words, head.dim, head.tau, text, mask_rule=head.mask_rule
                )
            ),
            lambda head: f"mutual_aware_attention ({head.num_ma_blocks} blocks, {_mask(head)})",
        ),
        "conv": Component(
            _stacked(lambda head, words, _: ConvFusion(head.dim, words, head.dim)), _blocks("conv_fusion")
        ),
        "transformer": Component(
            _stacked(lambda head, words, _: TransformerFusion(head.dim, words, head.dim, head.decoder_heads)),
            _blocks("transformer_fusion"),
        ),
        "spatial_dynamic": Component(
            _stacked(
                lambda head, words, _: SpatialDynamicFusion(
                    head.dim, words, head.dim, head.masked_fusion, head.tau, head.mask_rule
                )
            ),
            _masked_blocks("spatial_dynamic_fusion"),
        ),
        "bidirectional_serial": Component(
            _stacked(
                lambda head, words, text: BidirectionalSerialFusion(
                    head.dim, words, head.dim, text, head.masked_fusion, head.tau, head.mask_rule
                )
            ),
            _masked_blocks("bidirectional_serial_fusion"),
        ),
        "none": Component(
            lambda head, text_dim: [TextProjection(text_dim, head.dim)], lambda head: "text_projection (no fusion)"
        ),
    },
)


def _mask_decoder(token_to_image: bool) -> DecoderBuilder:
    return lambda head, high_res_dims: MaskDecoder(
        head.dim,
        head.decoder_depth,
        head.decoder_heads,
        head.mask_dim,
        token_to_image=token_to_image,
        text_guidance=head.decoder_text_guidance,
        high_res_dims=high_res_dims,
    )


def _layers(part: str) -> Callable[[HeadConfig], str]:
    return lambda head: (
        f"{part} ({head.decoder_depth} layers{'' if head.decoder_text_guidance else ', no text guidance'})"
    )


DECODER: Slot[HeadConfig, DecoderBuilder] = Slot(
    "head.decoder",
    DECODERS,
    {
        "mutual_aware": Component(_mask_decoder(token_to_image=False), _layers("mask_decoder")),
        "mutual_aware_t2i": Component(_mask_decoder(token_to_image=True), _layers("mask_decoder_t2i")),
        "sam": Component(
            lambda head, high_res_dims: SamMaskDecoder(
                head.dim,
                head.decoder_depth,
                head.decoder_heads,
                head.mask_dim,
                high_res_dims,
                mlp_ratio=head.sam_decoder_mlp_ratio,
            ),
            lambda head: f"sam_mask_decoder ({head.decoder_depth} layers, token MLP {head.sam_decoder_mlp_ratio}C)",
        ),
    },
)
