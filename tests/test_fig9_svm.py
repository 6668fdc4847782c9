"""The polynomial SVMs (lenet5.baselines.svm): decision values recomputed from the support
vectors with the kernel written out, the reduced set's least-squares fit, the
virtual support vectors against explicit pixel loops, and the message when scikit-learn is
missing."""
import sys

import numpy as np
import pytest

from lenet5.baselines import svm
from lenet5.errors import Lenet5Error


@pytest.mark.slow
def test_svm_decisions_match_the_kernel_expansion():
    rng = np.random.default_rng(0)
    centres = rng.random((3, 12))
    y = rng.integers(0, 3, size=90)
    x = np.clip(centres[y] + 0.3 * rng.normal(size=(90, 12)), 0, 1)
    model = svm.fit(x, y, "scale")
    probe = rng.random((7, 12))
    # one-vs-one: f_ij(p) = sum over SVs of classes i, j of dual_coef * K(sv, p) + b_ij
    assert model.gamma == pytest.approx(1 / (12 * x.var()))
    k = svm.poly_kernel(probe, model.support_vectors_, model.gamma)
    starts = np.r_[0, np.cumsum(model.n_support_)]
    want, unit = [], 0
    for i in range(3):
        for j in range(i + 1, 3):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            f = (k[:, si] @ model.dual_coef_[j - 1, si] + k[:, sj] @ model.dual_coef_[i, sj]
                 + model.intercept_[unit])
            want.append(f)
            unit += 1
    assert np.allclose(model.decision_function(probe), np.array(want).T, atol=1e-8)
    result = svm.svm_error(x * 255, y, x[:30] * 255, y[:30])
    assert result["error_pct"] < 10 and result["support_vectors"] <= 90


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)
    with pytest.raises(Lenet5Error, match=r"lenet5\[baselines\]"):
        svm.svc_class()


def blobs(classes=4, n=120, d=16, seed=0):
    """Small separable-ish data in 0..1: noisy copies of one centre per class."""
    rng = np.random.default_rng(seed)
    centres = rng.random((classes, d))
    y = rng.integers(0, classes, size=n)
    return np.clip(centres[y] + 0.35 * rng.normal(size=(n, d)), 0, 1), y, rng


@pytest.mark.slow
def test_explicit_expansions_and_voting_reproduce_the_svc():
    x, y, rng = blobs()
    model = svm.fit(x, y, "scale", degree=5)
    vectors, coefficients, intercepts, pairs = svm.pairwise_expansion(model)
    assert len(pairs) == 6 and coefficients.shape == (len(model.support_), 6)
    probe = rng.random((40, x.shape[1]))
    got = svm.decisions(probe, vectors, coefficients, intercepts, model.gamma, 5, chunk=7)
    assert np.allclose(got, model.decision_function(probe), atol=1e-8)
    assert np.array_equal(svm.vote(got, pairs, 4), model.predict(probe))


def test_voting_counts_pairwise_wins_and_breaks_ties_to_the_lower_class():
    pairs = [(0, 1), (0, 2), (1, 2)]
    # 0 beats 1, 2 beats 0, 1 beats 2: one vote each -> class 0; then 2 beats both -> 2
    decisions = np.array([[1.0, -1.0, 1.0], [1.0, -1.0, -1.0]])
    assert svm.vote(decisions, pairs, 3).tolist() == [0, 2]


@pytest.mark.slow
def test_a_reduced_set_of_every_support_vector_gives_the_svms_decisions():
    """With Z = all the support vectors and more fitting rows than vectors, the least-squares
    fit to the decision values recovers the SVM's own expansion."""
    x, y, rng = blobs()
    model = svm.fit(x, y, "scale", degree=5)
    vectors, coefficients, intercepts, pairs = svm.pairwise_expansion(model)
    rows = rng.random((3 * len(vectors), x.shape[1]))
    targets = svm.decisions(rows, vectors, coefficients, intercepts, model.gamma, 5) - intercepts
    chosen = svm.reduced_set(coefficients, len(vectors))
    beta = svm.fit_reduced(rows, targets, vectors[chosen], model.gamma, 5, ridge=0.0)
    np.testing.assert_allclose(beta, coefficients[chosen], rtol=1e-6, atol=1e-6 * np.abs(coefficients).max())
    probe = rng.random((30, x.shape[1]))
    want = model.decision_function(probe)
    got = svm.decisions(probe, vectors[chosen], beta, intercepts, model.gamma, 5)
    assert np.allclose(got, want, atol=1e-6 * np.abs(want).max())


