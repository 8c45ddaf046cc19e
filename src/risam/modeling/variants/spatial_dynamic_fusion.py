"""Spatial Dynamic Fusion: VLT's SDF, the paper's Tab. 3 #6 (vision-guided attention only).

Every pixel attends over the words and the resulting linguistic vector, one per pixel,
modulates that pixel's feature:

    Z_v = F_v W_v,  Z_l = F_l W_l
    A   = Softmax_words(Z_v Z_l^T / sqrt(C))        (padding words masked; B x L_v x L_t)
    F_lav = LN(Z_v * (A Z_l) + Z_v)                 (* element-wise)
    F_val = Z_l

Decisions where the paper is silent (docs/ablations.md):
- The modulation is element-wise, with a residual (Z_v * (1 + A Z_l) before the norm), so a
  stack of ``head.num_ma_blocks`` blocks trains as stably as the MA blocks.
- There is no language-guided branch: the words are not updated by the image, and go on
  projected (Z_l) to the next block and the decoder.
- No attention mask by default, as VLT's SDF and the paper's Tab. 3 #6. With ``masked`` (config
  ``head.masked_fusion``, the variant ``sdf_fusion_masked``) A is the softmax over the pairs that
  the MA block's mask keeps (:func:`~risam.modeling.mutual_attention.attention_keep`, ``tau`` and
  ``mask_rule``), so that SDF and MA can be compared with the mask held equal; a pixel whose every
  pair is masked reads no word and gets LN(Z_v).
"""

from __future__ import annotations

import torch
from torch import nn

from risam.modeling.layers import FusionOutput
from risam.modeling.mutual_attention import attention_keep, masked_softmax, word_pixel_scores


class SpatialDynamicFusion(nn.Module):
    """One SDF block: per-pixel attention over the words, multiplied into the pixel."""

    def __init__(
        self,
        visual_dim: int,
        text_dim: int,
        dim: int,
        masked: bool = False,
        tau: float = 0.0,
        mask_rule: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.masked = masked
        self.tau = tau
        self.mask_rule = mask_rule
        self.proj_visual = nn.Linear(visual_dim, dim, bias=False)
        self.proj_text = nn.Linear(text_dim, dim, bias=False)
        self.norm_visual = nn.LayerNorm(dim)

    def scores(self, visual: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 3 with this block's projections, as an MA block computes it (:func:`word_pixel_scores`)."""
        return word_pixel_scores(self.proj_visual, self.proj_text, visual, text)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v; text: B x L_t x C_t; padding_mask: B x L_t, True at padding.

        Returns F_lav (B x L_v x C), the projected words Z_l (B x L_t x C) and the
        vision-guided map A (B x L_v x L_t); there is no language-guided map.
        """
        z_visual, z_text, scores = self.scores(visual, text)
        if self.masked:
            keep = attention_keep(scores, padding_mask, self.tau, self.mask_rule)
        else:
            keep = (~padding_mask)[:, None, :].expand_as(scores)
        vision_guided = masked_softmax(scores, keep, dim=2)
        lav = self.norm_visual(z_visual * (vision_guided @ z_text) + z_visual)
        return FusionOutput(lav, z_text, vision_guided, None)
