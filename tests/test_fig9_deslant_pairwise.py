"""Deslanting (lenet5.data.deslant) and the pairwise linear classifier (lenet5.baselines.pairwise)
against independent computations on small synthetic data."""
import numpy as np
import pytest

from lenet5.baselines import pairwise
from lenet5.data.deslant import deslant, slant

BG = -0.1


def stroke(s, size=28, cx=13.0, cy=13.5, half=8, thick=1.5):
    """A slanted bar x = cx + s (y - cy), |y - cy| <= half, grey levels from the distance."""
    y, x = np.mgrid[0:size, 0:size].astype(float)
    d = np.abs(x - (cx + s * (y - cy)))
    ink = np.clip(thick - d, 0.0, 1.0) * (np.abs(y - cy) <= half)
    return BG + 1.275 * ink


@pytest.mark.parametrize("s", [-0.45, -0.2, 0.0, 0.3, 0.5])
def test_deslant_makes_slanted_strokes_upright(s):
    image = stroke(s)[None]
    assert slant(image, BG)[0] == pytest.approx(s, abs=0.03)  # the measure finds the drawn slant
    out = deslant(image, BG)
    assert abs(slant(out, BG)[0]) < 0.02  # and deslanting removes it
    # the ink is now a vertical bar: every inked row's ink centre within 0.3 px of one column
    ink = np.clip(out[0] - BG, 0, None)
    rows = ink.sum(axis=1) > 0.5
    centres = (ink[rows] * np.arange(28)).sum(axis=1) / ink[rows].sum(axis=1)
    assert np.ptp(centres) < 0.6
    assert ink.sum() == pytest.approx(np.clip(image[0] - BG, 0, None).sum(), rel=0.02)


def test_deslant_matches_a_per_pixel_loop():
    rng = np.random.default_rng(0)
    images = BG + rng.random((3, 9, 11)) * (rng.random((3, 9, 11)) < 0.4)
    out = deslant(images, BG)
    for n, image in enumerate(images):
        w = np.clip(image - BG, 0, None)
        ys, xs = np.nonzero(w >= 0)
        cx = sum(w[y, x] * x for y, x in zip(ys, xs)) / w.sum()
        cy = sum(w[y, x] * y for y, x in zip(ys, xs)) / w.sum()
        s = (sum(w[y, x] * (x - cx) * (y - cy) for y, x in zip(ys, xs))
             / sum(w[y, x] * (y - cy) ** 2 for y, x in zip(ys, xs)))
        for y in range(9):
            for x in range(11):
                src = x + s * (y - cy)
                x0 = int(np.floor(src))
                left = image[y, x0] if 0 <= x0 < 11 else BG
                right = image[y, x0 + 1] if 0 <= x0 + 1 < 11 else BG
                want = (1 - (src - x0)) * left + (src - x0) * right
                assert out[n, y, x] == pytest.approx(want, abs=1e-12)
    assert np.array_equal(deslant(np.full((1, 5, 5), BG), BG), np.full((1, 5, 5), BG))  # blank


def test_pairwise_units_and_scores_match_an_independent_computation():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(10, 6)) * 10
    labels = rng.integers(0, 10, size=400)
    x = centres[labels] + rng.normal(size=(400, 6))
    w = pairwise.fit(x, labels, ridge=0.0)
    assert w.shape == (45, 7)
    for unit, (i, j) in enumerate(pairwise.PAIRS):  # each unit: plain least squares on its 2 classes
        mine = (labels == i) | (labels == j)
        want, *_ = np.linalg.lstsq(np.c_[x[mine], np.ones(mine.sum())],
                                   np.where(labels[mine] == i, 1.0, -1.0), rcond=None)
        assert np.allclose(w[unit], want, atol=1e-8)
    probe = x[:20]
    got = pairwise.scores(w, probe, "linear")
    votes = pairwise.scores(w, probe, "vote")
    for n in range(20):  # score of class c: sum over units c/x minus sum over units y/c
        out = {(i, j): probe[n] @ w[u, :-1] + w[u, -1] for u, (i, j) in enumerate(pairwise.PAIRS)}
        for c in range(10):
            want = sum(v for (i, _), v in out.items() if i == c) - sum(v for (_, j), v in out.items() if j == c)
            assert got[n, c] == pytest.approx(want)
            wins = sum(1 for (i, j), v in out.items() if (i == c and v > 0) or (j == c and v < 0))
            assert votes[n, c] == wins - (9 - wins)  # +1 per unit won, -1 per unit lost
    # well-separated clusters: each unit's sign separates its own two classes
    outputs = np.c_[x, np.ones(len(x))] @ w.T
    for unit, (i, j) in enumerate(pairwise.PAIRS):
        assert np.all(outputs[labels == i, unit] > 0) and np.all(outputs[labels == j, unit] < 0)
    result = pairwise.pairwise_error(np.abs(x), labels, np.abs(x[:50]), labels[:50])
    assert result["units"] == 45 and set(result) >= {"vote", "tanh", "linear", "train_vote"}
