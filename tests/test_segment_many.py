"""``risam segment`` over many images and ``RISAMPredictor.segment_many``: the same predictions as one image
at a time, resumable, a bad image reported and skipped, outputs that pycocotools reads."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from risam.cli import main
from risam.config.experiment import DEFAULT_THRESHOLD
from risam.data.refshapes import generate_refshapes
from risam.io.segment_inputs import SegmentInputError, expand_image_arguments, read_manifest
from risam.predictor import RISAMPredictor

EXPRESSIONS = ["the red circle", "the big square", "the shape on the left"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of 6 RefShapes images (and one in a subfolder)."""
    root = tmp_path_factory.mktemp("refshapes")
    generate_refshapes(root / "data", num_images=7, seed=11)
    images = sorted((root / "data").rglob("*.png"))[:7]
    folder = root / "photos"
    (folder / "more").mkdir(parents=True)
    for index, path in enumerate(images):
        target = folder / ("more" if index == 6 else "") / path.name
        target.write_bytes(path.read_bytes())
    return folder


@pytest.fixture(scope="module")
def one_image_records(photos, tmp_path_factory):
    """Each image's predictions.json from the one-image command."""
    out = tmp_path_factory.mktemp("one")
    records = {}
    for path in sorted(photos.rglob("*.png")):
        assert main(["segment", str(path), *EXPRESSIONS, "-o", str(out / path.stem)]) == 0
        records[path.name] = json.loads((out / path.stem / "predictions.json").read_text())["predictions"]
    return records


def _fields(predictions):
    return [(row["text"], row["rle"], row["score"], row["bbox"]) for row in predictions]


def _run_records(out):
    return {
        os.path.basename(line["image"]): line
        for line in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
        if line["expression"] == EXPRESSIONS[0]
    }


