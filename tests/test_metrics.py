import numpy as np
import pytest

from floodnb import metrics
from floodnb.bands import IGNORE_INDEX, LABEL_NODATA


def test_confusion_ignores_nodata_and_counts_correctly():
    target = np.array([[0, 1, 1, LABEL_NODATA], [1, 0, IGNORE_INDEX, 1]])
    pred = np.array([[0, 1, 0, 1], [1, 1, 1, -1]])
    cm = metrics.confusion(pred, target)
    # rows = target: dry->[dry 1, water 1]; water->[dry 1, water 2]; invalid pixels dropped
    assert cm.tolist() == [[1, 1], [1, 2]]
    s = metrics.summarize(cm)
    assert s["water_iou"] == pytest.approx(2 / 4)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert s["water_precision"] == pytest.approx(2 / 3)
    assert s["water_recall"] == pytest.approx(2 / 3)


def test_global_iou_differs_from_mean_chip_iou():
    acc = metrics.ConfusionAccumulator()
    # big chip, perfect; small chip, all wrong
    acc.update(np.ones((10, 10), int), np.ones((10, 10), int), "a")
    acc.update(np.zeros((1, 2), int), np.ones((1, 2), int), "b")
    s = acc.summary()
    assert s["water_iou"] == pytest.approx(100 / 102)
    assert s["mean_chip_water_iou"] == pytest.approx(0.5)
    assert list(acc.table().chip_id) == ["a", "b"]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.confusion(np.zeros((2, 2)), np.zeros((3, 2)))


def test_water_iou_nan_without_water():
    cm = metrics.confusion(np.zeros((4, 4), int), np.zeros((4, 4), int))
    assert np.isnan(metrics.water_iou(cm))
    assert metrics.miou(cm) == 1.0
