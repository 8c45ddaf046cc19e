"""Users' own data (``custom``, ``refs.jsonl``): masks as drawn, ids, splits, bad lines named, train and evaluate."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from box_masks import box, box_polygon
from risam.cli import main
from risam.data.masks import AnnotationError, encode_mask
from risam.data.readers import load_split

# Image sizes (height, width): street and park in train, far (an absolute path) in val.
STREET, PARK, FAR = (16, 20), (12, 10), (8, 8)


# The target drawn for each line of the good file, by line number (line 3 is blank, line 6 refers to nothing).
DRAWN = {
    1: box(STREET, (2, 7, 2, 9), (12, 15, 10, 14)),
    2: box(STREET, (8, 14, 3, 6)),
    4: box(PARK, (1, 5, 1, 4)),
    5: box(FAR, (2, 6, 2, 6)),
    7: box(STREET, (0, 4, 12, 20)),
    8: box(PARK, (6, 11, 5, 9)),
}


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def custom_root(tmp_path):
    """A data root with refs.jsonl over three images; its masks are polygons, RLE and PNGs."""
    root = tmp_path / "data"
    write_png(root / "photos" / "street.png", np.full((*STREET, 3), 90, np.uint8))
    (root / "photos").mkdir(exist_ok=True)
    Image.new("RGB", PARK[::-1], (20, 120, 40)).save(root / "photos" / "park.jpg")
    far = tmp_path / "outside" / "far.png"
    write_png(far, np.full((*FAR, 3), 200, np.uint8))
    write_png(root / "masks" / "park_left.png", DRAWN[4].astype(np.uint8) * 255)
    palette = Image.frombytes("P", STREET[::-1], (DRAWN[7].astype(np.uint8) * 3).tobytes())
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(root / "masks" / "street_top.png")
    lines = [
        {
            "image": "photos/street.png",
            "sentences": ["the two boxes on the left", "left boxes"],
            "mask": [box_polygon(2, 7, 2, 9), box_polygon(12, 15, 10, 14)],
            "split": "train",
            "note": "keys risam does not know are ignored",
        },
        {"image": "photos/street.png", "sentences": ["the thin one"], "mask": encode_mask(DRAWN[2]), "split": "train"},
        None,
        {
            "image": "photos/park.jpg",
            "sentences": ["the small square"],
            "mask": "masks/park_left.png",
            "split": "train",
        },
        {"image": str(far), "sentences": ["the middle"], "mask": [box_polygon(2, 6, 2, 6)], "split": "val"},
        {"image": str(far), "sentences": ["a dog", "the cat"], "mask": None, "split": "val"},
        {"image": "photos/street.png", "sentences": ["top right"], "mask": "masks/street_top.png", "split": "test"},
        {
            "image": "photos/park.jpg",
            "sentences": ["bottom right"],
            "mask": [box_polygon(6, 11, 5, 9)],
            "split": "train",
            "height": PARK[0],
            "width": PARK[1],
        },
    ]
    text = "\n".join("  " if line is None else json.dumps(line) for line in lines) + "\n"
    (root / "refs.jsonl").write_text(text, encoding="utf-8-sig")  # a byte order mark, as Windows tools write
    return root


def masks_by_line(data):
    """Each line's target mask (the union of its objects), by ref_id, the line number."""
    return {expression.ref_id: data.target_mask(expression) for expression in data.expressions}