def test_folder_glob_and_manifest_give_the_one_image_predictions(photos, one_image_records, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    lines = [json.dumps({"image": os.path.relpath(path, tmp_path)}) for path in sorted(photos.rglob("*.png"))]
    manifest.write_text("\n".join(lines) + "\n\n")
    runs = {
        "folder": [str(photos)],
        "glob": [str(photos / "**" / "*.png")],
        "files": [str(path) for path in sorted(photos.rglob("*.png"))],
    }
    for name, inputs in runs.items():
        assert main(["segment", *inputs, *EXPRESSIONS, "-o", str(tmp_path / name), "--workers", "0"]) == 0
    assert main(["segment", "--manifest", str(manifest), "-o", str(tmp_path / "manifest"), *EXPRESSIONS]) == 0
    for name in (*runs, "manifest"):
        out = tmp_path / name
        for file_name, expected in one_image_records.items():
            folders = list(out.rglob(f"{file_name.removesuffix('.png')}/predictions.json"))
            assert len(folders) == 1, (name, file_name)
            assert _fields(json.loads(folders[0].read_text())["predictions"]) == _fields(expected)
        lines = (out / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == len(one_image_records) * len(EXPRESSIONS)
    assert (tmp_path / "folder" / "more" / "refshapes_000007" / "00_mask.png").is_file()  # keys keep subfolders


def test_segment_many_equals_set_image_and_predict(photos):
    predictor = RISAMPredictor.from_pretrained(precision="fp32")
    paths = sorted(photos.rglob("*.png"))
    items = [(path, EXPRESSIONS[: 1 + index % 3]) for index, path in enumerate(paths)]
    for batch_size, workers in ((1, 0), (1, 2), (3, 1)):
        results = list(predictor.segment_many(items, batch_size=batch_size, num_workers=workers))
        assert [result.index for result in results] == list(range(len(items)))
        for (path, texts), result in zip(items, results, strict=True):
            predictor.set_image(path)
            expected = predictor.predict(texts)
            assert [p.text for p in result.predictions] == texts
            for got, want in zip(result.predictions, expected, strict=True):
                differ = int((got.mask != want.mask).sum())
                # Batch 1 is exact; a batch of 3 may move a border pixel by a batched kernel's rounding.
                assert differ == 0 if batch_size == 1 else differ <= 0.001 * want.mask.size


def test_a_corrupt_image_is_reported_and_the_rest_are_written(photos, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted(photos.glob("*.png"))[:3]
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["segment", str(folder), "the red circle", "-o", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2
    assert "broken.png: not an image Pillow can read" in captured.err
    assert "4 images: 3 done, 0 skipped (finished before), 1 failed" in captured.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "predictions.jsonl",
        *sorted(p.stem for p in good),
    ]


def test_a_rerun_skips_finished_images_and_redoes_the_others(photos, tmp_path, capsys):
    out = tmp_path / "out"
    command = ["segment", str(photos), *EXPRESSIONS, "-o", str(out)]
    assert main(command) == 0
    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    lost = out / "refshapes_000002" / "predictions.json"
    lost.unlink()  # what a kill while that image was written leaves, with its temporary files
    leftovers = [lost.parent / ".01_mask.png.0badf00d.tmp", out / ".predictions.jsonl.1234abcd.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    kept = [lost.parent / "notes.tmp", lost.parent / ".hidden.txt"]  # not named like our temporaries
    for path in kept:
        path.write_text("the user's")
    capsys.readouterr()
    assert main(command) == 0
    assert "7 images: 1 done, 6 skipped (finished before), 0 failed" in capsys.readouterr().out
    assert not any(path.exists() for path in leftovers) and all(path.read_text() == "the user's" for path in kept)
    for path in kept:
        path.unlink()
    rewritten = {path for path, stamp in stamps.items() if path.exists() and path.stat().st_mtime_ns != stamp}
    assert {path.parent.name for path in rewritten} - {out.name} == {"refshapes_000002"}
    assert main([*command[:-2], "--threshold", "0.7", "-o", str(out)]) == 0  # other settings: all redone
    assert "7 done, 0 skipped" in capsys.readouterr().out


def test_a_redo_that_stops_midway_leaves_the_image_unfinished(photos, tmp_path, capsys):
    out = tmp_path / "out"
    command = ["segment", str(photos), EXPRESSIONS[0], "-o", str(out), "--workers", "0"]
    assert main(command) == 0
    folder = sorted(out.glob("refshapes_*"))[0]
    (folder / "00_mask.png").unlink()
    (folder / "00_mask.png").mkdir()  # the redo's first file cannot be written there
    assert main([*command, "--threshold", "0.7"]) == 2
    assert "00_mask.png: Is a directory" in capsys.readouterr().err
    # The record of the first run went before the redo wrote anything: it can no longer vouch for the folder.
    assert not (folder / "predictions.json").exists() and not list(folder.glob(".*.tmp"))
    (folder / "00_mask.png").rmdir()
    assert main(command) == 0
    summary = json.loads((folder / "predictions.json").read_text())
    assert summary["threshold"] == DEFAULT_THRESHOLD
    record = summary["predictions"][0]
    mask = np.array(Image.open(folder / record["mask"])) > 0
    assert np.array_equal(mask, mask_utils.decode({**record["rle"], "counts": record["rle"]["counts"].encode()}) > 0)
    image = next(photos.glob("*.png"))  # the one-image command writes through the same writer
    assert main(["segment", str(image), EXPRESSIONS[0], "-o", str(tmp_path / "one")]) == 0
    (tmp_path / "one" / "00_mask.png").unlink()
    (tmp_path / "one" / "00_mask.png").mkdir()
    leftover, kept = tmp_path / "one" / ".00_overlay.jpg.0badf00d.tmp", tmp_path / "one" / "notes.tmp"
    leftover.write_bytes(b"half a file")
    kept.write_text("the user's")
    assert main(["segment", str(image), EXPRESSIONS[0], "-o", str(tmp_path / "one"), "--threshold", "0.7"]) == 2
    assert not (tmp_path / "one" / "predictions.json").exists()
    assert not leftover.exists() and kept.read_text() == "the user's"


def test_a_killed_run_resumes_and_writes_each_image_once(tmp_path):
    generate_refshapes(tmp_path / "data", num_images=80, seed=5)
    folder = next(path.parent for path in (tmp_path / "data").rglob("*.png"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "risam.cli", "segment", str(folder), *EXPRESSIONS, "-o", str(out)]
    process = subprocess.Popen([*command, "--workers", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(out.glob("*/predictions.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {path.parent.name: path.stat().st_mtime_ns for path in out.glob("*/predictions.json")}
    assert 0 < len(finished) < 80, "the kill should land while the run is under way"
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"80 images: {80 - len(finished)} done, {len(finished)} skipped" in rerun.stdout
    for key, stamp in finished.items():
        assert (out / key / "predictions.json").stat().st_mtime_ns == stamp
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 80 * len(EXPRESSIONS) and len({(line["key"], line["expression"]) for line in lines}) == 240
    assert not list(out.rglob(".*.tmp"))


def test_predictions_jsonl_and_coco_results_round_trip_through_pycocotools(photos, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(photos), *EXPRESSIONS, "-o", str(out), "--format", "coco"]) == 0
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for line in lines:
        rle = {"size": line["rle"]["size"], "counts": line["rle"]["counts"].encode()}
        mask = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(mask, np.array(Image.open(out / line["mask"])) > 0)
        assert list(mask_utils.toBbox(rle)) == line["bbox"]
    results = json.loads((out / "coco_results.json").read_text())
    assert len(results) == len(lines)
    ids = sorted({int(path.stem.rsplit("_", 1)[1]) for path in photos.rglob("*.png")})
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": [{"id": image_id, "height": 1, "width": 1} for image_id in ids],
        "annotations": [],
        "categories": [{"id": 1, "name": "referent"}],
    }
    ground_truth.createIndex()
    loaded = ground_truth.loadRes(results)
    assert sorted(loaded.getImgIds()) == ids and len(loaded.getAnnIds()) == len(lines)
    first = loaded.loadAnns(loaded.getAnnIds())[0]
    assert first["segmentation"] == results[0]["segmentation"] and first["expression"] in EXPRESSIONS


def test_inputs_and_manifests_that_cannot_be_used_name_what_is_wrong(photos, tmp_path, capsys):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"image": "a.png"}\n{"image": 3}\n')
    with pytest.raises(SegmentInputError, match=r"bad\.jsonl:2: expected an object with a non-empty string 'image'"):
        read_manifest(manifest)
    manifest.write_text('{"image": "../../a.png", "expressions": ["x"]}\n{"image": "a.jpg"}\n{"image": "a.png"}\n')
    assert [item.key for item in read_manifest(manifest)] == ["a", "a_jpg", "a_png"]  # inside OUT, unique
    with pytest.raises(SegmentInputError, match="no file matches it as a glob"):
        expand_image_arguments([str(tmp_path / "*.nothing")])
    image = next(photos.glob("*.png"))
    assert main(["segment", str(image), "typo.jpg", "the dog", "-o", str(tmp_path / "o")]) == 2
    assert "typo.jpg: no such image file; images come before the expressions" in capsys.readouterr().err
    assert main(["segment", "--manifest", str(manifest), "-o", str(tmp_path / "o")]) == 2
    assert "a.jpg: no expressions; give them on the command line or in the manifest" in capsys.readouterr().err
    assert main(["segment", str(image), "-e", "the dog.png", "-o", str(tmp_path / "e")]) == 0
