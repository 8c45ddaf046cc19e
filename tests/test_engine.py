"""Training and evaluation: configs, schedule, end to end, DDP equivalence, kill-and-resume, NaN."""

import csv
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.multiprocessing as mp
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from risam.cli import main
from risam.config import ConfigError
from risam.config.experiment import RECIPES_DIR, OptimSection
from risam.data.refshapes import generate_refshapes
from risam.engine.evaluator import write_results
from risam.engine.logger import TrainingLogger
from risam.engine.trainer import Trainer, TrainingError, lr_at_epoch
from risam.io.checkpoint import load_training_state
from risam.io.config_files import load_config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refshapes")
    generate_refshapes(root, num_images=16, seed=5)
    return root


def _settings(data_root, output_dir, *extra):
    """Overrides for a fast CPU run of the tiny model with frozen encoders."""
    return [
        f"data.root={data_root}",
        f"train.output_dir={output_dir}",
        "model.overrides={}",
        "data.num_workers=0",
        "batch.global_groups=2",
        "train.progress=false",
        "train.log_every_steps=1",
        "eval.images_per_batch=4",
        "optim.lr=1e-3",
        *extra,
    ]


def _set_args(settings):
    return [part for setting in settings for part in ("--set", setting)]


def _weights(path):
    return safetensors.torch.load_file(str(path))


def test_every_shipped_config_loads_with_the_paper_recipe():
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    assert {"refcoco", "refcoco+", "refcocog_umd", "refcocog_google", "grefcoco", "phrasecut_from_refcoco"} <= set(
        names
    )
    assert "refshapes_tiny" in names
    for name in names:
        config = load_config(name)
        assert config.data.root is None and config.model.sam_checkpoint is None
        if not name.startswith("refshapes_tiny"):  # the RefShapes recipes of the test-sized model
            assert (config.optim.lr, config.optim.epochs, config.optim.milestones) == (1e-4, 50, [30, 42])
            assert config.eval.threshold == 0.35 and config.loss.focal_weight == config.loss.dice_weight == 0.5
            expected = "risam_sam2_l" if name == "refcoco_sam2_l" else "risam_vit_h"  # SAM 2.1: not in the paper
            assert config.model.name == expected and not config.model.overrides
    assert load_config("refcoco").data.max_words == 17
    assert load_config("refcoco+").data.max_words == 25


def test_overrides_and_their_errors():
    config = load_config("refcoco", ["optim.lr=3e-4", "optim.milestones=[1, 2]", "model.overrides={head.tau: 0.3}"])
    assert config.optim.lr == 3e-4 and config.optim.milestones == [1, 2]
    assert config.model_overrides() == {"text_encoder.max_words": 17, "head.tau": 0.3}
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        load_config("refcoco", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"optim\.epochs must be an integer"):
        load_config("refcoco", ["optim.epochs=many"])
    with pytest.raises(ConfigError, match="expected one of"):
        load_config("refcoco", ["batch.mode=images"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("refcoco", ["optim.lr"])
    with pytest.raises(FileNotFoundError, match="refcoco_typo"):
        load_config("refcoco_typo")


def test_learning_rate_drops_at_the_milestones():
    optim = OptimSection()
    assert [lr_at_epoch(optim, e) for e in (0, 29, 30, 41, 42, 49)] == pytest.approx(
        [1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6]
    )


def test_train_then_evaluate_end_to_end(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                "refshapes_tiny",
                *_set_args(_settings(data_root, run, "optim.epochs=2")),
            ]
        )
        == 0
    )
    checkpoints = run / "checkpoints"
    for name in ("last.pt", "last.safetensors", "best.safetensors"):
        assert (checkpoints / name).is_file(), name
    assert (run / "config.yaml").is_file() and (run / "train.csv").is_file() and (run / "eval.csv").is_file()
    assert any((run / "tensorboard").iterdir())
    with Image.open(run / "learning_curve.png") as curve:
        assert curve.format == "PNG" and curve.size == (1100, 650)
    state = load_training_state(checkpoints / "last.pt")
    assert state["epoch"] == 2 and state["step_in_epoch"] == 0 and state["global_step"] > 0
    capsys.readouterr()

    output = tmp_path / "results.json"
    args = ["evaluate", "--config", "refshapes_tiny", "--checkpoint", str(checkpoints / "best.safetensors")]
    args += [
        "--split",
        "testA",
        "--output",
        str(output),
        "--set",
        f"data.root={data_root}",
        "--set",
        "data.num_workers=0",
    ]
    args += ["--set", "train.progress=false"]
    # risam_tiny's frozen encoders are the pretrained ones that ship in the package: nothing to warn about.
    assert main(args) == 0
    results = json.loads(output.read_text())
    for key in ("overall_iou", "mean_iou", "precision", "num_samples", "dataset", "split", "checkpoint"):
        assert key in results
    assert set(results["precision"]) == {"0.5", "0.6", "0.7", "0.8", "0.9"}
    assert results["dataset"] == "refshapes" and results["split"] == "testA"
    assert 0.0 <= results["overall_iou"] <= 1.0 and results["num_samples"] > 0
    assert "| Pr@50 |" in output.with_suffix(".md").read_text()
    assert "IoU" in capsys.readouterr().out


