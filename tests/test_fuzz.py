"""Fuzzed inputs through every reader of outside data, and the concrete files fuzzing found.

The property tests mutate the seed corpora of :mod:`fuzz_seeds` (Hypothesis drives the mutations of
:mod:`fuzz_mutations`, derandomized so that CI sees the same cases): each reader returns, or raises an
InputError in one line naming the file, key or value; nothing else, no code run, no file written. The
long run is ``python -m benchmarks.fuzz``. The other tests are the inputs fuzzing found, each once a
traceback, a hang or garbage.
"""

import base64
import io
import json
import pickle
import resource
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import fuzz_seeds
from fuzz_families import FAMILIES, Family, family, make_case, run_case
from hostile_files import write_png_declaring
from risam.config.experiment import config_from_yaml
from risam.config.parse import ConfigError
from risam.data.masks import AnnotationError, decode_segmentation, encode_mask
from risam.data.readers import load_split
from risam.data.readers.fields import checked_size, load_json
from risam.data.safe_pickle import load_pickle
from risam.io.hub import HubError
from risam.io.images import ImageInputError, load_image
from risam.io.state_dict import CheckpointError, torch_load_weights_only
from risam.io.weights import weights_metadata

# Examples per family: the demo segments with a model, the others read small files (14 s in all on 2 idle cores).
EXAMPLES = {"demo": 50, "sam2_checkpoint": 120}

# A mutated torch.save zip (case 5856 of the first long run) on which torch's zip reader raises OSError(22).
_EINVAL_CHECKPOINT = (
    "eNrt0T9v00AYx3E7LUXKQpmQGBg6MZD4nDpOOsGegYCEVIkhMs41NU38L24LkQqRkHgDbB36JhBi5iWwIiRmkBAjK3cSre0rgZHl"
    "+5Ee3eD7nR89z3Cwtm5duPrlw4v76tS1qSrIw/3oSDrjoAja6cF02QijpJmkMm5m1u4ddcMpZqmzd7hYtIpEXR6F+zI8SJMoLlpF"
    "P3+aP+sKJ0zGspUHcWbv2ipynDVeZ2sPs/X2sPbz9z8+v9Lfdd2o/Ly9l+SzoBgdyXweJbFbT909zr421KnrZjU1Vw0FEzkKptEk"
    "nsm48L16Mv20/LmhTl3XK8knzwuZ5GOZT3Uzh/XQx7PJo/PfXauEfje33axf/yZO791Wp65b1e70RJ25zCPV3iIoVHQUjUVnR/Q9"
    "v+/3ej2/s9PZdoUnhOh3hef7wu35XtftdlwxHNgNy1q9tnNLPcpLSzTT5tzL9MnqLZiPmGsoH3n716WY75hLKd/5/qcVmXFzPWV8"
    "y760LDNsLqsMP7D/tbrh4IpuWfW9Yb1Rt9/paT7GSi8ZAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAP6fX53ZlxU="
)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, tuple[Path, list[bytes]]]:
    """Each family's folder and seeds, made once."""
    made = {}
    for each in FAMILIES:
        folder = tmp_path_factory.mktemp(each.name)
        made[each.name] = folder, each.setup(folder)
    return made


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_mutated_files_give_a_result_or_one_line_naming_the_input(family: Family, corpora):
    folder, corpus = corpora[family.name]

    @settings(
        max_examples=EXAMPLES.get(family.name, 200),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.randoms(use_true_random=False))
    def check(rng) -> None:
        data, text = make_case(family, corpus, rng)
        problem = run_case(family, folder, data, text)
        assert problem is None, problem

    check()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    document = fuzz_seeds.config_seeds(tmp_path)[4]  # 10^9 items behind 400 bytes, under model.overrides
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        config_from_yaml(document, "bomb.yaml")
    assert time.perf_counter() - start < 2
    _one_line(error, "bomb.yaml", "data.dataset must be a string")
    assert len(str(error.value)) < 10_000


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (b"optim: {1: 2, lr: 0.1}\n", "unknown key(s) ['optim.1']"),
        (b"optim:\n  lr: \x07\n", "not valid YAML (unacceptable character #x0007"),
        (b"[" * 100_000, "nested too deeply"),
        (b"data: {datasets: [{weight: 2}]}\n", "missing key(s) ['data.datasets[0].name']"),
    ],
    ids=["number-key", "control-character", "deep-nesting", "entry-without-name"],
)
def test_yaml_that_broke_the_reader_is_one_line(document, fragment):
    with pytest.raises(ConfigError) as error:
        config_from_yaml(document, "odd.yaml")
    _one_line(error, "odd.yaml", fragment)


