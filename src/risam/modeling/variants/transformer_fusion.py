"""Transformer-encoder fusion: ReSTR's multimodal transformer encoder (TE), the paper's Tab. 3 #5.

Both modalities are projected to C and concatenated into one sequence; a transformer encoder
layer lets every token attend to every other, of either modality:

    X = [F_v W_v ; F_l W_l]                     (B x (L_v + L_t) x C)
    X = LN(X + MHSA(X))                         (padding words masked as keys)
    X = LN(X + FFN(X))                          (FFN: C -> 4C -> C, GELU)
    F_lav, F_val = X split back into pixels and words

Decisions where the paper is silent (docs/ablations.md):
- Post-norm layers (as in this package's decoder), ``head.decoder_heads`` heads, an FFN of 4C,
  no added position encodings (the CLIP words and the SAM features already carry positions).
- ``head.num_ma_blocks`` such layers are stacked, each with its own input projections, like the
  MA blocks; the word part of the output goes to the decoder as F_val.
"""

from __future__ import annotations

import torch
from torch import nn

from risam.modeling.layers import Attention, FusionOutput


class TransformerFusion(nn.Module):
    """One transformer-encoder layer over the concatenated visual and linguistic tokens."""

    def __init__(self, visual_dim: int, text_dim: int, dim: int, num_heads: int) -> None:
        super().__init__()
        self.proj_visual = nn.Linear(visual_dim, dim, bias=False)
        self.proj_text = nn.Linear(text_dim, dim, bias=False)
        self.self_attn = Attention(dim, num_heads)
        self.norm_attn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm_ffn = nn.LayerNorm(dim)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v; text: B x L_t x C_t; padding_mask: B x L_t, True at padding.

        Returns F_lav (B x L_v x C) and F_val (B x L_t x C); no attention maps.
        """
        length = visual.shape[1]
        tokens = torch.cat([self.proj_visual(visual), self.proj_text(text)], dim=1)
        padding = torch.cat([padding_mask.new_zeros(visual.shape[:2]), padding_mask], dim=1)
        tokens = self.norm_attn(tokens + self.self_attn(tokens, tokens, tokens, key_padding_mask=padding))
        tokens = self.norm_ffn(tokens + self.ffn(tokens))
        return FusionOutput(tokens[:, :length], tokens[:, length:], None, None)
