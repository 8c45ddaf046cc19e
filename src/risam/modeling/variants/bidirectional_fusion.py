"""Serial bidirectional cross-modal fusion: BRINet's BCM, the paper's Tab. 3 #7.

The two directions of Mutual-Aware Attention, run one after the other instead of in parallel:
first every pixel attends over the words, then every word attends over the pixels *of the
result*, so the second direction reads the output of the first:

    Z_v = F_v W_v,  Z_l = F_l W_l
    A_1 = Softmax_words(Z_v Z_l^T / sqrt(C))              (B x L_v x L_t)
    F_lav = LN(A_1 Z_l + Z_v)                             (language -> vision)
    A_2 = Softmax_pixels(Z_l F_lav^T / sqrt(C))           (B x L_t x L_v)
    F_val = LN(A_2 F_lav + Z_l)                           (vision -> language, from F_lav)

Decisions where the paper is silent (docs/ablations.md):
- The parameters are those of an MA block (W_v, W_l, two LayerNorms): the variant differs from
  "w/o attn. mask" (#8) only in running the directions in series.
- No attention mask (no tau); padding words are masked as keys and their rows of A_2 are zero,
  as in the MA block. F_val goes on to the next block and the decoder.
- ``text_output=False`` (a last block before a decoder that reads no words) skips the second
  direction, as the MA block skips F_val, and returns the projected words Z_l.
"""

from __future__ import annotations

import math

import torch

from risam.modeling.layers import FusionOutput
from risam.modeling.mutual_attention import MutualAwareAttention, masked_softmax


class BidirectionalSerialFusion(MutualAwareAttention):
    """One BCM block: vision-guided attention, then language-guided attention over its output.

    Its parameters are those of an MA block without attention mask (tau 0); only the order of the
    two directions differs.
    """

    def __init__(self, visual_dim: int, text_dim: int, dim: int, text_output: bool = True) -> None:
        super().__init__(visual_dim, text_dim, dim, tau=0.0, text_output=text_output)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v; text: B x L_t x C_t; padding_mask: B x L_t, True at padding.

        Returns F_lav (B x L_v x C), F_val (B x L_t x C), A_1 (B x L_v x L_t) and A_2 (B x L_t x L_v);
        without ``text_output``, Z_l in place of F_val and no A_2.
        """
        z_visual = self.proj_visual(visual)
        z_text = self.proj_text(text)
        words = (~padding_mask)[:, None, :]
        scores = z_visual @ z_text.transpose(1, 2) / math.sqrt(self.dim)
        vision_guided = masked_softmax(scores, words.expand_as(scores), dim=2)
        lav = self.norm_visual(vision_guided @ z_text + z_visual)
        if not self.text_output:
            return FusionOutput(lav, z_text, vision_guided, None)
        scores = z_text @ lav.transpose(1, 2) / math.sqrt(self.dim)
        language_guided = masked_softmax(scores, words.transpose(1, 2).expand_as(scores), dim=2)
        val = self.norm_text(language_guided @ lav + z_text)
        return FusionOutput(lav, val, vision_guided, language_guided)
