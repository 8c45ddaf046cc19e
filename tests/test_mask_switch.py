"""``benchmarks/mask_switch.py``'s switch: the mask at tau in the blocks a setting names, for MA and SDF models
trained without it, and the model as trained again afterwards."""

import pytest
import torch
from benchmarks.mask_switch import settings, switched

from risam.ablation.variants import VARIANTS
from risam.registry.create import create_model


def _model_and_batch(variant):
    torch.manual_seed(0)
    model = create_model("risam_tiny", overrides=VARIANTS[variant].overrides).eval()
    size = model.image_encoder.config.img_size
    images = torch.randn(2, 3, size, size)
    tokens = model.text_encoder.tokenize(["the red square on the left", "a big blue circle"])
    return model, images, tokens


@pytest.mark.parametrize("variant", ["no_attn_mask", "sdf_fusion"])
@torch.no_grad()
def test_each_setting_masks_its_blocks_and_the_trained_model_comes_back(variant):
    model, images, tokens = _model_and_batch(variant)
    expected = ["trained", "all_blocks", "block_1", "block_1_vision_guided", "block_2", "block_2_vision_guided"]
    if variant == "sdf_fusion":  # one branch per block: masking the block masks it
        expected = [name for name in expected if not name.endswith("_vision_guided")]
    assert settings(model) == expected
    trained_logits, trained = model(images, tokens, return_attention=True)
    mask_settings = [(block.tau, getattr(block, "masked", None)) for block in model.fusion]  # SDF keeps tau unused
    for setting in expected:
        with switched(model, setting, tau=0.6):
            logits, maps = model(images, tokens, return_attention=True)
        # A masked block's vision-guided map puts no weight on the pairs the mask drops (beyond the padding words,
        # which every map leaves out); a block before the first masked one is as trained.
        for index, (map_now, map_then) in enumerate(zip(maps, trained, strict=True)):
            masked = setting == "all_blocks" or setting.startswith(f"block_{index + 1}")
            dropped = (map_now.vision_guided == 0).sum() - (map_then.vision_guided == 0).sum()
            assert (dropped > 0) == masked and dropped >= 0, (setting, index)
            if setting == "trained" or (setting.startswith("block_2") and index == 0):
                assert torch.equal(map_now.vision_guided, map_then.vision_guided)
        assert torch.equal(logits, trained_logits) == (setting == "trained")
    assert torch.equal(model(images, tokens), trained_logits)
    assert [(block.tau, getattr(block, "masked", None)) for block in model.fusion] == mask_settings
    with pytest.raises(ValueError, match="setting 'block_3'"), switched(model, "block_3", tau=0.6):
        pass
