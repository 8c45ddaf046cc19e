"""The readers of outside data as fuzz targets: one :class:`Family` per reader, and the property every case keeps.

A family writes its fixed files into a folder (:mod:`fuzz_seeds`), then each case overwrites the family's
``target`` file with mutated bytes (and, for config overrides and demo requests, mutated text) and calls the
reader's public entry point. :func:`run_case` checks the property: the reader returns, or raises an
:class:`~risam.errors.InputError` whose message is one line naming the file, key or value; nothing else
is raised, the marker file of the hostile seeds never appears and no file appears outside the target.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pickle
import random
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import fuzz_seeds as seeds
from fuzz_mutations import mutate_bytes, mutate_value
from risam.errors import InputError


@dataclass(frozen=True)
class Family:
    """A reader under fuzzing: the file it mutates, how its folder is made, how the reader is called."""

    name: str
    target: str  # the mutated file, relative to the family's folder
    setup: Callable[[Path], list[bytes]]  # writes the fixed files, returns the seeds of ``target``
    read: Callable[[Path, str], object]  # calls the reader on the folder (and the case's text)
    structure: Callable[[bytes, random.Random], bytes] | None = None  # a format-aware mutation of a seed
    texts: tuple[str, ...] = ("",)


def make_case(family: Family, corpus: list[bytes], rng: random.Random) -> tuple[bytes, str]:
    """The bytes of ``family.target`` and the text of one case, mutated from ``corpus`` by ``rng``."""
    data = rng.choice(corpus)
    structured = family.structure is not None and rng.random() < 0.6
    if structured:
        data = family.structure(data, rng)
    if not structured or rng.random() < 0.3:
        data = mutate_bytes(data, rng, corpus)
    text = rng.choice(family.texts)
    if text and rng.random() < 0.4:
        text = mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
    return data, text


def run_case(family: Family, folder: Path, data: bytes, text: str) -> str | None:
    """Run one case in the family's ``folder``; None when the property holds, else what went wrong."""
    (folder / family.target).write_bytes(data)
    before = _files(folder)
    problem = None
    try:
        family.read(folder, text)
    except InputError as error:
        message = str(error)
        if "\n" in message or not any(name in message for name in _names(family, folder, text)):
            problem = f"{type(error).__name__} not one line naming the input: {message[:500]!r}"
    except Exception:
        problem = traceback.format_exc(limit=-8)
    if (folder / seeds.MARKER).exists():
        (folder / seeds.MARKER).unlink()
        problem = f"code ran: {seeds.MARKER} was created. {problem or ''}"
    created = _files(folder) - before
    if created:
        problem = f"files written: {sorted(created)[:5]}. {problem or ''}"
    return problem


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def _names(family: Family, folder: Path, text: str) -> tuple[str, ...]:
    """What an error message must name one of: a file of the family's folder, an override or its key, a key
    of the data section or the dataset it names (the checks of ``data.datasets`` and ``data.held_out_splits``)."""
    overrides = [line.partition("=")[0] for line in text.splitlines() if line.partition("=")[0]]
    data_keys = ("data.", "unknown dataset") if family.name == "config" else ()
    return (str(folder), family.target, *overrides, "override", seeds.HUB_REPO, *data_keys)


def _structured(load: Callable[[bytes], Any], dump: Callable[[Any], bytes], extra: tuple[Any, ...] = ()) -> Callable:
    """A structure mutation: parse with ``load``, :func:`mutate_value`, serialize with ``dump`` (the seed as it
    is when it does not parse, e.g. a hostile one)."""

    def mutate(data: bytes, rng: random.Random) -> bytes:
        try:
            return dump(mutate_value(load(data), rng, extra))
        except Exception:  # a seed that does not parse, or a mutation nested too deeply to serialize
            return data

    return mutate


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name}")


def _plain_pickle(data: bytes) -> Any:
    import io

    return _PlainUnpickler(io.BytesIO(data)).load()


def _jsonl_load(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.decode("utf-8-sig").splitlines() if line.strip()]


