"""SAM 2's Hiera trunk as the image encoder: taps at the stride-16 global-attention blocks, loaded from files in
Meta's format (``sam2.1_hiera_*.pt``) and timm's, equal to the reference implementations' block outputs."""

from __future__ import annotations

import re

import pytest
import safetensors.torch
import timm
import torch

from risam import create_model, get_config
from risam.config import ConfigError
from risam.info import model_info
from risam.io.state_dict import CheckpointError
from risam.modeling.variants.hiera_encoder import HieraEncoder

SIZE = 256  # a small input: the trunk takes any multiple of 32
OVERRIDES = {"image_encoder.img_size": SIZE}


def _reference(seed: int = 0) -> torch.nn.Module:
    """timm's Hiera-T with random weights (position embeddings included), the whole trunk."""
    torch.manual_seed(seed)
    model = timm.create_model("sam2_hiera_tiny", pretrained=False, num_classes=0).eval()
    with torch.no_grad():
        model.pos_embed.normal_(std=0.5)
        model.pos_embed_window.normal_(std=0.5)
    return model


def _meta_checkpoint(reference: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """``reference``'s weights as Meta's SAM 2 checkpoints hold them: under "model", the trunk's keys prefixed
    ``image_encoder.trunk.`` with Meta's MLP names, beside other parts of SAM 2 (a neck key here)."""
    trunk = {
        "image_encoder.trunk."
        + re.sub(r"\.mlp\.fc([12])\.", lambda m: f".mlp.layers.{int(m.group(1)) - 1}.", key): value
        for key, value in reference.state_dict().items()
        if not key.startswith("head.")
    }
    return {"model": {**trunk, "image_encoder.neck.convs.0.conv.weight": torch.zeros(256, 768, 1, 1)}}


def _block_outputs(reference: torch.nn.Module, images: torch.Tensor, blocks: tuple[int, ...]) -> list[torch.Tensor]:
    with torch.no_grad():
        return reference.forward_intermediates(
            images, indices=list(blocks), intermediates_only=True, output_fmt="NCHW", coarse=False
        )


def test_taps_from_metas_format_equal_the_reference_blocks(tmp_path):
    reference = _reference()
    torch.save(_meta_checkpoint(reference), tmp_path / "sam2.1_hiera_tiny.pt")
    model = create_model("risam_sam2_t", sam_checkpoint=tmp_path / "sam2.1_hiera_tiny.pt", overrides=OVERRIDES)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        taps = model.image_taps(images)
    expected = _block_outputs(reference, images, (5, 7, 9))
    assert [tuple(tap.shape) for tap in taps] == [(2, 384, SIZE // 16, SIZE // 16)] * 3
    for ours, theirs in zip(taps, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    # The stride-32 stage is not built; the last tap is the stride-16 stage's end.
    assert len(model.image_encoder.model.blocks) == 10 and reference.stage_ends[2] == 9
    with torch.no_grad():
        assert model(images, model.text_encoder.tokenize(["a", "b"])).shape == (2, SIZE // 4, SIZE // 4)


def test_taps_equal_metas_own_hiera_where_the_sam2_package_is_installed(tmp_path):
    """Meta's ``sam2`` package builds from source only (its build pulls torch into an isolated environment and
    its import needs hydra-core), so it is not a dependency; where it is installed, this compares with it."""
    hieradet = pytest.importorskip("sam2.modeling.backbones.hieradet")
    torch.manual_seed(0)
    meta = hieradet.Hiera(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ).eval()
    with torch.no_grad():
        for parameter in meta.parameters():
            parameter.normal_(std=0.05)
    torch.save({"model": {f"image_encoder.trunk.{k}": v for k, v in meta.state_dict().items()}}, tmp_path / "m.pt")
    config = get_config("risam_sam2_t", {**OVERRIDES, "image_encoder.high_res_features": True})
    encoder = HieraEncoder(config.image_encoder)
    encoder.load_pretrained(tmp_path / "m.pt")
    images = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        *taps, stride8, stride4 = encoder.eval()(images)
        meta_stride4, meta_stride8 = meta(images)[:2]  # Meta's stage ends, which SAM 2's neck reads
        x = meta.patch_embed(images)
        x = x + meta._get_pos_embed(x.shape[1:3])
        expected = []
        for index, block in enumerate(meta.blocks):
            x = block(x)
            if index in (5, 7, 9):
                expected.append(x.permute(0, 3, 1, 2))
    for ours, theirs in zip([*taps, stride8, stride4], [*expected, meta_stride8, meta_stride4], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_timms_file_of_the_same_weights_loads_the_same(tmp_path):
    reference = _reference(seed=3)
    torch.save(_meta_checkpoint(reference), tmp_path / "meta.pt")
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "model.safetensors")
    )
    from_meta = HieraEncoder(get_config("risam_sam2_t", OVERRIDES).image_encoder)
    from_meta.load_pretrained(tmp_path / "meta.pt")
    from_timm = HieraEncoder(get_config("risam_sam2_t", OVERRIDES).image_encoder)
    from_timm.load_pretrained(tmp_path / "model.safetensors")
    for key, value in from_meta.state_dict().items():
        assert torch.equal(value, from_timm.state_dict()[key]), key


def test_bad_taps_and_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"blocks \[1\] are not in sam2_hiera_tiny's stride-16 stage \(blocks 3-9\)"):
        create_model("risam_sam2_t", overrides={**OVERRIDES, "image_encoder.tap_indices": (1, 7, 9)}, pretrained=False)
    checkpoint = _meta_checkpoint(_reference())
    del checkpoint["model"]["image_encoder.trunk.blocks.7.attn.qkv.weight"]
    torch.save(checkpoint, tmp_path / "cut.pt")
    encoder = HieraEncoder(get_config("risam_sam2_t", OVERRIDES).image_encoder)
    with pytest.raises(CheckpointError, match=r"cut\.pt.*blocks\.7\.attn\.qkv\.weight"):
        encoder.load_pretrained(tmp_path / "cut.pt")
    torch.save({"model": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="is not a state dict of tensors"):
        encoder.load_pretrained(tmp_path / "list.pt")


@pytest.mark.parametrize(
    ("name", "taps", "width"),
    [
        ("risam_sam2_t", (5, 7, 9), 384),
        ("risam_sam2_s", (7, 10, 13), 384),
        ("risam_sam2_bp", (12, 16, 20), 448),
        ("risam_sam2_l", (23, 33, 43), 576),
    ],
)
def test_the_four_models_tap_their_global_attention_blocks_with_a_head_of_about_6m(name, taps, width):
    info = model_info(name)
    assert info["tap_indices"] == list(taps) == info["global_attn_indexes"]
    assert info["input_size"] == [1024, 1024] and info["feature_size"] == [64, 64]
    assert 4.5e6 < info["trainable_params"] < 6.5e6
    encoder = HieraEncoder(get_config(name).image_encoder) if name == "risam_sam2_t" else None
    if encoder is not None:
        assert encoder.tap_dims == (width,) * 3
