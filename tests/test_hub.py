"""Models and encoder files from the Hugging Face Hub, and uploads to it, against a Hub in miniature on 127.0.0.1
(:mod:`local_hub`) set as the endpoint: by name, by revision, from the cache when offline, after an interrupted
transfer; the exported folder, its model card and config.json; ``--push-to-hub``; ``risam download --source hub``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import open_clip
import pytest
import safetensors.torch
import timm
import torch
import yaml
from huggingface_hub import constants
from huggingface_hub.repocard import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image
from timm.models.vision_transformer_sam import checkpoint_filter_fn

from local_hub import LocalHub, serve_hub
from official_formats import meta_sam, save_openai_jit, small_openai_clip
from risam import RISAMPredictor, create_model, get_config
from risam.cli import main
from risam.engine.export import export_run
from risam.io.config_files import load_config, save_config
from risam.io.hub import HubError, parse_hub_name, pinned_name
from risam.io.weights import RECORD_KEYS, load_weights, save_weights, weights_metadata
from risam.registry.files import DEFAULT_PRETRAINED, pretrained_path, resolve_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CARD = REPO_ROOT / "docs" / "models" / DEFAULT_PRETRAINED


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """The local Hub as ``huggingface_hub``'s endpoint, with a fresh cache; online, Xet off (the local Hub
    speaks the LFS protocol, which the Hub still accepts, not Xet's chunk store)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("HF_TOKEN", "hf_local_test_token")
    with serve_hub() as served:
        # What HF_ENDPOINT sets when huggingface_hub is imported (the last test sets the variable itself).
        monkeypatch.setattr(constants, "ENDPOINT", served.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", served.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield served


def _exported(tmp_path: Path, name: str = "exported") -> Path:
    folder = tmp_path / name
    export_run(DEFAULT_PRETRAINED, folder)
    return folder


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _assert_same_weights(model: torch.nn.Module, path: Path) -> None:
    _, expected = load_weights(path)
    state = model.trainable_state_dict()
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)


def _other_weights(folder: Path, out: Path) -> Path:
    """A copy of the exported folder whose weights differ (as a second training run's would)."""
    config, state = load_weights(folder / "model.safetensors")
    changed = {key: value + 0.5 if value.is_floating_point() else value for key, value in state.items()}
    out.mkdir()
    metadata = weights_metadata(folder / "model.safetensors")
    save_weights(changed, config, out / "model.safetensors", {key: metadata[key] for key in RECORD_KEYS})
    for name in ("config.json", "README.md"):
        (out / name).write_bytes((folder / name).read_bytes())
    return out


