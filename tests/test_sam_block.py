"""The frozen SAM block's inference path: its attention against the formula, and against timm's block."""

from __future__ import annotations

import pytest
import torch
from segment_anything.modeling.image_encoder import add_decomposed_rel_pos
from timm.models.vision_transformer_sam import get_rel_pos

from risam.config.model import ImageEncoderConfig
from risam.modeling.image_encoder import SamImageEncoder
from risam.modeling.sam_block import relative_position_attention


def _reference_attention(q, k, v, rel_pos_h, rel_pos_w, grid):
    """Meta's formula: softmax(q k^T / sqrt(d) + decomposed relative-position bias) v, in float64."""
    q, k, v = q.double(), k.double(), v.double()
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    scores = add_decomposed_rel_pos(scores, q, rel_pos_h.double(), rel_pos_w.double(), grid, grid)
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("fold_bias", [False, True])
@pytest.mark.parametrize("chunk", [4, 7, 100])  # chunks of 4, chunks of 7 with a shorter last one, one chunk
def test_relative_position_attention_is_the_formula(fold_bias: bool, chunk: int) -> None:
    generator = torch.Generator().manual_seed(0)
    grid = (5, 4)
    q, k, v = (torch.randn(6, 20, 8, generator=generator) for _ in range(3))
    rel_pos_h = torch.randn(2 * grid[0] - 1, 8, generator=generator)
    rel_pos_w = torch.randn(2 * grid[1] - 1, 8, generator=generator)
    rel_h, rel_w = get_rel_pos(grid[0], grid[0], rel_pos_h), get_rel_pos(grid[1], grid[1], rel_pos_w)
    with torch.no_grad():
        out = relative_position_attention(q, k, v, rel_h, rel_w, grid, chunk, fold_bias=fold_bias)
    expected = _reference_attention(q, k, v, rel_pos_h, rel_pos_w, grid)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    # The bias matters here: without it the result is far off.
    unbiased = ((q * 8**-0.5) @ k.transpose(1, 2)).softmax(-1) @ v
    assert (unbiased.double() - expected).abs().max() > 0.1


def _tiny_encoder(dtype: torch.dtype) -> SamImageEncoder:
    config = ImageEncoderConfig(
        variant="test",
        embed_dim=64,
        depth=8,
        num_heads=2,
        global_attn_indexes=(1, 3, 5, 7),
        window_size=3,  # 8 x 8 tokens: the windowed blocks pad
        img_size=128,
        tap_indices=(3, 5, 7),
        attention_chunk=24,
    )
    torch.manual_seed(0)
    encoder = SamImageEncoder(config).eval()
    for name, parameter in encoder.named_parameters():
        if "rel_pos" in name or "pos_embed" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    return encoder.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inference_path_matches_timms_block(dtype: torch.dtype) -> None:
    encoder = _tiny_encoder(dtype)
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)).to(dtype)
    with torch.no_grad():
        fast = encoder(images)
    with torch.enable_grad():  # the autograd path is timm's block (global blocks in chunks)
        reference = [tap.detach() for tap in encoder(images)]
    for ours, theirs in zip(fast, reference, strict=True):
        error = (ours.float() - theirs.float()).norm() / theirs.float().norm()
        assert error < (1e-6 if dtype == torch.float32 else 0.02), error


@pytest.mark.parametrize("block_index", [0, 1])  # windowed, global
def test_inference_path_leaves_its_input_as_it_was(block_index: int) -> None:
    block = _tiny_encoder(torch.float32).vit.blocks[block_index]
    x = torch.randn(1, 8, 8, 64, generator=torch.Generator().manual_seed(2))
    before = x.clone()
    with torch.no_grad():
        out = block(x)
    assert torch.equal(x, before)  # the taps are block outputs that later blocks must not change
    assert not torch.equal(out, x)
