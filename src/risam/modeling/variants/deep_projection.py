"""Without Feature Enhancement: the paper's Tab. 2 / Tab. 6 #1 ("w/o FE").

Only the deep tap is used, projected to C by the same per-pixel MLP that Feature Enhancement
applies to it (Eq. 2's MLP(F_v3)); the shallow and middle taps are not read:

    F_v = MLP(F_v3)
"""

from __future__ import annotations

import torch
from torch import nn

from risam.modeling.layers import PixelMLP


class DeepProjection(nn.Module):
    """The last tap through Linear(C_img, C) -> GELU -> Linear(C, C) at every pixel."""

    def __init__(self, image_dim: int, dim: int) -> None:
        super().__init__()
        self.mlp_deep = PixelMLP(image_dim, dim)

    def forward(self, *taps: torch.Tensor) -> torch.Tensor:
        """Taps, each B x C_img x H x W, the deep one last -> F_v, B x C x H x W."""
        return self.mlp_deep(taps[-1])
