"""Seed corpora for the fuzz tests: tiny valid files of every format risam reads, made here, plus hostile ones.

Each function writes the fixed files a family needs into ``folder`` and returns the seeds of the file that
the family mutates. Hostile seeds would create ``folder / MARKER`` if their code ran (a pickle, a torch
checkpoint and a YAML tag calling ``open(MARKER, "w")``, a TorchScript archive whose ``__setstate__`` does).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from hostile_files import write_code_running_archive, write_png_declaring
from risam import get_config
from risam.config.experiment import RECIPES_DIR, ExperimentConfig
from risam.data.masks import encode_mask
from risam.io.checkpoint import TRAINING_FORMAT
from risam.io.weights import save_weights

MARKER = "code-ran"
HUB_REPO = "org/fuzz"
HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"
HIERA_OVERRIDES = {"image_encoder.img_size": 64, "image_encoder.timm_kwargs": {"embed_dim": 8, "num_heads": 1}}


class OpensMarker:
    """Pickled, it calls ``open(path, "w")`` when unpickled by a loader that runs what a pickle names."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.path, "w")


def _encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def image_seeds(folder: Path) -> list[bytes]:
    """Small images in PNG, JPEG, TIFF, WebP, GIF and BMP, in odd modes and sizes, and a decompression bomb."""
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8))
    gray16 = Image.fromarray(np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    palette = rgb.convert("P")
    palette.info["transparency"] = 0
    bomb = folder / "bomb.png"
    write_png_declaring(bomb, 100_000, 100_000)
    return [
        _encoded(rgb, "PNG"),
        _encoded(rgb.convert("L"), "PNG"),
        _encoded(palette, "PNG"),
        _encoded(rgb.convert("RGBA"), "PNG"),
        _encoded(rgb.convert("LA"), "PNG"),
        _encoded(rgb.convert("1"), "PNG"),
        _encoded(gray16, "PNG"),
        _encoded(rgb.resize((1, 30)), "PNG"),
        _encoded(rgb, "JPEG", quality=80),
        _encoded(rgb, "JPEG", exif=exif.tobytes()),
        _encoded(rgb.convert("CMYK"), "JPEG"),
        _encoded(rgb, "TIFF"),
        _encoded(Image.fromarray(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)), "TIFF"),
        _encoded(gray16, "TIFF", compression="tiff_deflate"),
        _encoded(rgb, "WEBP", quality=70),
        _encoded(rgb.convert("RGBA"), "WEBP", lossless=True),
        _encoded(rgb, "GIF"),
        _encoded(rgb, "BMP"),
        bomb.read_bytes(),
    ]


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG ``data`` with the width and height of its IHDR set (CRC recomputed); other data unchanged."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 33:
        return data
    header = struct.pack(">II", width % 2**32, height % 2**32) + data[24:29]
    return data[:16] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[33:]


def config_seeds(folder: Path) -> list[bytes]:
    """Experiment YAML files: the defaults, shipped recipes, a mixture, an alias bomb and a code-running tag."""
    laughs = ["model:", "  overrides:", "    a: &a [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"    {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    documents = [
        yaml.safe_dump(ExperimentConfig().to_dict(), sort_keys=False),
        (RECIPES_DIR / "refshapes_tiny.yaml").read_text(),
        (RECIPES_DIR / "refcoco_mixed.yaml").read_text(),
        "optim: {lr: 1e-3, milestones: [3, 4]}\ndata: {datasets: [refcoco, {name: refcoco+, weight: 2.0}]}\n",
        "\n".join(laughs) + "\ndata: {dataset: *i}\n",
        f"model: !!python/object/apply:builtins.open ['{folder / MARKER}', 'w']\n",
    ]
    return [document.encode() for document in documents]


CONFIG_OVERRIDES = (
    "",
    "optim.lr=1e-3",
    "data.datasets=[refcoco, {name: refcoco+, weight: 2}]\ndata.held_out_splits=[refcocog_umd/test]",
    "model.overrides={head.tau: 0.3}\ntrain.max_steps=3",
    "data.root=/data\noptim.milestones=[3,4]",
)


def _masks_folder(folder: Path) -> np.ndarray:
    """An 8 x 6 image and a mask PNG of its size in ``folder``; returns the mask."""
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8))
    image.save(folder / "image.png")
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:6] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "mask.png")
    return mask


