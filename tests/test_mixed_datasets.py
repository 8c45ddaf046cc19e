"""Training on several datasets at once (data.datasets) without test images in training: a REFER root with
RefCOCO, RefCOCO+ and G-Ref made by ``risam data synth --refer-layout`` with three seeds, sharing images that
the test chooses, as COCO's datasets do; the leakage rule, the overlap table, the sampling weights and a
two-dataset training run."""

from __future__ import annotations

import json
import pickle
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from risam.cli import main
from risam.config import ConfigError
from risam.config.experiment import DataSection, DatasetEntry
from risam.data.mixture import mixed_train_split
from risam.data.refshapes import generate_refshapes
from risam.data.sampler import GroupedBatchSampler
from risam.io.config_files import load_config

IMAGES = "images/mscoco/images/train2014"
NUM_IMAGES = 14


def _read(root: Path) -> tuple[dict, list[dict]]:
    instances = json.loads((root / "refcoco" / "instances.json").read_text())
    with open(root / "refcoco" / "refs(unc).p", "rb") as handle:
        refs = pickle.load(handle)
    return instances, refs


def _images_of(refs: list[dict], split: str) -> list[int]:
    return sorted({ref["image_id"] for ref in refs if ref["split"] == split})


def _write_dataset(
    root: Path,
    folder: str,
    refs_name: str,
    own: tuple[dict, list[dict]],
    source: Path,
    offset: int,
    shared: dict[int, str],
    base: tuple[dict, list[dict]],
    splits: dict[str, str] | None = None,
) -> None:
    """One dataset of the root: its own synthetic images and refs with ids moved by ``offset`` (files renamed),
    plus the images of ``base`` (the first dataset) named in ``shared`` with their objects and refs, in the
    split ``shared`` gives: the same image, annotated by another dataset in another split."""
    instances, refs = json.loads(json.dumps(own[0])), [dict(ref) for ref in own[1]]
    for image in instances["images"]:
        name = f"{folder}_{image['id'] + offset:06d}.png"
        shutil.copy(source / IMAGES / image["file_name"], root / IMAGES / name)
        image.update(id=image["id"] + offset, file_name=name)
    for annotation in instances["annotations"]:
        annotation.update(id=annotation["id"] + offset * 100, image_id=annotation["image_id"] + offset)
    for ref in refs:
        sentences = [dict(s, sent_id=s["sent_id"] + offset * 100) for s in ref["sentences"]]
        ref.update(
            ref_id=ref["ref_id"] + offset * 100,
            ann_id=ref["ann_id"] + offset * 100,
            image_id=ref["image_id"] + offset,
            sentences=sentences,
            sent_ids=[s["sent_id"] for s in sentences],
        )
    base_instances, base_refs = base
    instances["images"] += [image for image in base_instances["images"] if image["id"] in shared]
    instances["annotations"] += [a for a in base_instances["annotations"] if a["image_id"] in shared]
    for ref in base_refs:
        if ref["image_id"] in shared:
            sentences = [dict(s, sent_id=s["sent_id"] + 900_000) for s in ref["sentences"]]
            refs.append(
                dict(
                    ref,
                    ref_id=ref["ref_id"] + 900_000,
                    split=shared[ref["image_id"]],
                    sentences=sentences,
                    sent_ids=[s["sent_id"] for s in sentences],
                )
            )
    for ref in refs:
        ref["split"] = (splits or {}).get(ref["split"], ref["split"])
    (root / folder).mkdir()
    (root / folder / "instances.json").write_text(json.dumps(instances))
    with open(root / folder / refs_name, "wb") as handle:
        pickle.dump(refs, handle)


