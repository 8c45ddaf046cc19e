"""Feature Enhancement (paper Sec. 3.2, Eq. 1-2).

Fuses the shallow, middle and deep taps of the image encoder:

    F_hat = CBA([MLP(F_v1), MLP(F_v2)])          (Eq. 1)
    F_v   = CBA([MLP(F_hat), MLP(F_v3)])         (Eq. 2)

MLP is applied to every pixel: Linear(in, C) -> GELU -> Linear(C, C) (the paper does not give
its depth; two layers, as in a transformer MLP). CBA is a 3x3 convolution (no bias, the
batch norm follows), BatchNorm2d and GELU.
"""

from __future__ import annotations

import torch
from torch import nn

from risam.modeling.layers import ConvBNAct, PixelMLP


class FeatureEnhancement(nn.Module):
    """Eq. 1-2: shallow + middle, then + deep, each through per-pixel MLPs and a CBA.

    ``image_dim`` is the channel count of the taps: one number for a ViT, or one per tap
    (shallow, middle, deep) for backbones whose stages differ in width (Swin, paper Tab. 7).
    """

    def __init__(self, image_dim: int | tuple[int, int, int], dim: int) -> None:
        super().__init__()
        shallow_dim, middle_dim, deep_dim = (image_dim,) * 3 if isinstance(image_dim, int) else image_dim
        self.mlp_shallow = PixelMLP(shallow_dim, dim)
        self.mlp_middle = PixelMLP(middle_dim, dim)
        self.fuse_early = ConvBNAct(2 * dim, dim)
        self.mlp_early = PixelMLP(dim, dim)
        self.mlp_deep = PixelMLP(deep_dim, dim)
        self.fuse_final = ConvBNAct(2 * dim, dim)

    def forward(self, shallow: torch.Tensor, middle: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        """Three B x C_img x H x W taps -> enhanced visual features F_v, B x C x H x W."""
        early = self.fuse_early(torch.cat([self.mlp_shallow(shallow), self.mlp_middle(middle)], dim=1))
        return self.fuse_final(torch.cat([self.mlp_early(early), self.mlp_deep(deep)], dim=1))