def test_the_reduced_set_is_the_vectors_with_the_largest_coefficients():
    coefficients = np.array([[0.1, -0.2], [3.0, 0.0], [-0.5, -0.6], [0.0, 0.05], [1.0, -1.0]])
    assert svm.reduced_set(coefficients, 2).tolist() == [1, 4]  # |.| sums 0.3, 3, 1.1, 0.05, 2
    assert svm.reduced_set(coefficients, 3).tolist() == [1, 2, 4]
    assert svm.reduced_set(coefficients, 9).tolist() == [0, 1, 2, 3, 4]


def test_the_fit_misses_less_as_the_reduced_set_grows():
    """Nested bases (more of the largest coefficients): the least-squares residual on the
    fitting rows never grows, and no other coefficients over a basis do better."""
    rng = np.random.default_rng(2)
    vectors, gamma, degree = rng.random((40, 8)), 0.2, 4
    coefficients = rng.normal(size=(40, 3))
    rows = rng.random((120, 8))
    targets = svm.poly_kernel(rows, vectors, gamma, degree) @ coefficients
    misses = []
    for m in (2, 5, 10, 20, 40):
        basis = vectors[svm.reduced_set(coefficients, m)]
        beta = svm.fit_reduced(rows, targets, basis, gamma, degree, ridge=0.0)
        k = svm.poly_kernel(rows, basis, gamma, degree)
        misses.append(np.sum((k @ beta - targets) ** 2))
        other = beta + 1e-3 * rng.normal(size=beta.shape)
        assert np.sum((k @ other - targets) ** 2) >= misses[-1]
    for smaller, larger in zip(misses, misses[1:]):
        assert larger <= smaller * (1 + 1e-9)
    assert misses[0] > 1e-3 * np.sum(targets ** 2) and misses[-1] < 1e-12 * np.sum(targets ** 2)


def test_shifts_move_every_pixel_and_fill_the_border_with_white():
    rng = np.random.default_rng(3)
    images = rng.random((2, 5, 6))
    for rows, columns in svm.SHIFTS:
        got = svm.shifted(images, rows, columns)
        for r in range(5):
            for c in range(6):
                source = (r - rows, c - columns)
                want = images[:, source[0], source[1]] if 0 <= source[0] < 5 and 0 <= source[1] < 6 else 0
                assert np.array_equal(got[:, r, c], want * np.ones(2))
    vectors = rng.random((2, 16))
    rows, labels = svm.virtual_support_vectors(vectors, np.array([3, 8]), side=4)
    assert rows.shape == (10, 16) and labels.tolist() == [3, 8] * 5
    square = vectors.reshape(2, 4, 4)
    for copy, (r, c) in enumerate(svm.SHIFTS, start=1):
        assert np.array_equal(rows[2 * copy:2 * copy + 2], svm.shifted(square, r, c).reshape(2, 16))
    assert np.array_equal(rows[:2], vectors)


@pytest.mark.slow
def test_the_virtual_support_vector_machine_trains_on_five_copies_of_its_support_vectors():
    rng = np.random.default_rng(4)
    # 28x28 images: a bright 6x6 square whose position depends on the class, jittered
    y = rng.integers(0, 3, size=150)
    images = np.zeros((150, 28, 28))
    for i, label in enumerate(y):
        r, c = 4 + 7 * label + rng.integers(-1, 2), 10 + rng.integers(-1, 2)
        images[i, r:r + 6, c:c + 6] = 255
    x = images.reshape(150, -1)
    result = svm.v_svm_error(x[:100], y[:100], x[100:], y[100:], degree=3)
    assert result["virtual_training_set"] == 5 * result["first_support_vectors"]
    assert result["error_pct"] <= 10 and result["first_error_pct"] <= 10
    reduced = svm.rs_svm_error(x[:100], y[:100], x[100:], y[100:], size=10, degree=3)
    assert reduced["reduced_set"] == 10 and reduced["multiply_adds"] == 10 * 784
    assert reduced["full_error_pct"] <= 10 and reduced["fit_images"] == 100 and reduced["agreement_pct"] >= 80
