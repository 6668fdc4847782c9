"""A user's digit image -> the network's 32x32 input, made the way MNIST itself was made.

MNIST's digits were size-normalised to fit a 20x20 box keeping their aspect ratio (with
anti-aliasing, hence the grey levels), then centred by their centre of mass in a 28x28
field (LeCun, Cortes & Burges, the MNIST page). A blind resize of a whole photo to 32x32
would give the network digits of the wrong size, thickness and position, so a user's image
goes through the same steps. Two functions, used by `lenet5 predict` and the browser demo:

`ink_from_grayscale(gray)` -- a 2-D greyscale image (uint8 0..255, another unsigned integer
type over its full range, or float 0..1) to "ink" in [0, 1], 1 = ink, 0 = background:
  1. Background level = the median of the border pixels (the outermost rows and columns).
  2. Polarity: ink pulls the image's mean away from the background, so when the mean is
     below the border median the ink is dark on light paper (the common case for a photo or
     a drawing) and the image is inverted; otherwise it is light ink on a dark background
     (MNIST's own convention).
  3. Contrast: ink = (distance from the background level) / (the largest such distance),
     clipped to [0, 1], so grey paper and grey pencil still give background 0 and ink 1.
     An image whose largest distance is below MIN_CONTRAST (5% of full scale) has no ink:
     all zeros (not its noise stretched up to full ink).

`digit_from_ink(ink)` -- ink (2-D, 0..1) to the float32 (32, 32) network input:
  4. Crop to the bounding box of the pixels with ink > NOISE (0.1), so faint noise and the
     empty margins are dropped. No such pixel: Lenet5Error("no ink ...").
  5. Scale so the longer side is 20 pixels, keeping the aspect ratio (the shorter side is
     rounded to whole pixels), by area averaging: each output pixel is the mean of the input
     area it covers (an exact box filter, so shrinking is anti-aliased; enlarging a small
     drawing gives soft-edged blocks). Plain numpy, no Pillow.
  6. Centre by centre of mass in a 28x28 field: the patch is moved by whole pixels so its
     centre of mass lands on pixel (14, 14) -- where MNIST's digits have it (test set mean
     13.99, 14.01 in row, column index; spread 0.29 = a whole-pixel shift) -- but never so far
     that ink would fall outside the field.
  7. The paper's mapping, exactly as MNIST digits get it (`lenet5.data.mnist.preprocess`):
     ink is quantised to 0..255 like MNIST's bytes, the 28x28 field is centred in 32x32 with
     2 background pixels on each side, background -> -0.1 and full ink -> 1.175.
"""
import numpy as np

from ..errors import Lenet5Error
from .idx import IMAGE_SIZE
from .mnist import preprocess

BOX = 20  # MNIST digits fit a 20x20 box
CENTRE = 14  # row/column index of MNIST's centre of mass in the 28x28 field
NOISE = 0.1  # ink at or below this does not count for the bounding box
MIN_CONTRAST = 0.05  # an image whose ink differs less than this from the background is blank


def _as_unit_gray(gray):
    """2-D float64 in [0, 1] from uint8 / unsigned integer (full range) / bool / float 0..1."""
    a = np.asarray(gray)
    if a.ndim != 2:
        raise Lenet5Error(f"expected a 2-D greyscale image, got an array of shape {a.shape}")
    if a.size == 0:
        raise Lenet5Error("the image is empty (0 pixels)")
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    if np.issubdtype(a.dtype, np.unsignedinteger):
        return a.astype(np.float64) / np.iinfo(a.dtype).max
    if not np.issubdtype(a.dtype, np.floating):
        raise Lenet5Error(f"expected uint8 or float greyscale values, got {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise Lenet5Error("the image has NaN or infinite values")
    if a.min() < 0 or a.max() > 1:
        raise Lenet5Error(f"float greyscale values must be in 0..1, got {a.min():.3g}..{a.max():.3g}")
    return a


def ink_from_grayscale(gray):
    """Greyscale image (2-D) -> float64 ink in [0, 1] (1 = ink), either polarity (steps 1-3)."""
    a = _as_unit_gray(gray)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    background = np.median(border)
    distance = a - background if a.mean() > background else background - a
    peak = distance.max()
    if peak < MIN_CONTRAST:
        return np.zeros_like(a)
    return np.clip(distance / peak, 0.0, 1.0)


def area_resample(length, new_length):
    """(new_length, length) matrix averaging input pixels [j, j+1) over output pixel i's span
    [i, i+1) * length/new_length: each row is the overlap of the spans, normalised to sum 1."""
    edges = np.arange(new_length + 1) * (length / new_length)
    lo = np.maximum(edges[:-1, None], np.arange(length)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(1, length + 1)[None, :])
    overlap = np.clip(hi - lo, 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _place(length, centre):
    """Offset of a patch of `length` whose centre of mass is at `centre` (patch coordinates)
    in the 28-pixel field: CoM on pixel CENTRE, whole pixels, ink kept inside the field."""
    return int(np.clip(round(CENTRE - centre), 0, IMAGE_SIZE - length))


def digit_from_ink(ink):
    """Ink (2-D, 0..1, 1 = ink) -> float32 (32, 32) network input, made as MNIST was (steps 4-7)."""
    a = np.asarray(ink, dtype=np.float64)
    if a.ndim != 2:
        raise Lenet5Error(f"expected a 2-D ink image, got an array of shape {a.shape}")
    if not np.isfinite(a).all():
        raise Lenet5Error("the ink image has NaN or infinite values")
    a = np.clip(a, 0.0, 1.0)
    rows = np.flatnonzero((a > NOISE).any(axis=1))
    cols = np.flatnonzero((a > NOISE).any(axis=0))
    if len(rows) == 0:
        raise Lenet5Error("no ink: the image is blank (nothing stands out from the background)")
    crop = a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # step 4

    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    patch = area_resample(h, nh) @ crop @ area_resample(w, nw).T  # step 5

    mass = patch.sum()
    cy = (patch.sum(axis=1) @ np.arange(nh)) / mass
    cx = (patch.sum(axis=0) @ np.arange(nw)) / mass
    field = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    top, left = _place(nh, cy), _place(nw, cx)
    field[top:top + nh, left:left + nw] = patch  # step 6

    as_bytes = np.round(np.clip(field, 0.0, 1.0) * 255).astype(np.uint8)
    return preprocess(as_bytes[None])[0]  # step 7
