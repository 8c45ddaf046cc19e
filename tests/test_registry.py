"""create_model with encoder files in the official formats, and the model registry."""

import re
import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F

from official_formats import meta_sam, save_openai_jit, small_openai_clip
from risam import create_model, get_config, list_models
from risam.config import ConfigError


def test_registry_lists_the_paper_models_and_the_tiny_one():
    assert {"risam_vit_b", "risam_vit_l", "risam_vit_h", "risam_tiny"} <= set(list_models())
    assert get_config("risam_vit_b").image_encoder.tap_indices == (5, 8, 11)
    assert get_config("risam_vit_l").image_encoder.tap_indices == (11, 17, 23)
    assert get_config("risam_vit_h").image_encoder.tap_indices == (15, 23, 31)


def test_create_model_loads_official_sam_and_openai_clip_files(tmp_path):
    # SAM's files hold a patch embedding: the tiny model with SAM's stem and patch size.
    overrides = {"image_encoder.stem": "patch", "image_encoder.patch_size": 16}
    config = get_config("risam_tiny", overrides)
    image, text = config.image_encoder, config.text_encoder
    sam = meta_sam(
        embed_dim=image.embed_dim,
        depth=image.depth,
        num_heads=image.num_heads,
        global_attn_indexes=image.global_attn_indexes,
        window_size=image.window_size,
        img_size=image.img_size,
    )
    torch.save(sam.state_dict(), tmp_path / "sam_tiny.pth")
    torch.manual_seed(1)
    clip = small_openai_clip(text.output_dim, text.width, text.heads, text.layers)
    save_openai_jit(clip, tmp_path / "ViT-tiny.pt", image_size=16)
    reference_clip = open_clip.load_openai_model(str(tmp_path / "ViT-tiny.pt"), precision="fp32", device="cpu")

    model = create_model(
        "risam_tiny",
        sam_checkpoint=tmp_path / "sam_tiny.pth",
        clip_checkpoint=tmp_path / "ViT-tiny.pt",
        overrides=overrides,
    ).eval()

    images = torch.randn(2, 3, image.img_size, image.img_size)
    tokens = model.text_encoder.tokenize(["the red square", "the second circle from the left"])
    with torch.no_grad():
        deep = sam.image_encoder.blocks[: image.tap_indices[-1] + 1]
        x = sam.image_encoder.patch_embed(images) + sam.image_encoder.pos_embed
        for block in deep:
            x = block(x)
        torch.testing.assert_close(model.image_encoder(images)[-1], x.permute(0, 3, 1, 2), atol=1e-4, rtol=0)
        pooled = reference_clip.encode_text(F.pad(tokens, (0, 77 - tokens.shape[1])))
        features, _ = model.encode_text(tokens)
        end = tokens.argmax(dim=1)
        torch.testing.assert_close(features[torch.arange(2), end], pooled, atol=1e-4, rtol=1e-4)
        assert model(images, tokens).shape == (2, 32, 32)


def test_shipped_encoders_load_whatever_the_attention_chunk():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an encoder left random would warn
        default = create_model("risam_tiny").eval()
        chunked = create_model("risam_tiny", overrides={"image_encoder.attention_chunk": 7}).eval()
    assert chunked.image_encoder.config.attention_chunk == 7
    images = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    for ours, theirs in zip(chunked.image_taps(images), default.image_taps(images), strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_a_nested_override_changes_the_keys_it_names_as_the_dotted_one_does():
    from risam.io.config_files import load_config

    nested = load_config("refshapes_tiny", ["model.overrides.head.tau=0.0"])
    dotted = load_config("refshapes_tiny", ["model.overrides={head.tau: 0.0}"])
    assert nested.model_overrides() != dotted.model_overrides()  # {"head": {"tau": 0}} against {"head.tau": 0}
    from_nested = get_config("risam_tiny", nested.model_overrides())
    assert from_nested == get_config("risam_tiny", dotted.model_overrides())
    assert from_nested.head.tau == 0.0 and from_nested.head.dim == get_config("risam_tiny").head.dim == 64
    deeper = get_config("risam_tiny", {"image_encoder": {"attention_chunk": 7}, "head": {"tau": 0.2, "dim": 32}})
    assert (deeper.image_encoder.attention_chunk, deeper.head.tau, deeper.head.dim) == (7, 0.2, 32)
    assert deeper.image_encoder.embed_dim == get_config("risam_tiny").image_encoder.embed_dim
    # A mapping for a field that is a mapping replaces it.
    swin = {"image_encoder.backbone": "swin_base_patch4_window12_384", "image_encoder.tap_indices": (1, 2, 3)}
    kwargs = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 4}
    config = get_config("risam_tiny", {**swin, "image_encoder": {"timm_kwargs": kwargs}})
    assert config.image_encoder.timm_kwargs == kwargs


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("text_encoder.heads", 0),
        ("head.decoder_heads", 0),
        ("head.dim", -8),
        ("image_encoder.patch_size", 0),
        ("image_encoder.num_heads", 0),
        ("head.sam_decoder_mlp_ratio", 0),
    ],
)
def test_sizes_and_head_counts_below_one_are_one_line_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}={value}: must be at least 1$"):
        get_config("risam_tiny", {key: value})
