"""SAM 2's high-resolution features in RISAM's decoders (``image_encoder.high_res_features``): the Hiera trunk's
stride-8 and stride-4 stage outputs, each through a 1 x 1 convolution, added to the two upsampling steps."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from risam import RISAMConfig, RISAMPredictor, create_model, get_config
from risam.config import ConfigError
from risam.evaluation.losses import risam_loss
from risam.modeling.decoder import MaskDecoder
from risam.modeling.layers import VisualFeatures
from risam.modeling.variants.hiera_encoder import HieraEncoder
from risam.modeling.variants.sam_mask_decoder import SamMaskDecoder

SIZE = 256
# A narrow Hiera-T (embed_dim 16): stride-4 maps of 16 channels, stride-8 of 32, taps of 64.
TINY_HIERA = {"image_encoder.img_size": SIZE, "image_encoder.timm_kwargs": {"embed_dim": 16}}
HIGH_RES = {**TINY_HIERA, "image_encoder.high_res_features": True}
DIM, HEADS, MASK_DIM = 16, 2, 4


def _random_reference_and_images(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    reference = timm.create_model("sam2_hiera_tiny", pretrained=False, num_classes=0, embed_dim=16).eval()
    with torch.no_grad():
        reference.pos_embed.normal_(std=0.5)
        reference.pos_embed_window.normal_(std=0.5)
    return reference, torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed + 1))


def test_the_encoder_adds_the_stride8_and_stride4_stage_ends_after_unchanged_taps():
    reference, images = _random_reference_and_images()
    plain = HieraEncoder(get_config("risam_sam2_t", TINY_HIERA).image_encoder).eval()
    high = HieraEncoder(get_config("risam_sam2_t", HIGH_RES).image_encoder).eval()
    plain.model.load_state_dict(reference.state_dict(), strict=False)
    high.model.load_state_dict(reference.state_dict(), strict=False)
    with torch.no_grad():
        taps, maps = plain(images), high(images)
        # timm's coarse intermediates are the stage ends: strides 4, 8, 16, 32 (SAM 2's neck reads them).
        stage_ends = reference.forward_intermediates(images, intermediates_only=True, output_fmt="NCHW")
    assert high.high_res_dims == (32, 16) and len(maps) == 5 and len(taps) == 3
    for ours, theirs in zip(maps[:3], taps, strict=True):
        assert torch.equal(ours, theirs)
    assert maps[3].shape == (2, 32, SIZE // 8, SIZE // 8) and maps[4].shape == (2, 16, SIZE // 4, SIZE // 4)
    torch.testing.assert_close(maps[3], stage_ends[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(maps[4], stage_ends[0], rtol=0, atol=1e-5)


def _bn(module: torch.nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, module.running_mean, module.running_var, module.weight, module.bias, eps=module.eps)


def _capture(module: torch.nn.Module, captured: dict[str, torch.Tensor], name: str, what: str) -> None:
    """Keep ``module``'s first input (``what`` "input") or its output under ``name`` at its first call."""

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.setdefault(name, inputs[0] if what == "input" else output)

    module.register_forward_hook(hook)