def _jsonl_dump(lines: Any) -> bytes:
    lines = lines if isinstance(lines, list) else [lines]
    return "\n".join(json.dumps(line, allow_nan=True) for line in lines).encode()


def _safetensors_header(data: bytes, rng: random.Random) -> bytes:
    """Mutate the JSON header of a safetensors file (the metadata's config JSON too), length prefix kept right."""
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        metadata = header.get("__metadata__", {})
        if "config" in metadata and rng.random() < 0.5:
            metadata["config"] = json.dumps(mutate_value(json.loads(metadata["config"]), rng))
        else:
            header = mutate_value(header, rng, ("F32", "I64", "BF16", [2, 3], [0, 24], [0, 2**62], "__metadata__"))
        encoded = json.dumps(header).encode()
    except Exception:
        return data
    return len(encoded).to_bytes(8, "little") + encoded + data[8 + size :]


def _zip_member(data: bytes, rng: random.Random) -> bytes:
    """Rewrite a zip archive (torch checkpoint, TorchScript) with one member's bytes mutated."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(info, archive.read(info)) for info in archive.infolist()]
    except Exception:
        return data
    chosen = rng.randrange(len(members))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for index, (info, content) in enumerate(members):
            archive.writestr(info, mutate_bytes(content, rng) if index == chosen else content)
    return out.getvalue()


def _png_size(data: bytes, rng: random.Random) -> bytes:
    sizes = (0, 1, 65535, 100_000, 2**31 - 1, 2**32 - 1)
    return seeds.png_with_size(data, rng.choice(sizes), rng.choice(sizes))


@contextlib.contextmanager
def _offline_cache(folder: Path) -> Iterator[None]:
    """``huggingface_hub`` reading the cache ``folder``, offline, for the block."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
    constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = str(folder), True
    try:
        yield
    finally:
        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = saved


def _read_image(folder: Path, text: str) -> object:
    from risam.io.images import load_image

    return load_image(folder / "photo.img")


def _read_config(folder: Path, text: str) -> object:
    from risam.data.mixture import held_out_splits
    from risam.io.config_files import load_config

    config = load_config(folder / "experiment.yaml", text.splitlines())
    held_out_splits(config.data)
    return config.model_overrides()


def _read_split_root(folder: Path, dataset: str) -> object:
    """Every split with every expression's target mask, then ``risam data check``'s report."""
    from risam.data.catalog import dataset_spec
    from risam.data.check import check_data_root
    from risam.data.readers import load_split

    for split in dataset_spec(dataset).splits:
        loaded = load_split(folder, dataset, split)
        for expression in loaded.expressions:
            loaded.target_mask(expression)
    return check_data_root(folder, dataset).format()


def _read_weights(folder: Path, text: str) -> object:
    from risam.io.weights import load_weights, weights_metadata

    weights_metadata(folder / "weights.safetensors")
    return load_weights(folder / "weights.safetensors")


def _read_checkpoint(folder: Path, text: str) -> object:
    from risam.io.checkpoint import load_training_state

    return load_training_state(folder / "last.pt")


def _read_torchscript(folder: Path, text: str) -> object:
    from risam.io.state_dict import CheckpointError, torch_load_weights_only
    from risam.io.torchscript_reader import read_torchscript_state_dict

    with contextlib.suppress(CheckpointError):  # what torch.load would do with it: refused, nothing run
        torch_load_weights_only(folder / "ViT-B-16.pt", "expected a CLIP file")
    return read_torchscript_state_dict(folder / "ViT-B-16.pt")


def _read_hub(folder: Path, text: str) -> object:
    from risam.io.hub import hub_model_weights
    from risam.io.weights import read_config, weights_metadata

    with _offline_cache(folder):
        path = hub_model_weights(f"hf-hub:{seeds.HUB_REPO}")
    weights_metadata(path)
    return read_config(path)


@functools.cache
def _hiera_encoder() -> Any:
    from risam import get_config
    from risam.modeling.variants.hiera_encoder import HieraEncoder

    return HieraEncoder(get_config("risam_sam2_t", seeds.HIERA_OVERRIDES).image_encoder)