@pytest.fixture(scope="module")
def coco_like_root(tmp_path_factory) -> tuple[Path, dict[str, list[dict]], dict[str, int]]:
    """RefCOCO (seed 1), RefCOCO+ (seed 2) and G-Ref UMD (seed 3) in one REFER root over one image folder,
    sharing chosen images of RefCOCO; returns the root, each dataset's refs as written, and the choices."""
    base = tmp_path_factory.mktemp("mixed")
    sources = {}
    for seed in (1, 2, 3):
        sources[seed] = base / f"seed{seed}"
        generate_refshapes(sources[seed], NUM_IMAGES, seed=seed, refer_layout=True)
    root = base / "root"
    (root / IMAGES).mkdir(parents=True)
    shutil.copytree(sources[1] / "refcoco", root / "refcoco")
    for image in (sources[1] / IMAGES).iterdir():
        shutil.copy(image, root / IMAGES / image.name)
    a = _read(sources[1])
    a_train, a_val, a_test_b = _images_of(a[1], "train"), _images_of(a[1], "val"), _images_of(a[1], "testB")
    chosen = {
        "a_val_in_b_train": a_val[0],  # RefCOCO+ loses it
        "a_train_in_b_train": a_train[0],  # train in both: kept, one image with both datasets' sentences
        "a_train_in_b_val": a_train[1],  # RefCOCO loses it
        "a_test_b_in_g_train": a_test_b[0],  # G-Ref loses it
        "a_train_in_g_test": a_train[2],  # RefCOCO loses it
    }
    b_shared = {chosen["a_val_in_b_train"]: "train", chosen["a_train_in_b_train"]: "train"}
    b_shared[chosen["a_train_in_b_val"]] = "val"
    _write_dataset(root, "refcoco+", "refs(unc).p", _read(sources[2]), sources[2], 1000, b_shared, a)
    g_shared = {chosen["a_test_b_in_g_train"]: "train", chosen["a_train_in_g_test"]: "test"}
    test_splits = {"testA": "test", "testB": "test"}
    _write_dataset(root, "refcocog", "refs(umd).p", _read(sources[3]), sources[3], 2000, g_shared, a, test_splits)
    refs = {}
    for name, folder, file in (("refcoco", "refcoco", "refs(unc).p"), ("refcoco+", "refcoco+", "refs(unc).p")):
        with open(root / folder / file, "rb") as handle:
            refs[name] = pickle.load(handle)
    with open(root / "refcocog" / "refs(umd).p", "rb") as handle:
        refs["refcocog_umd"] = pickle.load(handle)
    return root, refs, chosen


def _expected_losses(refs: dict[str, list[dict]]) -> dict[str, tuple[set[int], int]]:
    """From the refs files alone: per dataset, its train images that are in any other split of any dataset,
    and the sentences on them."""
    held_out = {ref["image_id"] for dataset in refs.values() for ref in dataset if ref["split"] != "train"}
    expected = {}
    for name, dataset in refs.items():
        lost = {ref["image_id"] for ref in dataset if ref["split"] == "train" and ref["image_id"] in held_out}
        sentences = sum(len(ref["sentences"]) for ref in dataset if ref["split"] == "train" and ref["image_id"] in lost)
        expected[name] = (lost, sentences)
    return expected


def _data(root: Path, **options) -> DataSection:
    entries = [DatasetEntry(name) for name in ("refcoco", "refcoco+", "refcocog_umd")]
    return DataSection(root=str(root), datasets=entries, **options)


def test_the_rule_removes_exactly_the_train_images_of_held_out_splits(coco_like_root):
    root, refs, chosen = coco_like_root
    expected = _expected_losses(refs)
    assert (
        chosen["a_train_in_b_val"] in expected["refcoco"][0] and chosen["a_train_in_g_test"] in expected["refcoco"][0]
    )
    assert chosen["a_val_in_b_train"] in expected["refcoco+"][0]
    assert chosen["a_test_b_in_g_train"] in expected["refcocog_umd"][0]
    mixed, overlaps, weights = mixed_train_split(_data(root))
    for overlap in overlaps:
        lost, sentences = expected[overlap.dataset]
        assert (overlap.images_lost, overlap.sentences_lost) == (len(lost), sentences), overlap.dataset
        assert overlap.sentences == sum(len(r["sentences"]) for r in refs[overlap.dataset] if r["split"] == "train")
    assert overlaps[0].shared["refcoco+/val"] == 1 and overlaps[0].shared["refcocog_umd/test"] == 1
    assert len(set(weights)) == 1  # no weights given: every sentence alike

    # No sentence of the joined split is on a held-out image, and every other train sentence is there.
    held_out = {ref["image_id"] for dataset in refs.values() for ref in dataset if ref["split"] != "train"}
    kept = Counter()
    for split, expression in mixed.sources:
        assert expression.image_id not in held_out
        kept[split.dataset] += 1
    for name, dataset in refs.items():
        train = sum(len(r["sentences"]) for r in dataset if r["split"] == "train")
        assert kept[name] == train - expected[name][1]
    # The image in both train splits is one image with the sentences of both datasets.
    both = [
        e
        for e, (split, original) in zip(mixed.expressions, mixed.sources, strict=True)
        if original.image_id == chosen["a_train_in_b_train"]
    ]
    assert len({e.image_id for e in both}) == 1
    assert {mixed.sources[e.sent_id][0].dataset for e in both} == {"refcoco", "refcoco+"}

    # The rule off keeps them all, and the table still counts them.
    unruled, overlaps_off, _ = mixed_train_split(_data(root, exclude_eval_images=False))
    assert len(unruled.expressions) == len(mixed.expressions) + sum(s for _, s in expected.values())
    assert [o.images_lost for o in overlaps_off] == [o.images_lost for o in overlaps]


