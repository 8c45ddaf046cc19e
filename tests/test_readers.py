"""Readers and the data check on tiny data roots written by hand in the published formats."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from box_masks import box, box_polygon
from risam.config import ConfigError
from risam.data.catalog import COCO_IMAGES
from risam.data.check import check_data_root
from risam.data.masks import AnnotationError, encode_mask
from risam.data.readers import load_split

# Two COCO-style images: 1 (16 x 20) holds objects 101-104, 2 (12 x 10) holds 201-202.
SIZES = {1: (16, 20), 2: (12, 10)}
FILE_NAMES = {1: "COCO_train2014_000000000001.jpg", 2: "COCO_train2014_000000000002.jpg"}


def uncompressed_rle(mask):
    """COCO's uncompressed RLE: run lengths in column-major order, starting with a (maybe empty) run of 0."""
    flat = mask.flatten(order="F")
    boundaries = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    counts = np.diff(np.concatenate([[0], boundaries, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + counts}


MASKS = {
    101: box(SIZES[1], (2, 7, 2, 9), (12, 15, 10, 14)),
    102: box(SIZES[1], (8, 14, 3, 6), (12, 14, 6, 12)),
    103: box(SIZES[1], (0, 4, 12, 20), (5, 6, 15, 16)),
    104: box(SIZES[1], (9, 11, 15, 19)),
    201: box(SIZES[2], (1, 5, 1, 4)),
    202: box(SIZES[2], (6, 11, 5, 9)),
}


def instances():
    """instances.json: polygons, a compressed RLE (102) and an uncompressed RLE of a crowd (103)."""
    segmentations = {
        101: [box_polygon(2, 7, 2, 9), box_polygon(12, 15, 10, 14)],
        102: encode_mask(MASKS[102]),
        103: uncompressed_rle(MASKS[103]),
        104: [box_polygon(9, 11, 15, 19)],
        201: [box_polygon(1, 5, 1, 4)],
        202: [box_polygon(6, 11, 5, 9)],
    }
    return {
        "info": {},
        "licenses": [],
        "images": [
            {"id": image_id, "file_name": FILE_NAMES[image_id], "height": h, "width": w}
            for image_id, (h, w) in SIZES.items()
        ],
        "annotations": [
            {
                "id": ann_id,
                "image_id": ann_id // 100,
                "segmentation": segmentation,
                "area": int(MASKS[ann_id].sum()),
                "bbox": [0, 0, 1, 1],
                "category_id": 1,
                "iscrowd": int(ann_id == 103),
            }
            for ann_id, segmentation in segmentations.items()
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }


def sentences(*pairs):
    """REFER sentences from (sent_id, sent) pairs; ``raw`` is the cased, punctuated form."""
    return [
        {"sent_id": sent_id, "sent": sent, "raw": sent.capitalize() + ".", "tokens": sent.split()}
        for sent_id, sent in pairs
    ]


def refer_ref(ref_id, ann_id, image_id, split, *pairs):
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "sentences": sentences(*pairs),
        "sent_ids": [sent_id for sent_id, _ in pairs],
        "category_id": 1,
        "file_name": FILE_NAMES[image_id].replace(".jpg", f"_{ann_id}.jpg"),
    }


REFS = [
    refer_ref(1, 101, 1, "train", (11, "the two boxes on the left"), (12, "left boxes")),
    refer_ref(2, 102, 1, "train", (21, "the l shape")),
    refer_ref(3, 103, 1, "train", (31, "crowd at the top right")),
    refer_ref(4, 201, 2, "val", (41, "top box"), (42, "upper left")),
]

GREFS = [
    {**refer_ref(1, [101, 102], 1, "train", (11, "both shapes")), "no_target": False, "category_id": [1, 1]},
    {**refer_ref(2, [-1], 1, "train", (21, "the dog"), (22, "a cat")), "no_target": True, "category_id": []},
    {**refer_ref(3, [101, 103], 1, "train", (31, "the boxes and the crowd")), "no_target": False},
    {**refer_ref(4, 201, 2, "val", (41, "the top box")), "no_target": False},
]


def write_images(directory, names_and_sizes):
    directory.mkdir(parents=True, exist_ok=True)
    for name, (h, w) in names_and_sizes:
        Image.new("RGB", (w, h), (120, 30, 200)).save(directory / name)


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


@pytest.fixture
def coco_root(tmp_path):
    """A data root with refcoco (refs(unc).p) and grefcoco (grefs(unc).json) over the same COCO images."""
    write_images(tmp_path / COCO_IMAGES, [(FILE_NAMES[i], SIZES[i]) for i in SIZES])
    write_json(tmp_path / "refcoco" / "instances.json", instances())
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(REFS, protocol=2))
    write_json(tmp_path / "grefcoco" / "instances.json", instances())
    write_json(tmp_path / "grefcoco" / "grefs(unc).json", GREFS)
    return tmp_path


def rewrite_refs(root, change):
    """Apply ``change`` to the refcoco refs list and write it back."""
    path = root / "refcoco" / "refs(unc).p"
    refs = pickle.loads(path.read_bytes())
    change(refs)
    path.write_bytes(pickle.dumps(refs, protocol=2))
    return path


def rewrite_instances(root, change):
    path = root / "refcoco" / "instances.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


# PhraseCut: tasks on VG images 5 (10 x 20) and 6 (8 x 9); image 7 is in another split.
PHRASECUT_SIZES = {5: (10, 20), 6: (8, 9), 7: (4, 4)}


def points(y0, y1, x0, x1):
    """A PhraseCut polygon ([x, y] points) covering rows y0:y1, columns x0:x1."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


TASKS = [
    {
        "task_id": "5__11_12",
        "image_id": 5,
        "ann_ids": [11, 12],
        "phrase": "two white boxes",
        "instance_boxes": [[1, 1, 5, 4], [8, 2, 10, 7]],
        "Polygons": [[points(1, 5, 1, 6)], [points(6, 9, 8, 12), points(2, 4, 14, 18)]],
        "phrase_structure": {"name": "box", "attributes": ["white"], "relation_descriptions": [], "type": "attribute"},
    },
    {
        "task_id": "6__13",
        "image_id": 6,
        "ann_ids": [13],
        "phrase": "square",
        "instance_boxes": [[1, 1, 3, 3]],
        "Polygons": [[points(1, 4, 1, 4), [[6, 6], [7, 7]]]],
        "phrase_structure": {"name": "square", "attributes": [], "relation_descriptions": [], "type": "name"},
    },
    {
        "task_id": "6__14",
        "image_id": 6,
        "ann_ids": [14],
        "phrase": "thin line",
        "instance_boxes": [[0, 0, 1, 1]],
        "Polygons": [[[[0, 0], [1, 1]]]],
        "phrase_structure": {"name": "line", "attributes": ["thin"], "relation_descriptions": [], "type": "attribute"},
    },
]


@pytest.fixture
def phrasecut_root(tmp_path):
    folder = tmp_path / "phrasecut"
    write_json(folder / "refer_test.json", TASKS)
    write_json(
        folder / "image_data_split.json",
        [
            {"image_id": i, "height": h, "width": w, "split": "test" if i < 7 else "train", "coco_id": None, "url": ""}
            for i, (h, w) in PHRASECUT_SIZES.items()
        ],
    )
    write_images(folder / "images", [(f"{i}.jpg", PHRASECUT_SIZES[i]) for i in (5, 6)])
    return tmp_path


def targets_by_sentence(data):
    return {expression.sent_id: data.target_mask(expression) for expression in data.expressions}


def test_refcoco_train_one_expression_per_sentence_with_exact_masks(coco_root):
    data = load_split(coco_root, "refcoco", "train")
    assert [(e.sent_id, e.ref_id, e.image_id, e.target_ids) for e in data.expressions] == [
        (11, 1, 1, (101,)),
        (12, 1, 1, (101,)),
        (21, 2, 1, (102,)),
        (31, 3, 1, (103,)),
    ]
    assert data.expressions[0].sentence == "the two boxes on the left"  # REFER's 'sent', not 'raw'
    assert list(data.images) == [1]
    image = data.images[1]
    assert image.path == coco_root / COCO_IMAGES / FILE_NAMES[1]
    assert (image.height, image.width) == SIZES[1]
    assert data.objects_by_image == {1: [101, 102, 103, 104]}
    assert set(data.segmentations) == {101, 102, 103, 104}
    assert data.source == str(coco_root / "refcoco" / "instances.json")
    masks = targets_by_sentence(data)
    for sent_id, ann_id in [(11, 101), (12, 101), (21, 102), (31, 103)]:
        assert masks[sent_id].shape == SIZES[1]
        np.testing.assert_array_equal(masks[sent_id], MASKS[ann_id])
    np.testing.assert_array_equal(data.object_mask(104, 1), MASKS[104])


def test_refcoco_splits_are_separate_and_image_root_replaces_the_image_folder(coco_root, tmp_path):
    data = load_split(coco_root, "refcoco", "val", image_root=tmp_path / "elsewhere")
    assert [e.sent_id for e in data.expressions] == [41, 42]
    assert list(data.images) == [2]
    assert data.images[2].path == tmp_path / "elsewhere" / FILE_NAMES[2]
    assert data.objects_by_image == {2: [201, 202]}
    np.testing.assert_array_equal(data.target_mask(data.expressions[1]), MASKS[201])
    empty = load_split(coco_root, "refcoco", "testB")
    assert (empty.expressions, empty.images, empty.segmentations) == ([], {}, {})


def test_raw_is_the_sentence_only_where_sent_is_missing(coco_root):
    rewrite_refs(coco_root, lambda refs: refs[1]["sentences"][0].pop("sent"))
    data = load_split(coco_root, "refcoco", "train")
    assert [e.sentence for e in data.expressions] == [
        "the two boxes on the left",
        "left boxes",
        "The l shape.",
        "crowd at the top right",
    ]


def test_grefcoco_multi_target_union_no_target_and_crowd_left_out(coco_root):
    data = load_split(coco_root, "grefcoco", "train")
    assert {e.sent_id: e.target_ids for e in data.expressions} == {11: (101, 102), 21: (), 22: (), 31: (101,)}
    assert [e.no_target for e in data.expressions] == [False, True, True, False]
    masks = targets_by_sentence(data)
    np.testing.assert_array_equal(masks[11], MASKS[101] | MASKS[102])
    assert (MASKS[101] & MASKS[102]).any()  # the two objects overlap: a union, not a sum
    assert masks[21].shape == SIZES[1] and not masks[21].any()
    np.testing.assert_array_equal(masks[31], MASKS[101])  # the crowd annotation 103 is not part of the target
    assert data.objects_by_image == {1: [101, 102, 103, 104]}

    val = load_split(coco_root, "grefcoco", "val")  # ann_id given as a single int
    assert [(e.sent_id, e.target_ids) for e in val.expressions] == [(41, (201,))]


def test_phrasecut_tasks_instances_and_sizes(phrasecut_root):
    data = load_split(phrasecut_root, "phrasecut", "test")
    assert [(e.sent_id, e.ref_id, e.image_id, e.sentence, e.target_ids) for e in data.expressions] == [
        (0, 0, 5, "two white boxes", (0, 1)),
        (1, 1, 6, "square", (2,)),
        (2, 2, 6, "thin line", (3,)),
    ]
    assert {i: (r.height, r.width) for i, r in data.images.items()} == {5: (10, 20), 6: (8, 9)}
    assert data.images[5].path == phrasecut_root / "phrasecut" / "images" / "5.jpg"
    assert data.objects_by_image == {5: [0, 1], 6: [2, 3]}
    assert data.segmentations[1] == [[8, 6, 12, 6, 12, 9, 8, 9], [14, 2, 18, 2, 18, 4, 14, 4]]
    masks = targets_by_sentence(data)
    np.testing.assert_array_equal(masks[0], box((10, 20), (1, 5, 1, 6), (6, 9, 8, 12), (2, 4, 14, 18)))
    np.testing.assert_array_equal(data.object_mask(0, 5), box((10, 20), (1, 5, 1, 6)))
    np.testing.assert_array_equal(masks[1], box((8, 9), (1, 4, 1, 4)))  # the 2-point polygon has no area
    assert masks[2].shape == (8, 9) and not masks[2].any()


def test_unknown_dataset_and_split_name_the_known_ones(coco_root):
    with pytest.raises(ConfigError, match=r"refcoco\+"):
        load_split(coco_root, "refcocox", "train")
    with pytest.raises(ConfigError, match=r"'testC'.*train, val, testA, testB"):
        load_split(coco_root, "refcoco", "testC")


@pytest.mark.parametrize("missing", ["refs(unc).p", "instances.json"])
def test_missing_annotation_file_names_it_and_the_layout(coco_root, missing):
    (coco_root / "refcoco" / missing).unlink()
    with pytest.raises(FileNotFoundError) as raised:
        load_split(coco_root, "refcoco", "train")
    message = str(raised.value)
    assert str(coco_root / "refcoco" / missing) in message
    assert "REFER's layout" in message and "refs(unc).p" in message and "instances.json" in message


def test_missing_phrasecut_file_names_it(phrasecut_root):
    with pytest.raises(FileNotFoundError, match=r"refer_val.json.*VGPhraseCut_v0"):
        load_split(phrasecut_root, "phrasecut", "val")
    (phrasecut_root / "phrasecut" / "image_data_split.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"image_data_split.json"):
        load_split(phrasecut_root, "phrasecut", "test")


def test_unknown_ann_id_names_refs_file_ref_and_ann_id(coco_root):
    path = rewrite_refs(coco_root, lambda refs: refs[1].update(ann_id=999))
    with pytest.raises(AnnotationError) as raised:
        load_split(coco_root, "refcoco", "train")
    message = str(raised.value)
    assert str(path) in message and "ref_id 2" in message and "ann_id 999" in message and "instances.json" in message


def test_ann_id_of_another_image_is_refused(coco_root):
    rewrite_refs(coco_root, lambda refs: refs[0].update(ann_id=201))
    with pytest.raises(AnnotationError, match=r"ref_id 1.*ann_id 201.*image 2.*image_id is 1"):
        load_split(coco_root, "refcoco", "train")


def test_unknown_image_id_names_refs_file_ref_and_image_id(coco_root):
    path = rewrite_refs(coco_root, lambda refs: refs[2].update(image_id=77))
    with pytest.raises(AnnotationError) as raised:
        load_split(coco_root, "refcoco", "train")
    message = str(raised.value)
    assert str(path) in message and "ref_id 3" in message and "image_id 77" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda refs: refs[0].pop("sentences"), r"ref 0 \(ref_id 1\): missing key 'sentences'"),
        (lambda refs: refs[3].pop("ref_id"), "ref 3: missing key 'ref_id'"),
        (lambda refs: refs[1]["sentences"][0].pop("sent_id"), r"ref 1 \(ref_id 2\) sentence 0: missing key 'sent_id'"),
        (lambda refs: refs[2].pop("split"), r"ref 2 \(ref_id 3\): missing key 'split'"),
    ],
)
def test_missing_ref_key_names_file_ref_and_key(coco_root, change, expected):
    rewrite_refs(coco_root, change)
    with pytest.raises(AnnotationError, match=expected) as raised:
        load_split(coco_root, "refcoco", "train")
    assert "refs(unc).p" in str(raised.value)


def test_missing_instances_key_names_file_entry_and_key(coco_root):
    rewrite_instances(coco_root, lambda data: data["annotations"][2].pop("segmentation"))
    with pytest.raises(
        AnnotationError, match=r"instances.json: annotations\[2\] \(id 103\): missing key 'segmentation'"
    ):
        load_split(coco_root, "refcoco", "train")
    rewrite_instances(coco_root, lambda data: data.pop("images"))
    with pytest.raises(AnnotationError, match=r"instances.json: missing key 'images'"):
        load_split(coco_root, "refcoco", "train")


def test_refs_pickle_with_a_global_is_refused_through_the_reader(coco_root):
    marker = coco_root / "marker"

    class RunsCommand:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (coco_root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([RunsCommand()], protocol=2))
    with pytest.raises(AnnotationError, match=r"refs\(unc\)\.p: refused to load the global .*system"):
        load_split(coco_root, "refcoco", "train")
    assert not marker.exists()


def test_malformed_polygon_error_names_the_file_and_object(coco_root):
    rewrite_instances(coco_root, lambda data: data["annotations"][0].update(segmentation=[[1, 2, 3]]))
    data = load_split(coco_root, "refcoco", "train")  # segmentations decode on demand
    with pytest.raises(AnnotationError, match=r"instances\.json object 101: polygon 0 .* malformed"):
        data.target_mask(data.expressions[0])


def test_grefcoco_ann_id_mixing_no_target_marker_is_refused(coco_root):
    refs = [dict(GREFS[0], ann_id=[-1, 101])]
    write_json(coco_root / "grefcoco" / "grefs(unc).json", refs)
    with pytest.raises(AnnotationError, match=r"grefs\(unc\)\.json: ref 0 \(ref_id 1\): 'ann_id' \[-1, 101\]"):
        load_split(coco_root, "grefcoco", "train")


def test_phrasecut_errors_name_file_task_and_key(phrasecut_root):
    path = phrasecut_root / "phrasecut" / "refer_test.json"
    write_json(path, [dict(TASKS[0], image_id=99)])
    with pytest.raises(AnnotationError, match=r"task 0 \(task_id 5__11_12\): image_id 99 .*image_data_split.json"):
        load_split(phrasecut_root, "phrasecut", "test")
    write_json(path, [TASKS[0], dict(TASKS[1], Polygons=[[[[1, 2, 3], [4, 5]]]])])
    with pytest.raises(AnnotationError, match=r"refer_test.json: task 1 \(task_id 6__13\) 'Polygons'\[0\]: polygon 0"):
        load_split(phrasecut_root, "phrasecut", "test")
    write_json(path, [{key: value for key, value in TASKS[2].items() if key != "phrase"}])
    with pytest.raises(AnnotationError, match=r"task 0 \(task_id 6__14\): missing key 'phrase'"):
        load_split(phrasecut_root, "phrasecut", "test")


def test_check_counts_a_clean_root(coco_root):
    report = check_data_root(coco_root, "refcoco")
    assert report.ok, report.problems
    counts = {c.split: (c.images, c.objects, c.sentences) for c in report.splits}
    assert counts == {"train": (1, 3, 4), "val": (1, 1, 2), "testA": (0, 0, 0), "testB": (0, 0, 0)}
    table = report.format().splitlines()
    assert table[1].split() == ["split", "|", "images", "|", "objects", "|", "sentences"]
    assert table[3].split() == ["train", "|", "1", "|", "3", "|", "4"]
    assert "no problems found" in report.format()

    grefs = check_data_root(coco_root, "grefcoco")
    assert grefs.ok, grefs.problems
    assert [(c.split, c.objects, c.sentences, c.no_target) for c in grefs.splits[:2]] == [
        ("train", 2, 4, 2),
        ("val", 1, 1, 0),
    ]
    assert "no-target" in grefs.format().splitlines()[1]


def test_check_reports_every_problem_with_file_names(coco_root):
    refs_path = rewrite_refs(coco_root, lambda refs: refs[1].update(ann_id=999))
    instances_path = rewrite_instances(
        coco_root, lambda data: data["annotations"][0].update(segmentation=[[1, 2, 3, "x", 5, 6]])
    )
    missing_image = coco_root / COCO_IMAGES / FILE_NAMES[2]
    missing_image.unlink()

    report = check_data_root(coco_root, "refcoco")
    assert not report.ok
    assert len(report.problems) == 3, report.problems
    bad_ann, bad_polygon, no_image = report.problems
    assert str(refs_path) in bad_ann and "ref_id 2" in bad_ann and "ann_id 999" in bad_ann
    assert str(instances_path) in bad_polygon and "object 101" in bad_polygon and "malformed" in bad_polygon
    assert str(missing_image) in no_image and "image_id 2" in no_image and str(instances_path) in no_image
    counts = {c.split: (c.images, c.objects, c.sentences) for c in report.splits}
    assert counts["train"] == (1, 2, 3)  # ref 2 skipped, the others still counted
    text = report.format()
    assert "3 problem(s)" in text and str(missing_image) in text and "ann_id 999" in text


def test_check_goes_on_past_a_split_that_cannot_be_read(phrasecut_root):
    report = check_data_root(phrasecut_root, "phrasecut")
    assert [c.split for c in report.splits] == ["test"]
    assert [(c.images, c.objects, c.sentences) for c in report.splits] == [(2, 4, 3)]
    folder = Path(phrasecut_root) / "phrasecut"
    assert report.problems == [
        f"{folder / 'refer_train.json'} does not exist; dataset 'phrasecut' expects VGPhraseCut_v0's files in "
        f"{folder}: refer_<split>.json and image_data_split.json",
        f"{folder / 'refer_val.json'} does not exist; dataset 'phrasecut' expects VGPhraseCut_v0's files in "
        f"{folder}: refer_<split>.json and image_data_split.json",
    ]


def test_image_size_must_be_positive_ints(coco_root):
    rewrite_instances(coco_root, lambda data: data["images"][0].update(height=0))
    with pytest.raises(AnnotationError, match=r"instances.json: image 1: 'height' and 'width' must be positive ints"):
        load_split(coco_root, "refcoco", "train")
