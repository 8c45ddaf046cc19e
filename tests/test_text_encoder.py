"""ClipTextEncoder against open_clip's own CLIP, on tiny checkpoints in OpenAI's and open_clip's formats."""

from __future__ import annotations

import re
from pathlib import Path

import open_clip
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from open_clip.factory import load_checkpoint
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer

from official_formats import save_openai_jit
from risam.config.model import TextEncoderConfig
from risam.io.state_dict import CheckpointError
from risam.modeling.text_encoder import ClipTextEncoder

SOT, EOT = 49406, 49407
# open_clip rebuilds OpenAI models with heads = width // 64, so a 2-head tower is 128 wide.
WIDTH, HEADS, LAYERS, EMBED_DIM, CONTEXT = 128, 2, 2, 32, 77
TEXTS = [
    "dog",
    "the man in the red shirt on the left",
    "the tall zebra standing behind the wooden fence next to the small grey elephant near the water, "
    "looking left at the two giraffes under the big tree",
]
FORMATS = ["openai_jit", "openai_state_dict", "open_clip_bin", "open_clip_safetensors", "open_clip_training"]


def _config(**changes: object) -> TextEncoderConfig:
    tiny = {"width": WIDTH, "layers": LAYERS, "heads": HEADS, "output_dim": EMBED_DIM}
    return TextEncoderConfig(**tiny | changes)


def _clip() -> CLIP:
    """open_clip's CLIP with a tiny vision tower and the tiny text tower, QuickGELU as OpenAI's."""
    return CLIP(
        embed_dim=EMBED_DIM,
        vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=16),
        text_cfg=CLIPTextCfg(context_length=CONTEXT, width=WIDTH, heads=HEADS, layers=LAYERS),
        quick_gelu=True,
    )


def _tiny_clip() -> CLIP:
    """A random tiny CLIP with every parameter moved off its init value."""
    torch.manual_seed(0)
    model = _clip()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny CLIP saved in each supported format."""
    root = tmp_path_factory.mktemp("clip")
    model = _tiny_clip()
    state_dict = model.state_dict()
    paths = {
        "openai_jit": root / "ViT-tiny.pt",
        "openai_state_dict": root / "ViT-tiny-state-dict.pt",
        "open_clip_bin": root / "open_clip_model.bin",
        "open_clip_safetensors": root / "open_clip_model.safetensors",
        "open_clip_training": root / "epoch_3.pt",
    }
    torch.save(state_dict, paths["open_clip_bin"])
    safetensors.torch.save_file(state_dict, paths["open_clip_safetensors"])
    training = {"epoch": 3, "name": "tiny", "state_dict": {"module." + k: v for k, v in state_dict.items()}}
    torch.save(training, paths["open_clip_training"])
    save_openai_jit(model, paths["openai_jit"], image_size=16)
    torch.save(torch.jit.load(paths["openai_jit"]).state_dict(), paths["openai_state_dict"])
    return paths


def _reference(fmt: str, path: Path) -> CLIP:
    """The checkpoint loaded by open_clip's own code."""
    if fmt.startswith("openai"):
        return open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
    model = _clip()
    load_checkpoint(model, str(path))
    return model.eval()


