"""The paper's ablations and baselines: every variant builds and trains, and every new module computes its equations."""

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from segment_anything.modeling.transformer import TwoWayTransformer as MetaTwoWayTransformer

from risam import RISAMConfig, create_model, get_config
from risam.ablation import VARIANTS
from risam.config import ConfigError, HeadConfig, ImageEncoderConfig
from risam.evaluation.losses import risam_loss
from risam.explain import explain
from risam.io.state_dict import CheckpointError
from risam.modeling.decoder import DecoderLayer, MaskDecoder
from risam.modeling.layers import VisualFeatures
from risam.modeling.mutual_attention import MutualAwareAttention
from risam.modeling.variants.bidirectional_fusion import BidirectionalSerialFusion
from risam.modeling.variants.conv_fusion import ConvFusion
from risam.modeling.variants.deep_projection import DeepProjection
from risam.modeling.variants.sam_mask_decoder import RandomFourierPositions, SamMaskDecoder, TwoWayTransformer
from risam.modeling.variants.simple_pyramid import SimpleFeaturePyramid
from risam.modeling.variants.spatial_dynamic_fusion import SpatialDynamicFusion
from risam.modeling.variants.timm_backbone import TimmBackbone
from risam.modeling.variants.transformer_fusion import TransformerFusion
from risam.predictor import RISAMPredictor

# risam_tiny: C = 64, C' = 64, C_img = 64, 4 decoder heads, 2 decoder layers, mask_dim 16, 2 MA blocks.
C, TEXT, IMG, MASK, DEPTH = 64, 64, 64, 16, 2


def _linear(i, o, bias=True):
    return i * o + (o if bias else 0)


def _pixel_mlp(i, o):
    return _linear(i, o) + _linear(o, o)


def _cba(i, o):
    return 9 * i * o + 2 * o


def _attention(dim, inner=None):
    inner = inner or dim
    return 3 * _linear(dim, inner) + _linear(inner, dim)


def _query_mlp(dim, out):
    return 2 * _linear(dim, dim) + _linear(dim, out)


