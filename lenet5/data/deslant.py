"""Deslanting: the preprocessing of the paper's "[deslant]" rows of Fig. 9 (section III-C).

The paper: "the deslanted images were computed by calculating the second moments of inertia of
the pixels (counting a foreground pixel as 1 and a background pixel as 0), and shearing the
image by horizontally shifting the lines so that the principal axis is vertical."

Here a pixel's weight is its ink, w = value - background (grey levels count in proportion,
0 for background; on binary images this is the paper's 1/0 count). With the centroid
(cx, cy) and the central second moments

    mu_11 = sum w (x - cx)(y - cy),    mu_02 = sum w (y - cy)^2,

the slant is s = mu_11 / mu_02: the least-squares line x - cx = s (y - cy) through the ink
(the x-on-y regression line). The horizontal shear x' = x - s (y - cy) maps it to the
vertical line x' = cx and leaves every row's ink on its row; after it the moment mu_11 is
zero (shearing rows changes mu_11 by -s mu_02 exactly, and mu_02 not at all). The image is
resampled by linear interpolation along each row; pixels that come from outside the field
get the background value. The centroid row does not move, so the digit stays where it was.
"""
import numpy as np


def moments(images, background):
    """(cx, cy, mu_11, mu_02) of each image's ink (value - background, negative clipped to 0),
    (N,) arrays; x is the column, y the row."""
    w = np.clip(np.asarray(images, dtype=np.float64) - background, 0.0, None)
    n, height, width = w.shape
    ys, xs = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    mass = w.sum(axis=(1, 2))
    mass = np.where(mass > 0, mass, 1.0)  # (a blank image: no slant)
    cx = (w.sum(axis=1) * xs).sum(axis=1) / mass
    cy = (w.sum(axis=2) * ys).sum(axis=1) / mass
    dx = xs[None, None, :] - cx[:, None, None]
    dy = ys[None, :, None] - cy[:, None, None]
    return cx, cy, (w * dx * dy).sum(axis=(1, 2)), (w * dy * dy).sum(axis=(1, 2))


def slant(images, background):
    """Each image's slant s = mu_11 / mu_02 (columns of shift per row; 0 for a blank image)."""
    _, _, mu11, mu02 = moments(images, background)
    return np.where(mu02 > 0, mu11 / np.where(mu02 > 0, mu02, 1.0), 0.0)


def deslant(images, background):
    """(N, H, W) images sheared so that each one's principal axis of inertia is vertical:
    out[y, x] = in[y, x + s (y - cy)], linear interpolation along the row, background
    outside the field."""
    images = np.asarray(images, dtype=np.float64)
    n, height, width = images.shape
    _, cy, mu11, mu02 = moments(images, background)
    s = np.where(mu02 > 0, mu11 / np.where(mu02 > 0, mu02, 1.0), 0.0)
    shift = s[:, None] * (np.arange(height)[None, :] - cy[:, None])  # (N, H) columns per row
    source = np.arange(width)[None, None, :] + shift[:, :, None]  # (N, H, W) where to read
    left = np.floor(source).astype(np.int64)
    frac = source - left

    def read(col):
        inside = (col >= 0) & (col < width)
        values = np.take_along_axis(images, np.clip(col, 0, width - 1), axis=2)
        return np.where(inside, values, background)

    return (1.0 - frac) * read(left) + frac * read(left + 1)
