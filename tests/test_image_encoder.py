"""SamImageEncoder against Meta's own segment_anything encoder, and its checkpoint errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT, Sam
from timm.models.vision_transformer_sam import checkpoint_filter_fn

from official_formats import meta_sam
from risam.config.model import ImageEncoderConfig
from risam.io.state_dict import CheckpointError
from risam.modeling.image_encoder import SamImageEncoder

# 8 x 8 tokens in windows of 3: the windowed blocks pad their input.
TINY = {
    "embed_dim": 64,
    "depth": 8,
    "num_heads": 2,
    "global_attn_indexes": (1, 3, 5, 7),
    "window_size": 3,
    "img_size": 128,
}
VIT_B_256 = {
    "embed_dim": 768,
    "depth": 12,
    "num_heads": 12,
    "global_attn_indexes": (2, 5, 8, 11),
    "window_size": 14,
    "img_size": 256,
}


def _save_sam(tmp_path: Path, dims: dict) -> tuple[Path, Sam]:
    """A SAM checkpoint in the official file format: ``torch.save(sam.state_dict())``."""
    sam = meta_sam(**dims)
    path = tmp_path / "sam_test.pth"
    torch.save(sam.state_dict(), path)
    return path, sam


def _meta_block_outputs(encoder: ImageEncoderViT, images: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output of Meta's encoder, B x C x H x W."""
    outputs = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: outputs.append(out.permute(0, 3, 1, 2)))
        for block in encoder.blocks
    ]
    with torch.no_grad():
        encoder(images)
    for hook in hooks:
        hook.remove()
    return outputs


def _encoder(dims: dict, tap_indices: tuple[int, ...]) -> SamImageEncoder:
    return SamImageEncoder(ImageEncoderConfig(variant="test", tap_indices=tap_indices, **dims)).eval()


def _check_taps_match_meta(encoder: SamImageEncoder, sam: Sam, batch: int = 2) -> None:
    size = encoder.config.img_size
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    reference = _meta_block_outputs(sam.image_encoder, images)
    with torch.no_grad():
        taps = encoder(images)
    assert len(taps) == len(encoder.config.tap_indices)
    for tap, index in zip(taps, encoder.config.tap_indices, strict=True):
        assert tap.shape == (batch, encoder.config.embed_dim, size // 16, size // 16)
        torch.testing.assert_close(tap, reference[index], atol=1e-4, rtol=0)
        assert (tap - reference[index - 1]).abs().max() > 1e-2


def test_taps_match_meta_encoder(tmp_path: Path) -> None:
    path, sam = _save_sam(tmp_path, TINY)
    encoder = _encoder(TINY, tap_indices=(3, 5, 7))
    encoder.load_pretrained(path)
    _check_taps_match_meta(encoder, sam)


def test_global_attention_in_chunks_matches_meta_encoder(tmp_path: Path) -> None:
    path, sam = _save_sam(tmp_path, TINY)
    # 64 tokens in chunks of 5 query tokens: 12 full chunks and a last one of 4.
    encoder = SamImageEncoder(ImageEncoderConfig(variant="test", tap_indices=(3, 5, 7), attention_chunk=5, **TINY))
    encoder.eval().load_pretrained(path)
    assert type(encoder.vit.blocks[1].attn).__name__ == "ChunkedGlobalAttention"
    assert type(encoder.vit.blocks[0].attn).__name__ == "Attention"
    _check_taps_match_meta(encoder, sam)  # without autograd: one bias buffer for every chunk
    size = encoder.config.img_size
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    reference = _meta_block_outputs(sam.image_encoder, images)
    for tap, index in zip(encoder(images), encoder.config.tap_indices, strict=True):  # with autograd
        torch.testing.assert_close(tap.detach(), reference[index], atol=1e-4, rtol=0)


def test_vit_b_taps_match_meta_encoder(tmp_path: Path) -> None:
    path, sam = _save_sam(tmp_path, VIT_B_256)
    encoder = _encoder(VIT_B_256, tap_indices=(5, 8, 11))
    encoder.load_pretrained(path)
    _check_taps_match_meta(encoder, sam, batch=1)


def test_blocks_after_last_tap_are_not_built(tmp_path: Path) -> None:
    path, sam = _save_sam(tmp_path, TINY)
    encoder = _encoder(TINY, tap_indices=(1, 3))
    assert len(encoder.vit.blocks) == 4
    encoder.load_pretrained(path)
    _check_taps_match_meta(encoder, sam)


@pytest.mark.parametrize("key_format", ["meta", "timm"])
def test_loads_image_encoder_state_dict(tmp_path: Path, key_format: str) -> None:
    sam = meta_sam(**TINY)
    state_dict = sam.image_encoder.state_dict()
    if key_format == "timm":
        state_dict = checkpoint_filter_fn(sam.state_dict(), None)
        assert "blocks.0.mlp.fc1.weight" in state_dict
    path = tmp_path / "encoder.pth"
    torch.save(state_dict, path)
    encoder = _encoder(TINY, tap_indices=(3, 5, 7))
    encoder.load_pretrained(path)
    _check_taps_match_meta(encoder, sam)


def test_missing_key_is_named(tmp_path: Path) -> None:
    state_dict = meta_sam(**TINY).state_dict()
    del state_dict["image_encoder.blocks.2.attn.rel_pos_h"]
    path = tmp_path / "missing.pth"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match="missing keys") as error:
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)
    assert str(path) in str(error.value)
    assert "blocks.2.attn.rel_pos_h" in str(error.value)