def test_masks_read_back_as_drawn_with_stable_ids(custom_root, tmp_path):
    train = load_split(custom_root, "custom", "train")
    assert [(e.sent_id, e.ref_id, e.image_id, e.sentence) for e in train.expressions] == [
        (1, 1, 1, "the two boxes on the left"),
        (2, 1, 1, "left boxes"),
        (3, 2, 1, "the thin one"),
        (4, 4, 2, "the small square"),
        (9, 8, 2, "bottom right"),
    ]
    assert {line: list(mask.shape) for line, mask in masks_by_line(train).items()} == {
        1: list(STREET),
        2: list(STREET),
        4: list(PARK),
        8: list(PARK),
    }
    for line, mask in masks_by_line(train).items():
        np.testing.assert_array_equal(mask, DRAWN[line], err_msg=f"line {line}")
    # Lines on the same image share it; sizes come from the image headers (a PNG, a JPEG) or the line.
    assert {i: (r.path, r.height, r.width) for i, r in train.images.items()} == {
        1: (custom_root / "photos" / "street.png", *STREET),
        2: (custom_root / "photos" / "park.jpg", *PARK),
    }
    assert train.objects_by_image == {1: [1, 2], 2: [4, 8]}
    assert train.source == str(custom_root / "refs.jsonl")

    val = load_split(custom_root, "custom", "val")
    far = tmp_path / "outside" / "far.png"
    assert {i: (r.path, r.height, r.width) for i, r in val.images.items()} == {3: (far, *FAR)}
    assert [(e.sent_id, e.ref_id, e.target_ids, e.no_target) for e in val.expressions] == [
        (5, 5, (5,), False),
        (6, 6, (), True),
        (7, 6, (), True),
    ]
    np.testing.assert_array_equal(val.target_mask(val.expressions[0]), DRAWN[5])
    assert not val.target_mask(val.expressions[1]).any()

    test = load_split(custom_root, "custom", "test")
    assert [(e.sent_id, e.image_id) for e in test.expressions] == [(8, 1)]
    np.testing.assert_array_equal(test.target_mask(test.expressions[0]), DRAWN[7])


def test_image_root_replaces_the_image_folder_but_not_the_masks_or_absolute_paths(custom_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (custom_root / "photos").rename(elsewhere / "photos")
    train = load_split(custom_root, "custom", "train", image_root=elsewhere)
    photos = elsewhere / "photos"
    assert [record.path for record in train.images.values()] == [photos / "street.png", photos / "park.jpg"]
    np.testing.assert_array_equal(masks_by_line(train)[4], DRAWN[4])  # masks/ stays under the data root
    val = load_split(custom_root, "custom", "val", image_root=elsewhere)
    assert [record.path for record in val.images.values()] == [tmp_path / "outside" / "far.png"]


def test_a_split_no_line_names_is_empty(custom_root):
    path = custom_root / "refs.jsonl"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if '"test"' not in line))
    test = load_split(custom_root, "custom", "test")
    assert (test.images, test.expressions, test.segmentations) == ({}, [], {})


@pytest.mark.parametrize(
    "pixels",
    [
        pytest.param(DRAWN[2], id="1-bit"),
        pytest.param(DRAWN[2].astype(np.uint8), id="gray-value-1"),
        pytest.param(DRAWN[2].astype(np.uint16) * 256, id="16-bit-low-byte-zero"),
        pytest.param(np.stack([np.zeros(STREET, np.uint8)] * 2 + [DRAWN[2].astype(np.uint8) * 7], axis=2), id="rgb"),
    ],
)
def test_a_png_mask_is_its_nonzero_pixels(custom_root, pixels):
    write_png(custom_root / "masks" / "street_thin.png", pixels)
    line = {"image": "photos/street.png", "sentences": ["thin"], "mask": "masks/street_thin.png", "split": "train"}
    (custom_root / "refs.jsonl").write_text(json.dumps(line))
    np.testing.assert_array_equal(masks_by_line(load_split(custom_root, "custom", "train"))[1], DRAWN[2])


def bad_files(root):
    """Files the bad lines below point at: a text file named as an image, a mask with alpha, a JPEG mask, ..."""
    (root / "photos" / "notes.png").write_text("not an image")
    write_png(root / "masks" / "small.png", np.ones((5, 5), np.uint8))
    write_png(root / "masks" / "alpha.png", np.full((*STREET, 4), 255, np.uint8))
    write_png(root / "masks" / "empty.png", np.zeros(STREET, np.uint8))
    Image.new("L", STREET[::-1], 255).save(root / "masks" / "lossy.jpg")


