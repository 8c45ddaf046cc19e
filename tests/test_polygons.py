"""Masks as COCO polygons that decode back exactly, and RefShapes that REFER's API reads: every ref's mask by
REFER's rule is the mask risam reads and the mask that was drawn."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from risam.cli import main
from risam.data.polygons import mask_to_polygons
from risam.data.readers import load_split
from risam.data.refshapes import refshapes_scenes

NUM_IMAGES = 16
SEED = 5


def refer_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """REFER's ``getMask`` rule, written from its definition: a polygon list goes through ``frPyObjects``, the
    decoded parts are summed over the last axis, and a pixel is in the mask when the sum is positive."""
    rle = mask_utils.frPyObjects(segmentation, height, width) if isinstance(segmentation[0], list) else segmentation
    return np.sum(mask_utils.decode(rle), axis=2) > 0


def test_random_masks_decode_back_exactly() -> None:
    rng = np.random.default_rng(0)
    for trial in range(400):
        height, width = (int(side) for side in rng.integers(1, 24, size=2))
        mask = rng.random((height, width)) < rng.uniform(0.2, 0.9)  # holes, diagonal touches, single pixels
        polygons = mask_to_polygons(mask)
        if not mask.any():
            assert polygons == []
            continue
        assert all(len(polygon) >= 8 and len(polygon) % 2 == 0 for polygon in polygons), trial
        np.testing.assert_array_equal(refer_mask(polygons, height, width), mask, err_msg=f"trial {trial}")


def test_one_polygon_per_part_and_holes_stay_empty() -> None:
    mask = np.zeros((12, 20), dtype=bool)
    mask[1:10, 1:10] = True
    mask[3:6, 3:6] = False  # a hole
    mask[4, 4] = True  # an island inside the hole: a part of its own
    mask[2:5, 14:19] = True  # a second part
    mask[5, 19] = True  # touches the second part only at a corner: a third part
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 4
    decoded = [refer_mask([polygon], 12, 20) for polygon in polygons]
    np.testing.assert_array_equal(np.sum(decoded, axis=0), mask.astype(int))  # the parts do not overlap
    ring = decoded[0]
    assert ring[1:10, 1:10].sum() == 81 - 9 and not ring[3:6, 3:6].any()


def test_whole_image_and_border_pixels() -> None:
    for mask in (
        np.ones((5, 7), dtype=bool),
        np.eye(6, dtype=bool),
        np.pad(np.ones((1, 1), dtype=bool), ((0, 4), (3, 0))),
    ):
        polygons = mask_to_polygons(mask)
        np.testing.assert_array_equal(refer_mask(polygons, *mask.shape), mask)
    assert mask_to_polygons(np.ones((5, 7), dtype=bool)) == [[-0.5, -0.5, 6.5, -0.5, 6.5, 4.5, -0.5, 4.5]]


@pytest.fixture(scope="module")
def refer_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refer_layout")
    assert (
        main(["data", "synth", "--out", str(root), "--images", str(NUM_IMAGES), "--seed", str(SEED), "--refer-layout"])
        == 0
    )
    return root


def test_refer_layout_opens_where_refer_looks(refer_root: Path) -> None:
    """What ``REFER(root, "refcoco", "unc")`` reads: refs(unc).p (a plain pickle), instances.json, and each
    image's file_name under images/mscoco/images/train2014; every ref's mask by REFER's rule is the drawn one."""
    with open(refer_root / "refcoco" / "refs(unc).p", "rb") as handle:
        refs = pickle.load(handle)
    instances = json.loads((refer_root / "refcoco" / "instances.json").read_text())
    images = {image["id"]: image for image in instances["images"]}
    annotations = {annotation["id"]: annotation for annotation in instances["annotations"]}
    assert {category["id"] for category in instances["categories"]} >= {
        ann["category_id"] for ann in annotations.values()
    }
    for image in images.values():
        assert (refer_root / "images" / "mscoco" / "images" / "train2014" / image["file_name"]).is_file()
    for annotation in annotations.values():
        assert annotation["iscrowd"] == 0 and isinstance(annotation["segmentation"][0], list)

    drawn = {shape.ann_id: shape.mask for scene in refshapes_scenes(NUM_IMAGES, SEED) for shape in scene.shapes}
    read = {}
    for split in ("train", "val", "testA", "testB"):
        data = load_split(refer_root, "refcoco", split)
        read.update({expression.ref_id: data.target_mask(expression) for expression in data.expressions})
    assert len(refs) == len(read) > 0
    for ref in refs:
        annotation = annotations[ref["ann_id"]]
        image = images[ref["image_id"]]
        assert annotation["image_id"] == ref["image_id"] and annotation["category_id"] == ref["category_id"]
        mask = refer_mask(annotation["segmentation"], image["height"], image["width"])
        np.testing.assert_array_equal(mask, drawn[ref["ann_id"]], err_msg=f"ref {ref['ref_id']}")
        np.testing.assert_array_equal(mask, read[ref["ref_id"]], err_msg=f"ref {ref['ref_id']}")


def test_refer_layout_passes_risam_data_check(refer_root: Path, capsys: pytest.CaptureFixture) -> None:
    for dataset in ("refcoco", "grefcoco"):
        assert main(["data", "check", str(refer_root), "--dataset", dataset]) == 0
        assert "no problems found" in capsys.readouterr().out
