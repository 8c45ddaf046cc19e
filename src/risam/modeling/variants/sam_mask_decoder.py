"""SAM's mask decoder in place of the Mutual-Aware Mask Decoder: the paper's Tab. 2 #3 ("r. DE")
and, fed by linearly projected CLIP words, Tab. 11 ("SAM directly").

A two-way transformer (Kirillov et al., Segment Anything, 2023) between the tokens
T = [mask token, prompt tokens] and the image features I (F_lav plus SAM's dense "no mask"
embedding), with P_T = the initial tokens and P_I = random Fourier positions of the grid:

    every block:  T = LN(T + SelfAttn(T + P_T, T + P_T, T))          (the first block: T = LN(SelfAttn(T, T, T)))
                  T = LN(T + Attn(T + P_T, I + P_I, I))              (token to image)
                  T = LN(T + MLP(T))                                 (C -> 8C -> C, ReLU)
                  I = LN(I + Attn(I + P_I, T + P_T, T))              (image to token)
    at the end:   T = LN(T + Attn(T + P_T, I + P_I, I))
    logits = MLP(T[mask token]) . Upscale(I)                         (Upscale: 2 x ConvT 2x2, LN2d + GELU, GELU)

The cross attentions project to C/2 (SAM's ``attention_downsample_rate`` 2).

Decisions (docs/ablations.md):
- The prompt tokens are the words (F_val, or the projected CLIP words for "SAM directly"),
  padding words masked as keys; RIS has no points, boxes or mask prompts.
- One mask token and no IoU token or IoU head: RIS asks for one mask and the loss has no IoU
  term, so those parts would never receive a gradient.
- SAM's widths: MLP 8C (2048 for C = 256; ``mlp_ratio``, config ``head.sam_decoder_mlp_ratio``: the
  variant ``sam_decoder_narrow`` uses C, which brings the decoder's parameters near the Mutual-Aware
  decoder's, docs/ablations.md), ``head.decoder_depth`` blocks (2 in SAM),
  ``head.decoder_heads`` heads (8 in SAM); the upscaled features have ``head.mask_dim``
  channels (C/8 = 32 in SAM and in the paper's models).
- With ``high_res_dims`` it is SAM 2's mask decoder: the image encoder's stride-8 and stride-4
  maps, each through a 1 x 1 convolution, are added to the outputs of the two transposed
  convolutions (:class:`risam.modeling.layers.HighResSkips`).
"""

from __future__ import annotations

import math

import torch
from timm.layers import LayerNorm2d
from torch import nn

from risam.modeling.layers import Attention, HighResSkips, QueryMLP, high_res_skips, upsample_adding


