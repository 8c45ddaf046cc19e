import json

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from risam.cli import main


def test_info_json_for_the_paper_model_matches_the_paper(capsys):
    assert main(["info", "risam_vit_h", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # The paper: ~6M trainable parameters, about 1% of the whole model.
    assert abs(info["trainable_params"] - 6e6) <= 0.1 * 6e6
    assert 0.005 <= info["trainable_share"] <= 0.015
    assert info["trainable_params"] == sum(part["trainable"] for part in info["parts"].values())
    assert info["total_params"] == sum(part["params"] for part in info["parts"].values())
    assert info["tap_indices"] == [15, 23, 31]
    assert info["input_size"] == [1024, 1024]
    assert info["max_words"] == 17
    encoders = [part for name, part in info["parts"].items() if name.startswith(("image_encoder", "text_encoder"))]
    assert all(part["trainable"] == 0 for part in encoders)
    # Counted against Meta's own ViT-H encoder, less its neck, which RISAM does not use.
    with torch.device("meta"):
        reference = ImageEncoderViT(
            embed_dim=1280,
            depth=32,
            num_heads=16,
            global_attn_indexes=(7, 15, 23, 31),
            use_rel_pos=True,
            window_size=14,
            out_chans=256,
        )
    reference_count = sum(p.numel() for p in reference.parameters()) - sum(
        p.numel() for p in reference.neck.parameters()
    )
    image = next(part for name, part in info["parts"].items() if name.startswith("image_encoder"))
    assert image["params"] == reference_count


def test_info_text_lists_parts_and_counts(capsys):
    assert main(["info", "risam_tiny"]) == 0
    out = capsys.readouterr().out
    for word in (
        "feature_enhancement",
        "mutual_aware_attention",
        "mask_decoder",
        "trainable share",
        "128x128",
    ):
        assert word in out


def test_info_rejects_unknown_model(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "risam_vit_x"])
    assert exit_info.value.code == 2
    assert "risam_vit_x" in capsys.readouterr().err


def test_data_synth_then_check(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--images", "8", "--seed", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["splits"]) == {"train", "val", "testA", "testB"}
    assert main(["data", "check", str(tmp_path), "--dataset", "refshapes"]) == 0
    table = capsys.readouterr().out
    assert "sentences" in table and "train" in table

    missing = next((tmp_path / "images" / "refshapes").iterdir())
    missing.unlink()
    assert main(["data", "check", str(tmp_path), "--dataset", "refshapes"]) == 1
    assert missing.name in capsys.readouterr().out


def test_segment_writes_masks_overlays_and_json(tmp_path, tiny_weights, capsys):
    import numpy as np
    from PIL import Image

    from risam.data.masks import decode_segmentation
    from risam.predictor import RISAMPredictor

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (70, 110, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    assert (
        main(
            ["segment", "--checkpoint", str(tiny_weights), str(image), "the dog", "the cat on the left", "-o", str(out)]
        )
        == 0
    )
    summary = json.loads((out / "predictions.json").read_text())
    assert [p["text"] for p in summary["predictions"]] == ["the dog", "the cat on the left"]
    predictor = RISAMPredictor.from_checkpoint(tiny_weights)
    predictor.set_image(image)
    for index, record in enumerate(summary["predictions"]):
        mask = np.asarray(Image.open(out / record["mask"])) > 0
        expected = predictor.predict(record["text"])
        np.testing.assert_array_equal(mask, expected.mask)
        np.testing.assert_array_equal(decode_segmentation(record["rle"], 70, 110, "rle"), expected.mask)
        assert record["score"] == pytest.approx(expected.score)
        assert (out / f"{index:02d}_overlay.jpg").is_file()
    assert "the cat on the left" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "expression", "message"),
    [(b"plain text", "the dog", "not an image"), (None, "   ", "is empty")],
)
def test_segment_bad_input_is_one_readable_line(tmp_path, tiny_weights, capsys, content, expression, message):
    from PIL import Image

    image = tmp_path / "input.png"
    if content is None:
        Image.new("RGB", (8, 8)).save(image)
    else:
        image.write_bytes(content)
    assert main(["segment", "--checkpoint", str(tiny_weights), str(image), expression, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("risam segment: error:") and message in err and "Traceback" not in err


def _write_image(path, kind):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    if kind == "exif.jpg":
        image = Image.fromarray(pixels)
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(path, exif=exif)
    elif kind == "gray.png":
        Image.fromarray(pixels[..., 0]).save(path)
    elif kind == "rgba.png":
        Image.fromarray(np.dstack([pixels, pixels[..., :1]])).save(path)
    elif kind == "16bit.png":
        Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(path)
    elif kind == "cmyk.jpg":
        Image.fromarray(pixels).convert("CMYK").save(path)
    elif kind == "1x1.png":
        Image.new("RGB", (1, 1), (9, 9, 9)).save(path)
    elif kind == "truncated.png":
        Image.fromarray(pixels).save(path)
        path.write_bytes(path.read_bytes()[:120])


@pytest.mark.parametrize("kind", ["exif.jpg", "gray.png", "rgba.png", "16bit.png", "cmyk.jpg", "1x1.png"])
def test_segment_accepts_the_images_users_send(tmp_path, tiny_weights, kind):
    from PIL import Image

    path = tmp_path / kind
    _write_image(path, kind)
    out = tmp_path / "out"
    assert main(["segment", "--checkpoint", str(tiny_weights), str(path), "the dog", "-o", str(out)]) == 0
    mask = Image.open(out / "00_mask.png")
    expected = {"exif.jpg": (30, 50), "1x1.png": (1, 1)}.get(kind, (50, 30))  # EXIF 6: displayed rotated
    assert mask.size == expected


@pytest.mark.parametrize(
    ("kind", "message"), [("truncated.png", "damaged or truncated"), ("missing.png", "no such file")]
)
def test_segment_refuses_broken_files_readably(tmp_path, tiny_weights, capsys, kind, message):
    path = tmp_path / kind
    _write_image(path, kind)
    assert main(["segment", "--checkpoint", str(tiny_weights), str(path), "the dog", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_warning_of_the_command_is_one_line(tmp_path):
    import subprocess
    import sys

    from risam.demo.examples import load_examples

    image, _ = load_examples()[0]
    long_expression = " ".join(["the small red circle next to the big blue square"] * 4)
    command = [sys.executable, "-m", "risam.cli", "segment", str(image), long_expression, "-o", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warning_lines = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warning_lines) == 1, result.stderr
    assert warning_lines[0].startswith("risam segment: warning: ") and "truncated" in warning_lines[0]
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_help_imports_neither_torch_nor_the_encoders():
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from risam.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0\n"
        "print(sorted(name for name in ('torch', 'timm', 'open_clip') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "risam train" in result.stdout and "risam download" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
