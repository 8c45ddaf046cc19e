"""RefShapes files: scenes written in REFER's and gRefCOCO's formats under a data root.

:func:`generate_refshapes` writes the images (PNG without timestamps), one COCO ``instances.json``
for both datasets (JSON with sorted keys), ``refs(unc).p`` (REFER: one target per ref, a pickle,
protocol 2, of plain dicts, lists, strings and ints) and ``grefs(unc).json`` (gRefCOCO: also
multi- and no-target refs), so that the same seed writes the same bytes. Every annotation is a
non-crowd object stored as a list of polygons, as in COCO, so that REFER's ``getMask`` decodes it.

Every sentence record (REFER's ``{sent_id, sent, raw, tokens}``) also carries ``type``, its
:func:`~risam.data.refshapes.grammar.sentence_type`; REFER's own readers ignore the key,
:func:`~risam.data.readers.load_split` reads it into ``Expression.sentence_type``. A ref's
``file_name`` is, as in REFER, the image's with the annotation id appended in ``refs(unc).p``,
and the image's own in ``grefs(unc).json``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from risam.data.catalog import dataset_spec
from risam.data.polygons import mask_to_polygons
from risam.data.refshapes.grammar import Referral, normalize_sentence
from risam.data.refshapes.scene import SPLITS, Scene, refshapes_scenes
from risam.data.refshapes.shapes import CATEGORIES, CATEGORY_IDS, Shape
from risam.io.files import atomic_write_bytes, atomic_write_text
from risam.io.images import atomic_save_image

# Where ``refer_layout`` puts the refs and grefs: REFER's RefCOCO and gRefCOCO folders (images under COCO's).
REFER_LAYOUT = ("refcoco", "grefcoco")


def generate_refshapes(
    out: str | Path,
    num_images: int,
    seed: int,
    expressions_per_image: int = 7,
    progress: bool = False,
    refer_layout: bool = False,
) -> dict[str, dict[str, int]]:
    """Write RefShapes under the data root ``out`` (the layout is in :mod:`risam.data.refshapes`).

    ``progress`` shows a progress bar with throughput and ETA. ``refer_layout`` writes the same files
    where REFER and gRefCOCO look for RefCOCO and gRefCOCO (:data:`REFER_LAYOUT`), so that their APIs
    (``REFER(out, "refcoco", "unc")``) and other projects' data scripts open them unchanged; risam then
    reads them as ``refcoco`` and ``grefcoco``.

    Returns per-split counts, a plain dict ``{split: {"images", "objects", "sentences",
    "gref_sentences"}}``: ``sentences`` counts the single-target sentences of ``refs(unc).p``,
    ``gref_sentences`` all sentences of ``grefs(unc).json``.
    """
    out = Path(out)
    refs_dataset, grefs_dataset = REFER_LAYOUT if refer_layout else ("refshapes", "grefshapes")
    image_dir = out / dataset_spec(refs_dataset).image_dir
    image_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    grefs: list[dict[str, Any]] = []
    summary = {split: {"images": 0, "objects": 0, "sentences": 0, "gref_sentences": 0} for split in SPLITS}
    scenes = refshapes_scenes(num_images, seed, expressions_per_image)
    for scene in tqdm(scenes, total=num_images, desc="RefShapes", unit="image", disable=not progress):
        atomic_save_image(image_dir / scene.file_name, Image.fromarray(scene.image), "PNG")
        height, width = scene.image.shape[:2]
        images.append({"id": scene.image_id, "file_name": scene.file_name, "height": height, "width": width})
        annotations.extend(_annotation(scene.image_id, shape) for shape in scene.shapes)
        counts = summary[scene.split]
        counts["images"] += 1
        counts["objects"] += len(scene.shapes)
        for referral in scene.referrals:
            grefs.append(_gref(scene, referral))
            counts["gref_sentences"] += len(referral.sentences)
            if len(referral.targets) == 1:
                refs.append(_ref(scene, referral))
                counts["sentences"] += len(referral.sentences)

    instances = json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}, sort_keys=True)
    for name in (refs_dataset, grefs_dataset):
        folder = out / dataset_spec(name).folder
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "instances.json", instances)
    refs_spec, grefs_spec = dataset_spec(refs_dataset), dataset_spec(grefs_dataset)
    atomic_write_bytes(out / refs_spec.folder / refs_spec.refs_file, pickle.dumps(refs, protocol=2))
    atomic_write_text(out / grefs_spec.folder / grefs_spec.refs_file, json.dumps(grefs, sort_keys=True))
    return summary


def _annotation(image_id: int, shape: Shape) -> dict[str, Any]:
    """The COCO annotation of one shape (never a crowd): a list of polygons, as COCO stores non-crowd objects.

    An unoccluded polygonal shape keeps the polygon it was drawn from; any other mask is stored as the
    outline polygons of :func:`~risam.data.polygons.mask_to_polygons`, which decode to it exactly.
    """
    ys, xs = np.nonzero(shape.mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": shape.ann_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS[shape.kind],
        "segmentation": [list(shape.polygon)] if shape.polygon is not None else mask_to_polygons(shape.mask),
        "area": float(shape.mask.sum()),
        "bbox": [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)],
        "iscrowd": 0,
    }


def _sentences(referral: Referral) -> list[dict[str, Any]]:
    """REFER's sentence records: ``raw`` as written, ``sent`` normalized, ``tokens`` its words, and
    ``type`` the sentence's :func:`sentence_type`."""
    records = []
    for (sent_id, raw), kind in zip(referral.sentences, referral.sentence_types, strict=True):
        sent = normalize_sentence(raw)
        records.append({"tokens": sent.split(), "raw": raw, "sent_id": sent_id, "sent": sent, "type": kind})
    return records


def _ref(scene: Scene, referral: Referral) -> dict[str, Any]:
    """A REFER ref (``refs(unc).p``) of a single-target referral; as in REFER, its ``file_name`` is the
    image's with the annotation id appended."""
    shape = scene.shapes[referral.targets[0]]
    return {
        "ref_id": referral.ref_id,
        "ann_id": shape.ann_id,
        "image_id": scene.image_id,
        "split": scene.split,
        "sentences": _sentences(referral),
        "sent_ids": [sent_id for sent_id, _ in referral.sentences],
        "category_id": CATEGORY_IDS[shape.kind],
        "file_name": f"{Path(scene.file_name).stem}_{shape.ann_id}.png",
    }


def _gref(scene: Scene, referral: Referral) -> dict[str, Any]:
    """A gRefCOCO ref (``grefs(unc).json``): ``ann_id`` a list, ``[-1]`` and ``no_target`` for no target;
    ``file_name`` is the image's."""
    shapes = [scene.shapes[index] for index in referral.targets]
    return {
        "ref_id": referral.ref_id,
        "ann_id": [shape.ann_id for shape in shapes] or [-1],
        "no_target": not shapes,
        "image_id": scene.image_id,
        "split": scene.split,
        "sentences": _sentences(referral),
        "sent_ids": [sent_id for sent_id, _ in referral.sentences],
        "category_id": [CATEGORY_IDS[shape.kind] for shape in shapes],
        "file_name": scene.file_name,
    }
