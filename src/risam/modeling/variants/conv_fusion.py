"""Convolutional fusion: the paper's Tab. 2 #2 ("r. MA"), Mutual-Aware Attention replaced by
convolutions over the concatenated visual and linguistic features (as early RIS methods fuse).

    Z_l = F_l W_l                                        (words projected to C)
    s   = mean of Z_l over the non-padding words         (the sentence, B x C)
    F_lav = GELU(BN(Conv3x3([F_v, s broadcast to every pixel])))
    F_val = Z_l

Decisions where the paper is silent (docs/ablations.md):
- The sentence is the mean of the projected words over the real (non-padding) words, tiled
  over the H x W grid before the concatenation.
- One 3x3 convolution (no bias; batch norm and GELU follow, the CBA of Feature Enhancement)
  per block; ``head.num_ma_blocks`` blocks are stacked, like the MA blocks.
- There is no attention, hence no vision-aware linguistic features: the words go on, projected
  (Z_l), to the next block and to the decoder, so the decoder keeps its linguistic guidance and
  only the fusion differs from the full model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from risam.modeling.layers import ConvBNAct, FusionOutput


def masked_mean(text: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """Mean of B x L_t x C features over the words where ``padding_mask`` (B x L_t) is False -> B x C."""
    keep = (~padding_mask).to(text.dtype)[..., None]
    return (text * keep).sum(1) / keep.sum(1).clamp(min=1.0)


class ConvFusion(nn.Module):
    """One block: concatenate F_v with the tiled mean sentence feature, 3x3 conv, BN, GELU."""

    def __init__(self, visual_dim: int, text_dim: int, dim: int) -> None:
        super().__init__()
        self.proj_text = nn.Linear(text_dim, dim, bias=False)
        self.fuse = ConvBNAct(visual_dim + dim, dim)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v, a flattened square grid; text: B x L_t x C_t; padding_mask: B x L_t, True at padding.

        Returns F_lav (B x L_v x C) and the projected words (B x L_t x C); no attention maps.
        """
        batch, length, _ = visual.shape
        side = math.isqrt(length)
        if side * side != length:
            raise ValueError(f"ConvFusion expects the features of a square grid, got {length} visual tokens")
        z_text = self.proj_text(text)
        sentence = masked_mean(z_text, padding_mask)
        grid = visual.transpose(1, 2).reshape(batch, -1, side, side)
        tiled = sentence[:, :, None, None].expand(-1, -1, side, side)
        fused = self.fuse(torch.cat([grid, tiled], dim=1))
        return FusionOutput(fused.flatten(2).transpose(1, 2), z_text, None, None)
