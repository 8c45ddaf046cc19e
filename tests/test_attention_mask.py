"""The attention mask as a factor (issue 33): Eq. 4's mask in the SDF and BCM fusions, a mask rule that does not
depend on the scores' level, a capacity-matched SAM decoder, and the config values that switch them."""

import math

import pytest
import torch
import torch.nn.functional as F

from risam import RISAMConfig, create_model, get_config
from risam.ablation import VARIANTS
from risam.config import ConfigError
from risam.info import model_info
from risam.modeling.mutual_attention import MutualAwareAttention, attention_keep
from risam.modeling.variants.bidirectional_fusion import BidirectionalSerialFusion
from risam.modeling.variants.sam_mask_decoder import SamMaskDecoder
from risam.modeling.variants.spatial_dynamic_fusion import SpatialDynamicFusion


def _randomize(module):
    torch.manual_seed(3)
    for sub in module.modules():
        if isinstance(sub, torch.nn.LayerNorm):
            torch.nn.init.normal_(sub.weight)
            torch.nn.init.normal_(sub.bias)
    return module.eval()


def _share_by_hand(scores, padding, tau):
    """The softmax-share rule pair by pair for one sample: L_v x L_t scores, L_t padding flags."""
    real = [j for j in range(len(padding)) if not padding[j]]
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    for i in range(scores.shape[0]):
        total = sum(math.exp(float(scores[i, j])) for j in real)
        for j in real:
            keep[i, j] = math.exp(float(scores[i, j])) / total >= tau / len(real)
    return keep


def test_share_rule_keeps_the_pairs_whose_softmax_share_reaches_tau_over_the_word_count():
    torch.manual_seed(0)
    scores = torch.randn(2, 9, 5) * 2
    padding = torch.tensor([[False, False, False, True, True], [False] * 5])
    keep = attention_keep(scores, padding, 0.6, "softmax_share")
    for b in range(2):
        torch.testing.assert_close(keep[b], _share_by_hand(scores[b], padding[b].tolist(), 0.6), rtol=0, atol=0)
    assert 0 < keep[1].sum() < keep[1].numel(), "the test needs pairs on both sides of the threshold"
    assert not keep[0, :, 3:].any()
    # tau < 1 always keeps each pixel's highest-scoring real word: no pixel loses every word.
    best = scores.masked_fill(padding[:, None, :], -1e9).argmax(dim=2)
    assert keep.gather(2, best[..., None]).all()


def test_share_rule_ignores_a_shift_of_a_pixels_scores_and_the_sigmoid_rule_does_not():
    torch.manual_seed(1)
    scores = torch.randn(1, 12, 6)
    padding = torch.tensor([[False, False, False, False, True, True]])
    shifted = scores + torch.randn(1, 12, 1) * 3  # a different constant added to each pixel's scores
    share = attention_keep(scores, padding, 0.35, "softmax_share")
    assert torch.equal(attention_keep(shifted, padding, 0.35, "softmax_share"), share)
    assert not torch.equal(
        attention_keep(shifted, padding, 0.35, "sigmoid"), attention_keep(scores, padding, 0.35, "sigmoid")
    )
    # The vision-guided softmax itself is shift-invariant: under the share rule the whole block output is.
    block = _randomize(MutualAwareAttention(6, 5, 4, tau=0.35, mask_rule="softmax_share"))
    z_visual, z_text, s = block.scores(torch.randn(1, 12, 6), torch.randn(1, 6, 5))
    keep = attention_keep(s, padding, 0.35, "softmax_share")
    moved = s + 5.0
    a = block.attend(z_visual, z_text, s, keep, keep)
    b = block.attend(z_visual, z_text, moved, attention_keep(moved, padding, 0.35, "softmax_share"), keep)
    torch.testing.assert_close(a.vision_guided, b.vision_guided)
    torch.testing.assert_close(a.visual, b.visual)


def test_share_rule_at_tau_zero_is_no_mask_and_serves_both_directions():
    visual, text = torch.randn(2, 10, 6) * 4, torch.randn(2, 4, 5) * 4
    padding = torch.tensor([[False, False, True, True], [False] * 4])
    share = _randomize(MutualAwareAttention(6, 5, 4, tau=0.0, mask_rule="softmax_share"))
    plain = MutualAwareAttention(6, 5, 4, tau=0.0)
    plain.load_state_dict(share.state_dict())
    with torch.no_grad():
        a, b = share(visual, text, padding), plain.eval()(visual, text, padding)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        share.tau = 0.9
        masked = share(visual, text, padding)
        keep = attention_keep(share.scores(visual, text)[2], padding, 0.9, "softmax_share")
    assert 0 < keep[1].sum() < keep[1].numel()
    assert torch.equal(masked.vision_guided > 0, keep)
    assert torch.equal(masked.language_guided.transpose(1, 2) > 0, keep)
    with pytest.raises(ValueError, match="mask rule 'cosine'"):
        attention_keep(torch.zeros(1, 2, 2), torch.zeros(1, 2, dtype=torch.bool), 0.3, "cosine")


