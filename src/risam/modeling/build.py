"""Build a RISAM model from its config: the paper's model, or one of its ablations and baselines.

Every part comes from its slot (:mod:`risam.modeling.slots`), by the name the config holds.
"""

from __future__ import annotations

import torch

from risam.config import RISAMConfig
from risam.modeling.risam import RISAM
from risam.modeling.slots import DECODER, ENHANCEMENT, FUSION, IMAGE_ENCODER
from risam.modeling.text_encoder import ClipTextEncoder


def build_model(config: RISAMConfig, device: str | torch.device = "cpu") -> RISAM:
    """A randomly initialised RISAM for ``config`` on ``device`` ("meta" allocates nothing); it keeps
    ``config`` as :attr:`RISAM.config`."""
    head = config.head
    with torch.device(device):
        image_encoder = IMAGE_ENCODER[config.image_encoder.family].build(config.image_encoder)
        return RISAM(
            config,
            image_encoder=image_encoder,
            text_encoder=ClipTextEncoder(config.text_encoder),
            enhancement=ENHANCEMENT[head.enhancement].build(head, image_encoder.tap_dims),
            fusion=FUSION[head.fusion].build(head, config.text_encoder.feature_dim),
            decoder=DECODER[head.decoder].build(head),
        )