def jsonl_seeds(folder: Path) -> list[bytes]:
    """``refs.jsonl`` files with every kind of mask (polygons, RLE as text and as counts, a PNG, null)."""
    mask = _masks_folder(folder)
    polygon = [[1.5, 0.5, 5.5, 0.5, 5.5, 3.5, 1.5, 3.5]]
    lines = [
        {"image": "image.png", "sentences": ["the box", "the square"], "mask": polygon, "split": "train"},
        {"image": "image.png", "sentences": ["the rle"], "mask": encode_mask(mask), "split": "val"},
        {"image": "image.png", "sentences": ["counts"], "mask": {"size": [6, 8], "counts": [8, 3, 3]}, "split": "test"},
        {"image": "image.png", "sentences": ["a png"], "mask": "mask.png", "split": "train", "height": 6, "width": 8},
        {"image": "image.png", "sentences": ["nothing"], "mask": None, "split": "val"},
    ]
    texts = ["\n".join(json.dumps(line) for line in lines) + "\n", json.dumps(lines[0]) + "\n"]
    return [text.encode() for text in texts] + [b"\xef\xbb\xbf" + texts[1].encode()]


def refer_root(folder: Path) -> dict[str, object]:
    """A REFER data root for ``refcoco`` in ``folder`` (``instances.json``, the image); returns the refs' data."""
    dataset = folder / "refcoco"
    dataset.mkdir(parents=True, exist_ok=True)
    images = folder / "images" / "mscoco" / "images" / "train2014"
    images.mkdir(parents=True, exist_ok=True)
    mask = _masks_folder(images)
    instances = {
        "images": [{"id": 1, "file_name": "image.png", "height": 6, "width": 8}],
        "annotations": [
            {"id": 10, "image_id": 1, "segmentation": [[1.5, 0.5, 5.5, 0.5, 5.5, 3.5]], "iscrowd": 0},
            {"id": 11, "image_id": 1, "segmentation": encode_mask(mask), "iscrowd": 0},
            {"id": 12, "image_id": 1, "segmentation": {"size": [6, 8], "counts": [8, 3, 37]}, "iscrowd": 1},
        ],
    }
    (dataset / "instances.json").write_text(json.dumps(instances))
    sentence = {"sent_id": 1, "sent": "the left box", "raw": "The left box", "tokens": ["the", "left", "box"]}
    refs = [
        {"ref_id": 1, "ann_id": 10, "image_id": 1, "split": "train", "sentences": [sentence]},
        {"ref_id": 2, "ann_id": 11, "image_id": 1, "split": "val", "sentences": [{**sentence, "sent_id": 2}]},
        {"ref_id": 3, "ann_id": 12, "image_id": 1, "split": "testA", "sentences": [{"sent_id": 3, "raw": "it"}]},
    ]
    return {"refs": refs, "instances": instances}