def test_masked_sdf_reads_only_the_pairs_that_the_ma_mask_keeps():
    torch.manual_seed(2)
    masked = _randomize(SpatialDynamicFusion(6, 5, 8, masked=True, tau=0.5))
    visual, text = torch.randn(1, 20, 6) * 3, torch.randn(1, 5, 5) * 3
    padding = torch.tensor([[False, False, False, False, True]])
    with torch.no_grad():
        out = masked(visual, text, padding)
        z_v, z_l = masked.proj_visual(visual)[0], masked.proj_text(text)[0]
        scores = z_v @ z_l.T / math.sqrt(8)
        keep = (torch.sigmoid(scores) >= 0.5) & ~padding[0]
        weights = torch.softmax(scores.masked_fill(~keep, -1e9), dim=-1) * keep
        norm = masked.norm_visual
        expected = F.layer_norm(z_v * (weights @ z_l) + z_v, (8,), norm.weight, norm.bias)
        masked.tau = 0.0  # at tau 0 the masked block is the unmasked one
        unmasked = SpatialDynamicFusion(6, 5, 8)
        unmasked.load_state_dict(masked.state_dict())
        at_zero, plain = masked(visual, text, padding), unmasked.eval()(visual, text, padding)
    assert 0 < keep.sum() < 4 * 20, "the test needs pairs on both sides of tau"
    torch.testing.assert_close(out.vision_guided[0], weights)
    torch.testing.assert_close(out.visual[0], expected)
    torch.testing.assert_close(at_zero.visual, plain.visual, rtol=0, atol=0)
    assert not torch.allclose(out.visual, plain.visual)


def test_masked_bcm_is_the_ma_block_in_series_with_one_keep_matrix_in_both_directions():
    torch.manual_seed(4)
    bcm = _randomize(BidirectionalSerialFusion(6, 5, 8, masked=True, tau=0.5))
    mutual = MutualAwareAttention(6, 5, 8, tau=0.5)
    mutual.load_state_dict(bcm.state_dict())
    visual, text = torch.randn(1, 16, 6) * 3, torch.randn(1, 4, 5) * 3
    padding = torch.tensor([[False, False, False, True]])
    with torch.no_grad():
        out, parallel = bcm(visual, text, padding), mutual.eval()(visual, text, padding)
        keep = attention_keep(bcm.scores(visual, text)[2], padding, 0.5, "sigmoid")[0]
        z_l = bcm.proj_text(text)[0]
        second = z_l @ out.visual[0].T / math.sqrt(8)  # A_2's own scores, Z_l F_lav^T
        weights = torch.softmax(second.masked_fill(~keep.T, -1e9), dim=-1) * keep.T
        norm = bcm.norm_text
        expected = F.layer_norm(weights @ out.visual[0] + z_l, (8,), norm.weight, norm.bias)
    assert 0 < keep[:, :3].sum() < 3 * 16
    # The first direction is full's vision-guided attention; the second keeps Eq. 4's pairs, not its own.
    torch.testing.assert_close(out.visual, parallel.visual)
    torch.testing.assert_close(out.vision_guided, parallel.vision_guided)
    assert torch.equal(out.language_guided[0] > 0, keep.T)
    assert not torch.equal(keep.T, torch.sigmoid(second) >= 0.5)
    torch.testing.assert_close(out.text[0, :3], expected[:3])


def test_the_mask_switches_are_config_values_that_name_the_key():
    data = get_config("risam_vit_h").to_dict()
    assert not {"masked_fusion", "mask_rule", "sam_decoder_mlp_ratio"} & set(data["head"])
    for name in ("sdf_fusion_masked", "bcm_fusion_masked", "share_mask", "sam_decoder_narrow"):
        config = get_config("risam_tiny", VARIANTS[name].overrides)
        assert RISAMConfig.from_dict(config.to_dict()) == config
    model = create_model("risam_tiny", overrides=VARIANTS["sdf_fusion_masked"].overrides)
    assert all(block.masked and block.tau == 0.35 for block in model.fusion)
    model = create_model("risam_tiny", overrides=VARIANTS["share_mask"].overrides)
    assert [block.mask_rule for block in model.fusion] == ["softmax_share"] * 2
    with pytest.raises(ConfigError, match=r"head\.masked_fusion=true applies to.*head\.fusion='conv'"):
        get_config("risam_tiny", {"head.fusion": "conv", "head.masked_fusion": True})
    with pytest.raises(ConfigError, match=r"head\.mask_rule='cosine'; expected one of \['sigmoid', 'softmax_share'\]"):
        get_config("risam_tiny", {"head.mask_rule": "cosine"})
    with pytest.raises(ConfigError, match=r"head\.mask_rule='softmax_share'.*head\.fusion='spatial_dynamic'"):
        get_config("risam_tiny", {"head.fusion": "spatial_dynamic", "head.mask_rule": "softmax_share"})
    with pytest.raises(ConfigError, match=r"head\.sam_decoder_mlp_ratio=2 is read by head\.decoder='sam' only"):
        get_config("risam_tiny", {"head.sam_decoder_mlp_ratio": 2})
    with pytest.raises(ConfigError, match=r"head\.sam_decoder_mlp_ratio=0: must be at least 1"):
        get_config("risam_tiny", {"head.decoder": "sam", "head.sam_decoder_mlp_ratio": 0})


def test_narrow_sam_decoder_has_c_wide_token_mlps_and_the_documented_parameter_counts():
    decoder = SamMaskDecoder(16, depth=2, num_heads=2, mask_dim=4, mlp_ratio=1)
    wide = SamMaskDecoder(16, depth=2, num_heads=2, mask_dim=4)
    assert [block.token_mlp[0].out_features for block in decoder.transformer.blocks] == [16, 16]
    assert [block.token_mlp[0].out_features for block in wide.transformer.blocks] == [128, 128]
    for model, expected in (
        ("risam_tiny", {"full": 313_104, "sam_decoder": 420_976, "sam_decoder_narrow": 305_392}),
        ("risam_vit_h", {"full": 5_798_880, "sam_decoder": 7_508_352, "sam_decoder_narrow": 5_669_760}),
    ):
        counts = {name: model_info(model, VARIANTS[name].overrides)["trainable_params"] for name in expected}
        assert counts == expected
        for name in ("sam_decoder", "sam_decoder_narrow"):
            assert f"{counts['full']:,}" in VARIANTS[name].description
            assert f"{counts[name]:,}" in VARIANTS[name].description