def line(**changes):
    """A good train line on the street image with ``changes`` (a value of ... removes the key), as bytes."""
    entry = {
        "image": "photos/street.png",
        "sentences": ["the box"],
        "mask": [box_polygon(2, 7, 2, 9)],
        "split": "train",
    }
    entry.update(changes)
    return json.dumps({key: value for key, value in entry.items() if value is not ...}).encode()


# Each bad line, and what its error says after "<file> line <n>: ".
BAD_LINES = [
    (b'{"image": "photos/street.png" "sentences": ["x"]}', "not JSON (Expecting ',' delimiter"),
    (b'{"image": "photos/street.png", "height": NaN}', "not JSON (NaN is not a JSON value"),
    (b'{"image": "\xff.png"}', "not UTF-8 text"),
    (b"[" * 100_000, "not JSON this reader reads (nested too deeply)"),
    (b'["photos/street.png", ["the box"]]', "expected a JSON object, got list"),
    (line(image=...), "missing key 'image'"),
    (line(sentences=...), "missing key 'sentences'"),
    (line(split=...), "missing key 'split'"),
    (line(mask=...), "missing key 'mask'"),
    (line(image=""), "'image' must be a non-empty string, got ''"),
    (line(split="training"), "'split' must be one of 'train', 'val', 'test', got 'training'"),
    (line(sentences=[]), "'sentences' must be a non-empty list of strings, got []"),
    (line(sentences="the box"), "'sentences' must be a non-empty list of strings, got 'the box'"),
    (line(sentences=["the box", 3]), "'sentences[1]' must be a non-empty string, got 3"),
    (line(mask=7), "'mask' must be a list of polygons, an RLE dict, a PNG path or null, got int"),
    (line(mask=[[1, 2, 3]]), "'mask': polygon 0 of 'segmentation' is malformed"),
    (line(mask=[]), "'mask': 'segmentation' is an empty polygon list"),
    (line(mask={"size": [5, 5], "counts": [25]}), "'mask': RLE 'size' is [5, 5], but the image is [16, 20]"),
    (line(mask={"size": [16, 20], "counts": 12}), "'mask': RLE 'counts' must be a list of run lengths"),
    (line(mask=[box_polygon(30, 31, 30, 31)]), "'mask' covers no pixel of the 16x20 image"),
    (line(mask="masks/nope.png"), "masks/nope.png does not exist"),
    (line(mask="masks/small.png"), "masks/small.png is 5x5 (height x width), but the image is 16x20"),
    (line(mask="masks/alpha.png"), "masks/alpha.png has an alpha channel (mode RGBA)"),
    (line(mask="masks/lossy.jpg"), "masks/lossy.jpg is a JPEG file; masks must be PNG"),
    (line(mask="masks/empty.png"), "'mask' covers no pixel"),
    (line(image="photos/gone.png"), "photos/gone.png does not exist"),
    (line(image="photos/notes.png"), "photos/notes.png is not an image Pillow can read"),
    (line(height=16), "'height' without 'width'; give both"),
    (line(height=16, width=0), "'height' and 'width' must be positive ints, got 16 and 0"),
    (line(height=15, width=20), "'height' and 'width' are 15 and 20, but the same image is 16x20 on line 1"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_LINES, ids=[message[:40] for _, message in BAD_LINES])
def test_a_bad_line_raises_naming_the_file_line_and_key(custom_root, bad, message):
    bad_files(custom_root)
    path = custom_root / "refs.jsonl"
    path.write_bytes(path.read_bytes() + bad + b"\n")
    with pytest.raises(AnnotationError) as error:
        load_split(custom_root, "custom", "train")
    assert str(error.value).startswith(f"{path} line 9: ")
    assert message in str(error.value)


def test_data_check_reports_every_bad_line_and_counts_the_good_ones(custom_root, capsys):
    assert main(["data", "check", str(custom_root), "--dataset", "custom"]) == 0
    table = capsys.readouterr().out
    assert "train |      2 |       4 |         5 |         0" in table
    assert "val   |      1 |       1 |         3 |         2" in table
    assert "test  |      1 |       1 |         1 |         0" in table
    assert "no problems found" in table

    bad_files(custom_root)
    path = custom_root / "refs.jsonl"
    path.write_bytes(path.read_bytes() + b"\n".join(bad for bad, _ in BAD_LINES) + b"\n")
    assert main(["data", "check", str(custom_root), "--dataset", "custom"]) == 1
    report = capsys.readouterr().out
    assert "train |      2 |       4 |         5 |         0" in report  # the good lines are still read
    assert f"{len(BAD_LINES)} problem(s):" in report  # each once, though the file is read for each split
    for number, (_, message) in enumerate(BAD_LINES, start=9):
        assert f"  {path} line {number}: " in report and message in report

    path.unlink()
    assert main(["data", "check", str(custom_root), "--dataset", "custom"]) == 1
    expected = f"{path} does not exist; dataset 'custom' expects {path}, one JSON object per line"
    assert expected in capsys.readouterr().out


def test_the_example_in_the_docs_reads(tmp_path):
    docs = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    example = docs.split("## Your own data", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    lines = [json.loads(text) for text in example.splitlines()]
    assert len(lines) == 5
    for entry in lines:  # images of 480 x 640 unless the line says otherwise, PNG masks of a box
        size = (entry.get("height", 480), entry.get("width", 640))
        image = tmp_path / entry["image"]
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size[::-1]).save(image)
        if isinstance(entry["mask"], str):
            write_png(tmp_path / entry["mask"], box(size, (10, 20, 10, 20)))
    (tmp_path / "refs.jsonl").write_text(example)
    splits = {split: load_split(tmp_path, "custom", split) for split in ("train", "val", "test")}
    counts = {
        split: (len(data.images), len(data.expressions), sum(e.no_target for e in data.expressions))
        for split, data in splits.items()
    }
    assert counts == {"train": (1, 3, 0), "val": (1, 2, 1), "test": (1, 1, 0)}
    lamp_post = splits["val"].target_mask(splits["val"].expressions[0])
    np.testing.assert_array_equal(lamp_post, box((480, 640), (120, 400, 301, 305)))


def _set_args(settings):
    return [part for setting in settings for part in ("--set", setting)]


def test_train_and_evaluate_on_custom_data(custom_root, tmp_path, capsys):
    run = tmp_path / "run"
    settings = [
        f"data.root={custom_root}",
        "data.dataset=custom",
        f"train.output_dir={run}",
        "model.overrides={}",
        "data.num_workers=0",
        "batch.global_groups=2",
        "optim.epochs=2",
        "train.progress=false",
        "eval.images_per_batch=4",
    ]
    path = custom_root / "refs.jsonl"
    good = path.read_bytes()
    path.write_bytes(good + line(split="val", mask=9) + b"\n")
    assert main(["train", "--config", "refshapes_tiny", *_set_args(settings)]) == 2
    assert f"{path} line 9: 'mask' must be" in capsys.readouterr().err

    path.write_bytes(good)
    assert main(["train", "--config", "refshapes_tiny", *_set_args(settings)]) == 0
    capsys.readouterr()
    output = tmp_path / "test.json"
    checkpoint = run / "checkpoints" / "last.safetensors"
    evaluate = ["evaluate", "--config", str(run / "config.yaml"), "--checkpoint", str(checkpoint)]
    assert main([*evaluate, "--split", "test", "--output", str(output)]) == 0
    assert json.loads(output.read_text())["num_samples"] == 1


def test_training_on_a_split_with_no_sentences_names_the_split(custom_root, tmp_path, capsys):
    path = custom_root / "refs.jsonl"
    path.write_bytes(b"\n".join(row for row in path.read_bytes().splitlines() if b'"val"' not in row) + b"\n")
    settings = [f"data.root={custom_root}", "data.dataset=custom", f"train.output_dir={tmp_path / 'run'}"]
    assert main(["train", "--config", "refshapes_tiny", *_set_args([*settings, "data.num_workers=0"])]) == 2
    error = capsys.readouterr().err
    assert "split 'val' of custom" in error and "has no sentences" in error and str(path) in error
