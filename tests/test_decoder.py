import math

import torch
import torch.nn.functional as F

from risam.modeling.decoder import MaskDecoder, sinusoidal_positions

DIM, HEADS, MASK_DIM = 8, 2, 4


def _attention(module, query, key, value, key_padding=None):
    """Eq. 7 for every head, written out: softmax(Q K^T / sqrt(d_k)) V."""
    q = query @ module.q_proj.weight.T + module.q_proj.bias
    k = key @ module.k_proj.weight.T + module.k_proj.bias
    v = value @ module.v_proj.weight.T + module.v_proj.bias
    head_dim = DIM // HEADS
    heads = []
    for h in range(HEADS):
        part = slice(h * head_dim, (h + 1) * head_dim)
        scores = q[:, part] @ k[:, part].T / math.sqrt(head_dim)
        if key_padding is not None:
            scores = scores.masked_fill(key_padding[None, :], float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v[:, part])
    return torch.cat(heads, dim=-1) @ module.out_proj.weight.T + module.out_proj.bias


def _norm(module, x):
    return F.layer_norm(x, (DIM,), module.weight, module.bias)


def _batch_norm(module, x):
    scale = module.weight / torch.sqrt(module.running_var + module.eps)
    return (x - module.running_mean[:, None, None]) * scale[:, None, None] + module.bias[:, None, None]


def _decode_by_hand(decoder, visual, text, padding):
    """Eq. 6, 8, 9 per layer, upsampling, query MLP and dot product for one sample."""
    dim, height, width = visual.shape
    lav = visual.flatten(1).T
    tokens = torch.cat([decoder.query_token[0], text])
    pos = torch.cat([torch.zeros(1, DIM), sinusoidal_positions(text.shape[0], DIM)])
    token_padding = torch.cat([torch.tensor([False]), padding])
    for layer in decoder.layers:
        lav = _norm(layer.norm_visual_self, lav + _attention(layer.visual_self_attn, lav, lav, lav))
        tokens = _norm(
            layer.norm_token_self,
            tokens + _attention(layer.token_self_attn, tokens + pos, tokens + pos, tokens, token_padding),
        )
        lav = _norm(layer.norm_cross, lav + _attention(layer.cross_attn, lav, tokens + pos, tokens, token_padding))
    up = lav.T.reshape(1, dim, height, width)
    conv1, bn1, _, conv2, bn2, _ = decoder.upsample
    up = F.gelu(_batch_norm(bn1, F.conv_transpose2d(up, conv1.weight, stride=2)[0]))
    up = F.gelu(_batch_norm(bn2, F.conv_transpose2d(up[None], conv2.weight, stride=2)[0]))
    query = tokens[0]
    first, second, third = decoder.query_mlp.layers
    mlp_out = third(F.relu(second(F.relu(first(query)))))
    return (mlp_out[:, None, None] * up).sum(0), query


def _decoder(depth=2, seed=0):
    torch.manual_seed(seed)
    decoder = MaskDecoder(DIM, depth, HEADS, MASK_DIM).eval()
    for module in decoder.modules():
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
            torch.nn.init.normal_(module.weight)
            torch.nn.init.normal_(module.bias)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return decoder


def test_decoder_matches_equations_6_to_9():
    decoder = _decoder()
    visual = torch.randn(2, DIM, 3, 4)
    text = torch.randn(2, 5, DIM)
    padding = torch.tensor([[False, False, False, True, True], [False] * 5])
    captured = []
    decoder.query_mlp.register_forward_hook(lambda module, args, out: captured.append(args[0]))
    with torch.no_grad():
        logits = decoder(visual, text, padding)
        assert logits.shape == (2, 12, 16)
        for b in range(2):
            expected, query = _decode_by_hand(decoder, visual[b], text[b], padding[b])
            torch.testing.assert_close(logits[b], expected, atol=1e-4, rtol=1e-4)
            # The MLP sees exactly the evolved query token and nothing else.
            torch.testing.assert_close(captured[0][b], query, atol=1e-5, rtol=1e-5)


def test_padding_words_change_nothing():
    decoder = _decoder(seed=1)
    visual = torch.randn(1, DIM, 3, 3)
    text = torch.randn(1, 6, DIM)
    padding = torch.tensor([[False, False, False, False, True, True]])
    altered = text.clone()
    altered[0, 4:] = torch.randn(2, DIM) * 50
    with torch.no_grad():
        torch.testing.assert_close(decoder(visual, text, padding), decoder(visual, altered, padding), atol=0, rtol=0)


def test_words_and_their_order_matter():
    decoder = _decoder(seed=2)
    visual = torch.randn(1, DIM, 3, 3)
    text = torch.randn(1, 4, DIM)
    padding = torch.zeros(1, 4, dtype=torch.bool)
    with torch.no_grad():
        base = decoder(visual, text, padding)
        reordered = decoder(visual, text.flip(1), padding)
    # Positions are encoded: the same words in another order give another mask.
    assert not torch.allclose(base, reordered, atol=1e-4)


def test_sinusoidal_positions_values():
    pos = sinusoidal_positions(3, 4)
    assert torch.allclose(pos[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    expected = torch.tensor([math.sin(2.0), math.cos(2.0), math.sin(2.0 / 100), math.cos(2.0 / 100)])
    torch.testing.assert_close(pos[2], expected)
