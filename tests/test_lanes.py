"""The inference fast path (engine.forward_chunk over lenet5.core.lane_kernels, LANES samples per
block) against the per-sample reference composition (engine.sample_forward), and the lane
kernels one by one against the per-sample kernels."""
import numba as nb
import numpy as np
import pytest
from test_hessian import VARIANTS

from lenet5 import LeNet5
from lenet5.core import engine, kernels
from lenet5.core import lane_kernels as lanes
from lenet5.core.model import reference_checkpoint

ids = {"ids": lambda v: v.to_json()}


def per_sample(net, x):
    """Outputs y of each image through sample_forward, one at a time (the reference)."""
    return np.stack([engine.forward_layers(image, net.theta, net.spec(net.default_loss)).out for image in x])


@pytest.mark.parametrize("variant", VARIANTS, **ids)
def test_lane_forward_equals_the_per_sample_pass(variant):
    """float64: every variant, a batch of two blocks and a partial one, split over threads
    in chunks that do not fall on block boundaries; the per-sample pass within rounding."""
    net = LeNet5.init(seed=4, dtype=np.float64, variant=variant)
    n = 2 * lanes.LANES + 5
    x = np.random.default_rng(6).uniform(-0.1, 1.175, (n, 32, 32))
    want = per_sample(net, x)
    for bounds in (np.array([0, n]), np.array([0, 7, n])):
        got = np.full((n, want.shape[1]), np.nan)
        engine.forward_batch(x, net.theta, net.spec(net.default_loss), bounds, got)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS[:1] + VARIANTS[-3:], **ids)
def test_lane_forward_float32_agrees_to_float32_rounding(variant):
    net = LeNet5.init(seed=4, dtype=np.float32, variant=variant)
    x = np.random.default_rng(7).uniform(-0.1, 1.175, (lanes.LANES + 3, 32, 32)).astype(np.float32)
    got = net.forward_checked(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, per_sample(net, x), rtol=2e-5, atol=2e-5)