def test_no_held_out_image_reaches_a_training_batch(coco_like_root, tiny_model):
    root, refs, _ = coco_like_root
    held_out = {ref["image_id"] for dataset in refs.values() for ref in dataset if ref["split"] != "train"}
    config = load_config("refshapes_tiny", [f"data.root={root}", "data.datasets=[refcoco, refcoco+, refcocog_umd]"])
    from risam.engine.experiment import build_train_dataset

    dataset, _, weights = build_train_dataset(config, tiny_model)
    sampler = GroupedBatchSampler(dataset.image_ids, 3, seed=0, drop_last=True, sample_weights=weights)
    seen = set()
    for indices in sampler:
        batch = dataset.__getitems__(indices)
        for sent_id in batch.sent_ids:
            split, original = dataset.split.sources[sent_id]
            assert original.image_id not in held_out
            seen.add((split.dataset, original.sent_id))
        assert batch.images.shape[0] == len(set(batch.image_ids))
    assert seen  # sentences of all three datasets were drawn
    assert {dataset for dataset, _ in seen} == {"refcoco", "refcoco+", "refcocog_umd"}


def test_weights_set_each_datasets_share_of_the_sentences(coco_like_root):
    root, _, _ = coco_like_root
    data = _data(root)
    data.datasets = [DatasetEntry("refcoco", weight=3.0), DatasetEntry("refcoco+", weight=1.0)]
    mixed, _, weights = mixed_train_split(data)
    sampler = GroupedBatchSampler(
        [e.image_id for e in mixed.expressions], 1, sentences_per_image=1, seed=0, sample_weights=weights
    )
    drawn = Counter()
    for epoch in range(40):
        sampler.set_epoch(epoch)
        for indices in sampler:
            drawn.update(mixed.sources[i][0].dataset for i in indices)
    share = drawn["refcoco"] / sum(drawn.values())
    assert abs(share - 0.75) < 0.03, share
    assert mixed_train_split(data)[2] == weights  # deterministic

    data.datasets = [DatasetEntry("refcoco", weight=1.0), DatasetEntry("refcoco+")]
    with pytest.raises(ConfigError, match="give every entry a weight, or none"):
        mixed_train_split(data)
    data.datasets = [DatasetEntry("refcoco", weight=-1.0), DatasetEntry("refcoco+", weight=1.0)]
    with pytest.raises(ConfigError, match=r"weight=-1\.0; give a positive number"):
        mixed_train_split(data)
    data.datasets = [DatasetEntry("refcoco"), DatasetEntry("refcoco")]
    with pytest.raises(ConfigError, match="lists a dataset twice"):
        mixed_train_split(data)
    data.datasets, data.held_out_splits = [DatasetEntry("refcoco")], ["refcocog_umd/testA"]
    with pytest.raises(ConfigError, match="refcocog_umd has no split 'testA'"):
        mixed_train_split(data)


def test_a_held_out_split_outside_the_list_is_excluded_too(coco_like_root):
    root, _, chosen = coco_like_root
    data = DataSection(root=str(root), datasets=[DatasetEntry("refcoco")], held_out_splits=["refcocog_umd/test"])
    mixed, overlaps, _ = mixed_train_split(data)
    assert overlaps[0].images_lost == 1  # the RefCOCO train image that is a G-Ref test image
    assert all(original.image_id != chosen["a_train_in_g_test"] for _, original in mixed.sources)


