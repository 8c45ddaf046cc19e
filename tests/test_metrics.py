import numpy as np
import pytest

from risam.evaluation.metrics import MetricAccumulator, results_table


def _mask(shape, *boxes):
    mask = np.zeros(shape, dtype=bool)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = True
    return mask


def test_overall_and_mean_iou_differ_as_by_hand():
    metrics = MetricAccumulator()
    # Sample 1: large target, prediction covers half of it: I = 50, U = 100, IoU 0.5.
    assert metrics.add(_mask((10, 20), (0, 0, 10, 5)), _mask((10, 20), (0, 0, 10, 10))) == pytest.approx(0.5)
    # Sample 2: small target, prediction exact: I = U = 4, IoU 1.
    assert metrics.add(_mask((6, 6), (0, 0, 2, 2)), _mask((6, 6), (0, 0, 2, 2))) == 1.0
    summary = metrics.summary()
    assert summary["overall_iou"] == pytest.approx(54 / 104)
    assert summary["mean_iou"] == pytest.approx(0.75)
    assert summary["num_samples"] == 2
    assert "giou" not in summary


def test_precision_counts_iou_at_or_above_each_threshold():
    metrics = MetricAccumulator()
    target = _mask((1, 10), (0, 0, 1, 10))
    for hit in (5, 6, 7, 8, 9, 10, 4):  # IoU exactly 0.5, 0.6, ..., 1.0, and 0.4
        metrics.add(_mask((1, 10), (0, 0, 1, hit)), target)
    precision = metrics.summary()["precision"]
    assert precision == pytest.approx({"0.5": 6 / 7, "0.6": 5 / 7, "0.7": 4 / 7, "0.8": 3 / 7, "0.9": 2 / 7})


def test_empty_prediction_scores_zero_on_a_target():
    metrics = MetricAccumulator()
    assert metrics.add(np.zeros((4, 4), bool), _mask((4, 4), (0, 0, 2, 2))) == 0.0
    summary = metrics.summary()
    assert summary["overall_iou"] == 0.0 and summary["precision"]["0.5"] == 0.0


def test_no_target_samples_give_grefcoco_metrics():
    metrics = MetricAccumulator()
    empty = np.zeros((5, 5), dtype=bool)
    metrics.add(empty, empty)  # no target, predicted empty: TN, IoU 1
    metrics.add(_mask((5, 5), (0, 0, 1, 2)), empty)  # no target, 2 pixels predicted: FP, IoU 0, U = 2
    metrics.add(_mask((5, 5), (0, 0, 2, 2)), _mask((5, 5), (0, 0, 2, 4)))  # target: TP, I 4, U 8
    metrics.add(empty, _mask((5, 5), (0, 0, 1, 1)))  # target, predicted empty: FN, IoU 0, U 1
    summary = metrics.summary()
    assert summary["ciou"] == pytest.approx(4 / (0 + 2 + 8 + 1))
    assert summary["overall_iou"] == summary["ciou"]
    assert summary["giou"] == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    assert summary["n_acc"] == pytest.approx(0.5)
    assert summary["t_acc"] == pytest.approx(0.5)
    assert summary["num_no_target"] == 2


def test_masks_must_be_at_the_same_resolution():
    with pytest.raises(ValueError, match="original image resolution"):
        MetricAccumulator().add(np.zeros((4, 4), bool), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="no samples"):
        MetricAccumulator().summary()


def test_results_table_is_in_percent():
    metrics = MetricAccumulator()
    metrics.add(_mask((1, 10), (0, 0, 1, 8)), _mask((1, 10), (0, 0, 1, 10)))
    summary = metrics.summary() | {"model": "risam_tiny", "dataset": "refshapes", "split": "val"}
    table = results_table(summary)
    assert "| Model | Dataset | Split | Pr@50 | Pr@60 | Pr@70 | Pr@80 | Pr@90 | IoU | mIoU |" in table
    assert "| risam_tiny | refshapes | val | 100.00 | 100.00 | 100.00 | 100.00 | 0.00 | 80.00 | 80.00 |" in table
