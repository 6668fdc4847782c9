"""lenet5.data.digits: a user's greyscale image -> the 32x32 network input, as MNIST was made."""
import numpy as np
import pytest

from lenet5.core.paper import BACKGROUND, INK
from lenet5.data.digits import BOX, CENTRE, area_resample, digit_from_ink, ink_from_grayscale
from lenet5.data.idx import read_idx
from lenet5.data.mnist import PAD, preprocess
from lenet5.errors import Lenet5Error


@pytest.fixture(scope="module")
def raw_test(shared_mnist_dir):
    """The first 1,000 MNIST test digits as stored (uint8, ink = 255) and their labels."""
    images = read_idx(shared_mnist_dir / "t10k-images-idx3-ubyte.gz")[:1000]
    labels = read_idx(shared_mnist_dir / "t10k-labels-idx1-ubyte.gz")[:1000]
    return images, labels


def _field(x):
    """The 28x28 field of a 32x32 input, as ink 0..1."""
    return (x[PAD:-PAD, PAD:-PAD] - BACKGROUND) / (INK - BACKGROUND)


def test_area_resample_is_an_exact_box_filter():
    r = area_resample(12, 4)
    np.testing.assert_allclose(r.sum(axis=1), 1.0)
    x = np.arange(12.0)
    np.testing.assert_allclose(r @ x, x.reshape(4, 3).mean(axis=1))
    r = area_resample(3, 2)  # output pixel 0 covers input 0 and half of input 1
    np.testing.assert_allclose(r, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])


def test_polarity_and_contrast_are_detected():
    gray = np.full((40, 30), 200, np.uint8)  # light grey paper
    gray[10:30, 12:16] = 50  # dark grey stroke
    ink = ink_from_grayscale(gray)
    assert ink.max() == 1.0 and ink[0, 0] == 0.0 and ink[20, 13] == 1.0
    np.testing.assert_allclose(ink_from_grayscale(255 - gray), ink)
    np.testing.assert_allclose(ink_from_grayscale(gray / 255.0), ink)


def test_mapping_matches_preprocess_and_digit_is_centred():
    ink = np.zeros((140, 100))
    ink[20:100, 30:50] = 1.0  # an 80x20 bar, far off-centre
    x = digit_from_ink(ink)
    assert x.shape == (32, 32) and x.dtype == np.float32
    assert np.all(x[:PAD] == np.float32(BACKGROUND)) and x.max() == np.float32(INK)
    field = _field(x)
    rows = np.flatnonzero((field > 0.01).any(axis=1))
    cols = np.flatnonzero((field > 0.01).any(axis=0))
    assert rows[-1] - rows[0] + 1 == BOX  # longer side 20
    assert cols[-1] - cols[0] + 1 == 5  # aspect ratio 4:1 kept
    ys, xs = np.mgrid[:28, :28]
    assert abs((field * ys).sum() / field.sum() - CENTRE) <= 0.5
    assert abs((field * xs).sum() / field.sum() - CENTRE) <= 0.5


def test_ink_near_an_edge_stays_inside_the_field():
    ink = np.zeros((20, 20))
    ink[0:3, :] = 1.0  # a heavy top bar: centring its mass would push it out
    ink[3:, 9:11] = 0.5
    field = _field(digit_from_ink(ink))
    assert field.sum() == pytest.approx(np.round(ink * 255).sum() / 255, rel=0.01)


def test_faint_noise_does_not_count():
    rng = np.random.default_rng(0)
    ink = rng.uniform(0, 0.08, (60, 60))
    ink[20:40, 25:35] = 1.0
    field = _field(digit_from_ink(ink))
    rows = np.flatnonzero((field > 0.5).any(axis=1))
    assert rows[-1] - rows[0] + 1 == BOX


@pytest.mark.parametrize("bad, reason", [
    (np.zeros((28, 28), np.uint8), "no ink"),
    (np.full((28, 28), 0.5) + np.random.default_rng(1).uniform(0, 0.01, (28, 28)), "no ink"),
    (np.zeros((28, 28, 3), np.uint8), "2-D"),
    (np.zeros((0, 5), np.uint8), "empty"),
    (np.where(np.eye(28) > 0, np.nan, 0.0), "NaN"),
    (np.full((28, 28), 2.0), "0..1"),
])
def test_bad_images_are_clear_errors(bad, reason):
    with pytest.raises(Lenet5Error, match=reason):
        digit_from_ink(ink_from_grayscale(bad))


def test_mnist_digits_survive_the_pipeline(raw_test):
    """MNIST digits are already made this way: most come out identical, and the shipped
    network classifies them as well as through `preprocess`."""
    from lenet5.core.model import LeNet5, reference_checkpoint

    images, labels = raw_test
    ours = np.stack([digit_from_ink(ink_from_grayscale(im)) for im in images])
    reverse = np.stack([digit_from_ink(ink_from_grayscale(255 - im)) for im in images])
    theirs = preprocess(images)
    identical = np.mean([np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)])
    assert identical > 0.6, identical
    np.testing.assert_array_equal(ours, reverse)
    net = LeNet5.load(reference_checkpoint())
    acc_ours = np.mean(net.predict(ours) == labels)
    acc_theirs = np.mean(net.predict(theirs) == labels)
    assert acc_ours >= acc_theirs - 0.005, (acc_ours, acc_theirs)
