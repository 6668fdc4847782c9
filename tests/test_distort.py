"""The affine distortions: exact where they must be, inside the field, deterministic."""
import numpy as np
import pytest

from lenet5.data.distort import (
    BACKGROUND,
    DistortedPool,
    distort_batch,
    draw_params,
    example_grid,
    identity_params,
    render_affine,
)

INK = 1.175


@pytest.fixture(scope="module")
def digits(mnist):
    (x, y), _ = mnist
    return x[:400], y[:400]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_reproduces_the_input_exactly(dtype):
    x = np.random.default_rng(0).uniform(-0.1, INK, (3, 32, 32)).astype(dtype)
    out = np.empty_like(x)
    render_affine(x, np.arange(3), identity_params(3), True, out)
    assert out.dtype == dtype and np.array_equal(out, x)


def test_integer_translation_shifts_by_exactly_that_many_pixels():
    x = np.random.default_rng(1).uniform(-0.1, INK, (1, 32, 32))
    params = identity_params(1)
    params[0, 3], params[0, 4] = 3.0, -2.0  # output (x, y) reads source (x - 3, y + 2)
    out = np.empty_like(x)
    render_affine(x, np.zeros(1, np.int64), params, False, out)
    assert np.array_equal(out[0, :30, 3:], x[0, 2:, :29])
    assert np.all(out[0, :, :3] == BACKGROUND) and np.all(out[0, 30:, :] == BACKGROUND)


def test_parameters_stay_in_the_documented_ranges():
    p = draw_params(np.random.default_rng(2), 10_000)
    sx, sy = p[:, 0], p[:, 1]  # the forward x and y scales s*q and s/q
    assert np.abs(p[:, 2]).max() <= 0.15 and np.abs(p[:, 3:]).max() <= 2.0
    assert 0.9 * 0.92 - 1e-9 <= sx.min() and sx.max() <= 1.1 * 1.08 + 1e-9
    assert sy.min() >= 0.9 / 1.08 - 1e-9 and sy.max() <= 1.1 / 0.92 + 1e-9
    assert np.ptp(sx / sy) > 0.3  # squeezing really varies the aspect ratio


def test_real_digits_keep_value_range_and_stay_inside_the_field(digits):
    x, _ = digits
    out = distort_batch(x, np.random.default_rng(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= BACKGROUND - 1e-6 and out.max() <= INK + 1e-6
    ink_before = (x - BACKGROUND).sum(axis=(1, 2))
    ink_after = (out - BACKGROUND).sum(axis=(1, 2))
    ratio = ink_after / ink_before
    assert 0.7 < ratio.min() and ratio.max() < 1.45  # area scales by s^2, within 0.81-1.21
    border = np.concatenate([out[:, 0, :], out[:, -1, :], out[:, :, 0], out[:, :, -1]], axis=1)
    assert (border - BACKGROUND).max() < 1e-5  # no ink reaches the edge of the 32x32 field
    assert not np.array_equal(out, x)


def test_pool_is_deterministic_and_indexes_originals_then_copies(digits):
    x, y = digits
    pool = DistortedPool(x, y, n_copies=9 * len(x), seed=7)
    assert len(pool) == 10 * len(x)
    idx = np.array([0, 5, len(x), len(x) + 5, 10 * len(x) - 1])
    first = pool.images(idx)
    assert np.array_equal(first[:2], x[[0, 5]])  # originals unchanged
    assert np.array_equal(pool.labels(idx), y[[0, 5, 0, 5, len(x) - 1]])
    again = DistortedPool(x, y, n_copies=9 * len(x), seed=7).images(idx[::-1])
    assert np.array_equal(again[::-1], first)  # same seed, same copies, in any order
    other = DistortedPool(x, y, n_copies=9 * len(x), seed=8).images(idx)
    assert not np.array_equal(other[2:], first[2:])
    assert not np.array_equal(first[2], first[0])  # a copy differs from its original
    with pytest.raises(IndexError):
        pool.images([len(pool)])


def test_example_grid_shape(digits):
    grid = example_grid(digits[0], np.random.default_rng(0), n=4, rows=2)
    assert grid.shape == (3 * 33, 4 * 33)
    assert np.array_equal(grid[:32, :32], digits[0][0])


def test_twenty_passes_see_every_pool_sample_twice(digits):
    from lenet5.training.distorted_source import DistortedSource

    x, y = digits
    source = DistortedSource(x, y, copies=9 * len(x), seed=0)
    orders = [source.pass_order(epoch) for epoch in range(1, 21)]
    assert all(len(o) == len(x) for o in orders)
    counts = np.bincount(np.concatenate(orders), minlength=len(source))
    assert counts.min() == 2 and counts.max() == 2
    assert np.array_equal(source.pass_order(7), orders[6])  # a resumed pass draws the same


def test_training_on_distorted_copies_runs_and_resumes_exactly(digits, mnist, tmp_path, monkeypatch):
    from lenet5.training.trainer import Interrupted, TrainConfig, Trainer

    monkeypatch.setattr("lenet5.training.trainer.CHUNK", 50)  # so the interruption lands mid-pass
    data = ((digits[0], digits[1]), (mnist[1][0][:500], mnist[1][1][:500]))
    cfg = dict(epochs=2, train_size=200, distortions=1800, optimizer="sgd", lr=3e-3)
    full = Trainer(TrainConfig(**cfg), data, tmp_path / "a", progress=False, log=lambda s: None)
    full.run()

    class StopAfterOneChunk(Trainer):
        def _train_slice(self, idx, losses):
            super()._train_slice(idx, losses)
            if self.epoch == 2:
                self.stop.request()

    first = StopAfterOneChunk(TrainConfig(**cfg), data, tmp_path / "b", progress=False, log=lambda s: None)
    with pytest.raises(Interrupted, match="in epoch 2 after 50 of 200"):
        first.run()
    from lenet5 import LeNet5

    net, state = LeNet5.load(first.checkpoint_path, with_state=True)
    resumed = Trainer(TrainConfig(**cfg), data, tmp_path / "b", net=net, state=state, progress=False,
                      log=lambda s: None)
    resumed.run()
    assert np.array_equal(resumed.net.theta, full.net.theta)