class RandomFourierPositions(nn.Module):
    """SAM's image position encoding: sin/cos of random projections of the normalized grid coordinates."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.randn(2, dim // 2))

    def forward(self, height: int, width: int) -> torch.Tensor:
        """Encodings of an H x W grid, (H W) x C, row-major (x, y in [-1, 1] at the cell centres)."""
        device = self.frequencies.device
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        projected = 2 * math.pi * (2 * grid - 1) @ self.frequencies
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)


class TwoWayBlock(nn.Module):
    """Token self-attention, token-to-image attention, token MLP, image-to-token attention."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.token_self_attn = Attention(dim, num_heads)
        self.norm_token_self = nn.LayerNorm(dim)
        self.token_to_image = Attention(dim, num_heads, inner_dim=dim // 2)
        self.norm_token_to_image = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim))
        self.norm_token_mlp = nn.LayerNorm(dim)
        self.image_to_token = Attention(dim, num_heads, inner_dim=dim // 2)
        self.norm_image_to_token = nn.LayerNorm(dim)

    def forward(
        self,
        tokens: torch.Tensor,
        image: torch.Tensor,
        token_pe: torch.Tensor,
        image_pe: torch.Tensor,
        token_padding: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens, token_pe: B x N x C; image: B x L_v x C; image_pe: 1 x L_v x C; token_padding: B x N.

        Returns the updated (tokens, image).
        """
        if self.first:  # SAM's first block: the self-attention output replaces the tokens, without positions
            tokens = self.norm_token_self(self.token_self_attn(tokens, tokens, tokens, key_padding_mask=token_padding))
        else:
            query = tokens + token_pe
            attended = self.token_self_attn(query, query, tokens, key_padding_mask=token_padding)
            tokens = self.norm_token_self(tokens + attended)
        tokens = self.norm_token_to_image(tokens + self.token_to_image(tokens + token_pe, image + image_pe, image))
        tokens = self.norm_token_mlp(tokens + self.token_mlp(tokens))
        attended = self.image_to_token(image + image_pe, tokens + token_pe, tokens, key_padding_mask=token_padding)
        image = self.norm_image_to_token(image + attended)
        return tokens, image


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a last token-to-image attention."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([TwoWayBlock(dim, num_heads, mlp_dim, first=i == 0) for i in range(depth)])
        self.final_token_to_image = Attention(dim, num_heads, inner_dim=dim // 2)
        self.norm_final = nn.LayerNorm(dim)

    def forward(
        self, tokens: torch.Tensor, image: torch.Tensor, image_pe: torch.Tensor, token_padding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: B x N x C (also their positions); image: B x L_v x C; image_pe: 1 x L_v x C;
        token_padding: B x N, True at padding. Returns (tokens, image), same shapes."""
        token_pe = tokens
        for block in self.blocks:
            tokens, image = block(tokens, image, token_pe, image_pe, token_padding)
        attended = self.final_token_to_image(tokens + token_pe, image + image_pe, image)
        return self.norm_final(tokens + attended), image


class SamMaskDecoder(nn.Module):
    """SAM's mask decoder with the words as prompt tokens and a single mask token; token MLPs
    ``mlp_ratio`` x ``dim`` wide (8 in SAM)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mask_dim: int,
        high_res_dims: tuple[int, ...] = (),
        mlp_ratio: int = 8,
    ) -> None:
        super().__init__()
        # SAM keeps both as nn.Embedding rows, initialized N(0, 1).
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim))
        self.no_mask_embed = nn.Parameter(torch.randn(1, dim))
        self.image_pe = RandomFourierPositions(dim)
        self.transformer = TwoWayTransformer(dim, depth, num_heads, mlp_dim=mlp_ratio * dim)
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, mask_dim, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.hypernetwork = QueryMLP(dim, mask_dim)
        self.high_res = HighResSkips(high_res_dims, (dim // 4, mask_dim)) if high_res_dims else None

    def forward(
        self, visual: torch.Tensor, text: torch.Tensor, padding_mask: torch.Tensor, *high_res: torch.Tensor
    ) -> torch.Tensor:
        """visual: B x C x H x W; text: the prompt tokens, B x L_t x C; padding_mask: B x L_t; ``high_res``:
        with ``high_res_dims``, the stride-8 and stride-4 maps, B x C_8 x 2H x 2W and B x C_4 x 4H x 4W.

        Returns mask logits, B x 4H x 4W.
        """
        batch, dim, height, width = visual.shape
        image = (visual + self.no_mask_embed[:, :, None, None].to(visual.dtype)).flatten(2).transpose(1, 2)
        image_pe = self.image_pe(height, width)[None].to(visual.dtype)
        tokens = torch.cat([self.mask_token.expand(batch, -1, -1).to(text.dtype), text], dim=1)
        token_padding = torch.cat([padding_mask.new_zeros(batch, 1), padding_mask], dim=1)
        tokens, image = self.transformer(tokens, image, image_pe, token_padding)
        upsampled = upsample_adding(
            self.upsample,
            image.transpose(1, 2).reshape(batch, dim, height, width),
            high_res_skips(self.high_res, high_res),
        )
        return torch.einsum("bc,bchw->bhw", self.hypernetwork(tokens[:, 0]), upsampled)