def test_a_model_loads_by_name_and_by_revision_with_the_weights_of_the_local_file(hub: LocalHub, tmp_path: Path):
    first = _exported(tmp_path)
    second = _other_weights(first, tmp_path / "second")
    first_commit = hub.commit("org/tiny", _folder_files(first))
    hub.repos["org/tiny"].branches["v1.0"] = first_commit  # a tag
    hub.commit("org/tiny", _folder_files(second))

    _assert_same_weights(create_model(checkpoint="hf-hub:org/tiny"), second / "model.safetensors")
    assert pinned_name("hf-hub:org/tiny", resolve_checkpoint("hf-hub:org/tiny")) == f"hf-hub:org/tiny@{_main(hub)}"
    _assert_same_weights(create_model(checkpoint=f"hf-hub:org/tiny@{first_commit}"), first / "model.safetensors")
    predictor = RISAMPredictor.from_pretrained("hf-hub:org/tiny@v1.0")
    _assert_same_weights(predictor.model, first / "model.safetensors")
    local = RISAMPredictor.from_checkpoint(first / "model.safetensors")
    image = Image.new("RGB", (96, 80), (40, 120, 200))
    assert (
        predictor.predict("the blue square", predictor.encode(image)).mask
        == local.predict("the blue square", local.encode(image)).mask
    ).all()
    # The config and the weights come from one commit, and config.json is fetched first.
    downloads = [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    assert downloads[:2] == [
        "/org/tiny/resolve/main/config.json",
        "/org/tiny/resolve/" + _main(hub) + "/model.safetensors",
    ]


def _main(hub: LocalHub) -> str:
    return hub.repos["org/tiny"].branches["main"]


def test_offline_the_cache_serves_and_an_empty_cache_is_one_line(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    folder = _exported(tmp_path)
    hub.commit("org/tiny", _folder_files(folder))
    create_model(checkpoint="hf-hub:org/tiny")
    seen = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _assert_same_weights(create_model(checkpoint="hf-hub:org/tiny"), folder / "model.safetensors")
    assert len(hub.requests) == seen  # nothing asked of the Hub

    with pytest.raises(HubError) as raised:
        create_model(checkpoint="hf-hub:org/never-fetched@v2")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("hf-hub:org/never-fetched@v2: config.json not in the")
    assert "HF_HUB_OFFLINE is set" in message and "hf download org/never-fetched config.json --revision v2" in message
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64)).save(image)
    code = main(["segment", str(image), "a square", "--checkpoint", "hf-hub:org/never-fetched", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "risam segment: error: hf-hub:org/never-fetched:" in err


def test_an_interrupted_transfer_resumes_and_gives_the_same_weights(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = _exported(tmp_path)
    hub.commit("org/tiny", _folder_files(folder))
    # The transfer is read in 64 KiB chunks, so the cut half-way falls after some of them were written.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    hub.cuts["model.safetensors"] = 1
    _assert_same_weights(create_model(checkpoint="hf-hub:org/tiny"), folder / "model.safetensors")
    gets = [(path, byte_range) for method, path, byte_range in hub.requests if method == "GET"]
    weights_gets = [byte_range for path, byte_range in gets if path.endswith("model.safetensors")]
    assert len(weights_gets) == 2 and weights_gets[0] is None and weights_gets[1].startswith("bytes=")
    assert int(weights_gets[1].removeprefix("bytes=").rstrip("-")) > 0


def test_errors_name_the_repo_and_what_to_do(hub: LocalHub, tmp_path: Path):
    folder = _exported(tmp_path)
    hub.commit("org/tiny", _folder_files(folder))
    hub.commit("timm/samvit_base_patch16.sa1b", {"config.json": b'{"architecture": "samvit_base_patch16"}'})
    hub.commit("org/no-weights", {"config.json": json.dumps({"library_name": "risam"}).encode()})
    cases = {
        "hf-hub:org/missing": "has no model repo org/missing, or it is private",
        "hf-hub:org/tiny@v9": "org/tiny has no revision 'v9'",
        "hf-hub:timm/samvit_base_patch16.sa1b": "not a risam model (config.json has library_name None",
        "hf-hub:org/no-weights": "org/no-weights has no model.safetensors at revision main",
        "hf-hub:no-org": "is not a Hub model name",
        "hf-hub:org/tiny@": "is not a Hub model name",
        "hf-hub:org/bad name": "is not a Hub model name",
        "hf-hub:org/tiny@../../../outside": "is not a branch, tag or commit id",
        "hf-hub:org/tiny@refs//x": "is not a branch, tag or commit id",
    }
    for name, expected in cases.items():
        with pytest.raises(HubError) as raised:
            create_model(checkpoint=name)
        assert expected in str(raised.value) and "\n" not in str(raised.value), name
    assert parse_hub_name("hf-hub:org/tiny@refs/pr/1").revision == "refs/pr/1"


def test_the_card_parses_and_its_model_index_equals_the_record(tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(load_config("refshapes_tiny", ["train.seed=7"]), run / "config.yaml")
    model_config, state = load_weights(pretrained_path(DEFAULT_PRETRAINED))
    save_weights(state, model_config, run / "checkpoints" / "last.safetensors")
    for split, iou in (("val", 0.51), ("testA", 0.625)):
        results = {
            "overall_iou": iou,
            "mean_iou": iou + 0.01,
            "precision": {"0.5": 0.7, "0.9": 0.1},
            "num_samples": 120,
            "split": split,
            "checkpoint": "run/checkpoints/last.safetensors",
        }
        (run / f"results_{split}.json").write_text(json.dumps(results))
    out = tmp_path / "card"
    assert main(["export", str(run), str(out), "--license", "mit", "--cost", "2 min"]) == 0
    record = weights_metadata(out / "model.safetensors")
    recorded = json.loads(record["results"])

    metadata = metadata_load(out / "README.md")  # huggingface_hub's own reader of the front matter
    assert metadata["library_name"] == "risam" and metadata["pipeline_tag"] == "image-segmentation"
    assert metadata["license"] == "mit" and metadata["datasets"] == ["refshapes"]
    assert "referring-image-segmentation" in metadata["tags"]
    name, eval_results = model_index_to_eval_results(metadata["model-index"])
    assert name == "card"
    by_split: dict[str, dict[str, float]] = {}
    for result in eval_results:
        assert result.task_type == "image-segmentation" and result.dataset_type == "refshapes"
        by_split.setdefault(result.dataset_split, {})[result.metric_type] = result.metric_value
    assert by_split == {
        split: {
            "overall_iou": scores["overall_iou"],
            "mean_iou": scores["mean_iou"],
            **{f"precision@{t}": v for t, v in scores["precision"].items()},
        }
        for split, scores in recorded.items()
    }
    front, text = (out / "README.md").read_text().split("---\n", 2)[1:]
    assert yaml.safe_load(front) == metadata
    assert "| card | refshapes | val | 70.00 |" in text and "51.00" in text and "Seed: 7" in text and "2 min" in text
    config = json.loads((out / "config.json").read_text())
    assert config["library_name"] == "risam" and config["config"] == json.loads(record["config"])
    assert config["trainable_parameters"] == sum(value.numel() for value in state.values())


def test_the_committed_card_of_the_shipped_model_is_what_export_writes(tmp_path: Path):
    folder = _exported(tmp_path)
    for name in ("README.md", "config.json"):
        assert (SHIPPED_CARD / name).read_text() == (folder / name).read_text(), (
            f"docs/models/{DEFAULT_PRETRAINED}/{name} is stale: run risam export {DEFAULT_PRETRAINED} "
            f"docs/models/{DEFAULT_PRETRAINED} and commit README.md and config.json"
        )
    shipped = pretrained_path(DEFAULT_PRETRAINED)
    assert weights_metadata(folder / "model.safetensors") == weights_metadata(shipped)
    _assert_same_weights(create_model(checkpoint=shipped), folder / "model.safetensors")


def test_push_to_hub_uploads_the_exported_folder(hub: LocalHub, tmp_path: Path, capsys):
    out = tmp_path / "pushed"
    assert main(["export", DEFAULT_PRETRAINED, str(out), "--push-to-hub", "org/pushed", "--private"]) == 0
    assert "uploaded to org/pushed" in capsys.readouterr().out
    arrived = hub.files("org/pushed")
    assert {name: arrived[name] for name in _folder_files(out)} == _folder_files(out)
    assert hub.repos["org/pushed"].private
    assert hub.validated == [(out / "README.md").read_text()]  # the card's metadata went to validate-yaml
    assert set(hub.tokens) == {"Bearer hf_local_test_token"}
    assert any(method == "PUT" for method, _, _ in hub.requests)  # the weights went through LFS
    _assert_same_weights(create_model(checkpoint="hf-hub:org/pushed"), out / "model.safetensors")

    assert main(["export", DEFAULT_PRETRAINED, str(tmp_path / "x.safetensors"), "--push-to-hub", "org/x"]) == 2
    assert "--push-to-hub uploads a folder" in capsys.readouterr().err


def _timm_sam_file(sam: torch.nn.Module, image, path: Path) -> None:
    """Meta's SAM weights as timm's Hub repos hold them: timm's model, loaded through timm's own conversion
    of Meta's file, saved whole (neck included) as model.safetensors."""
    model = timm.create_model(
        "samvit_base_patch16",
        pretrained=False,
        embed_dim=image.embed_dim,
        depth=image.depth,
        num_heads=image.num_heads,
        global_attn_indexes=list(image.global_attn_indexes),
        window_size=image.window_size,
        img_size=image.img_size,
    )
    encoder_keys = {key: value for key, value in sam.state_dict().items() if key.startswith("image_encoder.")}
    model.load_state_dict(checkpoint_filter_fn(encoder_keys, model))
    safetensors.torch.save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))


def test_encoder_files_from_the_hub_load_as_the_official_files(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    overrides = {"image_encoder.stem": "patch", "image_encoder.patch_size": 16}
    config = get_config("risam_tiny", overrides)
    image, text = config.image_encoder, config.text_encoder
    sam = meta_sam(image.embed_dim, image.depth, image.num_heads, image.global_attn_indexes, image.window_size, 128)
    torch.save(sam.state_dict(), tmp_path / "sam_tiny.pth")
    _timm_sam_file(sam, image, tmp_path / "model.safetensors")  # then risam download --source hub, on- and offline
    torch.manual_seed(1)
    clip = small_openai_clip(text.output_dim, text.width, text.heads, text.layers)
    save_openai_jit(clip, tmp_path / "clip.pt", image_size=16)
    open_clip_model = open_clip.load_openai_model(str(tmp_path / "clip.pt"), precision="fp32", device="cpu")
    safetensors.torch.save_file(
        {key: value.contiguous() for key, value in open_clip_model.state_dict().items()},
        str(tmp_path / "open_clip_model.safetensors"),
    )
    hub.commit("timm/samvit_base_patch16.sa1b", {"model.safetensors": (tmp_path / "model.safetensors").read_bytes()})
    hub.commit(
        "timm/vit_base_patch16_clip_224.openai",
        {"open_clip_model.safetensors": (tmp_path / "open_clip_model.safetensors").read_bytes()},
    )

    official = create_model(
        "risam_tiny",
        sam_checkpoint=tmp_path / "sam_tiny.pth",
        clip_checkpoint=tmp_path / "clip.pt",
        overrides=overrides,
    ).eval()
    from_hub = create_model(
        "risam_tiny",
        sam_checkpoint="hf-hub:timm/samvit_base_patch16.sa1b",
        clip_checkpoint="hf-hub:timm/vit_base_patch16_clip_224.openai",
        overrides=overrides,
    ).eval()
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    tokens = official.text_encoder.tokenize(["the red square", "the second circle from the left"])
    with torch.no_grad():
        for ours, theirs in zip(from_hub.image_taps(images), official.image_taps(images), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        torch.testing.assert_close(from_hub.encode_text(tokens)[0], official.encode_text(tokens)[0], rtol=0, atol=0)

    assert main(["download", "sam_vit_b", "clip_vit_b16", "--source", "hub"]) == 0
    out = capsys.readouterr().out
    sha = huggingface_hub.hf_hub_download("timm/samvit_base_patch16.sa1b", "model.safetensors")
    assert f"sam_vit_b: {sha} (sha256:" in out and "--sam-checkpoint hf-hub:timm/samvit_base_patch16.sa1b" in out
    assert "clip_vit_b16:" in out and "--clip-checkpoint hf-hub:timm/vit_base_patch16_clip_224.openai" in out

    seen = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["download", "sam_vit_b", "--source", "hub"]) == 0  # from the cache, checked against its blob name
    assert len(hub.requests) == seen and "(sha256:" in capsys.readouterr().out
    assert main(["download", "sam_vit_l", "--source", "hub"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hf-hub:timm/samvit_large_patch16.sa1b: model.safetensors not in the" in err


def test_a_hub_file_whose_bytes_differ_from_the_record_is_removed_and_refused(hub: LocalHub, tmp_path: Path, capsys):
    data = bytes(range(256)) * 64
    hub.commit("timm/samvit_base_patch16.sa1b", {"model.safetensors": data})
    hub.substitutes["model.safetensors"] = data[:-1] + b"\x00"
    assert main(["download", "sam_vit_b", "--source", "hub"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors has sha256" in err and "but the Hub records" in err and "removed from the cache" in err
    cache = Path(constants.HF_HUB_CACHE)
    assert not [path for path in cache.rglob("*") if path.is_file() and path.stat().st_size == len(data)]
    del hub.substitutes["model.safetensors"]
    assert main(["download", "sam_vit_b", "--source", "hub"]) == 0


def test_hf_endpoint_home_and_offline_from_the_environment(tmp_path: Path):
    """The command line in fresh processes, configured only by the environment variables users set."""
    folder = _exported(tmp_path)
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(image)
    environment = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "no_proxy": "127.0.0.1"}
    environment.pop("HF_HUB_OFFLINE", None)
    command = [
        sys.executable,
        "-m",
        "risam.cli",
        "segment",
        str(image),
        "the red square",
        "--checkpoint",
        "hf-hub:org/tiny",
    ]
    with serve_hub() as served:
        served.commit("org/tiny", _folder_files(folder))
        online = subprocess.run(
            [*command, "--out", str(tmp_path / "online")],
            env={**environment, "HF_ENDPOINT": served.url},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert online.returncode == 0, online.stderr
        assert any(path.endswith("model.safetensors") for _, path, _ in served.requests)
    offline = subprocess.run(
        [*command, "--out", str(tmp_path / "offline")],
        env={**environment, "HF_ENDPOINT": served.url, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "online" / "00_mask.png").read_bytes() == (tmp_path / "offline" / "00_mask.png").read_bytes()
    assert list((tmp_path / "hf_home" / "hub").glob("models--org--tiny/snapshots/*/model.safetensors"))
