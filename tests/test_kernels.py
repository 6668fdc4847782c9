"""Each Numba kernel against the slow numpy reference written from the definitions."""
import numpy as np
import pytest

from lenet5.core import kernels
from lenet5.core import numpy_reference as ref
from lenet5.core.architecture import C3_TABLE, table_mask, table_pairs

rng = np.random.default_rng(1234)


def random(*shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("table,in_maps,size", [
    (((0,),) * 6, 1, 32),          # C1
    (C3_TABLE, 6, 14),             # C3, sparse
    (((0, 1, 2, 3, 4, 5),) * 4, 6, 9),  # small dense block
])
def test_conv_forward_and_backward_match_definitions(table, in_maps, size):
    maps = len(table)
    mask = table_mask(table, in_maps)
    pairs = table_pairs(table)
    x = random(in_maps, size, size)
    weight = random(maps, in_maps, 5, 5) * mask[:, :, None, None]
    bias = random(maps)
    u = np.zeros((maps, size - 4, size - 4))
    kernels.conv_forward(x, weight, bias, pairs, u)
    np.testing.assert_allclose(u, ref.conv_valid(x, weight, bias, mask), rtol=1e-12, atol=1e-12)

    delta = random(*u.shape)
    dweight, dbias, dx = np.zeros_like(weight), np.zeros(maps), np.zeros_like(x)
    kernels.conv_backward(x, weight, delta, pairs, dweight, dbias, dx, True)
    want_w, want_b, want_x = ref.conv_backward(x, weight, delta, mask)
    np.testing.assert_allclose(dweight, want_w, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(dbias, want_b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, want_x, rtol=1e-12, atol=1e-11)
    # unconnected pairs are never touched
    assert np.all(dweight[~mask] == 0)


def test_conv_backward_accumulates_and_skips_dx():
    pairs = table_pairs(C3_TABLE)
    x, delta = random(6, 14, 14), random(16, 10, 10)
    weight = random(16, 6, 5, 5)
    dweight, dbias, dx = np.ones((16, 6, 5, 5)), np.ones(16), np.full((6, 14, 14), 7.0)
    kernels.conv_backward(x, weight, delta, pairs, dweight, dbias, dx, False)
    want_w, want_b, _ = ref.conv_backward(x, weight, delta, table_mask(C3_TABLE, 6))
    np.testing.assert_allclose(dweight, want_w + 1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dbias, want_b + 1, rtol=1e-12)
    assert np.all(dx == 7.0)


def test_subsample_forward_and_backward():
    x, coeff, bias = random(16, 10, 10), random(16), random(16)
    u = np.zeros((16, 5, 5))
    kernels.pool_forward(x, coeff, bias, u, kernels.POOL_SUM, np.arange(len(u)))
    np.testing.assert_allclose(u, ref.subsample(x, coeff, bias), rtol=1e-12, atol=1e-12)
    delta = random(16, 5, 5)
    dcoeff, dbias, dx = np.zeros(16), np.zeros(16), np.zeros_like(x)
    kernels.pool_backward(x, x, coeff, delta, dcoeff, dbias, dx, kernels.POOL_SUM, np.arange(len(delta)))
    want = ref.subsample_backward(x, coeff, delta)
    for got, expected in zip((dcoeff, dbias, dx), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_dense_forward_and_backward():
    x, weight, bias = random(120), random(84, 120), random(84)
    u = np.zeros(84)
    kernels.dense_forward(x, weight, bias, u)
    np.testing.assert_allclose(u, weight @ x + bias, rtol=1e-12)
    delta = random(84)
    dweight, dbias, dx = np.zeros_like(weight), np.zeros(84), np.zeros(120)
    kernels.dense_backward(x, weight, delta, dweight, dbias, dx, True)
    np.testing.assert_allclose(dweight, np.outer(delta, x), rtol=1e-12)
    np.testing.assert_allclose(dbias, delta, rtol=1e-12)
    np.testing.assert_allclose(dx, weight.T @ delta, rtol=1e-12)


def test_tanh_forward_backward_and_square():
    u = random(500) * 3
    x = np.zeros_like(u)
    kernels.activation_forward(u, x, kernels.ACT_SCALED_TANH)
    np.testing.assert_allclose(x, ref.squash(u), rtol=1e-13)
    dx = random(500)
    delta = np.zeros_like(u)
    kernels.activation_backward(x, dx, delta, 1, kernels.ACT_SCALED_TANH)
    np.testing.assert_allclose(delta, ref.squash_prime(u) * dx, rtol=1e-10, atol=1e-13)
    kernels.activation_backward(x, dx, delta, 2, kernels.ACT_SCALED_TANH)
    np.testing.assert_allclose(delta, ref.squash_prime(u) ** 2 * dx, rtol=1e-10, atol=1e-13)
    # f(a) = 1.7159 tanh(2a/3): f(1) = 1 and f(-1) = -1 (the paper's choice of constants)
    kernels.activation_forward(np.array([1.0, -1.0]), x[:2], kernels.ACT_SCALED_TANH)
    np.testing.assert_allclose(x[:2], [1.0, -1.0], atol=1e-4)


def test_rbf_forward_and_backward():
    x, prototypes = random(84), np.sign(random(10, 84))
    y = np.zeros(10)
    kernels.rbf_forward(x, prototypes, y)
    np.testing.assert_allclose(y, ref.rbf(x, prototypes), rtol=1e-12)
    dy, dx = random(10), np.zeros(84)
    kernels.rbf_backward(x, prototypes, dy, dx)
    np.testing.assert_allclose(dx, (2 * dy[:, None] * (x[None] - prototypes)).sum(0), rtol=1e-11)


@pytest.mark.parametrize("kind", ["mse", "map"])
def test_criteria_values_and_derivatives(kind):
    code = kernels.LOSS_MSE if kind == "mse" else kernels.LOSS_MAP
    y = np.abs(random(10)) * 5
    dy = np.zeros(10)
    j = 1.5
    value = kernels.loss_forward_backward(y, 3, code, j, dy)
    assert value == pytest.approx(ref.loss(y, 3, kind, j), rel=1e-13)
    h = 1e-6
    for k in range(10):
        e = np.zeros(10)
        e[k] = h
        numeric = (ref.loss(y + e, 3, kind, j) - ref.loss(y - e, 3, kind, j)) / (2 * h)
        assert dy[k] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    # the MAP log-sum-exp stays finite for huge distances
    big = np.full(10, 1e4)
    assert np.isfinite(kernels.loss_forward_backward(big, 0, kernels.LOSS_MAP, j, dy))


def test_dense_backward_step_is_backward_then_step():
    """The fused online step of a dense layer (kernels.dense_backward_step) against the reference
    dense_backward into a zeroed gradient, followed by the step W -= eta * dW, b -= eta * db."""
    x, weight, bias, delta = random(120), random(84, 120), random(84), random(84)
    eta_w, eta_b = np.abs(random(84, 120)), np.abs(random(84))
    dweight, dbias, want_dx = np.zeros_like(weight), np.zeros(84), np.zeros(120)
    kernels.dense_backward(x, weight, delta, dweight, dbias, want_dx, True)
    w, b, dx = weight.copy(), bias.copy(), np.full(120, np.nan)
    kernels.dense_backward_step(x, w, eta_w, delta, b, eta_b, dx, True)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-15)  # with W before the step
    np.testing.assert_allclose(w, weight - eta_w * dweight, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(b, bias - eta_b * dbias, rtol=1e-13, atol=1e-15)
