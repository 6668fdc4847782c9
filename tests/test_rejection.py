"""lenet5.tools.rejection: the top-2 gap, the threshold for 0.5% error, and a checkpoint's stored threshold."""
import json
import shutil

import numpy as np
import pytest

from lenet5.core.model import LeNet5, reference_checkpoint
from lenet5.experiments.rejection import analyse, shown_path
from lenet5.tools.rejection import read_sidecar, rejection_threshold, sidecar_path, threshold_for, top2_gap


def _outputs(best, gaps):
    """RBF outputs with the given argmin per row and top-2 gaps."""
    y = np.full((len(best), 10), 50.0)
    for i, (b, g) in enumerate(zip(best, gaps, strict=True)):
        y[i, b] = 1.0
        y[i, (b + 1) % 10] = 1.0 + g
    return y


def test_gap_is_second_smallest_minus_smallest():
    y = np.array([[3.0, 1.0, 7.0] + [9.0] * 7, [5.0] * 10])
    np.testing.assert_array_equal(top2_gap(y), [2.0, 0.0])
    assert top2_gap(y[0]) == 2.0


def test_threshold_leaves_the_target_error_on_the_accepted():
    labels = np.zeros(1000, int)
    best = np.zeros(1000, int)
    best[[10, 500, 900, 950]] = 1  # four mistakes, at gap ranks 10, 500, 900, 950
    gaps = np.linspace(100, 1, 1000)
    t = threshold_for(_outputs(best, gaps), labels, 0.5)
    # accepting the 950 most confident leaves 3/950 = 0.32%; the 951st is wrong (4/951 = 0.42%)
    # and accepting down to rank 999 gives 4/1000 = 0.4% -- still <= 0.5%, so accept all
    assert t.reject_pct == 0.0 and t.gap == pytest.approx(1.0)
    t = threshold_for(_outputs(best, gaps), labels, 0.35)
    assert t.reject_pct == pytest.approx(5.0) and t.gap == pytest.approx(gaps[949])
    assert t.accepted_error_pct == pytest.approx(100 * 3 / 950)
    accepted = gaps >= t.gap
    assert 100 * np.mean(best[accepted] != 0) <= 0.35


def test_threshold_cuts_only_where_the_gap_changes():
    labels = np.array([0, 0, 0, 0])
    y = _outputs([0, 0, 1, 0], [9.0, 2.0, 2.0, 1.0])  # a tie at gap 2: one right, one wrong
    t = threshold_for(y, labels, 10.0)
    assert t.gap == 9.0 and t.reject_pct == 75.0  # accepting gap >= 2 would take both tied ones
    t = threshold_for(_outputs([1, 0], [9.0, 1.0]), np.array([0, 0]), 0.5)
    assert t.gap == float("inf") and t.reject_pct == 100.0


def test_shipped_threshold_is_what_the_math_gives_on_the_test_set(mnist):
    """The sidecar `lenet5 experiment rejection` wrote for the shipped network is current."""
    images, labels = mnist[1]
    ckpt = reference_checkpoint()
    net = LeNet5.load(ckpt)
    expected = threshold_for(net.forward(images.astype(net.dtype)), labels)
    stored = read_sidecar(ckpt)
    assert stored is not None, f"{sidecar_path(ckpt)} missing or for other weights"
    assert stored.gap == pytest.approx(expected.gap, rel=1e-6)
    assert stored.reject_pct == expected.reject_pct
    assert stored.accepted_error_pct == expected.accepted_error_pct <= 0.5
    assert rejection_threshold(ckpt, data_dir="/nonexistent") == stored  # needs no data


def test_other_checkpoints_compute_or_say_unknown(tmp_path, mnist_dir):
    ckpt = tmp_path / "copy.npz"
    shutil.copyfile(reference_checkpoint(), ckpt)
    assert rejection_threshold(ckpt, data_dir=tmp_path / "empty") is None
    computed = rejection_threshold(ckpt, data_dir=mnist_dir)
    shipped = read_sidecar(reference_checkpoint())
    assert computed.gap == pytest.approx(shipped.gap, rel=1e-6) and "computed" in computed.source
    # a stale sidecar (other weights) is ignored
    sidecar_path(ckpt).write_text(json.dumps({"checkpoint_sha256": "0" * 64, "threshold_gap": 1.0,
                                              "target_error_pct": 0.5}))
    assert read_sidecar(ckpt) is None


def test_experiment_stores_the_threshold_and_relative_paths(tmp_path, mnist_dir):
    ckpt = tmp_path / "copy.npz"
    shutil.copyfile(reference_checkpoint(), ckpt)
    result = analyse("reject", checkpoint=str(ckpt), data_dir=str(mnist_dir), store=True)
    assert not result["checkpoint"].startswith("/") and result["checkpoint"] == "copy.npz"
    assert result["sidecar"] == "copy.rejection.json"
    stored = read_sidecar(ckpt)
    assert stored.gap == result["threshold_gap"] and stored.reject_pct == result["reject_pct"]
    assert shown_path(reference_checkpoint()) == "lenet5/reference/lenet5-seed0.npz"
