"""Layers that several components share: the fusion blocks' output, attention, and the small MLPs and
convolutions of Feature Enhancement, the decoders and the baselines."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


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