def test_users_jsonl_data_joins_the_list_and_its_images_are_matched_by_file(coco_like_root, tmp_path):
    root, _, chosen = coco_like_root
    files = {
        image["id"]: image["file_name"]
        for image in json.loads((root / "refcoco" / "instances.json").read_text())["images"]
    }
    own = tmp_path / "custom" / "own.png"
    own.parent.mkdir()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(own)
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]
    lines = [
        # RefCOCO's val image, by its file: a training line on a held-out image.
        {
            "image": str(root / IMAGES / files[chosen["a_val_in_b_train"]]),
            "sentences": ["a"],
            "mask": square,
            "split": "train",
        },
        # RefCOCO's training image: kept.
        {
            "image": str(root / IMAGES / files[chosen["a_train_in_b_train"]]),
            "sentences": ["b", "c"],
            "mask": square,
            "split": "train",
        },
        # The user's own image, in their train and their test split: held out by their own test split.
        {"image": str(own), "sentences": ["d"], "mask": square, "split": "train"},
        {"image": str(own), "sentences": ["e"], "mask": square, "split": "test"},
    ]
    (tmp_path / "custom" / "refs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    data = DataSection(
        root=str(root), datasets=[DatasetEntry("refcoco"), DatasetEntry("custom", root=str(tmp_path / "custom"))]
    )
    mixed, overlaps, _ = mixed_train_split(data)
    custom = overlaps[1]
    assert (custom.dataset, custom.images, custom.sentences, custom.images_lost, custom.sentences_lost) == (
        "custom",
        3,
        4,
        2,
        2,
    )
    assert custom.shared["refcoco/val"] == 1 and custom.shared["custom/test"] == 1
    kept = [original.sentence for split, original in mixed.sources if split.dataset == "custom"]
    assert kept == ["b", "c"]


def test_data_check_prints_the_overlap_table(coco_like_root, capsys):
    root, refs, _ = coco_like_root
    expected = _expected_losses(refs)
    assert main(["data", "check", str(root), "--dataset", "refcoco", "refcoco+", "refcocog_umd"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("| train split") :]
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ref")}
    for name, (lost, sentences) in expected.items():
        cells = [cell.strip() for cell in rows[f"{name}/train"].strip("|").split("|")]
        assert cells[3:5] == [str(len(lost)), str(sentences)], name


def test_a_two_dataset_run_writes_one_results_file_with_both_val_splits(coco_like_root, tmp_path, capsys):
    root, refs, _ = coco_like_root
    out = tmp_path / "run"
    overrides = [
        f"data.root={root}",
        "data.datasets=[refcoco, {name: refcocog_umd, val_split: val}]",
        f"train.output_dir={out}",
        "optim.epochs=2",
        "optim.milestones=[1]",
        "train.eval_every_epochs=1",
        "train.progress=false",
    ]
    config = load_config("refshapes_tiny", overrides)
    from risam.engine.trainer import train

    results = train(config)
    assert set(results["splits"]) == {"refcoco/val", "refcocog_umd/val"}
    written = json.loads((out / "val_results.json").read_text())
    assert written["epoch"] == 2 and set(written["splits"]) == {"refcoco/val", "refcocog_umd/val"}
    for label, name in (("refcoco/val", "refcoco"), ("refcocog_umd/val", "refcocog_umd")):
        val_sentences = sum(len(r["sentences"]) for r in refs[name] if r["split"] == "val")
        assert written["splits"][label]["num_samples"] == val_sentences
    mean = sum(split["overall_iou"] for split in written["splits"].values()) / 2
    assert written["overall_iou"] == pytest.approx(mean)
    header = (out / "eval.csv").read_text().splitlines()[0].split(",")
    assert {"refcoco/val:overall_iou", "refcocog_umd/val:overall_iou"} <= set(header)
    assert (out / "learning_curve.png").is_file()
    leakage = json.loads((out / "leakage.json").read_text())
    assert [d["dataset"] for d in leakage["datasets"]] == ["refcoco", "refcocog_umd"]
    assert "| refcoco/train |" in capsys.readouterr().out
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2

    # Evaluated by DATASET/SPLIT, then exported: the card's model-index names each split's dataset.
    for label in ("refcoco/val", "refcocog_umd/val"):
        name = label.replace("/", "_")
        argv = [
            "evaluate",
            "--config",
            str(out / "config.yaml"),
            "--checkpoint",
            str(out / "checkpoints" / "last.safetensors"),
        ]
        assert main([*argv, "--split", label, "--output", str(out / f"results_{name}.json")]) == 0
        evaluated = json.loads((out / f"results_{name}.json").read_text())
        assert evaluated["split"] == label and evaluated["overall_iou"] == written["splits"][label]["overall_iou"]
    assert main(["export", str(out), str(tmp_path / "card")]) == 0
    from huggingface_hub.repocard import metadata_load

    card = metadata_load(tmp_path / "card" / "README.md")
    assert card["datasets"] == ["refcoco", "refcocog_umd"]
    entries = card["model-index"][0]["results"]
    assert sorted((e["dataset"]["type"], e["dataset"]["split"]) for e in entries) == [
        ("refcoco", "val"),
        ("refcocog_umd", "val"),
    ]
    assert main(["evaluate", *argv[1:], "--split", "val"]) == 2
    assert "a mixed experiment names splits as DATASET/SPLIT" in capsys.readouterr().err
