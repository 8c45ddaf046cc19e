"""ViT-Det's simple feature pyramid from the last layer instead of Feature Enhancement: Tab. 6 #11.

From the deep tap F_v3 alone (stride 16), ViT-Det builds four scales (Li et al., ECCV 2022):

    stride 4:  ConvT 2x2 (C_img -> C_img/2), LN, GELU, ConvT 2x2 (-> C_img/4)
    stride 8:  ConvT 2x2 (C_img -> C_img/2)
    stride 16: F_v3
    stride 32: MaxPool 2x2
    each then: Conv1x1 (-> C), LN, Conv3x3 (C -> C), LN       (LN over channels; convs without bias)

Decision where the paper is silent (docs/ablations.md): the head reads one map at stride 16, so
the four levels are brought back to the stride-16 grid (area averaging for the finer ones,
bilinear upsampling for the coarser one), concatenated and fused by a CBA (3x3 conv, BN,
GELU), the operator of Feature Enhancement. The variant thus differs from Feature Enhancement
only in where its multi-scale features come from: one deep layer instead of three depths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from risam.modeling.layers import ConvBNAct


def _output_convs(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_dim, dim, kernel_size=1, bias=False),
        LayerNorm2d(dim),
        nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(dim),
    )


class SimpleFeaturePyramid(nn.Module):
    """Four scales from the deep tap, resampled to its grid and fused into F_v."""

    def __init__(self, image_dim: int, dim: int) -> None:
        super().__init__()
        half, quarter = image_dim // 2, image_dim // 4
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(image_dim, half, kernel_size=2, stride=2),
            LayerNorm2d(half),
            nn.GELU(),
            nn.ConvTranspose2d(half, quarter, kernel_size=2, stride=2),
        )
        self.up2 = nn.ConvTranspose2d(image_dim, half, kernel_size=2, stride=2)
        self.down2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.outputs = nn.ModuleList([_output_convs(level, dim) for level in (quarter, half, image_dim, image_dim)])
        self.fuse = ConvBNAct(4 * dim, dim)

    def levels(self, deep: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid of the deep tap (B x C_img x H x W): B x C maps at 4H, 2H, H and H/2."""
        inputs = [self.up4(deep), self.up2(deep), deep, self.down2(deep)]
        return [convs(x) for convs, x in zip(self.outputs, inputs, strict=True)]

    def forward(self, *taps: torch.Tensor) -> torch.Tensor:
        """Taps, each B x C_img x H x W, the deep one last -> F_v, B x C x H x W."""
        deep = taps[-1]
        size = deep.shape[-2:]
        resampled = [
            F.adaptive_avg_pool2d(level, size)
            if level.shape[-1] >= size[-1]
            else F.interpolate(level, size=size, mode="bilinear", align_corners=False)
            for level in self.levels(deep)
        ]
        return self.fuse(torch.cat(resampled, dim=1))
