"""The tangent distance classifier (lenet5.baselines.tangent): tangents against finite
differences of the real transformations, the Numba distance against numpy least squares, and
the classifier against Euclidean 1-NN on a small MNIST subset."""
import numpy as np
import pytest

from lenet5.baselines import classical, tangent

SIZE, SIGMA, BG = tangent.SIZE, tangent.SIGMA, tangent.BACKGROUND


def smoothed(image, qx, qy, sigma=SIGMA, bg=BG):
    """The continuous smoothed image S of the module docstring at the points (qx, qy)."""
    c = np.arange(image.shape[0]) - (image.shape[0] - 1) / 2.0

    def g1(u):
        return np.exp(-u * u / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)

    wx = g1(qx.ravel()[:, None] - c[None, :])  # (points, columns)
    wy = g1(qy.ravel()[:, None] - c[None, :])  # (points, rows)
    return bg + np.einsum("pk,kl,pl->p", wy, image - bg, wx)


def smooth_digit(rng):
    """A 16x16 image of a few Gaussian strokes of ink on the background."""
    x, y = tangent.centred_coordinates()
    ink = np.zeros((SIZE, SIZE))
    for cx, cy, s in rng.uniform([-3, -3, 1.2], [3, 3, 2.2], size=(3, 3)):
        ink += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return BG + 1.275 * np.clip(ink, 0, 1)


def displacement(name, image, x, y):
    """The displacement field v(q) of each tangent's transformation, S(q + t v(q))."""
    if name == "thickening":
        ix, iy = tangent.derivatives(image[None])
        return ix[0], iy[0]
    return {"x_translation": (np.ones_like(x), np.zeros_like(y)), "y_translation": (np.zeros_like(x), np.ones_like(y)),
            "rotation": (y, -x), "scaling": (x, y), "parallel_hyperbolic": (x, -y),
            "diagonal_hyperbolic": (y, x)}[name]


def test_each_tangent_is_the_derivative_of_its_transformation():
    rng = np.random.default_rng(0)
    image = smooth_digit(rng)
    got = tangent.tangents(image)
    assert got.shape == (7, SIZE * SIZE)
    x, y = tangent.centred_coordinates()
    t = 1e-4
    for name, vector in zip(tangent.TANGENTS, got):
        vx, vy = displacement(name, image, x, y)
        plus = smoothed(image, x + t * vx, y + t * vy)
        minus = smoothed(image, x - t * vx, y - t * vy)
        numeric = (plus - minus) / (2 * t)
        scale = np.abs(numeric).max()
        assert scale > 0.05, name  # a tangent with substance
        np.testing.assert_allclose(vector, numeric, rtol=0, atol=1e-6 * scale, err_msg=name)
    # a wrong sign or a swapped axis would not pass: the rotation is not its opposite
    assert not np.allclose(got[2], -got[2], atol=1e-3)
    # the derivatives are those of S itself, at the pixel centres
    x0, y0 = x.ravel(), y.ravel()
    ix, iy = tangent.derivatives(image[None])
    np.testing.assert_allclose(ix[0].ravel(), (smoothed(image, x0 + t, y0) - smoothed(image, x0 - t, y0)) / (2 * t),
                               atol=1e-7)


def test_downsample_is_exact_area_averaging():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 32, 32))
    got = tangent.downsample(images)
    assert got.shape == (3, 16, 16)
    # upsample the 28x28 field by 4 in each direction: 1.75 input pixels are 7 fine pixels
    fine = np.repeat(np.repeat(images[:, 2:30, 2:30], 4, axis=1), 4, axis=2)
    want = fine.reshape(3, 16, 7, 16, 7).mean(axis=(2, 4))
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(tangent.downsample(images[:, 2:30, 2:30]), want, atol=1e-12)


def lstsq_distance(e, le, p, lp, ridge):
    """The ridge least-squares problem solved by numpy: [A; sqrt(lambda) I] z = [-d; 0]."""
    a = np.hstack([le.T, -lp.T])
    lam = ridge * np.trace(a.T @ a) / a.shape[1]
    d = e - p
    big = np.vstack([a, np.sqrt(lam) * np.eye(a.shape[1])])
    z, *_ = np.linalg.lstsq(big, np.concatenate([-d, np.zeros(a.shape[1])]), rcond=None)
    return float(np.sum((d + a @ z) ** 2) + lam * np.sum(z * z))


@pytest.mark.parametrize("ridge", [1e-8, 0.1])
def test_numba_distance_equals_numpy_least_squares(ridge):
    rng = np.random.default_rng(2)
    for _ in range(20):
        e, p = rng.normal(size=40), rng.normal(size=40)
        le, lp = rng.normal(size=(7, 40)), rng.normal(size=(7, 40))
        got = tangent.two_sided_distance(e, le, p, lp, ridge)
        want = lstsq_distance(e, le, p, lp, ridge)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert got < 0.9 * np.sum((e - p) ** 2)  # the tangents do move the images closer
    # the batched kernel gives the same numbers as the pairwise one
    test, train = rng.normal(size=(3, 40)), rng.normal(size=(5, 40))
    test_t, train_t = rng.normal(size=(3, 7, 40)), rng.normal(size=(5, 7, 40))
    candidates = np.array([[0, 4], [2, 3], [1, 1]])
    got = tangent.candidate_distances(test, test_t, train, train_t, candidates, ridge)
    for i, row in enumerate(candidates):
        for c, j in enumerate(row):
            assert got[i, c] == pytest.approx(lstsq_distance(test[i], test_t[i], train[j], train_t[j], ridge),
                                              rel=1e-9)


def test_distance_is_below_euclidean_and_ignores_a_small_shift():
    rng = np.random.default_rng(3)
    image = smooth_digit(rng)
    x, y = tangent.centred_coordinates()
    shifted = smoothed(image, x + 0.5, y + 0.5).reshape(SIZE, SIZE)  # S moved by half a pixel up and left
    base = smoothed(image, x, y).reshape(SIZE, SIZE)
    e, p = base.ravel(), shifted.ravel()
    euclid = np.sum((e - p) ** 2)
    dist = tangent.two_sided_distance(e, tangent.tangents(base), p, tangent.tangents(shifted))
    assert euclid > 1.0
    assert dist < 0.02 * euclid  # what is left: second order, and the tangents' own smoothing of S
    # any pair: never above the Euclidean distance
    for _ in range(10):
        a, b = smooth_digit(rng), smooth_digit(rng)
        d = tangent.two_sided_distance(a.ravel(), tangent.tangents(a), b.ravel(), tangent.tangents(b))
        assert 0 <= d <= np.sum((a - b) ** 2)


def test_classifier_is_no_worse_than_euclidean_nearest_neighbour(mnist):
    (train_x, train_y), (test_x, test_y) = mnist
    train_x, train_y, test_x, test_y = train_x[:2000], train_y[:2000], test_x[:200], test_y[:200]
    out = tangent.tangent_errors(train_x, train_y, test_x, test_y, k=20)
    train16, test16 = tangent.downsample(train_x), tangent.downsample(test_x)
    euclid = classical.knn_errors(train16.reshape(2000, -1), train_y, test16.reshape(200, -1), test_y, ks=(1,))[1]
    assert out["error_pct"] <= euclid
    assert out["predictions"].shape == (200,)
    assert out["settings"] == {"k": 20, "sigma": SIGMA, "ridge": tangent.RIDGE, "size": 16}
    assert set(out["seconds"]) == {"downsample", "prefilter", "tangents", "tangent_distance", "total"}