FE = 3 * _pixel_mlp(IMG, C) + _pixel_mlp(C, C) + 2 * _cba(2 * C, C)
MA = [_linear(C, C, False) + _linear(TEXT, C, False) + 4 * C, _linear(C, C, False) + _linear(C, C, False) + 4 * C]
DECODER_LAYER = 3 * _attention(C) + 6 * C
UPSAMPLE = C * (C // 4) * 4 + 2 * (C // 4) + (C // 4) * MASK * 4 + 2 * MASK
DECODER = C + DEPTH * DECODER_LAYER + UPSAMPLE + _query_mlp(C, MASK)
FULL = FE + sum(MA) + DECODER
SAM_BLOCK = _attention(C) + 2 * _attention(C, C // 2) + _linear(C, 8 * C) + _linear(8 * C, C) + 8 * C
# Transposed 2x2 convolutions with bias, and a LayerNorm2d between them.
SAM_UPSAMPLE = C * (C // 4) * 4 + C // 4 + 2 * (C // 4) + (C // 4) * MASK * 4 + MASK
SAM_DECODER = 2 * C + DEPTH * SAM_BLOCK + _attention(C, C // 2) + 2 * C + SAM_UPSAMPLE + _query_mlp(C, MASK)
TE_BLOCK = [
    _linear(C, C, False) + _linear(words, C, False) + _attention(C) + _linear(C, 4 * C) + _linear(4 * C, C) + 4 * C
    for words in (TEXT, C)
]
EXPECTED_TRAINABLE = {
    "full": FULL,
    "no_attn_mask": FULL,
    "tau_0.2": FULL,
    "bcm_fusion": FULL,
    "no_fe": FULL - FE + _pixel_mlp(IMG, C),
    "conv_fusion": FULL - sum(MA) + _linear(TEXT, C, False) + _linear(C, C, False) + 2 * _cba(2 * C, C),
    "sdf_fusion": FULL - 2 * 2 * C,
    "te_fusion": FULL - sum(MA) + sum(TE_BLOCK),
    "ma_blocks_1": FULL - MA[1],
    "ma_blocks_3": FULL + MA[1],
    "decoder_t2i": FULL + DEPTH * (_attention(C) + 2 * C),
    "decoder_no_text": FULL - 2 * C,
    "sam_decoder": FULL - DECODER + SAM_DECODER,
    "sam_decoder_narrow": FULL
    - DECODER
    + SAM_DECODER
    - DEPTH * (_linear(C, 8 * C) + _linear(8 * C, C))
    + DEPTH * (_linear(C, C) + _linear(C, C)),
    "sam_decoder_unmasked": FULL - DECODER + SAM_DECODER,
    "decoder_no_text_unmasked": FULL - 2 * C,
    "sdf_fusion_masked": FULL - 2 * 2 * C,
    "bcm_fusion_masked": FULL,
    "share_mask": FULL,
    "sam_directly": _pixel_mlp(IMG, C) + _linear(TEXT, C) + SAM_DECODER,
}


def _batch(model, count=2):
    torch.manual_seed(1)
    size = model.image_encoder.config.img_size
    images = torch.randn(count, 3, size, size)
    tokens = model.text_encoder.tokenize(["the red square on the left", "a blue circle"][:count])
    side = 4 * model.image_encoder.config.feature_size
    masks = (torch.rand(count, side, side) > 0.5).float()
    return images, tokens, masks


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_trains_its_head_and_leaves_frozen_encoders_alone(name):
    torch.manual_seed(0)
    overrides = VARIANTS[name].overrides_for("risam_tiny")
    model = create_model("risam_tiny", overrides=overrides)
    images, tokens, masks = _batch(model)
    model.train()
    logits = model(images, tokens)
    assert logits.shape == masks.shape and torch.isfinite(logits).all()
    risam_loss(logits, masks).backward()
    text_trains = overrides.get("text_encoder.freeze") is False
    for param_name, param in model.named_parameters():
        frozen = param_name.startswith("image_encoder.") or (param_name.startswith("text_encoder.") and not text_trains)
        if frozen:
            assert not param.requires_grad and param.grad is None, param_name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if name in EXPECTED_TRAINABLE:
        assert trainable == EXPECTED_TRAINABLE[name]
    if text_trains:
        assert trainable == FULL + sum(p.numel() for p in model.text_encoder.parameters())


def test_paper_configs_serialize_as_before_and_bad_values_name_the_key():
    # The keys of a risam_vit_h config before the ablation switches existed.
    data = get_config("risam_vit_h").to_dict()
    assert set(data["head"]) == {"dim", "num_ma_blocks", "tau", "decoder_depth", "decoder_heads", "mask_dim"}
    assert "backbone" not in data["image_encoder"] and "timm_kwargs" not in data["image_encoder"]
    assert RISAMConfig.from_dict(data) == get_config("risam_vit_h")
    variant = get_config("risam_tiny", {"head.fusion": "conv", "image_encoder.timm_kwargs": {}})
    assert variant.to_dict()["head"]["fusion"] == "conv" and "decoder" not in variant.to_dict()["head"]
    assert RISAMConfig.from_dict(variant.to_dict()) == variant
    with pytest.raises(ConfigError, match=r"head\.fusion='attention'.*'mutual_attention', 'conv'"):
        HeadConfig(fusion="attention")
    with pytest.raises(ConfigError, match=r"head\.decoder='sam2'.*'mutual_aware', 'mutual_aware_t2i', 'sam'"):
        get_config("risam_tiny", {"head.decoder": "sam2"})
    with pytest.raises(ConfigError, match=r"head\.enhancement='fpn'.*'deep_only', 'simple_pyramid'"):
        get_config("risam_tiny", {"head.enhancement": "fpn"})
    with pytest.raises(ConfigError, match=r"image_encoder\.backbone='resnet_9000'"):
        ImageEncoderConfig(backbone="resnet_9000")
    with pytest.raises(ConfigError, match=r"decoder_text_guidance"):
        get_config("risam_tiny", {"head.decoder": "sam", "head.decoder_text_guidance": False})
    with pytest.raises(ConfigError, match=r"tap_indices=\(2, 3\).*exactly three taps"):
        get_config("risam_tiny", {"image_encoder.tap_indices": [2, 3]})
    assert get_config("risam_tiny", {"image_encoder.tap_indices": [3], "head.enhancement": "deep_only"})


def test_default_models_keep_their_parameter_names():
    """Weights files of the paper's model stay loadable: no new key in the default model."""
    names = set(create_model("risam_tiny").trainable_state_dict())
    assert not any("token_to_image" in name or "text_output" in name for name in names)
    assert {"fusion.1.norm_text.weight", "decoder.layers.1.cross_attn.q_proj.weight"} <= names


def _randomize(module):
    for sub in module.modules():
        if isinstance(sub, torch.nn.BatchNorm2d):
            sub.running_mean.normal_()
            sub.running_var.uniform_(0.5, 2.0)
        if isinstance(sub, torch.nn.BatchNorm2d | torch.nn.LayerNorm):
            torch.nn.init.normal_(sub.weight)
            torch.nn.init.normal_(sub.bias)
    return module.eval()


def test_conv_fusion_is_a_convolution_over_pixels_and_the_mean_sentence():
    torch.manual_seed(0)
    block = _randomize(ConvFusion(visual_dim=6, text_dim=5, dim=4))
    visual, text = torch.randn(2, 9, 6), torch.randn(2, 4, 5)
    padding = torch.tensor([[False, False, True, True], [False, False, False, False]])
    with torch.no_grad():
        out = block(visual, text, padding)
        z_text = text @ block.proj_text.weight.T
        sentence = torch.stack([z_text[0, :2].mean(0), z_text[1].mean(0)])
        grid = visual.transpose(1, 2).reshape(2, 6, 3, 3)
        stacked = torch.cat([grid, sentence[:, :, None, None].expand(-1, -1, 3, 3)], dim=1)
        norm = block.fuse.norm
        y = F.conv2d(stacked, block.fuse.conv.weight, padding=1)
        y = (y - norm.running_mean[:, None, None]) / torch.sqrt(norm.running_var[:, None, None] + norm.eps)
        expected = F.gelu(y * norm.weight[:, None, None] + norm.bias[:, None, None])
    torch.testing.assert_close(out.visual, expected.flatten(2).transpose(1, 2))
    torch.testing.assert_close(out.text, z_text)
    assert out.vision_guided is None and out.language_guided is None


def test_transformer_fusion_is_an_encoder_layer_over_both_modalities():
    torch.manual_seed(0)
    block = _randomize(TransformerFusion(visual_dim=8, text_dim=6, dim=8, num_heads=2))
    reference = torch.nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, activation="gelu", batch_first=True).eval()
    attn = block.self_attn
    reference.self_attn.in_proj_weight.data = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
    reference.self_attn.in_proj_bias.data = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
    reference.self_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
    reference.linear1.load_state_dict(block.ffn[0].state_dict())
    reference.linear2.load_state_dict(block.ffn[2].state_dict())
    reference.norm1.load_state_dict(block.norm_attn.state_dict())
    reference.norm2.load_state_dict(block.norm_ffn.state_dict())
    visual, text = torch.randn(2, 5, 8), torch.randn(2, 3, 6)
    padding = torch.tensor([[False, False, True], [False, False, False]])
    with torch.no_grad():
        out = block(visual, text, padding)
        tokens = torch.cat([block.proj_visual(visual), block.proj_text(text)], dim=1)
        mask = torch.cat([torch.zeros(2, 5, dtype=torch.bool), padding], dim=1)
        expected = reference(tokens, src_key_padding_mask=mask)
        # Across modalities: other words change the pixels, another image changes the words; padding changes nothing.
        other_words = block(visual, text + torch.randn_like(text) * torch.tensor([1.0, 1.0, 0.0])[:, None], padding)
        other_image = block(visual + 1.0, text, padding)
        other_padding = block(visual, torch.cat([text[:, :2], text[:, 2:] + 5.0], dim=1), padding)
    torch.testing.assert_close(out.visual, expected[:, :5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.text, expected[:, 5:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other_words.visual, out.visual) and not torch.allclose(other_image.text, out.text)
    torch.testing.assert_close(other_padding.visual[0], out.visual[0])


def test_spatial_dynamic_fusion_is_vision_guided_only():
    torch.manual_seed(0)
    block = _randomize(SpatialDynamicFusion(visual_dim=6, text_dim=5, dim=4))
    visual, text = torch.randn(1, 7, 6), torch.randn(1, 4, 5)
    padding = torch.tensor([[False, False, False, True]])
    with torch.no_grad():
        out = block(visual, text, padding)
        z_v, z_l = visual @ block.proj_visual.weight.T, text @ block.proj_text.weight.T
        weights = torch.softmax(z_v[0] @ z_l[0, :3].T / 2.0, dim=-1)
        norm = block.norm_visual
        expected = F.layer_norm(z_v[0] * (weights @ z_l[0, :3]) + z_v[0], (4,), norm.weight, norm.bias)
        changed = visual.clone()
        changed[0, 3:] += 2.0
        other_image = block(changed, text, padding)
    torch.testing.assert_close(out.visual[0], expected)
    torch.testing.assert_close(out.vision_guided[0, :, :3], weights)
    assert out.language_guided is None
    # The words never see the image, and each pixel reads only itself and the words.
    torch.testing.assert_close(other_image.text, z_l)
    torch.testing.assert_close(other_image.visual[0, :3], out.visual[0, :3])


def test_bidirectional_serial_fusion_reads_the_first_direction_in_the_second():
    torch.manual_seed(0)
    block = _randomize(BidirectionalSerialFusion(visual_dim=6, text_dim=5, dim=4))
    parallel = MutualAwareAttention(6, 5, 4, tau=0.0)
    parallel.load_state_dict(block.state_dict())
    visual, text = torch.randn(1, 7, 6), torch.randn(1, 4, 5)
    padding = torch.tensor([[False, False, False, True]])
    with torch.no_grad():
        out = block(visual, text, padding)
        mutual = parallel(visual, text, padding)
        z_l = text[0, :3] @ block.proj_text.weight.T
        weights = torch.softmax(z_l @ out.visual[0].T / 2.0, dim=-1)
        norm = block.norm_text
        expected = F.layer_norm(weights @ out.visual[0] + z_l, (4,), norm.weight, norm.bias)
    # Same first direction as the parallel MA block without mask; the second reads F_lav, not Z_v.
    torch.testing.assert_close(out.visual, mutual.visual)
    torch.testing.assert_close(out.text[0, :3], expected)
    assert not torch.allclose(out.text, mutual.text)
    assert torch.all(out.language_guided[0, 3] == 0)


def test_enhancement_replacements_read_only_the_deep_tap():
    torch.manual_seed(0)
    taps = [torch.randn(2, 8, 6, 6) for _ in range(3)]
    others = [torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6), taps[2]]
    deep = DeepProjection(8, 4)
    pyramid = _randomize(SimpleFeaturePyramid(8, 4))
    with torch.no_grad():
        mlp = deep.mlp_deep
        expected = (F.gelu(taps[2].permute(0, 2, 3, 1) @ mlp.fc1.weight.T + mlp.fc1.bias) @ mlp.fc2.weight.T).permute(
            0, 3, 1, 2
        ) + mlp.fc2.bias[:, None, None]
        torch.testing.assert_close(deep(*taps), expected)
        torch.testing.assert_close(deep(*others), deep(*taps))
        levels = pyramid.levels(taps[2])
        assert [tuple(level.shape) for level in levels] == [(2, 4, 24, 24), (2, 4, 12, 12), (2, 4, 6, 6), (2, 4, 3, 3)]
        fused = torch.cat(
            [
                F.avg_pool2d(levels[0], 4),
                F.avg_pool2d(levels[1], 2),
                levels[2],
                F.interpolate(levels[3], size=(6, 6), mode="bilinear"),
            ],
            dim=1,
        )
        torch.testing.assert_close(pyramid(*taps), pyramid.fuse(fused))
        torch.testing.assert_close(pyramid(*others), pyramid(*taps))


def test_decoder_without_text_guidance_ignores_the_words():
    torch.manual_seed(0)
    decoder = _randomize(MaskDecoder(8, 2, 2, 4, text_guidance=False))
    visual = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        first = decoder(visual, torch.randn(2, 5, 8), torch.zeros(2, 5, dtype=torch.bool))
        second = decoder(visual, torch.randn(2, 3, 8), torch.tensor([[False, True, True], [False, False, True]]))
        guided = MaskDecoder(8, 2, 2, 4)
        guided.load_state_dict(decoder.state_dict())
        with_words = guided.eval()(visual, torch.randn(2, 5, 8), torch.zeros(2, 5, dtype=torch.bool))
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, with_words)


def test_token_to_image_attention_sits_between_equations_8_and_9():
    torch.manual_seed(0)
    layer = _randomize(DecoderLayer(8, 2, token_to_image=True))
    plain = DecoderLayer(8, 2)
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if "token_to_image" not in k})
    visual, tokens, pos = torch.randn(1, 6, 8), torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    padding = torch.tensor([[False, False, True]])
    with torch.no_grad():
        out_visual, out_tokens = layer(visual, tokens, pos, padding)
        v = layer.norm_visual_self(visual + layer.visual_self_attn(visual, visual, visual))
        t = layer.norm_token_self(tokens + layer.token_self_attn(tokens + pos, tokens + pos, tokens, padding))
        t = layer.norm_token_to_image(t + layer.token_to_image_attn(t + pos, v, v))
        v = layer.norm_cross(v + layer.cross_attn(v, t + pos, t, padding))
        # Without it the tokens never read the image; with it they do.
        _, plain_tokens = plain(visual, tokens, pos, padding)
        _, plain_other = plain(visual + 1.0, tokens, pos, padding)
        _, t2i_other = layer(visual + 1.0, tokens, pos, padding)
    torch.testing.assert_close(out_visual, v)
    torch.testing.assert_close(out_tokens, t)
    torch.testing.assert_close(plain_tokens, plain_other)
    assert not torch.allclose(t2i_other, out_tokens)


def test_sam_decoder_transformer_matches_segment_anything():
    torch.manual_seed(0)
    ours = _randomize(TwoWayTransformer(16, depth=2, num_heads=2, mlp_dim=32))
    meta = MetaTwoWayTransformer(depth=2, embedding_dim=16, num_heads=2, mlp_dim=32).eval()
    names = {
        "token_self_attn": "self_attn",
        "norm_token_self": "norm1",
        "token_to_image": "cross_attn_token_to_image",
        "norm_token_to_image": "norm2",
        "token_mlp.0": "mlp.lin1",
        "token_mlp.2": "mlp.lin2",
        "norm_token_mlp": "norm3",
        "image_to_token": "cross_attn_image_to_token",
        "norm_image_to_token": "norm4",
        "final_token_to_image": "final_attn_token_to_image",
        "norm_final": "norm_final_attn",
    }
    renamed = {}
    for key, value in ours.state_dict().items():
        prefix, rest = ("", key)
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            prefix = f"layers.{index}."
        mine = next(name for name in names if rest.startswith(f"{name}."))
        renamed[prefix + names[mine] + rest.removeprefix(mine)] = value
    meta.load_state_dict(renamed)
    image, image_pe, tokens = torch.randn(2, 16, 3, 3), torch.randn(1, 16, 3, 3), torch.randn(2, 4, 16)
    with torch.no_grad():
        expected_tokens, expected_image = meta(image, image_pe, tokens)
        got_tokens, got_image = ours(
            tokens, image.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2), torch.zeros(2, 4, dtype=bool)
        )
    torch.testing.assert_close(got_tokens, expected_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_image, expected_image, atol=1e-5, rtol=1e-5)

    positions = RandomFourierPositions(16)
    meta_positions = PositionEmbeddingRandom(8)
    meta_positions.positional_encoding_gaussian_matrix.copy_(positions.frequencies)
    torch.testing.assert_close(positions(3, 5), meta_positions((3, 5)).flatten(1).T)