def _ddp_worker(rank, world, port, data_root, output_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    config = load_config(
        "refshapes_tiny",
        _settings(data_root, output_dir, "train.max_steps=3", "batch.global_groups=4", "optim.lr=1e-4"),
    )
    Trainer(config).train()
    torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_ddp_processes_match_one_process_with_accumulation(data_root, tmp_path):
    mp.start_processes(
        _ddp_worker, args=(2, _free_port(), data_root, tmp_path / "ddp"), nprocs=2, start_method="spawn", join=True
    )
    single = load_config(
        "refshapes_tiny",
        _settings(
            data_root,
            tmp_path / "single",
            "train.max_steps=3",
            "batch.global_groups=4",
            "batch.accumulation_steps=2",
            "optim.lr=1e-4",
        ),
    )
    Trainer(single).train()
    ddp = _weights(tmp_path / "ddp" / "checkpoints" / "last.safetensors")
    one = _weights(tmp_path / "single" / "checkpoints" / "last.safetensors")
    initial = Trainer(single).model.trainable_state_dict()
    parameters = [key for key in one if "running_" not in key and "num_batches_tracked" not in key]
    assert parameters and all(not torch.equal(one[key], initial[key]) for key in parameters if "weight" in key)
    for key in parameters:
        torch.testing.assert_close(ddp[key], one[key], atol=1e-5, rtol=0, msg=lambda m, key=key: f"{key}: {m}")


def _train_process(data_root, output_dir, *extra, resume=False):
    args = [sys.executable, "-m", "risam.cli", "train", "--config", "refshapes_tiny"]
    args += _set_args(_settings(data_root, output_dir, *extra))
    return subprocess.Popen(
        [*args, *(["--resume"] if resume else [])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_killed_run_resumes_to_the_same_weights(data_root, tmp_path):
    # One image per step: about 11 steps per epoch, so the kill lands inside the first epoch.
    settings = ("batch.global_groups=1", "train.max_steps=14", "train.checkpoint_every_steps=1", "optim.epochs=3",
                "train.deterministic=true")  # fmt: skip
    straight = _train_process(data_root, tmp_path / "straight", *settings)
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    killed = _train_process(data_root, tmp_path / "killed", *settings)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 600  # generous: on a busy machine the first steps take long
    while time.time() < deadline:
        if last.exists() and load_training_state(last)["global_step"] >= 4:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    state = load_training_state(last)  # never half-written, even when killed while saving
    assert 4 <= state["global_step"] < 14 and state["step_in_epoch"] > 0, "the kill must land mid-epoch"

    resumed = _train_process(data_root, tmp_path / "killed", *settings, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    expected = _weights(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    actual = _weights(tmp_path / "killed" / "checkpoints" / "last.safetensors")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(data_root, tmp_path):
    run = tmp_path / "run"
    Trainer(load_config("refshapes_tiny", _settings(data_root, run, "train.max_steps=2"))).train()
    good = (run / "checkpoints" / "last.pt").read_bytes()
    broken = load_config("refshapes_tiny", _settings(data_root, run, "train.max_steps=4", "loss.focal_weight=.nan"))
    trainer = Trainer(broken)
    trainer.resume()
    with pytest.raises(TrainingError, match=r"the loss is nan at epoch 1, step 3.*last\.pt"):
        trainer.train()
    assert (run / "checkpoints" / "last.pt").read_bytes() == good
    assert all(
        torch.isfinite(v).all() for v in load_training_state(run / "checkpoints" / "last.pt")["trainable"].values()
    )


def test_resume_without_a_checkpoint_names_the_path(data_root, tmp_path):
    trainer = Trainer(load_config("refshapes_tiny", _settings(data_root, tmp_path / "none")))
    with pytest.raises(FileNotFoundError, match=str(Path("none") / "checkpoints" / "last.pt")):
        trainer.resume()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask(data_root, tmp_path, umask):
    previous = os.umask(umask)
    try:
        run = tmp_path / "run"
        config = load_config(
            "refshapes_tiny",
            _settings(data_root, run, "optim.epochs=1", "batch.global_groups=4", "train.cache_features=false"),
        )
        trainer = Trainer(config)
        results = trainer.train()
        trainer.logger.close()
        write_results(results, tmp_path / "results.json")
    finally:
        os.umask(previous)
    written = [run / "checkpoints" / name for name in ("last.pt", "last.safetensors", "best.safetensors")]
    written += [run / name for name in ("train.csv", "eval.csv", "config.yaml", "learning_curve.png")]
    written += [tmp_path / "results.json", tmp_path / "results.md"]
    expected = 0o666 & ~umask
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == {
        path.name: expected for path in written
    }


def _csv_steps(path):
    with open(path, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


class _Killed(Exception):
    """Stands for a SIGKILL."""


def test_resume_logs_each_step_once_and_removes_stale_temporaries(data_root, tmp_path):
    run = tmp_path / "run"
    settings = _settings(data_root, run, "batch.global_groups=1", "train.checkpoint_every_steps=2", "optim.epochs=3")
    trainer = Trainer(load_config("refshapes_tiny", [*settings, "train.max_steps=5"]))
    assert trainer.sampler.steps_per_epoch() > 6, "the whole test must stay in the first epoch"
    save = trainer.save

    def killed_at_step_5() -> None:
        if trainer.global_step == 5:
            raise _Killed
        save()

    trainer.save = killed_at_step_5
    with pytest.raises(_Killed):
        trainer.train()
    trainer.logger.close()
    assert load_training_state(run / "checkpoints" / "last.pt")["global_step"] == 4
    assert _csv_steps(run / "train.csv") == [1, 2, 3, 4, 5]  # step 5 logged after the last checkpoint
    stale = [run / "checkpoints" / ".last.pt.abc123.tmp", run / "checkpoints" / ".last.safetensors.q8w_2k1z.tmp"]
    stale.append(run / ".config.yaml.0a1b2c3d.tmp")
    kept = [run / "checkpoints" / name for name in ("notes.tmp", ".keep", "last.pt.abc123.tmp")]
    for path in stale + kept:
        path.write_bytes(b"half")

    assert main(["train", "--config", "refshapes_tiny", *_set_args([*settings, "train.max_steps=6"]), "--resume"]) == 0
    assert _csv_steps(run / "train.csv") == [1, 2, 3, 4, 5, 6]
    assert not any(path.exists() for path in stale) and all(path.is_file() for path in kept)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]


def test_truncate_after_keeps_rows_up_to_the_checkpoint(tmp_path):
    logger = TrainingLogger(tmp_path)
    results = {"overall_iou": 0.5, "mean_iou": 0.4, "precision": {"0.5": 0.3}}
    for step in range(1, 7):
        logger.log_step(step, {"loss": 1.0 / step})
        if step % 2 == 0:
            logger.log_eval(step, step // 2, results)
    logger.log_eval(4, 3, results)  # the evaluation of an epoch whose end was not checkpointed
    logger.close()
    with open(tmp_path / "train.csv", "a", newline="") as handle:
        handle.write("7,0.1")  # a row torn by the kill
    resumed = TrainingLogger(tmp_path)
    resumed.truncate_after(4, 2)
    resumed.close()
    assert _csv_steps(tmp_path / "train.csv") == [1, 2, 3, 4]
    with open(tmp_path / "eval.csv", newline="") as handle:
        assert [(row["step"], row["epoch"]) for row in csv.DictReader(handle)] == [("2", "1"), ("4", "2")]
