"""SAM's ViT block as a frozen encoder runs it: timm's ``Block``, with a path for inference.

With autograd (a trainable encoder), a block is timm's own, except that a global-attention block
attends in chunks of query tokens (:class:`ChunkedGlobalAttention`).
Without autograd, :meth:`SamBlock.forward` computes the same function with less work outside the
matmuls (ViT-B at 1024 x 1024 in bfloat16 on 2 CPU cores: most of the time that is not matmuls went to
building the relative-position bias for the fused attention kernel, and to fresh memory):

- the attention is matmul, bias added in place, softmax in place, matmul, in chunks of
  ``attention_chunk`` query rows, through buffers made once per block
  (:func:`relative_position_attention`);
- a windowed block runs its qkv projection on the image's tokens before padding them to whole windows,
  and its output projection after removing the padding: the qkv of a padded (zero) token is the qkv
  bias exactly, so the padding is filled with the bias instead;
- the second residual is added in place.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer_sam import Attention, Block, get_rel_pos
from torch import Tensor, nn


class RelativePositionAttention(nn.Module):
    """The attention of a SAM block without its projections; it has no parameters."""

    def __init__(self, chunk: int, fold_bias: bool) -> None:
        super().__init__()
        self.chunk = chunk
        self.fold_bias = fold_bias

    def forward(self, q: Tensor, k: Tensor, v: Tensor, rel_h: Tensor, rel_w: Tensor, grid: tuple[int, int]) -> Tensor:
        """:func:`relative_position_attention` with this module's ``chunk`` and ``fold_bias``."""
        return relative_position_attention(q, k, v, rel_h, rel_w, grid, self.chunk, self.fold_bias)


