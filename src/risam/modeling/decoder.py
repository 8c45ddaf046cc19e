"""Mutual-Aware Mask Decoder (paper Sec. 3.4, Eq. 6-9).

Each layer, with F_c = [F_m, F_val] (the multi-modal query token, then the words):

    F_lav_hat = MHSA(F_lav) + F_lav                          (Eq. 6-7)
    F_c_hat   = MHSA(F_c) + F_c                              (Eq. 8)
    F_lav_bar = MHCA(F_lav_hat, F_c_hat, F_c_hat) + F_lav_hat  (Eq. 9)

The next layer takes (F_lav_bar, F_c_hat). After the last one, F_lav_bar is upsampled 4x by
two (ConvTranspose2d, BatchNorm2d, GELU) blocks, the query token alone goes through an MLP,
and their dot product at every pixel gives the mask logits.

Decisions where the paper is silent (docs/model.md):
- LayerNorm follows every residual sum (post-norm, as in SAM's decoder).
- The linguistic positional encodings are fixed 1-D sinusoids (any expression length works
  with one checkpoint), added to queries and keys, never to values, as in DETR; the query
  token's position is zero. Padding words are masked as keys in Eq. 8 and Eq. 9.
- The upsampling blocks end in GELU and the query MLP has three layers with ReLU, as in
  SAM's mask decoder; there are no feed-forward sublayers (the paper lists none). The
  transposed convolutions have no bias: the batch norm after each removes it anyway.

Ablations (paper Tab. 5, docs/ablations.md):
- ``token_to_image`` (#9 "w/ TOI-A") inserts SAM's token-to-image attention in every layer,
  between Eq. 8 and Eq. 9, where SAM's two-way block has it: F_c_hat = LN(F_c_hat +
  MHCA(F_c_hat, F_lav_hat, F_lav_hat)), the word positions added to its queries. The visual
  keys get no position encoding, as nowhere else in this decoder.
- ``text_guidance=False`` (#10 "w/o ELG") feeds the layers the query token alone: F_val never
  enters the decoder, which then reads the sentence only through F_lav.

Not in the paper: with ``high_res_dims`` (SAM 2's Hiera encoders, ``image_encoder.high_res_features``)
the encoder's stride-8 and stride-4 maps, each through a 1 x 1 convolution, are added to the outputs
of the two transposed convolutions, as SAM 2's mask decoder adds its high-resolution features
(:class:`risam.modeling.layers.HighResSkips`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from risam.modeling.layers import Attention, HighResSkips, QueryMLP, high_res_skips, upsample_adding


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed 1-D sine/cosine position encodings, length x dim (dim even)."""
    position = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding


class DecoderLayer(nn.Module):
    """One layer of Eq. 6, 8 and 9, each residual followed by LayerNorm.

    With ``token_to_image``, the tokens also attend to the visual features between Eq. 8 and
    Eq. 9 (SAM's token-to-image attention, the paper's Tab. 5 #9).
    """

    def __init__(self, dim: int, num_heads: int, token_to_image: bool = False) -> None:
        super().__init__()
        self.visual_self_attn = Attention(dim, num_heads)
        self.norm_visual_self = nn.LayerNorm(dim)
        self.token_self_attn = Attention(dim, num_heads)
        self.norm_token_self = nn.LayerNorm(dim)
        if token_to_image:
            self.token_to_image_attn = Attention(dim, num_heads)
            self.norm_token_to_image = nn.LayerNorm(dim)
        self.token_to_image = token_to_image
        self.cross_attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim)

    def forward(
        self,
        visual: torch.Tensor,
        tokens: torch.Tensor,
        token_pos: torch.Tensor,
        token_padding: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """visual: B x L_v x C; tokens: F_c, B x (1 + L_t) x C; token_pos: 1 x (1 + L_t) x C;
        token_padding: B x (1 + L_t), True at padding. Returns (F_lav_bar, F_c_hat)."""
        visual = self.norm_visual_self(visual + self.visual_self_attn(visual, visual, visual))
        with_pos = tokens + token_pos
        tokens = self.norm_token_self(
            tokens + self.token_self_attn(with_pos, with_pos, tokens, key_padding_mask=token_padding)
        )
        if self.token_to_image:
            tokens = self.norm_token_to_image(tokens + self.token_to_image_attn(tokens + token_pos, visual, visual))
        cross = self.cross_attn(visual, tokens + token_pos, tokens, key_padding_mask=token_padding)
        visual = self.norm_cross(visual + cross)
        return visual, tokens


class MaskDecoder(nn.Module):
    """Mutual-Aware Mask Decoder: query token + F_val guide F_lav, then mask logits.

    ``token_to_image`` and ``text_guidance=False`` are the paper's Tab. 5 ablations (#9, #10).
    ``high_res_dims`` (C_8, C_4) are the channels of the image encoder's stride-8 and stride-4 maps that
    the upsampling adds (empty: none).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mask_dim: int,
        token_to_image: bool = False,
        text_guidance: bool = True,
        high_res_dims: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"decoder width {dim} must be even for sinusoidal position encodings")
        self.text_guidance = text_guidance
        self.query_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.layers = nn.ModuleList([DecoderLayer(dim, num_heads, token_to_image) for _ in range(depth)])
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2, bias=False),
            nn.BatchNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, mask_dim, kernel_size=2, stride=2, bias=False),
            nn.BatchNorm2d(mask_dim),
            nn.GELU(),
        )
        self.query_mlp = QueryMLP(dim, mask_dim)
        # Batch norms follow both additions, so the projections have no bias (as the transposed convolutions).
        self.high_res = HighResSkips(high_res_dims, (dim // 4, mask_dim), bias=False) if high_res_dims else None

    def forward(
        self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor, *high_res: torch.Tensor
    ) -> torch.Tensor:
        """visual: F_lav, B x C x H x W; text: F_val, B x L_t x C; padding_mask: B x L_t; ``high_res``: with
        ``high_res_dims``, the stride-8 and stride-4 maps, B x C_8 x 2H x 2W and B x C_4 x 4H x 4W.

        Returns mask logits, B x 4H x 4W. Without text guidance ``text`` and ``padding_mask``
        are not read.
        """
        batch, dim, height, width = visual.shape
        visual_seq = visual.flatten(2).transpose(1, 2)
        if not self.text_guidance:
            text, padding_mask = text[:, :0], padding_mask[:, :0]
        tokens = torch.cat([self.query_token.expand(batch, -1, -1).to(text.dtype), text], dim=1)
        word_pos = sinusoidal_positions(text.shape[1], dim, device=text.device).to(text.dtype)
        token_pos = torch.cat([word_pos.new_zeros(1, dim), word_pos])[None]
        token_padding = torch.cat([padding_mask.new_zeros(batch, 1), padding_mask], dim=1)
        for layer in self.layers:
            visual_seq, tokens = layer(visual_seq, tokens, token_pos, token_padding)
        upsampled = upsample_adding(
            self.upsample,
            visual_seq.transpose(1, 2).reshape(batch, dim, height, width),
            high_res_skips(self.high_res, high_res),
        )
        query = self.query_mlp(tokens[:, 0])
        return torch.einsum("bc,bchw->bhw", query, upsampled)
