"""The benchmarks' command lines: an input they cannot use is one line naming it and exit code 2, as for
``risam``; a defect of the benchmark itself keeps its traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.entry import run

from risam.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_an_input_error_or_os_error_is_one_line_and_exit_code_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "some_benchmark.py")])

    def bad_value():
        raise InputError("--size 33: must be a multiple of 32")

    def missing_file():
        (tmp_path / "absent.json").read_text()

    for main, line in [
        (bad_value, "some_benchmark: error: --size 33: must be a multiple of 32\n"),
        (missing_file, f"some_benchmark: error: {tmp_path / 'absent.json'}: No such file or directory\n"),
    ]:
        with pytest.raises(SystemExit) as stop:
            run(main)
        assert stop.value.code == 2
        assert capsys.readouterr().err == line

    def defect():
        raise RuntimeError("a bug of the benchmark")

    with pytest.raises(RuntimeError, match="a bug of the benchmark"):
        run(defect)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["predictor_cost", "--model", "risam_vit_x"], "predictor_cost: error: unknown model 'risam_vit_x'"),
        (
            ["precision_agreement", "--checkpoint", "absent.safetensors", "--data", "."],
            "precision_agreement: error: RISAM weights file not found: absent.safetensors",
        ),
    ],
)
def test_a_benchmark_run_with_an_input_it_cannot_use_prints_no_traceback(arguments, message, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{arguments[0]}", *arguments[1:]],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.startswith(message) and done.stderr.count("\n") == 1
