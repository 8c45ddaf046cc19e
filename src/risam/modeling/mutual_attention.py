"""Mutual-Aware Attention block (paper Sec. 3.3, Eq. 3-5).

    Z_v = F_v W_v,  Z_l = F_l W_l,  S = Z_v Z_l^T / sqrt(C)                  (Eq. 3)
    keep(i, j) = sigmoid(S(i, j)) >= tau  and  word j is not padding          (Eq. 4)
    F_lav = LayerNorm(A_vg Z_l + Z_v)                                        (Eq. 5)
    F_val = LayerNorm(A_lg Z_v + Z_l)

Decisions where the paper is ambiguous (docs/model.md):
- Eq. 4 literally masks pairs whose relevance is *above* tau, while the text says the mask
  filters out irrelevant pairs. Irrelevant means a low score, so pairs with
  sigmoid(S) < tau are masked. ``tau = 0`` masks nothing (the paper's "w/o attn. mask").
- Vision-Guided Attention A_vg is the softmax of the masked scores over the words of each
  pixel (L_v x L_t). Language-Guided Attention needs, for each word, a distribution over
  pixels, so A_lg is the softmax of the same masked scores over the pixels of each word
  (L_t x L_v); Eq. 5's ``A^T`` is read as this transposed, pixel-normalized map.
- Eq. 5 writes Z_theta for the visual residual; it is Z_v.
- A row whose every pair is masked gets all-zero weights, so its output is
  LayerNorm(Z) of its own projection: finite, never NaN.
- Padding words take part in neither direction: they are masked as keys of the vision-guided
  softmax, and their rows of A_lg are zero.

Not in the paper: ``mask_rule="softmax_share"`` (config ``head.mask_rule``, docs/ablations.md) keeps a
pair where the pixel's softmax weight on the word, over its real words, is at least tau / (their
number). The vision-guided softmax does not change when a constant is added to all of a pixel's
scores, but Eq. 4's sigmoid threshold does: with the paper's rule, a pixel whose scores are all
shifted down loses its words. The share rule keeps the same pairs under any such shift, always
keeps each pixel's highest-scoring word (tau < 1), and at tau = 0 keeps every real word. The same
keep matrix serves both directions, as Eq. 4's does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from risam.modeling.layers import FusionOutput


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` among entries where ``keep`` is True; others are 0.

    A slice with nothing kept is all zeros. Filling with the dtype's lowest finite value (not
    -inf) keeps the forward and backward passes free of NaN.
    """
    filled = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=dim) * keep


def attention_keep(scores: torch.Tensor, padding_mask: torch.Tensor, tau: float, rule: str) -> torch.Tensor:
    """The word-pixel pairs that Eq. 4's attention mask keeps, B x L_v x L_t bool.

    scores: S, B x L_v x L_t; padding_mask: B x L_t, True at padding (never kept). ``rule``:
    ``"sigmoid"`` keeps sigmoid(S) >= tau (the paper's); ``"softmax_share"`` keeps a pair where the
    pixel's softmax over its real words gives the word at least tau / (number of real words).
    """
    words = ~padding_mask[:, None, :]
    if rule == "sigmoid":
        return (torch.sigmoid(scores) >= tau) & words
    if rule == "softmax_share":
        count = words.sum(dim=2, keepdim=True).clamp(min=1)
        return (masked_softmax(scores, words.expand_as(scores), dim=2) * count >= tau) & words
    raise ValueError(f"mask rule {rule!r}; expected 'sigmoid' or 'softmax_share'")


def word_pixel_scores(
    proj_visual: nn.Module, proj_text: nn.Module, visual: torch.Tensor, text: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 3: Z_v = proj_visual(F_v) (B x L_v x C), Z_l = proj_text(F_l) (B x L_t x C) and
    S = Z_v Z_l^T / sqrt(C) (B x L_v x L_t)."""
    z_visual = proj_visual(visual)
    z_text = proj_text(text)
    return z_visual, z_text, z_visual @ z_text.transpose(1, 2) / math.sqrt(z_visual.shape[-1])


class MutualAwareAttention(nn.Module):
    """One Mutual-Aware Attention block: parallel vision- and language-guided attention.

    ``text_output=False`` is for a last block whose F_val nothing reads (a decoder without
    linguistic guidance, the paper's Tab. 5 #10): F_val and its LayerNorm are not computed (a
    parameter without a gradient would stop DDP), and the words are returned projected (Z_l).
    """

    def __init__(
        self,
        visual_dim: int,
        text_dim: int,
        dim: int,
        tau: float,
        text_output: bool = True,
        mask_rule: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.tau = tau
        self.mask_rule = mask_rule
        self.proj_visual = nn.Linear(visual_dim, dim, bias=False)
        self.proj_text = nn.Linear(text_dim, dim, bias=False)
        self.norm_visual = nn.LayerNorm(dim)
        self.text_output = text_output
        if text_output:
            self.norm_text = nn.LayerNorm(dim)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C_v; text: B x L_t x C_t; padding_mask: B x L_t, True at padding."""
        z_visual, z_text, scores = self.scores(visual, text)
        keep = attention_keep(scores, padding_mask, self.tau, self.mask_rule)
        return self.attend(z_visual, z_text, scores, keep, keep)

    def scores(self, visual: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 3 with this block's projections (:func:`word_pixel_scores`)."""
        return word_pixel_scores(self.proj_visual, self.proj_text, visual, text)

    def attend(
        self,
        z_visual: torch.Tensor,
        z_text: torch.Tensor,
        scores: torch.Tensor,
        vision_keep: torch.Tensor,
        language_keep: torch.Tensor,
    ) -> FusionOutput:
        """Eq. 5 from the scores of :meth:`scores` and the pairs each direction keeps (both B x L_v x L_t);
        :meth:`forward` passes Eq. 4's keep matrix to both, ``benchmarks/mask_switch.py`` masks one."""
        vision_guided = masked_softmax(scores, vision_keep, dim=2)
        language_guided = masked_softmax(scores, language_keep, dim=1).transpose(1, 2)
        lav = self.norm_visual(vision_guided @ z_text + z_visual)
        val = self.norm_text(language_guided @ z_visual + z_text) if self.text_output else z_text
        return FusionOutput(lav, val, vision_guided, language_guided)
