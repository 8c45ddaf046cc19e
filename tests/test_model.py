import pytest
import torch

from risam import create_model
from risam.evaluation.losses import risam_loss

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}


def _logit_scale(model, size=128):
    """Input pixels per logit: the decoder's logits are 4x the image encoder's feature grid."""
    return size // (4 * model.image_encoder.config.feature_size)


def _scenes(model, count=4, size=128):
    """Images with a red, a green and a blue square; each expression names one colour."""
    generator = torch.Generator().manual_seed(0)
    scale = _logit_scale(model, size)
    images, masks, texts = [], [], []
    names = list(COLOURS)
    for index in range(count):
        image = torch.zeros(3, size, size)
        placed = {}
        corners = torch.randperm(4, generator=generator)[:3]
        for name, corner in zip(names, corners.tolist(), strict=True):
            top, left = 16 + (corner // 2) * 56, 16 + (corner % 2) * 56
            image[:, top : top + 40, left : left + 40] = torch.tensor(COLOURS[name])[:, None, None]
            mask = torch.zeros(size // scale, size // scale)
            mask[top // scale : (top + 40) // scale, left // scale : (left + 40) // scale] = 1
            placed[name] = mask
        target = names[index % 3]
        images.append(image)
        masks.append(placed[target])
        texts.append(f"the {target} square")
    return torch.stack(images), model.text_encoder.tokenize(texts), torch.stack(masks)


def _sentences_per_scene(model, count=2):
    """Every image of :func:`_scenes` with all three of its sentences: only the words tell them apart."""
    images, _, _ = _scenes(model, count)
    masks = []
    for image in images:
        for colour in COLOURS.values():
            painted = (image == torch.tensor(colour)[:, None, None]).all(0).float()
            masks.append(torch.nn.functional.avg_pool2d(painted[None], _logit_scale(model))[0].round())
    texts = [f"the {name} square" for _ in range(count) for name in COLOURS]
    image_index = torch.arange(count).repeat_interleave(len(COLOURS))
    return images, image_index, model.text_encoder.tokenize(texts), torch.stack(masks)


def test_tiny_model_overfits_a_handful_of_examples(tiny_model):
    torch.manual_seed(0)
    images, image_index, tokens, masks = _sentences_per_scene(tiny_model)
    optimizer = torch.optim.Adam([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-3)
    tiny_model.train()
    losses = []
    with torch.no_grad():  # the encoders are frozen: their outputs are the same at every step
        taps, text = tiny_model.image_taps(images), tiny_model.encode_text(tokens)
    # Three sentences share each image, so the loss can only fall this far by reading the words.
    for _ in range(150):
        loss = risam_loss(tiny_model(None, None, image_index=image_index, taps=taps, text=text), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], f"loss went from {losses[0]:.4f} to {losses[-1]:.4f}"


def test_gradients_reach_every_trainable_parameter_and_no_encoder_parameter(tiny_model):
    images, tokens, masks = _scenes(tiny_model, count=2)
    tiny_model.train()
    risam_loss(tiny_model(images, tokens), masks).backward()
    for name, param in tiny_model.named_parameters():
        if name.startswith(("image_encoder.", "text_encoder.")):
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert sum(p.numel() for p in tiny_model.parameters() if p.requires_grad) > 0


def test_frozen_encoders_keep_no_activations_and_stay_in_eval(tiny_model):
    images, tokens, _ = _scenes(tiny_model, count=1)
    tiny_model.train()
    assert not tiny_model.image_encoder.training and not tiny_model.text_encoder.training
    assert tiny_model.enhancement.training
    taps = tiny_model.image_encoder(images)
    with torch.enable_grad():
        visual = tiny_model.encode_image(images)
        text, _ = tiny_model.encode_text(tokens)
    assert all(not tap.requires_grad for tap in taps)
    assert visual.enhanced.requires_grad and not text.requires_grad


def test_unfrozen_encoders_train():
    model = create_model("risam_tiny", overrides={"image_encoder.freeze": False, "text_encoder.freeze": False})
    images, tokens, masks = _scenes(model, count=2)
    model.train()
    assert model.image_encoder.training
    risam_loss(model(images, tokens), masks).backward()
    assert model.image_encoder.vit.patch_embed.proj[0].weight.grad is not None
    assert model.text_encoder.model.token_embedding.weight.grad is not None
    assert any(key.startswith("image_encoder.") for key in model.trainable_state_dict())


def test_forward_returns_every_blocks_attention_maps(tiny_model):
    images, tokens, _ = _scenes(tiny_model, count=2)
    tiny_model.eval()
    with torch.no_grad():
        logits, attention = tiny_model(images, tokens, return_attention=True)
        plain = tiny_model(images, tokens)
    torch.testing.assert_close(logits, plain)
    side = 4 * tiny_model.image_encoder.config.feature_size
    assert logits.shape == (2, side, side)
    assert len(attention) == 2
    _, text_padding = tiny_model.encode_text(tokens)
    for block in attention:
        pixels = tiny_model.image_encoder.config.feature_size**2
        assert block.vision_guided.shape == (2, pixels, 17)
        assert block.language_guided.shape == (2, 17, pixels)
        assert torch.all(block.vision_guided[text_padding[:, None, :].expand(-1, pixels, -1)] == 0)


def test_grouped_forward_equals_per_sentence_forward(tiny_model):
    images, tokens, _ = _scenes(tiny_model, count=3)
    image_index = torch.tensor([1, 0, 1])
    tiny_model.eval()
    with torch.no_grad():
        grouped = tiny_model(images[:2], tokens, image_index=image_index)
        separate = tiny_model(images[image_index], tokens)
    torch.testing.assert_close(grouped, separate, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["risam_vit_b", "risam_vit_l", "risam_vit_h"])
def test_paper_models_build_on_the_meta_device(name):
    model = create_model(name, device="meta")
    assert model.decoder.query_token.is_meta
    assert not any(p.requires_grad for p in model.image_encoder.parameters())


def _parameter_bytes(module):
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_frozen_encoders_stored_in_bfloat16_halve_their_memory_and_keep_the_head_in_float32():
    reference = create_model("risam_tiny")
    model = create_model("risam_tiny")
    model.load_state_dict(reference.state_dict())
    encoder_bytes = _parameter_bytes(model.image_encoder) + _parameter_bytes(model.text_encoder)
    head_bytes = _parameter_bytes(model) - encoder_bytes
    model.store_frozen_encoders(torch.bfloat16)
    assert _parameter_bytes(model.image_encoder) + _parameter_bytes(model.text_encoder) == encoder_bytes // 2
    assert _parameter_bytes(model) - encoder_bytes // 2 == head_bytes
    assert {p.dtype for p in model.enhancement.parameters()} | {p.dtype for p in model.decoder.parameters()} == {
        torch.float32
    }

    images, image_index, tokens, masks = _sentences_per_scene(model)
    reference.eval(), model.eval()
    with torch.no_grad():
        expected = reference(images, tokens, image_index=image_index)
        logits = model(images, tokens, image_index=image_index)
    assert logits.dtype == torch.float32
    assert not torch.equal(logits, expected)  # the encoders really ran in bfloat16
    # bf16 keeps 8 bits of mantissa: the logits stay close on the whole, a few pixels move further.
    assert (logits - expected).abs().mean() < 0.02 * expected.abs().mean()
    torch.testing.assert_close(logits, expected, atol=0.15 * expected.abs().max().item(), rtol=0)

    model.train()
    risam_loss(model(images, tokens, image_index=image_index), masks).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.image_encoder.parameters())


def test_store_frozen_encoders_leaves_a_trained_encoder_in_float32():
    model = create_model("risam_tiny", overrides={"image_encoder.freeze": False})
    model.store_frozen_encoders(torch.bfloat16)
    assert {p.dtype for p in model.image_encoder.parameters()} == {torch.float32}
    assert {p.dtype for p in model.text_encoder.parameters()} == {torch.bfloat16}
    images, _, tokens, masks = _sentences_per_scene(model, count=1)
    risam_loss(model(images[[0, 0, 0]], tokens), masks).backward()
    assert model.image_encoder.vit.patch_embed.proj[0].weight.grad.dtype == torch.float32