def _refer_root(tmp_path: Path, refs: object = None, instances: object = None) -> Path:
    data = fuzz_seeds.refer_root(tmp_path)
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(data["refs"] if refs is None else refs))
    if instances is not None:
        (tmp_path / "refcoco" / "instances.json").write_text(json.dumps(instances))
    return tmp_path


def test_ids_that_are_no_ids_are_named(tmp_path):
    data = fuzz_seeds.refer_root(tmp_path)
    refs = data["refs"]
    refs[0]["image_id"] = {"id": 1}
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, refs), "refcoco", "train")
    _one_line(error, "refs(unc).p", "'image_id' must be an id (an int or a printable string), got {'id': 1}")
    instances = data["instances"]
    instances["images"][0]["id"] = [1]
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, instances=instances), "refcoco", "train")
    _one_line(error, "instances.json", "'id' must be an id")


def test_a_file_name_or_sentence_of_the_wrong_type_is_named(tmp_path):
    data = fuzz_seeds.refer_root(tmp_path)
    data["instances"]["images"][0]["file_name"] = {"a": 1}
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, instances=data["instances"]), "refcoco", "train")
    _one_line(error, "instances.json", "'file_name' must be a non-empty string")
    data = fuzz_seeds.refer_root(tmp_path)
    data["refs"][0]["sentences"][0]["sent"] = ["the", "box"]
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, data["refs"], data["instances"]), "refcoco", "train")
    _one_line(error, "refs(unc).p", "'sent' must be a string")


def test_an_image_of_a_hundred_billion_pixels_is_refused_before_its_mask_is_made(tmp_path):
    data = fuzz_seeds.refer_root(tmp_path)
    data["instances"]["images"][0].update(height=100_000, width=1_000_000)
    before = _peak_rss_mb()
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, instances=data["instances"]), "refcoco", "train")
    _one_line(error, "instances.json", "100000x1000000 is over the limit of 50,000,000 pixels")
    line = {"image": "image.png", "sentences": ["it"], "mask": None, "split": "val"}
    (tmp_path / "refs.jsonl").write_text(json.dumps({**line, "height": 100_000, "width": 100_000}) + "\n")
    with pytest.raises(AnnotationError) as error:
        load_split(tmp_path, "custom", "val")
    _one_line(error, "refs.jsonl line 1", "over the limit of 50,000,000 pixels")
    assert _peak_rss_mb() - before < 200


@pytest.mark.parametrize(
    ("segmentation", "fragment"),
    [
        ({"size": [6, 8], "counts": [5]}, "adding up to the image's 48 (6x8); these add up to 5"),
        ({"size": [6, 8], "counts": "0"}, "these add up to 0"),  # pycocotools returned its buffer's garbage
        ({"size": [6, 8], "counts": [49, -1]}, "one is negative or longer than the image"),
        # More than 6 groups of 5 bits: pycocotools reads a 32-bit int (other runs than Python's), and one long
        # number took time quadratic in its length.
        ({"size": [6, 8], "counts": "o" * 3000 + "0"}, "COCO's compressed string"),
        ({"size": [6, 8], "counts": "::5goooooO9"}, "COCO's compressed string"),
        ({"size": [6, 8], "counts": "\x7f\x00"}, "COCO's compressed string"),
        ({"size": [6, 8], "counts": {"a": 1}}, "COCO's compressed string"),
        ({"size": {"h": 6}, "counts": [48]}, "RLE 'size' is {'h': 6}"),
    ],
)
def test_rle_counts_that_do_not_cover_the_image_are_refused(segmentation, fragment):
    with pytest.raises(AnnotationError) as error:
        decode_segmentation(segmentation, 6, 8, where="instances.json: object 3")
    _one_line(error, "instances.json: object 3", fragment)


def test_a_polygon_coordinate_too_large_for_a_float_is_one_line():
    with pytest.raises(AnnotationError) as error:
        decode_segmentation([[10**400, 0, 1, 1, 2, 2]], 4, 4, where="refs.jsonl line 3")
    _one_line(error, "refs.jsonl line 3", "coordinates outside [-8, 8]")


def test_numbers_of_more_than_4300_digits_are_one_line(tmp_path):
    instances = tmp_path / "instances.json"
    instances.write_text('{"images": [{"id": 1, "height": ' + "9" * 5000 + ', "width": 4}]}')
    with pytest.raises(AnnotationError) as error:
        load_json(instances)
    _one_line(error, "instances.json", "a number of more than 4,300 digits")
    with pytest.raises(ConfigError) as error:
        config_from_yaml(("optim:\n  lr: " + "9" * 5000 + "\n").encode(), "long.yaml")
    _one_line(error, "long.yaml", "a number of more than 4,300 digits")
    with pytest.raises(AnnotationError) as error:
        checked_size(10**5000, 2, "instances.json: image 1")
    _one_line(error, "instances.json: image 1", "<an integer of 16,610 bits>x2 is over the limit")