def test_lane_forward_ranks_the_digits_as_the_shipped_checkpoint_does(mnist):
    """On 2,000 real test digits the shipped (float32) network's answers through the lanes
    are the per-sample pass's, and its outputs differ by float32 rounding only."""
    net = LeNet5.load(reference_checkpoint())
    (_, _), (tx, _) = mnist
    x = tx[:2000].astype(np.float32)
    got, want = net.forward_checked(x), net.forward_checked(x, shared_loop=True)
    assert np.array_equal(got.argmin(axis=1), want.argmin(axis=1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def lane_stack(arrays):
    """(LANES, *shape) per-sample arrays -> (*shape, LANES), lanes last."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(arrays), 0, -1))


def test_lane_conv_and_pool_equal_the_per_sample_kernels():
    rng = np.random.default_rng(8)
    net = LeNet5.init(seed=1, dtype=np.float64)
    spec = net.spec()
    params = engine.unpack(net.theta, spec.graph)
    s2c, s2b, c3w, c3b = params.s2_coeff, params.s2_bias, params.c3_weight, params.c3_bias
    x = rng.standard_normal((lanes.LANES, 6, 14, 14))
    want = np.zeros((lanes.LANES, 16, 10, 10))
    for k in range(lanes.LANES):
        kernels.conv_forward(x[k], c3w, c3b, spec.c3_pairs, want[k])
    got = np.zeros((16, 10, 10, lanes.LANES))
    lanes.conv_forward_lanes(lane_stack(x), c3w, c3b, spec.c3_pairs, got)
    np.testing.assert_allclose(got, lane_stack(want), rtol=1e-12, atol=1e-13)
    for kind in (kernels.POOL_SUM, kernels.POOL_MAX):
        x1 = rng.standard_normal((lanes.LANES, 6, 28, 28))
        want = np.zeros((lanes.LANES, 6, 14, 14))
        for k in range(lanes.LANES):
            kernels.pool_forward(x1[k], s2c, s2b, want[k], kind, spec.graph.s2_source)
        got = np.zeros((6, 14, 14, lanes.LANES))
        lanes.pool_forward_lanes(lane_stack(x1), s2c, s2b, got, kind, spec.graph.s2_source)
        np.testing.assert_allclose(got, lane_stack(want), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n_out, n_in", [(120, 400), (84, 120), (10, 84), (3, 5)])
def test_lane_dense_is_w_h_plus_b(n_out, n_in):
    """Every input count (whole blocks of 8 rows, a remainder, fewer than one block) and unit
    count (padded to LANES) against numpy."""
    rng = np.random.default_rng(n_in)
    weight, bias = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    h = rng.standard_normal((n_in, lanes.LANES))
    weight_t = lanes.padded_transpose(weight)
    assert weight_t.shape[1] % lanes.LANES == 0 and not weight_t[:, n_out:].any()
    u = np.zeros((n_out, lanes.LANES))
    lanes.dense_forward_lanes(h, weight_t, bias, u, np.full((lanes.LANES, weight_t.shape[1]), np.nan))
    np.testing.assert_allclose(u, weight @ h + bias[:, None], rtol=1e-12, atol=1e-12)


def test_power_of_two_is_exact_over_the_normal_range():
    """kernels.power_of_two builds 2^k from the exponent bits: exact for every normal k."""
    @nb.njit
    def powers(ks, like):
        out = np.empty(ks.shape[0], like.dtype)
        for n in range(ks.shape[0]):
            out[n] = kernels.power_of_two(ks[n], like[0])
        return out

    for dtype, low, high in ((np.float32, -126, 127), (np.float64, -1022, 1023)):
        ks = np.arange(low, high + 1, dtype=np.int32)
        got = powers(ks, np.ones(1, dtype))
        assert got.dtype == dtype
        assert np.array_equal(got, np.ldexp(np.ones(len(ks), dtype), ks))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS, **ids)
def test_lane_gradients_equal_the_per_sample_pass(variant):
    """loss_gradient_batch (gradient_chunk: lanes_forward, the criterion lane by lane,
    lanes_backward) against the per-sample pass (sample_loop, MODE_GRADIENT) in float64:
    every variant, two blocks and a partial one, chunks that do not fall on block boundaries.
    The table's unconnected C3 kernels get exactly zero."""
    net = LeNet5.init(seed=5, dtype=np.float64, variant=variant)
    n = 2 * lanes.LANES + 5
    rng = np.random.default_rng(9)
    x, labels = rng.uniform(-0.1, 1.175, (n, 32, 32)), rng.integers(0, 10, n)
    spec = net.spec(net.default_loss)
    want_losses, want = np.zeros(n), np.zeros_like(net.theta)
    engine.sample_loop(x, labels, np.arange(n), net.theta, net.theta, spec, engine.MODE_GRADIENT, 0,
                       want_losses, want, engine.workspace(net.theta, spec))
    losses, grad = np.full(n, np.nan), np.full_like(net.theta, np.nan)
    engine.loss_gradient_batch(x, labels, net.theta, spec, np.array([0, 7, n]), losses, grad)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    np.testing.assert_allclose(grad, want, rtol=1e-11, atol=1e-14 * np.abs(want).max())
    c3 = LeNet5.views(grad, variant)["C3.weight"]
    unconnected = LeNet5.views(net.fixed_mask(), variant)["C3.weight"] if variant.c3 == "table" else None
    if unconnected is not None:
        assert unconnected.any() and np.all(c3[unconnected] == 0.0)


def test_lane_gradient_of_a_partial_block_counts_only_its_samples():
    """A batch of 25, one block with 7 lanes unused (25 fill enough lanes to go through them,
    engine.PARTIAL_BLOCK_MIN), right after a batch of NaN images on the same thread. The unused
    lanes take zero images, not the NaNs left in them: the gradient is the sum of the 25
    per-sample ones."""
    assert 25 >= engine.PARTIAL_BLOCK_MIN
    net = LeNet5.init(seed=6, dtype=np.float64)
    n = 25
    rng = np.random.default_rng(10)
    x, labels = rng.uniform(-0.1, 1.175, (n, 32, 32)), rng.integers(0, 10, n)
    spec = net.spec()
    poisoned = np.full((lanes.LANES, 32, 32), np.nan)
    engine.loss_gradient_batch(poisoned, np.zeros(lanes.LANES, np.int64), net.theta, spec, np.array([0, lanes.LANES]),
                               np.zeros(lanes.LANES), np.zeros_like(net.theta))
    total = np.zeros_like(net.theta)
    for s in range(n):
        one = np.zeros_like(net.theta)
        engine.sample_loop(x, labels, np.array([s]), net.theta, net.theta, spec, engine.MODE_GRADIENT, 0,
                           np.zeros(1), one, engine.workspace(net.theta, spec))
        total += one
    grad = np.zeros_like(net.theta)
    engine.loss_gradient_batch(x, labels, net.theta, spec, np.array([0, n]), np.zeros(n), grad)
    np.testing.assert_allclose(grad, total, rtol=1e-11, atol=1e-14 * np.abs(total).max())
