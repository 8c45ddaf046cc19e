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
- No attention mask by default, as BRINet's BCM and the paper's Tab. 3 #7; padding words are
  masked as keys and their rows of A_2 are zero, as in the MA block. F_val goes on to the next
  block and the decoder.
- With ``masked`` (config ``head.masked_fusion``, the variant ``bcm_fusion_masked``) both directions
  keep only the pairs that Eq. 4's mask keeps, computed once from the Eq. 3 scores S = Z_v Z_l^T
  (:func:`~risam.modeling.mutual_attention.attention_keep`, ``tau`` and ``mask_rule``): A_1 over them,
  and A_2 over the same pairs transposed, although A_2's own scores are Z_l F_lav^T. The MA block
  applies one keep matrix to both of its directions; reusing it here keeps the masked BCM different
  from ``full`` only in the serial order, as the unmasked BCM differs from ``no_attn_mask``. A
  threshold on Z_l F_lav^T would also change which pairs are masked, a second difference.
- ``text_output=False`` (a last block before a decoder that reads no words) skips the second
  direction, as the MA block skips F_val, and returns the projected words Z_l.
"""

from __future__ import annotations

import math

import torch

from risam.modeling.layers import FusionOutput
from risam.modeling.mutual_attention import MutualAwareAttention, attention_keep, masked_softmax


class BidirectionalSerialFusion(MutualAwareAttention):
    """One BCM block: vision-guided attention, then language-guided attention over its output.

    Its parameters are those of an MA block; only the order of the two directions differs. Without
    ``masked`` it runs as the MA block at tau 0 (no mask); with it, Eq. 4's mask at ``tau`` by
    ``mask_rule`` applies to both directions.
    """

    def __init__(
        self,
        visual_dim: int,
        text_dim: int,
        dim: int,
        text_output: bool = True,
        masked: bool = False,
        tau: float = 0.0,
        mask_rule: str = "sigmoid",
    ) -> None:
        super().__init__(
            visual_dim, text_dim, dim, tau=tau if masked else 0.0, text_output=text_output, mask_rule=mask_rule
        )

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v; text: B x L_t x C_t; padding_mask: B x L_t, True at padding.

        Returns F_lav (B x L_v x C), F_val (B x L_t x C), A_1 (B x L_v x L_t) and A_2 (B x L_t x L_v);
        without ``text_output``, Z_l in place of F_val and no A_2.
        """
        z_visual, z_text, scores = self.scores(visual, text)
        keep = attention_keep(scores, padding_mask, self.tau, self.mask_rule)
        vision_guided = masked_softmax(scores, keep, dim=2)
        lav = self.norm_visual(vision_guided @ z_text + z_visual)
        if not self.text_output:
            return FusionOutput(lav, z_text, vision_guided, None)
        scores = z_text @ lav.transpose(1, 2) / math.sqrt(self.dim)
        language_guided = masked_softmax(scores, keep.transpose(1, 2), dim=2)
        val = self.norm_text(language_guided @ lav + z_text)
        return FusionOutput(lav, val, vision_guided, language_guided)
