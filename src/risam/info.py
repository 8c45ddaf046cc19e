"""A model's parts, parameter counts and input settings, as printed by ``risam info``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from risam.modeling.build import build_model
from risam.modeling.slots import DECODER, ENHANCEMENT, FUSION, IMAGE_ENCODER
from risam.precision import choose_precision
from risam.registry.names import get_config


def _count(module: nn.Module) -> dict[str, int]:
    params = list(module.parameters())
    return {
        "params": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def precision_info() -> dict[str, dict[str, str]]:
    """What ``--precision auto`` picks on this machine's CPU (and CUDA device, if any), and why."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    choices = {device: choose_precision("auto", device) for device in devices}
    return {device: {"precision": choice.name, "reason": choice.reason} for device, choice in choices.items()}


def model_info(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Describe registered model ``name`` with dotted config ``overrides`` (an ablation, e.g.
    ``{"head.fusion": "conv"}``); built on the meta device, so no weights are needed.

    ``parts`` counts the parameters of each part, named by its slot (:mod:`risam.modeling.slots`);
    ``components`` gives the human label of each slot's choice; ``precision_auto`` what
    ``--precision auto`` picks for the frozen encoders on this machine (:func:`precision_info`)."""
    config = get_config(name, overrides)
    model = build_model(config, device="meta")
    image, text, head = config.image_encoder, config.text_encoder, config.head
    encoder = IMAGE_ENCODER[image.family].describe(image)
    parts = {
        f"image_encoder ({encoder}{', frozen' if image.freeze else ''})": _count(model.image_encoder),
        f"text_encoder ({text.variant}{', frozen' if text.freeze else ''})": _count(model.text_encoder),
        ENHANCEMENT[head.enhancement].describe(head): _count(model.enhancement),
        FUSION[head.fusion].describe(head): _count(model.fusion),
        DECODER[head.decoder].describe(head) + (" + stride-8/4 maps" if image.high_res_features else ""): _count(
            model.decoder
        ),
    }
    total = _count(model)
    return {
        "model": name,
        "parts": parts,
        "components": {
            "image_encoder": IMAGE_ENCODER.label(image.family),
            "enhancement": ENHANCEMENT.label(head.enhancement),
            "fusion": FUSION.label(head.fusion),
            "decoder": DECODER.label(head.decoder),
        },
        "total_params": total["params"],
        "trainable_params": total["trainable"],
        "trainable_share": total["trainable"] / total["params"],
        "global_attn_indexes": list(model.image_encoder.global_attn_indexes),
        "tap_indices": list(image.tap_indices),
        "input_size": [image.img_size, image.img_size],
        "feature_size": [image.feature_size, image.feature_size],
        "mask_logits_size": [4 * image.feature_size, 4 * image.feature_size],
        "max_words": text.max_words,
        "text_feature_dim": text.feature_dim,
        "head_dim": head.dim,
        "precision_auto": precision_info(),
    }


def format_info(info: dict[str, Any]) -> str:
    """The human-readable table of :func:`model_info`."""
    width = max(len(part) for part in info["parts"])
    lines = [f"{info['model']}", f"  {'part':<{width}}  {'params':>13}  {'trainable':>13}"]
    for part, counts in info["parts"].items():
        lines.append(f"  {part:<{width}}  {counts['params']:>13,}  {counts['trainable']:>13,}")
    lines += [
        f"  {'total':<{width}}  {info['total_params']:>13,}  {info['trainable_params']:>13,}",
        f"  trainable share: {100 * info['trainable_share']:.2f}%",
        f"  tapped blocks: {tuple(info['tap_indices'])}"
        + (f" (global attention at {tuple(info['global_attn_indexes'])})" if info["global_attn_indexes"] else ""),
        f"  input size: {info['input_size'][0]}x{info['input_size'][1]}, features "
        f"{info['feature_size'][0]}x{info['feature_size'][1]}, mask logits "
        f"{info['mask_logits_size'][0]}x{info['mask_logits_size'][1]}",
        f"  text length: {info['max_words']} tokens (start and end included), C' = {info['text_feature_dim']}",
        f"  head width C = {info['head_dim']}",
        *(f"  {slot}: {label}" for slot, label in info["components"].items()),
        *(
            f"  precision auto on {device}: {choice['precision']} ({choice['reason']})"
            for device, choice in info["precision_auto"].items()
        ),
    ]
    return "\n".join(lines)
