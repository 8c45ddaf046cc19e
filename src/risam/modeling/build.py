"""Build a RISAM model from its config: the paper's model, or one of its ablations and baselines.

Every part comes from its slot (:mod:`risam.modeling.slots`), by the name the config holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from risam.config import RISAMConfig
from risam.modeling.model import RISAM
from risam.modeling.slots import DECODER, ENHANCEMENT, FUSION, IMAGE_ENCODER
from risam.modeling.text_encoder import ClipTextEncoder


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create floating-point parameters and buffers in ``dtype`` inside the block."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def build_model(
    config: RISAMConfig, device: str | torch.device = "cpu", encoder_dtype: torch.dtype = torch.float32
) -> RISAM:
    """A randomly initialised RISAM for ``config`` on ``device`` ("meta" allocates nothing); it keeps
    ``config`` as :attr:`RISAM.config`.

    Frozen encoders are created in ``encoder_dtype`` (a bfloat16 risam_vit_h is not first built with
    2.8 GiB of float32 encoder weights); trainable parts are always float32. The default dtype is
    process-wide while they are built: build models before other threads compute.
    """
    head = config.head
    image_dtype = encoder_dtype if config.image_encoder.freeze else torch.float32
    text_dtype = encoder_dtype if config.text_encoder.freeze else torch.float32
    with torch.device(device):
        # .to() also converts what a library creates in an explicit dtype
        with default_dtype(image_dtype):
            image_encoder = IMAGE_ENCODER[config.image_encoder.family].build(config.image_encoder).to(image_dtype)
        with default_dtype(text_dtype):
            text_encoder = ClipTextEncoder(config.text_encoder).to(text_dtype)
        return RISAM(
            config,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            enhancement=ENHANCEMENT[head.enhancement].build(head, image_encoder.tap_dims),
            fusion=FUSION[head.fusion].build(head, config.text_encoder.feature_dim),
            decoder=DECODER[head.decoder].build(head, _high_res_dims(image_encoder, config)),
        )


def _high_res_dims(image_encoder: torch.nn.Module, config: RISAMConfig) -> tuple[int, ...]:
    """Channels of the high-resolution maps the image encoder returns after its taps (none unless
    ``image_encoder.high_res_features``, which the config allows for Hiera encoders only)."""
    return tuple(image_encoder.high_res_dims) if config.image_encoder.high_res_features else ()