def test_a_yaml_date_out_of_range_is_named_by_its_reason():
    with pytest.raises(ConfigError) as error:
        config_from_yaml(b"optim:\n  lr: 2001-02-30\n", "date.yaml")
    _one_line(error, "date.yaml", "not YAML this reader reads (day is out of range for month)")


def test_rle_that_covers_the_image_still_decodes():
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (6, 8), (31, 17), (64, 3)]:
        mask = rng.random((height, width)) < 0.4
        assert (decode_segmentation(encode_mask(mask), height, width, where="x") == mask).all()
        empty = {"size": [height, width], "counts": [height * width]}
        assert not decode_segmentation(empty, height, width, where="x").any()


def test_a_damaged_pickle_and_deep_json_are_one_line(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"\x80\x02Q.")  # a persistent id: the unpickler's message has a newline
    with pytest.raises(AnnotationError) as error:
        load_pickle(path)
    _one_line(error, "refs(unc).p", "persistent id")
    data = fuzz_seeds.refer_root(tmp_path)
    root = _refer_root(tmp_path, data["refs"])
    (root / "refcoco" / "instances.json").write_text("[" * 100_000)
    with pytest.raises(AnnotationError) as error:
        load_split(root, "refcoco", "train")
    _one_line(error, "instances.json", "nested too deeply")


def test_a_jsonl_path_too_long_for_the_system_is_named(tmp_path):
    fuzz_seeds.jsonl_seeds(tmp_path)
    line = {"image": "x" * 5000 + ".png", "sentences": ["it"], "mask": None, "split": "val"}
    (tmp_path / "refs.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(AnnotationError) as error:
        load_split(tmp_path, "custom", "val")
    _one_line(error, "refs.jsonl line 1", "'image'", "File name too long")


def test_a_global_of_500_kb_is_refused_before_torch_matches_it_for_hours(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"\x80\x02cio\nope" + b'{"a":' * 100_000 + b"\n)R.")
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error:
        torch_load_weights_only(path, "expected a checkpoint")
    assert time.perf_counter() - start < 2
    _one_line(error, "last.pt", "which is no Python name, not handed to torch")


def _torch_zip_with_storage(path: Path, numel: int) -> None:
    """A torch.save zip whose tensor claims a storage of ``numel`` floats (its record holds 4 bytes)."""
    torch.save({"w": torch.ones(1)}, path)
    raw = path.read_bytes()
    size_field = b"K\x01\x85"  # BININT1 1, TUPLE1: the tensor's size (1,)
    storage = b"X\x03\x00\x00\x00cpuq\x06K\x01t"  # ... 'cpu', numel 1, TUPLE
    assert raw.count(storage) == 1 and raw.count(size_field) >= 1
    big = b"\x8a\x05" + numel.to_bytes(5, "little")  # LONG1, 5 bytes
    import io

    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, content in members:
            if info.filename.endswith("data.pkl"):
                content = content.replace(storage, storage[:-3] + big + b"t").replace(size_field, big + b"\x85", 1)
            archive.writestr(info, content)


def test_headers_promising_huge_tensors_or_images_are_refused_before_allocation(tmp_path):
    before = _peak_rss_mb()
    giant = tmp_path / "giant.pt"
    _torch_zip_with_storage(giant, 25_000_000_000)  # 100 GB of floats
    with pytest.raises(CheckpointError) as error:
        torch_load_weights_only(giant, "expected a checkpoint")
    _one_line(error, "giant.pt")
    header = json.dumps({"w": {"dtype": "F32", "shape": [25_000_000_000], "data_offsets": [0, 100_000_000_000]}})
    weights = tmp_path / "giant.safetensors"
    weights.write_bytes(len(header).to_bytes(8, "little") + header.encode() + b"\x00" * 16)
    with pytest.raises(CheckpointError) as error:
        weights_metadata(weights)
    _one_line(error, "giant.safetensors")
    bomb = tmp_path / "bomb.png"
    write_png_declaring(bomb, 100_000, 100_000)
    with pytest.raises(ImageInputError) as error:
        load_image(bomb)
    _one_line(error, "bomb.png")
    assert _peak_rss_mb() - before < 200


def test_a_memo_index_of_four_billion_is_refused_before_the_memo_grows(tmp_path):
    before = _peak_rss_mb()
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"\x80\x02]r\xff\xff\xff\xff.")  # LONG_BINPUT 2**32 - 1: 32 GB of memo in C's unpickler
    with pytest.raises(AnnotationError) as error:
        load_pickle(path)
    _one_line(error, "refs(unc).p", "memo index 4,294,967,295 at byte 3 is past any object")
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError) as error:
        torch_load_weights_only(checkpoint, "expected a checkpoint")
    _one_line(error, "last.pt", "memo index")
    assert _peak_rss_mb() - before < 200


