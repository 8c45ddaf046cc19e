import math

import pytest
import torch
import torch.nn.functional as F

from risam.modeling.mutual_attention import MutualAwareAttention


def _block(tau, visual_dim=6, text_dim=5, dim=4, seed=0):
    torch.manual_seed(seed)
    block = MutualAwareAttention(visual_dim, text_dim, dim, tau)
    for norm in (block.norm_visual, block.norm_text):
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    return block


def _by_hand(block, visual, text, padding):
    """Eq. 3-5 element by element for one sample."""
    z_v = (visual @ block.proj_visual.weight.T).detach()
    z_l = (text @ block.proj_text.weight.T).detach()
    n_v, n_t, dim = z_v.shape[0], z_l.shape[0], z_v.shape[1]
    score = [[float(z_v[i] @ z_l[j]) / math.sqrt(dim) for j in range(n_t)] for i in range(n_v)]
    keep = [[1 / (1 + math.exp(-score[i][j])) >= block.tau and not padding[j] for j in range(n_t)] for i in range(n_v)]
    a_vg = torch.zeros(n_v, n_t)
    for i in range(n_v):
        kept = [j for j in range(n_t) if keep[i][j]]
        total = sum(math.exp(score[i][j]) for j in kept)
        for j in kept:
            a_vg[i, j] = math.exp(score[i][j]) / total
    a_lg = torch.zeros(n_t, n_v)
    for j in range(n_t):
        kept = [i for i in range(n_v) if keep[i][j]]
        total = sum(math.exp(score[i][j]) for i in kept)
        for i in kept:
            a_lg[j, i] = math.exp(score[i][j]) / total
    lav = F.layer_norm(a_vg @ z_l + z_v, (dim,), block.norm_visual.weight, block.norm_visual.bias)
    val = F.layer_norm(a_lg @ z_v + z_l, (dim,), block.norm_text.weight, block.norm_text.bias)
    return lav, val, a_vg, a_lg, torch.tensor(keep)


@pytest.mark.parametrize("tau", [0.0, 0.35, 0.5])
def test_block_matches_equations_3_to_5(tau):
    block = _block(tau)
    visual = torch.randn(2, 7, 6)
    text = torch.randn(2, 4, 5)
    padding = torch.tensor([[False, False, False, True], [False, False, False, False]])
    with torch.no_grad():
        out = block(visual, text, padding)
    for b in range(2):
        lav, val, a_vg, a_lg, _ = _by_hand(block, visual[b], text[b], padding[b].tolist())
        torch.testing.assert_close(out.vision_guided[b], a_vg, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.language_guided[b], a_lg, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.visual[b], lav, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.text[b], val, atol=1e-5, rtol=1e-5)


def test_tau_mask_removes_exactly_the_pairs_below_tau():
    block = _block(0.5, dim=8)
    visual = torch.randn(1, 30, 6) * 3
    text = torch.randn(1, 6, 5) * 3
    padding = torch.zeros(1, 6, dtype=torch.bool)
    with torch.no_grad():
        out = block(visual, text, padding)
        z_v, z_l = block.proj_visual(visual), block.proj_text(text)
        relevance = torch.sigmoid(z_v @ z_l.transpose(1, 2) / math.sqrt(8))
    below = relevance < 0.5
    assert 0 < below.sum() < below.numel(), "the test needs pairs on both sides of tau"
    assert torch.all(out.vision_guided[below] == 0)
    assert torch.all(out.language_guided.transpose(1, 2)[below] == 0)
    assert torch.all(out.vision_guided[~below] > 0)
    assert torch.all(out.language_guided.transpose(1, 2)[~below] > 0)


def test_tau_zero_masks_nothing_but_padding():
    block = _block(0.0)
    padding = torch.tensor([[False, False, True]])
    with torch.no_grad():
        out = block(torch.randn(1, 5, 6) * 10, torch.randn(1, 3, 5) * 10, padding)
    assert torch.all(out.vision_guided[0, :, :2] > 0)
    assert torch.all(out.vision_guided[0, :, 2] == 0)
    torch.testing.assert_close(out.vision_guided.sum(-1), torch.ones(1, 5))
    torch.testing.assert_close(out.language_guided[0, :2].sum(-1), torch.ones(2))
    assert torch.all(out.language_guided[0, 2] == 0)


def test_fully_masked_rows_give_finite_outputs_and_gradients():
    block = _block(0.999)
    visual = torch.randn(2, 5, 6, requires_grad=True)
    text = torch.randn(2, 3, 5)
    padding = torch.tensor([[False, False, False], [True, True, True]])
    out = block(visual, text, padding)
    assert torch.all(out.vision_guided == 0)
    for tensor in out:
        assert torch.isfinite(tensor).all()
    z_v = block.proj_visual(visual)
    expected = F.layer_norm(z_v, (4,), block.norm_visual.weight, block.norm_visual.bias)
    torch.testing.assert_close(out.visual, expected)
    (out.visual.sum() + out.text.sum()).backward()
    assert torch.isfinite(visual.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())


def test_padding_content_changes_nothing():
    block = _block(0.35)
    visual = torch.randn(2, 9, 6)
    text = torch.randn(2, 5, 5)
    padding = torch.tensor([[False, False, False, True, True], [False, False, False, False, True]])
    altered = text.clone()
    altered[padding] = torch.randn(int(padding.sum()), 5) * 100
    with torch.no_grad():
        a, b = block(visual, text, padding), block(visual, altered, padding)
    torch.testing.assert_close(a.visual, b.visual, atol=0, rtol=0)
    torch.testing.assert_close(a.vision_guided, b.vision_guided, atol=0, rtol=0)
    torch.testing.assert_close(a.text[~padding], b.text[~padding], atol=0, rtol=0)
    assert torch.all(a.language_guided[padding] == 0)