def _randomize(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def _inputs(seed: int = 3) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    visual = torch.randn(2, DIM, 4, 4, generator=generator)
    text = torch.randn(2, 5, DIM, generator=generator)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    stride8 = torch.randn(2, 6, 8, 8, generator=generator)
    stride4 = torch.randn(2, 3, 16, 16, generator=generator)
    return visual, text, padding, stride8, stride4


def test_mutual_aware_decoder_adds_the_projected_maps_after_each_transposed_convolution():
    visual, text, padding, stride8, stride4 = _inputs()
    decoder = MaskDecoder(DIM, 1, HEADS, MASK_DIM, high_res_dims=(6, 3)).eval()
    _randomize(decoder, seed=1)
    captured = {}
    _capture(decoder.upsample[0], captured, "f_lav", "input")
    _capture(decoder.query_mlp, captured, "query", "output")
    with torch.no_grad():
        logits = decoder(visual, text, padding, stride8, stride4)
        conv1, bn1, _, conv2, bn2, _ = decoder.upsample
        assert decoder.high_res.stride8.bias is None and decoder.high_res.stride4.bias is None  # BN follows each
        skip8 = F.conv2d(stride8, decoder.high_res.stride8.weight)
        skip4 = F.conv2d(stride4, decoder.high_res.stride4.weight)
        up = F.gelu(_bn(bn1, F.conv_transpose2d(captured["f_lav"], conv1.weight, stride=2) + skip8))
        up = F.gelu(_bn(bn2, F.conv_transpose2d(up, conv2.weight, stride=2) + skip4))
        expected = torch.einsum("bc,bchw->bhw", captured["query"], up)
    assert logits.shape == (2, 16, 16)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    # Each map is read: changing one changes the logits.
    with torch.no_grad():
        assert not torch.allclose(decoder(visual, text, padding, stride8, stride4 + 1), logits)
        assert not torch.allclose(decoder(visual, text, padding, stride8 + 1, stride4), logits)


def test_with_zero_projections_the_decoder_is_the_paper_decoder():
    visual, text, padding, stride8, stride4 = _inputs()
    torch.manual_seed(0)
    paper = MaskDecoder(DIM, 2, HEADS, MASK_DIM).eval()
    high = MaskDecoder(DIM, 2, HEADS, MASK_DIM, high_res_dims=(6, 3)).eval()
    missing, unexpected = high.load_state_dict(paper.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["high_res.stride4.weight", "high_res.stride8.weight"]
    with torch.no_grad():
        for parameter in high.high_res.parameters():
            parameter.zero_()
        torch.testing.assert_close(high(visual, text, padding, stride8, stride4), paper(visual, text, padding))
    with pytest.raises(ValueError, match="stride-8 and stride-4 maps"):
        high(visual, text, padding)
    with pytest.raises(ValueError, match="built without high-resolution maps"):
        paper(visual, text, padding, stride8, stride4)


def test_sam_decoder_with_high_res_maps_upsamples_as_sam2s_decoder():
    """SAM 2's MaskDecoder: act1(ln1(dc1(src) + feat_s1)), then act2(dc2(.) + feat_s0)."""
    visual, text, padding, stride8, stride4 = _inputs()
    decoder = SamMaskDecoder(DIM, 1, HEADS, MASK_DIM, high_res_dims=(6, 3)).eval()
    captured = {}
    _capture(decoder.upsample[0], captured, "src", "input")
    _capture(decoder.hypernetwork, captured, "hyper", "output")
    with torch.no_grad():
        logits = decoder(visual, text, padding, stride8, stride4)
        dc1, ln1, _, dc2, _ = decoder.upsample
        feat_s1, feat_s0 = decoder.high_res((stride8, stride4))
        up = F.gelu(ln1(dc1(captured["src"]) + feat_s1))
        up = F.gelu(dc2(up) + feat_s0)
        expected = torch.einsum("bc,bchw->bhw", captured["hyper"], up)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_config_value_serializes_only_when_on_and_is_refused_without_hiera():
    plain, high = get_config("risam_sam2_t"), get_config("risam_sam2_t", {"image_encoder.high_res_features": True})
    assert "high_res_features" not in plain.to_dict()["image_encoder"]
    assert high.to_dict()["image_encoder"]["high_res_features"] is True
    assert RISAMConfig.from_dict(high.to_dict()) == high
    assert get_config("risam_sam2_t", {"image_encoder": {"high_res_features": True}}) == high
    with pytest.raises(ConfigError, match=r"image_encoder\.high_res_features=true needs a SAM 2 Hiera backbone"):
        get_config("risam_vit_h", {"image_encoder.high_res_features": True})


def test_sam2_l_with_high_res_maps_adds_sam2s_projection_parameters_only():
    plain = create_model("risam_sam2_l", device="meta")
    high = create_model("risam_sam2_l", device="meta", overrides={"image_encoder.high_res_features": True})
    count = sum(p.numel() for p in high.parameters() if p.requires_grad)
    added = count - sum(p.numel() for p in plain.parameters() if p.requires_grad)
    # Hiera-L: stride-8 maps of 288 channels to C/4 = 64, stride-4 of 144 to mask_dim = 32 (no biases: BN follows).
    assert added == 288 * 64 + 144 * 32
    assert high.image_encoder.high_res_dims == (288, 144)


def test_a_model_with_high_res_maps_trains_caches_and_predicts():
    model = create_model("risam_sam2_t", overrides=HIGH_RES)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    tokens = model.text_encoder.tokenize(["the left one", "the other", "a circle"])
    image_index = torch.tensor([0, 1, 1])
    model.train()
    logits = model(images, tokens, image_index=image_index)
    assert logits.shape == (3, SIZE // 4, SIZE // 4)
    risam_loss(logits, torch.zeros_like(logits)).backward()
    projections = model.decoder.high_res
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projections.parameters())
    model.eval()
    with torch.no_grad():
        taps = model.image_taps(images)
        cached = model(None, None, image_index=image_index, taps=taps, text=model.encode_text(tokens))
        direct = model(images, tokens, image_index=image_index)
        encoded = model.encode_image(images)
    torch.testing.assert_close(cached, direct)
    assert len(encoded.high_res) == 2 and isinstance(encoded[1:2], VisualFeatures)
    assert encoded[torch.tensor([1, 1])].high_res[1].shape == (2, 16, SIZE // 4, SIZE // 4)
    predictor = RISAMPredictor(model)
    predictor.set_image(np.full((40, 60, 3), 128, dtype=np.uint8))
    prediction = predictor.predict("the left one")
    assert prediction.mask.shape == (40, 60)
    with torch.no_grad():
        alone = model.decode(predictor.encoded.visual, *model.encode_text(tokens[:1]))
    torch.testing.assert_close(predictor.predict_logits("the left one"), alone)
