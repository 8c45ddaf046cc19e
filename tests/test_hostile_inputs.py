"""Hostile and unusual inputs, as a new user and an attacker send them.

Every case asserts the exit code (2 for bad input), that the message is one line naming the
input, that no traceback reaches the user and that nothing is left behind (no output folder,
no temporary file).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hostile_files import write_code_running_archive, write_png_declaring
from risam.cli import main
from risam.io.images import load_image


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``risam ARGV``; argparse's own exits count too."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line(err: str, *fragments: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def _leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _segment(weights: Path, image: Path, out: Path, *extra: str) -> list[str]:
    return ["segment", "--checkpoint", str(weights), str(image), *extra, "-o", str(out)]


def test_code_in_a_clip_file_never_runs(tmp_path, tiny_weights, photo, capsys):
    crafted, marker = tmp_path / "ViT-B-16.pt", tmp_path / "written-on-load"
    write_code_running_archive(crafted, marker)
    capsys.readouterr()  # what torch printed while making the file
    out = tmp_path / "out"
    for argv in (
        _segment(tiny_weights, photo, out, "the dog", "--clip-checkpoint", str(crafted)),
        _segment(tiny_weights, photo, out, "the dog", "--sam-checkpoint", str(crafted)),
        ["convert-clip", str(crafted), str(tmp_path / "text.safetensors")],
    ):
        code, _, err = _run(capsys, argv)
        assert code == 2
        _assert_one_line(err, str(crafted))
        assert not marker.exists()
    assert "--run-torchscript" in err and "nothing in the file was run" in err
    assert not out.exists() and not (tmp_path / "text.safetensors").exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("side", [100_000, 20_000])
def test_decompression_bomb_header_is_one_line(tmp_path, tiny_weights, capsys, side):
    bomb = tmp_path / "bomb.png"
    write_png_declaring(bomb, side, side)
    out = tmp_path / "out"
    code, _, err = _run(capsys, _segment(tiny_weights, bomb, out, "the dog"))
    assert code == 2
    _assert_one_line(err, "bomb.png", "50,000,000 pixels")
    assert not out.exists() and not _leftovers(tmp_path)


def test_folder_and_unreadable_image_are_named_as_such(tmp_path, tiny_weights, photo, capsys, monkeypatch):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    code, _, err = _run(capsys, _segment(tiny_weights, folder, tmp_path / "out", "the dog"))
    assert code == 2
    _assert_one_line(err, "folder.png: a folder with no images in it")  # a folder stands for its images

    photo.chmod(0)
    try:
        with open(photo, "rb"):
            readable = True  # root reads any file: make the OS refuse this one
    except PermissionError:
        readable = False
    if readable:
        real_open = open

        def refusing_open(file, *args, **kwargs):
            if Path(file) == photo:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refusing_open)
    code, _, err = _run(capsys, _segment(tiny_weights, photo, tmp_path / "out", "the dog"))
    photo.chmod(0o644)
    assert code == 2
    _assert_one_line(err, "photo.png: cannot read the file (permission denied)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"model:\n  name: [risam_tiny\n", ["bad.yaml:3:1: not valid YAML"]),
        (b"a: \xff\xfe\n", ["bad.yaml: not UTF-8 text"]),
        (b"a: !!python/object/apply:os.system ['touch MARKER']\n", ["bad.yaml:1:4", "python/object/apply"]),
    ],
)
def test_bad_yaml_is_one_line_naming_file_and_line(tmp_path, capsys, monkeypatch, content, fragments):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bad.yaml"
    config.write_bytes(content)
    code, _, err = _run(capsys, ["train", "--config", str(config)])
    assert code == 2
    _assert_one_line(err, *fragments)
    assert not (tmp_path / "MARKER").exists()
    code, _, err = _run(capsys, ["train", "--config", "refshapes_tiny", "--set", "a=!!python/name:os.system"])
    assert code == 2
    _assert_one_line(err, "--set a=!!python/name:os.system", "not valid YAML")


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--pixel", "99999", "99999"], ["--pixel 99999 99999: outside the 64x48 image"]),
        (["--pixel", "-5", "-5"], ["--pixel -5 -5: outside"]),
        (["--block", "99"], ["--block 99: the model has 2 fusion blocks"]),
    ],
)
def test_explain_arguments_out_of_range(tmp_path, tiny_weights, photo, capsys, extra, fragments):
    out = tmp_path / "figures" / "figure.png"
    argv = ["explain", "--checkpoint", str(tiny_weights), str(photo), "the dog", "-o", str(out), *extra]
    code, _, err = _run(capsys, argv)
    assert code == 2
    _assert_one_line(err, *fragments)
    assert not out.parent.exists()


def test_explain_needs_a_png_name(tmp_path, tiny_weights, photo, capsys):
    argv = ["explain", "--checkpoint", str(tiny_weights), str(photo), "the dog", "-o", str(tmp_path / "x.txt")]
    code, _, err = _run(capsys, argv)
    assert code == 2
    _assert_one_line(err, "x.txt", "ending in .png")
    assert not (tmp_path / "x.txt").exists()


def test_segment_output_that_is_a_file_or_under_a_file(tmp_path, tiny_weights, photo, capsys):
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me\n")
    for out in (existing, existing / "sub"):
        code, _, err = _run(capsys, _segment(tiny_weights, photo, out, "the dog"))
        assert code == 2
        _assert_one_line(err, "existing.txt")
    assert existing.read_text() == "keep me\n" and not _leftovers(tmp_path)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "1", "1.5", "-0.1", "half"])
def test_threshold_must_be_a_probability(tmp_path, tiny_weights, photo, capsys, value):
    code, _, err = _run(capsys, _segment(tiny_weights, photo, tmp_path / "out", "the dog", "--threshold", value))
    assert code == 2
    _assert_one_line(err, "--threshold", "strictly between 0 and 1")


def test_evaluate_unknown_split_names_the_known_ones(tmp_path, tiny_weights, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "data"), "--images", "8", "--seed", "1"]) == 0
    capsys.readouterr()
    argv = ["evaluate", "--config", "refshapes_tiny", "--checkpoint", str(tiny_weights), "--split", "bogus"]
    code, _, err = _run(capsys, [*argv, "--set", f"data.root={tmp_path / 'data'}"])
    assert code == 2
    _assert_one_line(err, "'bogus'", "train, val, testA, testB")


def test_non_utf8_and_escape_sequences_in_expressions(tmp_path, tiny_weights, photo, capsys):
    undecodable = b"the \xff dog".decode("utf-8", errors="surrogateescape")
    escape = "the \x1b[2J\x1b[31mred\x1b[0m dog"
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, _segment(tiny_weights, photo, out, undecodable, escape))
    assert code == 0
    raw = (out / "predictions.json").read_bytes()
    texts = [record["text"] for record in json.loads(raw.decode("utf-8"))["predictions"]]
    assert texts == ["the \ufffd dog", escape]
    for text in texts:
        text.encode("utf-8")  # strict: no lone surrogates
    assert "\x1b" not in stdout and "\\x1b[31mred" in stdout


def test_sixteen_bit_images_scale_from_their_full_range(tmp_path):
    path = tmp_path / "dark16.png"
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert np.asarray(load_image(path)).max() == 1  # 255 of 65535 is nearly black, not white


def test_truncation_warning_points_at_the_caller(tiny_model):
    from risam.predictor import RISAMPredictor

    predictor = RISAMPredictor(tiny_model)
    predictor.set_image(np.zeros((16, 16, 3), dtype=np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor.predict("a " * 200 + "dog")
    (warning,) = [w for w in caught if "truncated" in str(w.message)]
    assert warning.filename == __file__


@pytest.mark.parametrize("threshold", [float("nan"), 0.0, 1.0, 2.0])
def test_predictor_refuses_a_threshold_that_is_not_a_probability(tiny_model, threshold):
    from risam.errors import InputError
    from risam.predictor import RISAMPredictor

    with pytest.raises(InputError, match=f"threshold={threshold}"):
        RISAMPredictor(tiny_model, threshold=threshold)


def test_nan_weights_are_refused_in_one_line(tmp_path, photo, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from risam import create_model, get_config, save_weights

    model = create_model("risam_tiny")
    path = tmp_path / "diverged.safetensors"
    save_weights(model.trainable_state_dict(), get_config("risam_tiny"), path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    first = sorted(tensors)[0]
    tensors[first][...] = float("nan")
    save_file(tensors, str(path), metadata=metadata)
    code, _, err = _run(capsys, _segment(path, photo, tmp_path / "out", "the dog"))
    assert code == 2
    _assert_one_line(err, "diverged.safetensors", "NaN or inf", first)
    assert not (tmp_path / "out").exists()


def test_model_files_that_are_folders_are_named_as_such(tmp_path, tiny_weights, photo, capsys):
    folder = tmp_path / "model.safetensors"
    folder.mkdir()
    out = tmp_path / "out"
    for argv, what in (
        (_segment(folder, photo, out, "the dog"), "RISAM weights file"),
        (_segment(tiny_weights, photo, out, "the dog", "--clip-checkpoint", str(folder)), "CLIP checkpoint"),
        (_segment(tiny_weights, photo, out, "the dog", "--sam-checkpoint", str(folder)), "SAM checkpoint"),
    ):
        code, _, err = _run(capsys, argv)
        assert code == 2
        _assert_one_line(err, f"{folder}: is a folder, not a {what}")
    assert not out.exists()


def test_demo_shows_a_decompression_bomb_as_a_readable_message(tmp_path, tiny_weights):
    gradio = pytest.importorskip("gradio")
    from risam.demo import DemoBackend
    from risam.predictor import RISAMPredictor

    bomb = tmp_path / "bomb.png"
    write_png_declaring(bomb, 100_000, 100_000)
    backend = DemoBackend(RISAMPredictor.from_checkpoint(tiny_weights))
    with pytest.raises(gradio.Error, match=r"bomb\.png: the header declares more pixels"):
        backend.upload(str(bomb))
    with pytest.raises(gradio.Error, match=r"bomb\.png: the header declares more pixels"):
        backend.segment(str(bomb), "the dog")
