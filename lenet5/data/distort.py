"""The paper's distorted training set (section III-C): random affine distortions of the
training digits -- horizontal and vertical translation, scaling, squeezing (one axis
compressed while the other is stretched) and horizontal shearing; no rotation. The paper
gives no ranges: ours are the constants below (RANGES_DOC says them in words).
"""
import numba as nb
import numpy as np

from ..core.kernels import JIT_OPTIONS

# Our choice of ranges (the paper gives none). A 28x28 MNIST digit fits a 20x20 box centred
# in the 32x32 field, so its ink lies within 10 px of the centre; the largest stretch
# (1.1 * 1.08) plus shear and shift keeps it inside the field (tested on real MNIST).
MAX_SHIFT = 2.0  # translation, pixels, each axis
SCALE = (0.9, 1.1)  # overall scale
SQUEEZE = (0.92, 1.08)  # x scaled by q, y by 1/q
MAX_SHEAR = 0.15  # x += shear * (y - centre)
RANGES_DOC = (f"translation ±{MAX_SHIFT:g} px on each axis, scale {SCALE[0]:g}–{SCALE[1]:g}, "
              f"squeeze {SQUEEZE[0]:g}–{SQUEEZE[1]:g} (x times q, y divided by q), horizontal "
              f"shear ±{MAX_SHEAR:g}; each uniform and independent; bilinear resampling, "
              "background -0.1 outside the field")

BACKGROUND = -0.1  # the preprocessed value of a blank pixel (lenet5.mnist.preprocess)
COPY_STREAM = 540  # the generator stream of a pool's distortion parameters: (seed, 540)


def draw_params(rng, n):
    """n random distortions, (n, 5) float64 rows (sx, sy, h, tx, ty) of the forward map about
    the field centre m:  x' = sx ((x - m) + h (y - m)) + m + tx,  y' = sy (y - m) + m + ty,
    with sx = s q, sy = s / q (scale s, squeeze q), h the horizontal shear, t the shift."""
    s = rng.uniform(*SCALE, n)
    q = rng.uniform(*SQUEEZE, n)
    params = np.empty((n, 5))
    params[:, 0], params[:, 1] = s * q, s / q
    params[:, 2] = rng.uniform(-MAX_SHEAR, MAX_SHEAR, n)
    params[:, 3:] = rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2))
    return params


def identity_params(n):
    params = np.zeros((n, 5))
    params[:, :2] = 1.0
    return params


@nb.njit(**JIT_OPTIONS)
def _shift_inside(image, sx, sy, h, tx, ty, m):
    """The shift (tx, ty), moved as little as needed so that the ink's bounding box, mapped
    forward, stays two pixels inside the field (the digit never leaves it)."""
    rows, cols = image.shape
    x0, x1, y0, y1 = cols, -1, rows, -1
    for y in range(rows):
        for x in range(cols):
            if image[y, x] > BACKGROUND + 1e-6:
                x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
    if x1 < 0:
        return tx, ty
    lo_x, hi_x, lo_y, hi_y = 1e9, -1e9, 1e9, -1e9
    for cy in (y0, y1):  # an affine map's extremes over a box are at its corners
        for cx in (x0, x1):
            fx = sx * ((cx - m) + h * (cy - m)) + m + tx
            fy = sy * (cy - m) + m + ty
            lo_x, hi_x = min(lo_x, fx), max(hi_x, fx)
            lo_y, hi_y = min(lo_y, fy), max(hi_y, fy)
    # two pixels of margin: bilinear sampling then cannot smear ink onto the outer row
    tx += _nudge(lo_x, hi_x, 2.0, cols - 3.0)
    ty += _nudge(lo_y, hi_y, 2.0, rows - 3.0)
    return tx, ty


@nb.njit(**JIT_OPTIONS)
def _nudge(lo, hi, lo_ok, hi_ok):
    if hi - lo > hi_ok - lo_ok:  # cannot fit: centre it
        return (lo_ok + hi_ok) / 2 - (lo + hi) / 2
    if lo < lo_ok:
        return lo_ok - lo
    if hi > hi_ok:
        return hi_ok - hi
    return 0.0


