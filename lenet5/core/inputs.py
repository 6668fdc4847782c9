"""What the network accepts as input: (N, 32, 32) real images in the paper's range, and digit
labels; anything else is a one-line Lenet5Error that says what to do."""
import numpy as np

from ..errors import Lenet5Error

# Inputs far outside the paper's range [-0.1, 1.175] are raw pixels, not preprocessed ones.
INPUT_LIMIT = 10.0


def check_images(x):
    """`x` as an (N, 32, 32) real array (one (32, 32) image is N = 1), or a Lenet5Error:
    no images, not real numbers (object, complex, text, bool, raw integer pixels), NaN or
    infinite values, values far outside the paper's input range."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    how = ("map raw uint8 (N, 28, 28) digits with lenet5.data.mnist.preprocess, which pads them "
           "to 32x32 and scales 0..255 to -0.1..1.175 as the paper does")
    if x.dtype.kind in "iu":
        raise Lenet5Error(f"images are integers ({x.dtype}), i.e. raw pixels: {how}")
    if x.dtype.kind != "f":
        raise Lenet5Error(f"images must be real floating-point numbers, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[1:] != (32, 32):
        raise Lenet5Error(f"expected images of shape (N, 32, 32), got {x.shape}")
    if len(x) == 0:
        raise Lenet5Error("no images: the batch is empty")
    finite = np.isfinite(x)
    if not finite.all():
        first = int(np.argmin(finite.reshape(len(x), -1).all(axis=1)))
        raise Lenet5Error(f"images hold NaN or infinite values (first in image {first})")
    peak = float(np.abs(x).max())
    if peak > INPUT_LIMIT:
        raise Lenet5Error(f"image values reach {peak:g}, far outside the paper's input range "
                          f"-0.1..1.175; if these are raw 0..255 pixels, {how}")
    return x


def check_labels(labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise Lenet5Error(f"expected {n} integer labels, got shape {labels.shape} {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() > 9):
        raise Lenet5Error("labels must be digits 0-9")
    return labels.astype(np.int64)
