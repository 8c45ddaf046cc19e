"""No fusion: the words linearly projected to C, the visual features passed on unchanged.

This is the "linear layer (ensure consistency of feature dimensions across different
modalities)" of the paper's Tab. 11, "SAM directly": with ``head.decoder: sam`` the projected
words are SAM's prompt tokens and SAM's decoder does all the cross-modal work.
"""

from __future__ import annotations

import torch
from torch import nn

from risam.modeling.layers import FusionOutput


class TextProjection(nn.Module):
    """A Linear (with bias) from C' to C applied to every word; no attention maps."""

    def __init__(self, text_dim: int, dim: int) -> None:
        super().__init__()
        self.proj_text = nn.Linear(text_dim, dim)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor) -> FusionOutput:
        """visual: B x L_v x C (returned as is); text: B x L_t x C'; padding_mask: unused (B x L_t).

        Returns (visual, projected words B x L_t x C, None, None).
        """
        return FusionOutput(visual, self.proj_text(text), None, None)