def _read_sam2(name: str) -> Callable[[Path, str], object]:
    def read(folder: Path, text: str) -> object:
        return _hiera_encoder().load_pretrained(folder / name)

    return read


@functools.cache
def _demo_backend() -> Any:
    from risam.demo import DemoBackend
    from risam.predictor import RISAMPredictor

    return DemoBackend(RISAMPredictor.from_checkpoint(None))


def _read_demo(folder: Path, text: str) -> object:
    """A demo request as the page sends it: an upload, then Segment; a ``gradio.Error`` must come from an
    InputError, an unreadable file or the request's own checks, never from the catch-all."""
    import gradio as gr

    backend = _demo_backend()
    try:
        backend.upload(str(folder / "upload.png"))
        return backend.segment(str(folder / "upload.png"), text)
    except gr.Error as error:
        cause = error.__cause__
        if cause is not None and not isinstance(cause, (InputError, OSError)):
            raise cause from None
        return str(error)


def _yaml_dump(value: Any) -> bytes:
    return yaml.safe_dump(value, sort_keys=False).encode()


_JSON = _structured(json.loads, lambda value: json.dumps(value, allow_nan=True).encode())
_CONFIG_KEYS = ("model", "data", "optim", "datasets", "refcoco", "grefcoco", "custom", {"name": "refcoco+"})
FAMILIES: tuple[Family, ...] = (
    Family("image", "photo.img", seeds.image_seeds, _read_image, _png_size),
    Family(
        "config",
        "experiment.yaml",
        seeds.config_seeds,
        _read_config,
        _structured(yaml.safe_load, _yaml_dump, _CONFIG_KEYS),
        seeds.CONFIG_OVERRIDES,
    ),
    Family(
        "jsonl",
        "refs.jsonl",
        seeds.jsonl_seeds,
        lambda folder, text: _read_split_root(folder, "custom"),
        _structured(_jsonl_load, _jsonl_dump, ("mask.png", "image.png")),
    ),
    Family(
        "refer_pickle",
        "refcoco/refs(unc).p",
        seeds.refer_pickle_seeds,
        lambda folder, text: _read_split_root(folder, "refcoco"),
        _structured(_plain_pickle, lambda value: pickle.dumps(value, protocol=2), (10, 11, 12, "testA")),
    ),
    Family(
        "coco_instances",
        "refcoco/instances.json",
        seeds.instances_seeds,
        lambda folder, text: _read_split_root(folder, "refcoco"),
        _JSON,
    ),
    Family("safetensors", "weights.safetensors", seeds.weights_seeds, _read_weights, _safetensors_header),
    Family("torch_checkpoint", "last.pt", seeds.checkpoint_seeds, _read_checkpoint, _zip_member),
    Family("torchscript", "ViT-B-16.pt", seeds.torchscript_seeds, _read_torchscript, _zip_member),
    Family(
        "hub_config",
        str(seeds.hub_snapshot(Path()) / "config.json"),
        seeds.hub_seeds,
        _read_hub,
        _JSON,
    ),
    Family(
        "hub_weights_record",
        str(seeds.hub_snapshot(Path()) / "model.safetensors"),
        seeds.hub_record_seeds,
        _read_hub,
        _safetensors_header,
    ),
    Family(
        "sam2_checkpoint", "sam2.1_hiera_tiny.pt", seeds.hiera_seeds, _read_sam2("sam2.1_hiera_tiny.pt"), _zip_member
    ),
    Family(
        "sam2_safetensors",
        "model.safetensors",
        functools.partial(seeds.hiera_seeds, safetensors_file=True),
        _read_sam2("model.safetensors"),
        _safetensors_header,
    ),
    Family(
        "demo",
        "upload.png",
        lambda folder: seeds.image_seeds(folder)[:10],
        _read_demo,
        _png_size,
        ("the red circle", "the blue square\nthe left one", "", "x" * 300, "\n".join(["it"] * 20)),
    ),
)
FAMILY_NAMES = tuple(family.name for family in FAMILIES)


def family(name: str) -> Family:
    """The family called ``name``."""
    return next(family for family in FAMILIES if family.name == name)