def test_sam_decoder_ignores_padding_words():
    torch.manual_seed(0)
    decoder = _randomize(SamMaskDecoder(16, depth=2, num_heads=2, mask_dim=4))
    visual, words = torch.randn(2, 16, 4, 4), torch.randn(2, 5, 16)
    padding = torch.tensor([[False, False, False, True, True], [False] * 5])
    changed = words.clone()
    changed[0, 3:] = torch.randn(2, 16)
    with torch.no_grad():
        logits = decoder(visual, words, padding)
        assert logits.shape == (2, 16, 16)
        torch.testing.assert_close(decoder(visual, changed, padding), logits)
        assert not torch.allclose(decoder(visual, changed, torch.zeros(2, 5, dtype=bool))[0], logits[0])


TINY_VIT = {"embed_dim": 32, "depth": 3, "num_heads": 2}
TINY_SWIN = {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 4}


@pytest.mark.parametrize(
    ("backbone", "kwargs", "taps", "dims"),
    [
        ("vit_base_patch16_224", TINY_VIT, (0, 2), (32, 32)),
        ("swin_base_patch4_window12_384", TINY_SWIN, (1, 2, 3), (16, 32, 64)),
    ],
)
def test_timm_backbone_loads_timm_weights_and_resamples_taps_to_the_head_grid(tmp_path, backbone, kwargs, taps, dims):
    config = ImageEncoderConfig(backbone=backbone, timm_kwargs=kwargs, tap_indices=taps, img_size=64, patch_size=8)
    torch.manual_seed(0)
    encoder = TimmBackbone(config).eval()
    assert encoder.tap_dims == dims
    reference = timm.create_model(backbone, pretrained=False, num_classes=10, img_size=64, **kwargs).eval()
    path = tmp_path / "timm.pth"
    torch.save(reference.state_dict(), path)
    encoder.load_pretrained(path)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = encoder(images)
        expected = reference.forward_intermediates(images, indices=list(taps), intermediates_only=True)
    assert [tuple(t.shape) for t in got] == [(2, dim, 8, 8) for dim in dims]
    for tap, raw in zip(got, expected, strict=True):
        size = raw.shape[-1]
        resampled = F.avg_pool2d(raw, size // 8) if size >= 8 else F.interpolate(raw, size=(8, 8), mode="bilinear")
        torch.testing.assert_close(tap, resampled)
    state = reference.state_dict()
    state["blocks.99.unknown"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"blocks\.99\.unknown"):
        encoder.load_pretrained(path)
    with pytest.raises(ConfigError, match=r"tap_indices=\(1, 9\)"):
        TimmBackbone(ImageEncoderConfig(backbone=backbone, timm_kwargs=kwargs, tap_indices=(1, 9), img_size=64))


def test_sam_directly_reads_the_words_only_through_the_sam_decoder():
    model = create_model("risam_tiny", overrides=VARIANTS["sam_directly"].overrides)
    assert type(model.enhancement).__name__ == "DeepProjection"
    assert [type(block).__name__ for block in model.fusion] == ["TextProjection"]
    assert isinstance(model.decoder, SamMaskDecoder)
    visual = torch.randn(1, C, 8, 8)
    words = torch.randn(1, 17, TEXT)
    padding = torch.zeros(1, 17, dtype=torch.bool)
    model.eval()
    with torch.no_grad():
        _, outputs = model.decode(VisualFeatures(visual), words, padding, return_attention=True)
        projected = model.fusion[0].proj_text(words)
    torch.testing.assert_close(outputs[0].visual, visual.flatten(2).transpose(1, 2))
    torch.testing.assert_close(outputs[0].text, projected)


def test_explain_refuses_a_fusion_without_attention_maps():
    predictor = RISAMPredictor(create_model("risam_tiny", overrides={"head.fusion": "conv"}))
    predictor.set_image(np.zeros((32, 48, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match=r"ConvFusion\) has no vision- and language-guided attention maps"):
        explain(predictor, "the red square")
