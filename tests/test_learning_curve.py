"""The learning curve: eval.csv rows (with the grounding columns), the PNG drawn from them, written atomically."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageColor

from risam.engine.learning_curve import (
    BASELINE_COLOR,
    PANEL_COLOR,
    draw_learning_curve,
    read_eval_rows,
    write_learning_curve,
)
from risam.engine.logger import TrainingLogger

PRECISION = {"0.5": 0.6, "0.6": 0.5, "0.7": 0.4, "0.8": 0.3, "0.9": 0.1}
FINAL = {
    "overall_iou": 0.66,
    "mean_iou": 0.68,
    "precision": PRECISION,
    "grounding_gap": 0.626,
    "sentence_free_baseline": 0.237,
    "by_type": {"attribute": {"overall_iou": 0.759, "count": 2040}, "ordinal": {"overall_iou": 0.512, "count": 762}},
}


def _rows(*overall, baseline=None):
    """eval.csv rows of evaluations at epochs 1, 2, ... with these overall IoUs (mean IoU 0.05 higher)."""
    rows = [{"step": 10.0 * epoch, "epoch": float(epoch), "overall_iou": iou, "mean_iou": iou + 0.05}
            for epoch, iou in enumerate(overall, start=1)]  # fmt: skip
    if baseline is not None:
        for row in rows:
            row["sentence_free_baseline"] = baseline
    return rows


def _pixels_near(image, color, tolerance=12):
    """How many pixels of ``image`` are within ``tolerance`` of ``color`` in every channel."""
    difference = np.abs(np.asarray(image, dtype=np.int16) - np.array(color, dtype=np.int16))
    return int((difference <= tolerance).all(axis=-1).sum())


def test_log_eval_rows_round_trip_with_the_grounding_columns(tmp_path):
    logger = TrainingLogger(tmp_path)
    logger.log_eval(5, 1, {**FINAL, "overall_iou": 0.5})
    logger.log_eval(10, 2, FINAL)
    logger.close()
    rows = read_eval_rows(tmp_path / "eval.csv")
    assert len(rows) == 2
    assert rows[1] == pytest.approx(
        {"step": 10.0, "epoch": 2.0, "overall_iou": 0.66, "mean_iou": 0.68,
         **{f"pr@{key}": value for key, value in PRECISION.items()},
         "grounding_gap": 0.626, "sentence_free_baseline": 0.237}
    )  # fmt: skip
    assert rows[0]["overall_iou"] == 0.5 and all(isinstance(value, float) for value in rows[0].values())


def test_a_runs_eval_rows_keep_the_columns_of_its_first_row(tmp_path):
    plain = {"overall_iou": 0.5, "mean_iou": 0.4, "precision": PRECISION}
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for folder, first, second in ((old, plain, FINAL), (new, FINAL, {**FINAL, "grounding_gap": None})):
        logger = TrainingLogger(folder)
        logger.log_eval(5, 1, first)
        logger.log_eval(10, 2, second)
        logger.close()
    with open(old / "eval.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["step", "epoch", "overall_iou", "mean_iou", *(f"pr@{key}" for key in PRECISION)]
    assert {len(line) for line in lines} == {len(lines[0])}  # a run started without the columns goes on without
    rows = read_eval_rows(new / "eval.csv")
    assert rows[0]["grounding_gap"] == pytest.approx(0.626)
    assert "grounding_gap" not in rows[1] and rows[1]["sentence_free_baseline"] == pytest.approx(0.237)


def test_read_eval_rows_of_a_missing_empty_or_torn_file(tmp_path):
    path = tmp_path / "eval.csv"
    assert read_eval_rows(path) == []
    path.write_text("")
    assert read_eval_rows(path) == []
    path.write_text("step,epoch,overall_iou,mean_iou\n5,1,0.5,0.6\n10,2,0.7,0.8\n15,3,0.")
    assert read_eval_rows(path) == [
        {"step": 5.0, "epoch": 1.0, "overall_iou": 0.5, "mean_iou": 0.6},
        {"step": 10.0, "epoch": 2.0, "overall_iou": 0.7, "mean_iou": 0.8},
    ]
    path.write_text("step,epoch,overall_iou,mean_iou\n5,1,0.5,0.6\n10,2,0.7,0.8\n15,3,0.,x\n")
    assert len(read_eval_rows(path)) == 2


def test_write_learning_curve_writes_a_png_atomically(tmp_path):
    logger = TrainingLogger(tmp_path)
    for epoch, iou in enumerate((0.3, 0.5, 0.6), start=1):
        logger.log_eval(10 * epoch, epoch, {**FINAL, "overall_iou": iou})
    logger.close()
    before = {path.name for path in tmp_path.iterdir()}
    path = write_learning_curve(tmp_path, FINAL, title="risam_tiny on refshapes")
    assert path == tmp_path / "learning_curve.png"
    assert {path.name for path in tmp_path.iterdir()} == before | {"learning_curve.png"}  # no temporary file left
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert 1000 <= image.width <= 1200 and 600 <= image.height <= 700
        image.load()


def test_no_png_for_a_run_without_evaluations(tmp_path):
    assert write_learning_curve(tmp_path) is None
    (tmp_path / "eval.csv").write_text("step,epoch,overall_iou,mean_iou\n")
    assert write_learning_curve(tmp_path, FINAL) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["eval.csv"]
    with pytest.raises(ValueError, match="no evaluation rows"):
        draw_learning_curve([], FINAL, "empty")


def test_different_curves_draw_different_pictures():
    first = np.asarray(draw_learning_curve(_rows(0.3, 0.5, 0.6), None, "run"))
    second = np.asarray(draw_learning_curve(_rows(0.3, 0.4, 0.7), None, "run"))
    assert first.shape == second.shape == (650, 1100, 3)
    assert (first != second).any(axis=-1).sum() > 500


def test_the_baseline_is_a_line_when_known():
    color = ImageColor.getrgb(BASELINE_COLOR)
    rows = _rows(0.3, 0.5, 0.6)
    without = draw_learning_curve(rows, None, "run")
    from_final = draw_learning_curve(rows, {"sentence_free_baseline": 0.24}, "run")
    from_rows = draw_learning_curve(_rows(0.3, 0.5, 0.6, baseline=0.24), None, "run")
    assert _pixels_near(without, color) == 0
    for image in (from_final, from_rows):
        # A dashed line across the plot: the pixel row through it is mostly the baseline's colour.
        assert _pixels_near(image, color) > 400
        best_row = max(range(image.height), key=lambda y: _pixels_near(image.crop((0, y, image.width, y + 1)), color))
        assert _pixels_near(image.crop((0, best_row, image.width, best_row + 1)), color) > 300


def test_the_side_panel_only_for_results_that_hold_the_grounding_numbers():
    rows = _rows(0.5)  # a single evaluation draws too
    refshapes = draw_learning_curve(rows, FINAL, "refshapes")
    gap_only = draw_learning_curve(rows, {"grounding_gap": 0.3}, "refshapes")
    refcoco = draw_learning_curve(rows, {"overall_iou": 0.5, "mean_iou": 0.55, "precision": PRECISION}, "refcoco")
    unknown = draw_learning_curve(rows, {"grounding_gap": None, "by_type": {}}, "grefshapes")
    panel = ImageColor.getrgb(PANEL_COLOR)
    assert _pixels_near(refshapes, panel, tolerance=0) > 10_000
    assert _pixels_near(gap_only, panel, tolerance=0) > 2_000
    # Without the panel only a few anti-aliased pixels of the lines or text happen to have its colour.
    assert _pixels_near(refcoco, panel, tolerance=0) < 200 and _pixels_near(unknown, panel, tolerance=0) < 200
    assert refshapes.size == refcoco.size == (1100, 650)


def test_importing_the_trainer_does_not_import_matplotlib():
    code = "import sys, risam, risam.engine.trainer; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