def _reference_outputs(reference: CLIP, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ln_final output (B x 77 x width) and pooled encode_text (B x embed_dim).

    ``tokens`` (B x max_words) are zero-padded to CLIP's 77 positions.
    """
    captured = []
    hook = reference.ln_final.register_forward_hook(lambda module, args, out: captured.append(out))
    with torch.no_grad():
        pooled = reference.encode_text(F.pad(tokens, (0, CONTEXT - tokens.shape[1])))
    hook.remove()
    return captured[0], pooled


def _loaded(path: Path, **changes: object) -> ClipTextEncoder:
    encoder = ClipTextEncoder(_config(**changes)).eval()
    encoder.load_clip_checkpoint(path)
    return encoder


def test_state_dict_keys_are_clip_text_tower_keys() -> None:
    encoder_keys = ClipTextEncoder(_config()).model.state_dict()
    clip_keys = {k: v for k, v in _tiny_clip().state_dict().items() if not k.startswith("visual.")}
    del clip_keys["logit_scale"]
    assert {k: v.shape for k, v in encoder_keys.items()} == {k: v.shape for k, v in clip_keys.items()}
    named = {"token_embedding.weight", "positional_embedding", "ln_final.bias", "text_projection"}
    assert named | {"transformer.resblocks.1.attn.in_proj_weight"} < set(encoder_keys)
    assert "attn_mask" not in encoder_keys


@pytest.mark.parametrize("fmt", FORMATS)
def test_features_match_open_clip(checkpoints: dict[str, Path], fmt: str) -> None:
    encoder = _loaded(checkpoints[fmt])
    reference = _reference(fmt, checkpoints[fmt])
    tokens = encoder.tokenize(TEXTS)
    with torch.no_grad():
        features, padding = encoder(tokens)
    reference_tokens, pooled = _reference_outputs(reference, tokens)

    assert features.shape == (len(TEXTS), 17, EMBED_DIM)
    # Causal attention: the first 17 of the reference's 77 positions see the same tokens.
    expected = reference_tokens[:, :17] @ reference.text_projection
    torch.testing.assert_close(features[~padding], expected[~padding], atol=1e-5, rtol=0)
    end = tokens.argmax(dim=-1)
    torch.testing.assert_close(features[torch.arange(len(TEXTS)), end], pooled, atol=1e-5, rtol=0)


def test_unprojected_features_are_ln_final_output(checkpoints: dict[str, Path]) -> None:
    encoder = _loaded(checkpoints["open_clip_bin"], project_tokens=False)
    reference = _reference("open_clip_bin", checkpoints["open_clip_bin"])
    tokens = encoder.tokenize(TEXTS)
    with torch.no_grad():
        features, padding = encoder(tokens)
    assert encoder.config.feature_dim == WIDTH
    assert features.shape == (len(TEXTS), 17, WIDTH)
    expected = _reference_outputs(reference, tokens)[0][:, :17]
    torch.testing.assert_close(features[~padding], expected[~padding], atol=1e-5, rtol=0)


def test_padding_mask_marks_token_id_zero() -> None:
    encoder = ClipTextEncoder(_config(max_words=25)).eval()
    tokens = encoder.tokenize(TEXTS[:2])
    with torch.no_grad():
        _, padding = encoder(tokens)
    assert padding.dtype == torch.bool
    assert torch.equal(padding, tokens == 0)
    assert not padding[:, 0].any()
    assert not padding[torch.arange(2), tokens.argmax(dim=-1)].any()
    # "dog": start, dog, end; the rest is padding.
    assert padding[0].tolist() == [False] * 3 + [True] * 22


def test_padding_tokens_do_not_change_valid_features() -> None:
    torch.manual_seed(0)
    encoder = ClipTextEncoder(_config()).eval()
    tokens = encoder.tokenize(TEXTS[:2])
    scrambled = torch.where(tokens == 0, torch.randint(1, SOT, tokens.shape), tokens)
    with torch.no_grad():
        features, padding = encoder(tokens)
        scrambled_features, _ = encoder(scrambled)
    assert padding.any()
    torch.testing.assert_close(scrambled_features[~padding], features[~padding], atol=1e-6, rtol=0)
    assert not torch.allclose(scrambled_features[padding], features[padding])


def test_tokenize_matches_open_clip_tokenizer() -> None:
    tokens = ClipTextEncoder(_config()).tokenize("a photo of a cat")
    assert tokens.dtype == torch.long
    assert tokens.tolist() == [[SOT, 320, 1125, 539, 320, 2368, EOT] + [0] * 10]
    assert torch.equal(tokens, SimpleTokenizer()(["a photo of a cat"], context_length=17))
    # Zero-padded to 77, the ids are open_clip's tokenization at CLIP's context length.
    two = ClipTextEncoder(_config()).tokenize(TEXTS[:2])
    assert torch.equal(F.pad(two, (0, CONTEXT - 17)), open_clip.tokenize(TEXTS[:2]))


@pytest.mark.parametrize("max_words", [17, 25])
def test_tokenize_truncates_keeping_end_token(max_words: int) -> None:
    tokens = ClipTextEncoder(_config(max_words=max_words)).tokenize(TEXTS)
    full = open_clip.tokenize(TEXTS)
    assert tokens.shape == (len(TEXTS), max_words)
    assert (tokens[:, 0] == SOT).all()
    long = tokens[2]
    assert (full[2] != 0).sum() > max_words
    assert long[-1] == EOT and (long != 0).all()
    assert torch.equal(long[:-1], full[2, : max_words - 1])


def test_tokens_longer_than_context_are_refused() -> None:
    encoder = ClipTextEncoder(_config())
    with pytest.raises(ValueError, match=r"length 78.*context_length=77"):
        encoder(torch.zeros(1, 78, dtype=torch.long))


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ViT-B-16.pt"
    with pytest.raises(FileNotFoundError, match=r"ViT-B-16\.pt"):
        ClipTextEncoder(_config()).load_clip_checkpoint(path)


def test_misshaped_text_tensor_is_named(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    state_dict = torch.load(checkpoints["open_clip_bin"], weights_only=True)
    state_dict["text_projection"] = torch.zeros(WIDTH, 16)
    path = tmp_path / "wrong_width.bin"
    torch.save(state_dict, path)
    expected = r"wrong_width\.bin.*text_projection: file \(128, 16\), model \(128, 32\)"
    with pytest.raises(CheckpointError, match=expected):
        ClipTextEncoder(_config()).load_clip_checkpoint(path)


def test_file_without_text_tower_names_missing_keys(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    state_dict = torch.load(checkpoints["open_clip_bin"], weights_only=True)
    path = tmp_path / "visual_only.safetensors"
    safetensors.torch.save_file({k: v for k, v in state_dict.items() if k.startswith("visual.")}, path)
    with pytest.raises(CheckpointError, match=r"visual_only\.safetensors.*missing keys.*ln_final\.bias"):
        ClipTextEncoder(_config()).load_clip_checkpoint(path)


class _Payload:
    """Unpickling it would create ``marker``: the loader must refuse it, not run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return Path.touch, (self.marker,)


def test_pickled_objects_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "epoch_1.pt"
    torch.save({"state_dict": {"text_projection": _Payload(marker)}}, path)
    with pytest.raises(CheckpointError, match=r"epoch_1\.pt could not be read.*weights_only=True"):
        ClipTextEncoder(_config()).load_clip_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.pt", b"not a checkpoint", "could not be read"),
        ("garbage.safetensors", b"not a checkpoint", "could not be read"),
        ("tensor.pt", torch.zeros(3), "holds a Tensor that is not a state dict"),
    ],
)
def test_unreadable_or_wrong_content_is_refused(
    tmp_path: Path, name: str, content: bytes | torch.Tensor, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    expected = rf"{re.escape(name)}.*{message}.*expected an OpenAI CLIP \.pt file"
    with pytest.raises(CheckpointError, match=expected):
        ClipTextEncoder(_config()).load_clip_checkpoint(path)
