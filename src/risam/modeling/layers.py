"""Layers that several components share: the image side's and the fusion blocks' outputs, attention, the
small MLPs and convolutions of Feature Enhancement, the decoders and the baselines, and the decoders'
high-resolution skips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VisualFeatures:
    """What the image side gives the head for B images.

    enhanced: F_v, B x C x H x W. high_res: empty, or with ``image_encoder.high_res_features`` the image
    encoder's stride-8 and stride-4 maps, B x C_8 x 2H x 2W and B x C_4 x 4H x 4W, which the decoder adds
    while it upsamples.
    """

    enhanced: torch.Tensor
    high_res: tuple[torch.Tensor, ...] = ()

    def __getitem__(self, rows: slice | torch.Tensor) -> VisualFeatures:
        """The features of the images at ``rows`` (a slice, or a long tensor of indices, repeats allowed)."""
        return VisualFeatures(self.enhanced[rows], tuple(level[rows] for level in self.high_res))


class FusionOutput(NamedTuple):
    """Outputs of one fusion block (this one, or a baseline of ``modeling/variants``).

    visual: F_lav, B x L_v x C. text: F_val, B x L_t x C.
    vision_guided: A_vg, B x L_v x L_t (rows over words sum to 1 unless fully masked).
    language_guided: A_lg, B x L_t x L_v (rows over pixels sum to 1 unless fully masked).
    A baseline without such a map (convolutions, a transformer encoder) gives None.
    """

    visual: torch.Tensor
    text: torch.Tensor
    vision_guided: torch.Tensor | None
    language_guided: torch.Tensor | None


class Attention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention``.

    Queries, keys and values are projected to ``inner_dim`` (default ``dim``; SAM's decoder
    halves it in its cross attentions) and the output back to ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, inner_dim: int | None = None) -> None:
        super().__init__()
        inner_dim = dim if inner_dim is None else inner_dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner_dim)
        self.k_proj = nn.Linear(dim, inner_dim)
        self.v_proj = nn.Linear(dim, inner_dim)
        self.out_proj = nn.Linear(inner_dim, dim)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query: B x L_q x C; key, value: B x L_k x C; key_padding_mask: B x L_k (True = ignore).

        Returns B x L_q x C.
        """
        batch, length_q, _ = query.shape
        q = self._split_heads(self.q_proj(query))
        k = self._split_heads(self.k_proj(key))
        v = self._split_heads(self.v_proj(value))
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length_q, -1))

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)


class QueryMLP(nn.Module):
    """Three-layer MLP with ReLU between layers: C -> C -> C -> mask_dim."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, out_dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C -> B x out_dim."""
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class PixelMLP(nn.Module):
    """Linear -> GELU -> Linear over the channels of every pixel of a B x C_in x H x W map."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C_in x H x W -> B x C_out x H x W."""
        x = x.permute(0, 2, 3, 1)
        x = self.fc2(self.act(self.fc1(x)))
        return x.permute(0, 3, 1, 2)


class ConvBNAct(nn.Module):
    """CBA: 3x3 convolution, batch normalization, GELU."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C_in x H x W -> B x C_out x H x W."""
        return self.act(self.norm(self.conv(x)))


class HighResSkips(nn.Module):
    """SAM 2's high-resolution features for a decoder's two upsampling steps: 1 x 1 convolutions of the image
    encoder's stride-8 and stride-4 maps to the widths of the first and second transposed convolution's output.

    SAM 2 projects each of these maps twice in a row, by its neck's 1 x 1 convolution and by its decoder's
    ``conv_s1`` / ``conv_s0``; two 1 x 1 convolutions in a row are one, so this single trainable one spans the
    same functions of the trunk's maps. ``bias=False`` where a batch norm follows each addition (it would
    remove a bias anyway).
    """

    def __init__(self, in_dims: tuple[int, int], out_dims: tuple[int, int], bias: bool = True) -> None:
        super().__init__()
        self.stride8 = nn.Conv2d(in_dims[0], out_dims[0], kernel_size=1, bias=bias)
        self.stride4 = nn.Conv2d(in_dims[1], out_dims[1], kernel_size=1, bias=bias)
        self.in_dims = in_dims

    def forward(self, high_res: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B x C_8 x 2H x 2W, B x C_4 x 4H x 4W) -> the two skips, B x out_dims[i] x the same sizes."""
        if len(high_res) != 2:
            raise ValueError(
                f"the decoder adds the image encoder's stride-8 and stride-4 maps (image_encoder.high_res_features); "
                f"got {len(high_res)} maps"
            )
        stride8, stride4 = high_res
        return self.stride8(stride8), self.stride4(stride4)


def high_res_skips(skips: HighResSkips | None, high_res: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The skips a decoder adds while upsampling: ``skips`` of the ``high_res`` maps, or none for a decoder
    built without high-resolution maps (``skips`` None), which may then be given none."""
    if skips is not None:
        return skips(high_res)
    if high_res:
        raise ValueError(f"this decoder was built without high-resolution maps; got {len(high_res)}")
    return ()


def upsample_adding(upsample: nn.Sequential, features: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
    """Run ``upsample`` on ``features``, adding ``skips[i]`` to the output of its i-th transposed convolution,
    before the normalisation and activation after it (SAM 2's order); no skips: ``upsample(features)``."""
    pending = list(skips)
    for layer in upsample:
        features = layer(features)
        if pending and isinstance(layer, nn.ConvTranspose2d):
            features = features + pending.pop(0)
    if pending:
        raise ValueError(f"{len(skips)} skips for an upsampling with fewer transposed convolutions")
    return features
