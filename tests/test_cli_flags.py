import pytest

from risam.cli import main
from risam.cli.flags import in_flags
from risam.config import ConfigError
from risam.io.config_files import load_config


def test_each_command_names_its_own_flags_for_a_parameter():
    missing = "pass sam_checkpoint= sam_vit_b_01ec64.pth from URL and clip_checkpoint= ViT-B-16.pt from URL"
    assert in_flags("segment", missing) == (
        "pass --sam-checkpoint sam_vit_b_01ec64.pth from URL and --clip-checkpoint ViT-B-16.pt from URL"
    )
    assert in_flags("evaluate", missing) == (
        "pass --set model.sam_checkpoint=PATH: sam_vit_b_01ec64.pth from URL and "
        "--set model.clip_checkpoint=PATH: ViT-B-16.pt from URL"
    )
    assert in_flags("explain", "pixel=(70, -1): outside the 64x48 image; give 0 <= x < 64 and 0 <= y < 48") == (
        "--pixel 70 -1: outside the 64x48 image; give 0 <= X < 64 and 0 <= Y < 48"
    )
    assert in_flags("explain", "block=9: the model has 2 fusion blocks") == "--block 9: the model has 2 fusion blocks"
    assert in_flags("train", "resume: no training checkpoint at run/last.pt") == (
        "--resume: no training checkpoint at run/last.pt"
    )
    # A config key that merely mentions a parameter's name is left alone, as is every other command's text.
    assert (
        in_flags("train", "model.sam_checkpoint='x.pth': no such file") == "model.sam_checkpoint='x.pth': no such file"
    )
    assert in_flags("info", missing) == missing


def test_an_override_is_named_as_the_python_caller_gave_it_and_as_the_cli_did(capsys):
    with pytest.raises(ConfigError, match=r"^override 'optim\.lr': expected key=value"):
        load_config("refshapes_tiny", ["optim.lr"])
    assert main(["train", "--config", "refshapes_tiny", "--set", "optim.lr"]) == 2
    assert "risam train: error: --set 'optim.lr': expected key=value" in capsys.readouterr().err


def test_a_missing_data_root_names_the_override_and_the_flag(capsys):
    assert (
        main(["evaluate", "--config", "refshapes_tiny", "--checkpoint", "risam_tiny_refshapes", "--split", "val"]) == 2
    )
    assert "data.root is not set; give it in the config or as --set data.root=/path/to/data" in capsys.readouterr().err