def test_unexpected_key_is_named(tmp_path: Path) -> None:
    state_dict = meta_sam(**TINY).state_dict()
    state_dict["image_encoder.blocks.2.attn.extra_scale"] = torch.ones(1)
    path = tmp_path / "extra.pth"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match="unexpected keys") as error:
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)
    assert str(path) in str(error.value)
    assert "blocks.2.attn.extra_scale" in str(error.value)


def test_checkpoint_for_other_image_size_is_refused(tmp_path: Path) -> None:
    path, _ = _save_sam(tmp_path, {**TINY, "img_size": 160})
    with pytest.raises(CheckpointError, match="mis-shaped keys") as error:
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)
    message = str(error.value)
    assert str(path) in message
    assert "pos_embed: file (1, 10, 10, 64), model (1, 8, 8, 64)" in message
    assert "blocks.1.attn.rel_pos_h" in message


def test_checkpoint_deeper_than_config_is_refused(tmp_path: Path) -> None:
    path, _ = _save_sam(tmp_path, TINY)
    with pytest.raises(CheckpointError, match="unexpected keys") as error:
        _encoder({**TINY, "depth": 7}, tap_indices=(3, 5)).load_pretrained(path)
    assert "blocks.7.attn.qkv.weight" in str(error.value)
    assert "blocks.6." not in str(error.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(FileNotFoundError, match=str(path)):
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)


def _truncated_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"pos_embed": torch.zeros(1, 8, 8, 64)}, buffer)
    return buffer.getvalue()[:200]


@pytest.mark.parametrize(
    "content", [b"this is not a checkpoint \x00\x01\x02", b"", b"\x80\x02}q\x00(X", _truncated_checkpoint()]
)
def test_garbage_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="could not be read as a checkpoint") as error:
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)
    assert str(path) in str(error.value)


def _touch(path: str) -> None:
    Path(path).touch()


class _Payload:
    """Unpickling this runs code: it creates the file at ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return _touch, (str(self.marker),)


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "payload.pth"
    torch.save({"pos_embed": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only=True") as error:
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)
    assert str(path) in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [([torch.zeros(1)], "holds a list"), ({"pos_embed": "zeros"}, "not a state dict of tensors")],
)
def test_content_other_than_tensors_is_refused(tmp_path: Path, content: object, expected: str) -> None:
    path = tmp_path / "content.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=expected) as error:
        _encoder(TINY, tap_indices=(3, 5, 7)).load_pretrained(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 1, 128, 128), (3, 128, 128)])
def test_wrong_input_size_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, 128, 128\)"):
        _encoder(TINY, tap_indices=(3, 5, 7))(torch.zeros(shape))