def test_an_annotation_whose_image_id_is_true_is_not_a_target_of_image_1(tmp_path):
    data = fuzz_seeds.refer_root(tmp_path)
    data["instances"]["annotations"][0]["image_id"] = True  # equal to 1 in Python, but no id
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, data["refs"], data["instances"]), "refcoco", "train")
    _one_line(error, "refs(unc).p", "ann_id 10 is an annotation of image True")


def test_a_safetensors_header_with_a_newline_in_a_dtype_is_one_line(tmp_path):
    header = json.dumps({"w": {"dtype": "\nF32", "shape": [1], "data_offsets": [0, 4]}})
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + b"\x00" * 4)
    with pytest.raises(CheckpointError) as error:
        weights_metadata(path)
    _one_line(error, "odd.safetensors", "unknown variant")


def test_a_hub_config_nested_too_deeply_is_one_line(tmp_path):
    hub = family("hub_config")
    hub.setup(tmp_path)
    (tmp_path / hub.target).write_text("[" * 100_000)
    with pytest.raises(HubError) as error:
        hub.read(tmp_path, "")
    _one_line(error, "hf-hub:org/fuzz", "config.json is not JSON this reader reads (nested too deeply)")


def test_paths_and_ids_with_a_newline_are_refused_by_name(tmp_path):
    fuzz_seeds.jsonl_seeds(tmp_path)
    line = {"image": "image.png", "sentences": ["it"], "mask": "\n\x00", "split": "val"}
    (tmp_path / "refs.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(AnnotationError) as error:
        load_split(tmp_path, "custom", "val")
    _one_line(error, "refs.jsonl line 1", "'mask' '\\n\\x00' holds a newline")
    data = fuzz_seeds.refer_root(tmp_path)
    data["refs"][0]["image_id"] = "\n1"
    with pytest.raises(AnnotationError) as error:
        load_split(_refer_root(tmp_path, data["refs"]), "refcoco", "train")
    _one_line(error, "refs(unc).p", "'image_id' must be an id (an int or a printable string), got '\\n1'")


def test_zips_that_torch_or_zipfile_cannot_open_are_checkpoint_errors(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(zlib.decompress(base64.b64decode(_EINVAL_CHECKPOINT)))
    with pytest.raises(CheckpointError) as error:
        torch_load_weights_only(path, "expected a checkpoint")
    _one_line(error, "last.pt", "could not be read as a checkpoint")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    raw = bytearray(buffer.getvalue())
    central = raw.index(b"PK\x01\x02")
    raw[central + 6] = 255  # version needed to extract: 25.5, which zipfile does not implement
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as error:
        torch_load_weights_only(path, "expected a checkpoint")
    _one_line(error, "last.pt", "could not be read as a checkpoint")


def test_a_weights_config_with_zero_heads_is_a_checkpoint_error(tmp_path):
    import safetensors.torch

    from risam import get_config
    from risam.io.weights import WEIGHTS_FORMAT, read_config

    config = get_config("risam_tiny").to_dict()
    config["text_encoder"]["heads"] = 0
    path = tmp_path / "zero.safetensors"
    metadata = {"format": WEIGHTS_FORMAT, "config": json.dumps(config)}
    path.write_bytes(safetensors.torch.save({"w": torch.ones(1)}, metadata=metadata))
    with pytest.raises(CheckpointError) as error:
        read_config(path)
    _one_line(error, "zero.safetensors", "not a valid RISAM config: text_encoder.heads=0: must be at least 1")


def test_a_thin_image_and_damaged_exif_give_a_mask_or_one_line(tmp_path):
    from risam.data.transforms import resized_shape

    assert resized_shape(1, 3000, 1024) == (1, 1024)
    image = Image.new("RGB", (8, 6))
    image.info["exif"] = b"Exif\x00\x00MM@*\x00\x00\x00\x08"  # a TIFF header Pillow refuses
    with pytest.raises(ImageInputError) as error:
        load_image(image, name="upload.jpg")
    _one_line(error, "upload.jpg", "EXIF data is damaged")


def test_data_check_names_an_image_file_name_too_long_for_the_system(tmp_path):
    from risam.data.check import check_data_root

    data = fuzz_seeds.refer_root(tmp_path)
    data["instances"]["images"][0]["file_name"] = "x" * 5000 + ".png"
    report = check_data_root(_refer_root(tmp_path, data["refs"], data["instances"]), "refcoco")
    assert any("image_id 1: image file" in problem and "File name too long" in problem for problem in report.problems)
