"""Meta's ``segment_anything`` image encoder as the benchmarks' reference, in the shape of one of our configs."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from risam.config.model import ImageEncoderConfig

try:
    from segment_anything.modeling import ImageEncoderViT
except ImportError:  # benchmarks that can run without the reference check for None
    ImageEncoderViT = None


def meta_encoder(config: ImageEncoderConfig) -> nn.Module:
    """Meta's ``ImageEncoderViT`` in the shape of ``config``, in eval mode (it also builds SAM's neck)."""
    if ImageEncoderViT is None:
        raise ImportError("the segment_anything reference needs the segment-anything package (the dev extra)")
    return ImageEncoderViT(
        img_size=config.img_size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=4,
        out_chans=256,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=config.window_size,
        global_attn_indexes=config.global_attn_indexes,
    ).eval()


def randomize_positions(blocks: nn.ModuleList, pos_embed: Tensor) -> None:
    """Random relative-position tables and position embedding (they start at zero), for either encoder."""
    with torch.no_grad():
        for block in blocks:
            block.attn.rel_pos_h.normal_(std=0.02)
            block.attn.rel_pos_w.normal_(std=0.02)
        pos_embed.normal_(std=0.02)


def tap_hooks(encoder: nn.Module, indices: tuple[int, ...], taps: dict[int, Tensor]) -> list:
    """Hooks that store the outputs of Meta's blocks ``indices`` (B x H x W x C) as B x C x H x W in ``taps``."""
    return [
        encoder.blocks[index].register_forward_hook(
            lambda _m, _i, out, index=index: taps.__setitem__(index, out.permute(0, 3, 1, 2))
        )
        for index in indices
    ]
