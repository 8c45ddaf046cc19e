"""Generated RefShapes scenes as tensors for pretraining: images, dense labels, objects and sentences.

Everything is held in memory: ``num_images`` scenes at 128 x 128 take about 100 KB each.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from risam.data.refshapes import COLOURS, KINDS, SIZES, TEXTURES, refshapes_scenes
from risam.data.transforms import preprocess_image, preprocess_mask

IGNORE = -1
ATTRIBUTES = {"kind": KINDS, "colour": tuple(COLOURS), "size": SIZES, "texture": TEXTURES}


@dataclass
class PretrainingSet:
    """N images with their labels; M objects; S single-target sentences.

    images: N x 3 x S x S (normalized, padded; float16 to save memory).
    labels: name -> N x G x G long maps at the label grid G: ``kind`` is 0 for background and
    1 + the kind index on objects; ``colour``, ``size``, ``texture`` are the attribute index on
    objects and IGNORE elsewhere; ``instance`` is the object's row in ``objects`` (IGNORE off objects).
    centres: M x 2, each object's centre (x, y) as a fraction of the padded input side.
    object_image: M, the image of each object. object_masks: M x F x F, the share of each cell of
    the feature grid F that the object covers. sentences: S raw sentences; sentence_object: S.
    """

    images: torch.Tensor
    labels: dict[str, torch.Tensor]
    centres: torch.Tensor
    object_image: torch.Tensor
    object_masks: torch.Tensor
    sentences: list[str]
    sentence_object: torch.Tensor


def build_pretraining_set(
    num_images: int,
    seed: int,
    img_size: int,
    label_grid: int,
    feature_grid: int,
    pixel_mean: tuple[float, float, float],
    pixel_std: tuple[float, float, float],
    progress: bool = False,
) -> PretrainingSet:
    """The first ``num_images`` RefShapes scenes of generator ``seed``, every split included."""
    images, centres, object_image, object_masks = [], [], [], []
    labels: dict[str, list[torch.Tensor]] = {name: [] for name in (*ATTRIBUTES, "instance")}
    sentences: list[str] = []
    sentence_object: list[int] = []
    scenes = refshapes_scenes(num_images, seed)
    for image_index, scene in enumerate(
        tqdm(scenes, total=num_images, desc="pretraining scenes", unit="image", disable=not progress)
    ):
        scale = max(scene.image.shape[:2])
        tensor, _ = preprocess_image(Image.fromarray(scene.image), img_size, pixel_mean, pixel_std)
        images.append(tensor.half())
        maps = {name: torch.full((label_grid, label_grid), IGNORE, dtype=torch.long) for name in labels}
        maps["kind"].zero_()
        first_object = len(centres)
        for number, shape in enumerate(scene.shapes):
            row = first_object + number
            on = preprocess_mask(shape.mask, label_grid) > 0
            maps["kind"][on] = 1 + KINDS.index(shape.kind)
            for name in ("colour", "size", "texture"):
                maps[name][on] = ATTRIBUTES[name].index(getattr(shape, name))
            maps["instance"][on] = row
            centres.append((shape.x / scale, shape.y / scale))
            fine = preprocess_mask(shape.mask, img_size)
            object_masks.append(F.adaptive_avg_pool2d(fine[None], feature_grid)[0])
            object_image.append(image_index)
        for name, values in maps.items():
            labels[name].append(values)
        for referral in scene.referrals:
            if len(referral.targets) == 1:
                for _, raw in referral.sentences:
                    sentences.append(raw)
                    sentence_object.append(first_object + referral.targets[0])
    return PretrainingSet(
        images=torch.stack(images),
        labels={name: torch.stack(values) for name, values in labels.items()},
        centres=torch.tensor(centres, dtype=torch.float32),
        object_image=torch.tensor(object_image),
        object_masks=torch.stack(object_masks),
        sentences=sentences,
        sentence_object=torch.tensor(sentence_object),
    )


def centre_maps(data: PretrainingSet, image_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell object centres of the images ``image_rows``: (B x 2 x G x G targets, B x G x G bool valid)."""
    instance = data.labels["instance"][image_rows]
    valid = instance != IGNORE
    targets = data.centres[instance.clamp(min=0)].permute(0, 3, 1, 2)
    return targets, valid
