"""Build a RISAM model from its config."""

from __future__ import annotations

import torch

from risam.configs import RISAMConfig
from risam.modeling.decoder import MaskDecoder
from risam.modeling.enhance import FeatureEnhancement
from risam.modeling.image_encoder import SamImageEncoder
from risam.modeling.mutual_attention import MutualAwareAttention
from risam.modeling.risam import RISAM
from risam.modeling.text_encoder import ClipTextEncoder


def build_model(config: RISAMConfig, device: str | torch.device = "cpu") -> RISAM:
    """A randomly initialised RISAM for ``config`` on ``device`` ("meta" allocates nothing)."""
    head = config.head
    if len(config.image_encoder.tap_indices) != 3:
        raise ValueError(
            f"image_encoder.tap_indices={config.image_encoder.tap_indices}: Feature Enhancement fuses "
            "exactly three taps (shallow, middle, deep)"
        )
    with torch.device(device):
        fusion = [
            MutualAwareAttention(head.dim, config.text_encoder.feature_dim if i == 0 else head.dim, head.dim, head.tau)
            for i in range(head.num_ma_blocks)
        ]
        return RISAM(
            image_encoder=SamImageEncoder(config.image_encoder),
            text_encoder=ClipTextEncoder(config.text_encoder),
            enhancement=FeatureEnhancement(config.image_encoder.embed_dim, head.dim),
            fusion=fusion,
            decoder=MaskDecoder(head.dim, head.decoder_depth, head.decoder_heads, head.mask_dim),
            freeze_image_encoder=config.image_encoder.freeze,
            freeze_text_encoder=config.text_encoder.freeze,
        )