@nb.njit(parallel=True, **JIT_OPTIONS)
def render_affine(src, src_index, params, keep_inside, out):
    """out[k] = src[src_index[k]] under the forward map params[k] (see draw_params), by
    inverse mapping: each output pixel samples the source at
        y = (y' - m - ty) / sy + m,   x = (x' - m - tx) / sx - h (y - m) + m
    bilinearly (the four source pixels around that point, weighted by distance; outside the
    field = background). keep_inside: shift as little as needed to keep the ink in the field."""
    n, rows, cols = out.shape
    bg = out.dtype.type(BACKGROUND)
    m = (rows - 1) / 2.0
    for k in nb.prange(n):
        image = src[src_index[k]]
        sx, sy, h, tx, ty = params[k]
        if keep_inside:
            tx, ty = _shift_inside(image, sx, sy, h, tx, ty, m)
        for y in range(rows):
            src_y = (y - m - ty) / sy + m
            shear = h * (src_y - m)
            y0 = int(np.floor(src_y))
            wy = src_y - y0
            for x in range(cols):
                src_x = (x - m - tx) / sx - shear + m
                x0 = int(np.floor(src_x))
                wx = src_x - x0
                acc = 0.0
                for dy in range(2):
                    w_y = wy if dy == 1 else 1.0 - wy
                    if w_y == 0.0:
                        continue
                    yy = y0 + dy
                    for dx in range(2):
                        w = w_y * (wx if dx == 1 else 1.0 - wx)
                        if w == 0.0:
                            continue
                        xx = x0 + dx
                        if 0 <= yy < rows and 0 <= xx < cols:
                            acc += w * image[yy, xx]
                        else:
                            acc += w * bg
                out[k, y, x] = acc


def distort_batch(images, rng):
    """A fresh random distortion of every image, (N, 32, 32) -> same shape and dtype."""
    images = np.ascontiguousarray(images)
    out = np.empty_like(images)
    render_affine(images, np.arange(len(images)), draw_params(rng, len(images)), True, out)
    return out


class DistortedPool:
    """The originals followed by `n_copies` distorted copies, made once: copy k (pool index
    len(originals) + k) is original k % len(originals) under distortion k, whose parameters
    are drawn once from (seed, 540) and kept (5 floats a copy: 22 MB for 540,000). Images are
    rendered only when asked for, so the copies never sit in memory together."""

    def __init__(self, images, labels, n_copies, seed=0):
        self.originals = np.ascontiguousarray(images)
        self.original_labels = np.asarray(labels, dtype=np.int64)
        if len(self.originals) != len(self.original_labels):
            raise ValueError("images and labels differ in length")
        self.n_copies = int(n_copies)
        rng = np.random.default_rng([seed, COPY_STREAM])
        self.params = draw_params(rng, self.n_copies)

    def __len__(self):
        return len(self.originals) + self.n_copies

    def source_index(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"pool index out of range 0..{len(self) - 1}")
        n = len(self.originals)
        return np.where(indices < n, indices, (indices - n) % n)

    def labels(self, indices):
        return self.original_labels[self.source_index(indices)]

    def images(self, indices, out=None):
        """The pool's images at `indices` (originals exactly, copies rendered now)."""
        indices = np.asarray(indices, dtype=np.int64)
        n = len(self.originals)
        params = identity_params(len(indices))
        copies = indices >= n
        params[copies] = self.params[indices[copies] - n]
        if out is None:
            out = np.empty((len(indices),) + self.originals.shape[1:], self.originals.dtype)
        render_affine(self.originals, self.source_index(indices), params, True, out)
        return out


def example_grid(images, rng, n=8, rows=4):
    """One 2-D array for a figure: the first n images in the top row, then `rows` rows of
    random distortions of them, one pixel of background between digits."""
    images = np.ascontiguousarray(images[:n])
    size = images.shape[-1]
    tiles = [images] + [distort_batch(images, rng) for _ in range(rows)]
    grid = np.full(((rows + 1) * (size + 1), n * (size + 1)), BACKGROUND, dtype=images.dtype)
    for r, row in enumerate(tiles):
        for c, image in enumerate(row):
            grid[r * (size + 1):r * (size + 1) + size, c * (size + 1):c * (size + 1) + size] = image
    return grid
