"""Build a RISAM model from its config: the paper's model, or one of its ablations and baselines."""

from __future__ import annotations

import torch
from torch import nn

from risam.configs import HeadConfig, ImageEncoderConfig, RISAMConfig
from risam.modeling.decoder import MaskDecoder
from risam.modeling.enhance import FeatureEnhancement
from risam.modeling.image_encoder import SamImageEncoder
from risam.modeling.mutual_attention import MutualAwareAttention
from risam.modeling.risam import RISAM
from risam.modeling.text_encoder import ClipTextEncoder
from risam.modeling.variants.bidirectional_fusion import BidirectionalSerialFusion
from risam.modeling.variants.conv_fusion import ConvFusion
from risam.modeling.variants.deep_projection import DeepProjection
from risam.modeling.variants.sam_mask_decoder import SamMaskDecoder
from risam.modeling.variants.simple_pyramid import SimpleFeaturePyramid
from risam.modeling.variants.spatial_dynamic_fusion import SpatialDynamicFusion
from risam.modeling.variants.text_projection import TextProjection
from risam.modeling.variants.timm_backbone import TimmBackbone
from risam.modeling.variants.transformer_fusion import TransformerFusion


def build_image_encoder(config: ImageEncoderConfig) -> tuple[nn.Module, tuple[int, ...]]:
    """The image encoder of ``config`` and the channel count of each of its taps."""
    if config.backbone == "sam":
        return SamImageEncoder(config), (config.embed_dim,) * len(config.tap_indices)
    encoder = TimmBackbone(config)
    return encoder, encoder.tap_dims


def build_enhancement(head: HeadConfig, tap_dims: tuple[int, ...]) -> nn.Module:
    """Taps (each B x C_i x H x W) -> F_v, B x C x H x W: Feature Enhancement or its replacement."""
    if head.enhancement == "deep_only":
        return DeepProjection(tap_dims[-1], head.dim)
    if head.enhancement == "simple_pyramid":
        return SimpleFeaturePyramid(tap_dims[-1], head.dim)
    shallow, middle, deep = tap_dims
    return FeatureEnhancement((shallow, middle, deep), head.dim)


def build_fusion(head: HeadConfig, text_dim: int) -> list[nn.Module]:
    """The fusion blocks: (B x L_v x C, B x L_t x C', padding) -> MutualAttentionOutput, C' only for the first."""
    if head.fusion == "none":
        return [TextProjection(text_dim, head.dim)]
    blocks: list[nn.Module] = []
    for index in range(head.num_ma_blocks):
        words = text_dim if index == 0 else head.dim
        # The last block's vision-aware words are skipped when the decoder reads no words.
        text_output = head.decoder_text_guidance or index < head.num_ma_blocks - 1
        if head.fusion == "mutual_attention":
            blocks.append(MutualAwareAttention(head.dim, words, head.dim, head.tau, text_output))
        elif head.fusion == "conv":
            blocks.append(ConvFusion(head.dim, words, head.dim))
        elif head.fusion == "transformer":
            blocks.append(TransformerFusion(head.dim, words, head.dim, head.decoder_heads))
        elif head.fusion == "spatial_dynamic":
            blocks.append(SpatialDynamicFusion(head.dim, words, head.dim))
        else:
            blocks.append(BidirectionalSerialFusion(head.dim, words, head.dim, text_output))
    return blocks


def build_decoder(head: HeadConfig) -> nn.Module:
    """(F_lav B x C x H x W, words B x L_t x C, padding B x L_t) -> mask logits, B x 4H x 4W."""
    if head.decoder == "sam":
        return SamMaskDecoder(head.dim, head.decoder_depth, head.decoder_heads, head.mask_dim)
    return MaskDecoder(
        head.dim,
        head.decoder_depth,
        head.decoder_heads,
        head.mask_dim,
        token_to_image=head.decoder == "mutual_aware_t2i",
        text_guidance=head.decoder_text_guidance,
    )


def build_model(config: RISAMConfig, device: str | torch.device = "cpu") -> RISAM:
    """A randomly initialised RISAM for ``config`` on ``device`` ("meta" allocates nothing)."""
    head = config.head
    with torch.device(device):
        image_encoder, tap_dims = build_image_encoder(config.image_encoder)
        return RISAM(
            image_encoder=image_encoder,
            text_encoder=ClipTextEncoder(config.text_encoder),
            enhancement=build_enhancement(head, tap_dims),
            fusion=build_fusion(head, config.text_encoder.feature_dim),
            decoder=build_decoder(head),
            freeze_image_encoder=config.image_encoder.freeze,
            freeze_text_encoder=config.text_encoder.freeze,
        )
