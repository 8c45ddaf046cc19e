"""Files in the official formats (Meta's SAM ``.pth``, OpenAI's CLIP ``.pt``), made from
randomly initialised reference models, for tests of the loaders."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn


def meta_sam(
    embed_dim: int,
    depth: int,
    num_heads: int,
    global_attn_indexes: tuple[int, ...],
    window_size: int,
    img_size: int,
) -> Sam:
    """A randomly initialized SAM built as Meta's ``build_sam`` does, with a tiny prompt side.

    Meta initializes the relative position tables and pos_embed to zero; they get random
    values here so that loading them is checked. The patch embedding is scaled down so that
    the first LayerNorm sees a small variance, where its eps (1e-6 in SAM) matters.
    """
    torch.manual_seed(0)
    encoder = ImageEncoderViT(
        img_size=img_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4,
        out_chans=256,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=window_size,
        global_attn_indexes=global_attn_indexes,
    )
    with torch.no_grad():
        encoder.patch_embed.proj.weight.mul_(1e-3)
        encoder.patch_embed.proj.bias.mul_(1e-3)
        encoder.pos_embed.normal_(std=1e-3)
        for block in encoder.blocks:
            block.attn.rel_pos_h.normal_(std=0.5)
            block.attn.rel_pos_w.normal_(std=0.5)
    grid = img_size // 16
    return Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=256,
            transformer=TwoWayTransformer(depth=1, embedding_dim=256, num_heads=2, mlp_dim=32),
            iou_head_hidden_dim=32,
        ),
    ).eval()


def small_openai_clip(output_dim: int, width: int, heads: int, layers: int) -> CLIP:
    """A randomly initialized CLIP with OpenAI's QuickGELU, the given text tower and a 1-layer 16-pixel
    vision tower; :func:`save_openai_jit` with ``image_size=16`` writes it as OpenAI's ``.pt``."""
    return CLIP(
        embed_dim=output_dim,
        vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=16),
        text_cfg=CLIPTextCfg(width=width, heads=heads, layers=layers),
        quick_gelu=True,
    ).eval()


def save_openai_jit(model: CLIP, path: Path, image_size: int) -> None:
    """A TorchScript archive of the whole model, as OpenAI's ``ViT-B-16.pt``: traced, fp16 weights.

    OpenAI's model keeps the causal mask as a plain attribute and stores input_resolution,
    context_length and vocab_size as tensors; open_clip's model registers the mask as a
    buffer, which TorchScript would save (persistent=False is lost) and which open_clip's
    ``load_openai_model`` then refuses. The copy traced here is made to look like OpenAI's.
    """
    mask = model.attn_mask
    delattr(model, "attn_mask")
    model.attn_mask = mask
    for name, value in {
        "input_resolution": image_size,
        "context_length": model.context_length,
        "vocab_size": model.vocab_size,
    }.items():
        if hasattr(model, name):
            delattr(model, name)
        model.register_buffer(name, torch.tensor(value))
    example = (torch.zeros(1, 3, image_size, image_size), torch.zeros(1, model.context_length, dtype=torch.long))
    torch.jit.save(torch.jit.trace(model, example, check_trace=False).half(), path)