def refer_pickle_seeds(folder: Path) -> list[bytes]:
    """``refs(unc).p`` in several pickle protocols, and a pickle that would open the marker."""
    refs = refer_root(folder)["refs"]
    (folder / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    seeds = [pickle.dumps(refs, protocol=protocol) for protocol in (0, 2, 4, 5)]
    return [*seeds, pickle.dumps([OpensMarker(folder / MARKER)], protocol=2)]


def instances_seeds(folder: Path) -> list[bytes]:
    """``instances.json`` of the REFER root (the refs pickle stays valid)."""
    data = refer_root(folder)
    (folder / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(data["refs"], protocol=2))
    return [json.dumps(data["instances"]).encode(), json.dumps(data["instances"], indent=1).encode()]


def weights_seeds(folder: Path) -> list[bytes]:
    """RISAM weights files (safetensors): small tensors, the tiny model's config, with and without a record."""
    config = get_config("risam_tiny")
    tensors = {"head.weight": torch.ones(2, 3), "head.bias": torch.arange(4, dtype=torch.int64)}
    record = {"experiment": "optim: {lr: 0.001}\n", "seed": "0", "results": json.dumps({"val": {"overall_iou": 0.5}})}
    seeds = []
    for index, kept in enumerate((None, record)):
        path = folder / f"seed{index}.safetensors"
        save_weights(tensors, config, path, kept)
        seeds.append(path.read_bytes())
        path.unlink()
    return seeds


def hub_seeds(folder: Path) -> list[bytes]:
    """A Hugging Face cache holding ``org/fuzz`` (config.json and model.safetensors); returns config.json seeds."""
    snapshot = hub_snapshot(folder)
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / f"models--{HUB_REPO.replace('/', '--')}" / "refs").mkdir(exist_ok=True)
    (folder / f"models--{HUB_REPO.replace('/', '--')}" / "refs" / "main").write_text(HUB_COMMIT)
    (snapshot / "model.safetensors").write_bytes(weights_seeds(folder)[1])
    config = {"library_name": "risam", "model": "risam_tiny", "config": get_config("risam_tiny").to_dict()}
    return [json.dumps(config).encode(), b'{"library_name": "risam"}']


def hub_record_seeds(folder: Path) -> list[bytes]:
    """The same cache; returns seeds of its model.safetensors (with a record)."""
    (hub_snapshot(folder) / "config.json").write_bytes(hub_seeds(folder)[1])
    return weights_seeds(folder)


def hub_snapshot(folder: Path) -> Path:
    """The snapshot folder of ``org/fuzz`` at :data:`HUB_COMMIT` in the cache ``folder``."""
    return folder / f"models--{HUB_REPO.replace('/', '--')}" / "snapshots" / HUB_COMMIT


def checkpoint_seeds(folder: Path) -> list[bytes]:
    """Training checkpoints (torch zip and legacy format), a state dict, and one that would open the marker."""
    state = {
        "format": TRAINING_FORMAT,
        "step": 3,
        "model": {"head.weight": torch.ones(2, 3), "head.bias": torch.zeros(2, dtype=torch.float16)},
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(2, 3)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
        "rng": {"torch": torch.get_rng_state()[:16]},
    }
    seeds = []
    for value, zipped in ((state, True), (state, False), (state["model"], True), (OpensMarker(folder / MARKER), True)):
        buffer = io.BytesIO()
        torch.save(value, buffer, _use_new_zipfile_serialization=zipped)
        seeds.append(buffer.getvalue())
    return seeds


def torchscript_seeds(folder: Path) -> list[bytes]:
    """A scripted module with parameters and a buffer, and an archive that runs code (creates the marker)."""
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    hostile = folder / "hostile.pt"
    write_code_running_archive(hostile, folder / MARKER)
    seeds = [buffer.getvalue(), hostile.read_bytes()]
    hostile.unlink()
    return seeds


def hiera_seeds(folder: Path, safetensors_file: bool = False) -> list[bytes]:
    """A tiny SAM 2 trunk (:data:`HIERA_OVERRIDES`) as Meta's checkpoint and as a trunk state dict, or as a
    safetensors file."""
    import safetensors.torch

    from risam.modeling.variants.hiera_encoder import HieraEncoder

    torch.manual_seed(0)
    trunk = HieraEncoder(get_config("risam_sam2_t", HIERA_OVERRIDES).image_encoder).model.state_dict()
    if safetensors_file:
        return [safetensors.torch.save({key: value.contiguous() for key, value in trunk.items()})]
    meta = {"model": {f"image_encoder.trunk.{key}": value for key, value in trunk.items()}}
    seeds = []
    for value in (meta, trunk):
        buffer = io.BytesIO()
        torch.save(value, buffer)
        seeds.append(buffer.getvalue())
    return seeds