def decomposed_bias(q: Tensor, rel_h: Tensor, rel_w: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """SAM's decomposed relative-position bias of queries ``q`` (N x T x d, T = gh x gw tokens):
    q . rel_h[h(i), kh], N x T x gh, and q . rel_w[w(i), kw], N x T x gw."""
    count, tokens, dim = q.shape
    height, width = grid
    grid_q = q.reshape(count, height, width, dim)
    bias_h = torch.einsum("nhwc,hkc->nhwk", grid_q, rel_h).reshape(count, tokens, height)
    bias_w = torch.einsum("nhwc,wkc->nhwk", grid_q, rel_w).reshape(count, tokens, width)
    return bias_h, bias_w


def relative_position_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rel_h: Tensor,
    rel_w: Tensor,
    grid: tuple[int, int],
    chunk: int,
    fold_bias: bool,
) -> Tensor:
    """Softmax attention with SAM's decomposed relative-position bias, without autograd.

    ``q``, ``k``, ``v``: N x T x d over a grid of T = gh x gw tokens; ``rel_h``: gh x gh x d and
    ``rel_w``: gw x gw x d, the relative-position embeddings for each query-key row and column
    (timm's ``get_rel_pos``). Returns N x T x d: softmax(q k^T / sqrt(d) + B) v with
    B[n, i, (kh, kw)] = q[n, i] . rel_h[h(i), kh] + q[n, i] . rel_w[w(i), kw], for ``chunk`` query rows
    at a time (the scores of one chunk are N x chunk x T).

    ``fold_bias`` adds B inside the score matmul: each query gets its gh + gw bias values as extra
    channels and each key the one-hot code of its row and column, so the matmul's inner dimension
    grows from d to d + gh + gw. That pays on small grids (a 14 x 14 window: 64 -> 92 channels, against
    a broadcast add over 14-wide rows that took 6x the matmul's time); on a 64 x 64 grid the matmul
    would triple, and B is added in place after it instead.
    """
    count, tokens, dim = q.shape
    height, width = grid
    bias_h, bias_w = decomposed_bias(q, rel_h, rel_w, grid)
    if fold_bias:
        position = torch.arange(tokens, device=q.device)
        codes = torch.cat([F.one_hot(position // width, height), F.one_hot(position % width, width)], 1)
        q = torch.cat([q * dim**-0.5, bias_h, bias_w], -1)
        k = torch.cat([k, codes.to(k.dtype).expand(count, -1, -1)], -1)
    keys_t = k.transpose(1, 2).contiguous()
    rows = min(chunk, tokens)
    score_buffer = q.new_empty(count * rows * tokens)
    out_buffer = v.new_empty(count * rows * dim)
    out = torch.empty_like(v)
    for start in range(0, tokens, rows):
        stop = min(start + rows, tokens)
        size = stop - start
        # Contiguous views of the buffers' first elements: the last chunk may be shorter.
        scores = score_buffer[: count * size * tokens].view(count, size, tokens)
        if fold_bias:
            torch.bmm(q[:, start:stop], keys_t, out=scores)
        else:
            torch.baddbmm(scores, q[:, start:stop], keys_t, beta=0, alpha=dim**-0.5, out=scores)
            grid_scores = scores.view(count, size, height, width)
            grid_scores.add_(bias_h[:, start:stop, :, None]).add_(bias_w[:, start:stop, None, :])
        torch.softmax(scores, -1, out=scores)
        chunk_out = out_buffer[: count * size * dim].view(count, size, dim)
        torch.bmm(scores, v, out=chunk_out)
        out[:, start:stop] = chunk_out
    return out


class ChunkedGlobalAttention(nn.Module):
    """timm's SAM attention with relative positions, computed for chunks of query tokens.

    Built from the block's timm ``Attention``, whose parameters it takes over: the same
    state-dict keys and the same result as that ``Attention`` in SAM's configuration (relative
    positions; no q/k norm, dropout or rotary embedding); the bias and the attention matrix
    exist for ``chunk`` query tokens at a time instead of all.
    """

    def __init__(self, attention: Attention, chunk: int) -> None:
        super().__init__()
        self.num_heads = attention.num_heads
        self.chunk = chunk
        self.rel_pos_h = attention.rel_pos_h
        self.rel_pos_w = attention.rel_pos_w
        self.qkv = attention.qkv
        self.proj = attention.proj

    def forward(self, x: Tensor) -> Tensor:
        """B x H x W x C -> B x H x W x C."""
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x.reshape(batch, tokens, -1)).view(batch, tokens, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, batch * self.num_heads, tokens, -1).unbind(0)
        rel_h = get_rel_pos(height, height, self.rel_pos_h)
        rel_w = get_rel_pos(width, width, self.rel_pos_w)
        bias_h, bias_w = decomposed_bias(q, rel_h, rel_w, (height, width))
        out = torch.empty_like(q)
        for start in range(0, tokens, self.chunk):
            rows = slice(start, min(start + self.chunk, tokens))
            mask = (bias_h[:, rows, :, None] + bias_w[:, rows, None, :]).reshape(q.shape[0], -1, tokens)
            out[:, rows] = F.scaled_dot_product_attention(q[:, rows], k, v, attn_mask=mask)
        out = out.view(batch, self.num_heads, tokens, -1).transpose(1, 2).reshape(batch, tokens, -1)
        return self.proj(out).view(batch, height, width, -1)


class SamBlock(Block):
    """timm's SAM block; a global-attention block (``window_size=0``) attends in chunks of
    ``attention_chunk`` query tokens (:class:`ChunkedGlobalAttention`); without autograd, the
    inference path of the module docstring.

    SAM's blocks have no layer scale, drop path or dropout, which the inference path relies on.
    """

    def __init__(self, *args: Any, attention_chunk: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Windows fold the bias into the score matmul, global attention adds it (relative_position_attention).
        self.attention_core = RelativePositionAttention(attention_chunk, fold_bias=self.window_size > 0)
        if self.window_size == 0:
            self.attn = ChunkedGlobalAttention(self.attn, attention_chunk)

    def forward(self, x: Tensor) -> Tensor:
        """B x H x W x C -> B x H x W x C."""
        if torch.is_grad_enabled():
            return super().forward(x)
        attended = self._windowed_attention(x) if self.window_size else self._global_attention(x)
        x = x + self.attn.proj(attended)
        hidden = self.mlp.fc1(self.norm2(x))
        x += self.mlp.fc2(self.mlp.act(hidden))
        return x

    def _global_attention(self, x: Tensor) -> Tensor:
        """B x H x W x C -> the attention's output before its projection, B x H x W x C."""
        batch, height, width, channels = x.shape
        heads = self.attn.num_heads
        qkv = self.attn.qkv(self.norm1(x)).view(batch, height * width, 3, heads, channels // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, batch * heads, height * width, -1).unbind(0)
        rel_h = get_rel_pos(height, height, self.attn.rel_pos_h)
        rel_w = get_rel_pos(width, width, self.attn.rel_pos_w)
        out = self.attention_core(q, k, v, rel_h, rel_w, (height, width))
        return out.view(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)

    def _windowed_attention(self, x: Tensor) -> Tensor:
        """B x H x W x C -> the attention's output before its projection, B x H x W x C, in windows."""
        batch, height, width, channels = x.shape
        heads, window = self.attn.num_heads, self.window_size
        qkv = self.attn.qkv(self.norm1(x))
        padded_h, padded_w = height + -height % window, width + -width % window
        if (padded_h, padded_w) != (height, width):
            padding = self.attn.qkv.bias if self.attn.qkv.bias is not None else qkv.new_zeros(qkv.shape[-1])
            padded = padding.expand(batch, padded_h, padded_w, -1).clone()
            padded[:, :height, :width] = qkv
            qkv = padded
        rows, cols = padded_h // window, padded_w // window
        # B x (rows, window) x (cols, window) x (3, heads, d) -> 3 x (B, rows, cols, heads) x (window, window) x d
        split = qkv.view(batch, rows, window, cols, window, 3, heads, channels // heads)
        q, k, v = split.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, -1, window * window, channels // heads).unbind(0)
        rel_h = get_rel_pos(window, window, self.attn.rel_pos_h)
        rel_w = get_rel_pos(window, window, self.attn.rel_pos_w)
        out = self.attention_core(q, k, v, rel_h, rel_w, (window, window))
        out = out.view(batch, rows, cols, heads, window, window, -1).permute(0, 1, 4, 2, 5, 3, 6)
        return out.reshape(batch, padded_h, padded_w, channels)[:, :height, :width]
