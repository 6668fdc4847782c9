"""Learned combinations of feature maps in C3 (Bouvrie 2006, section 3.3): softmax weights,
the effective-weight identity, finite-difference gradients, the (vanishing) L1 penalty, and
a short MNIST run."""
import numpy as np
import pytest
from random_inputs import images

from lenet5 import LeNet5
from lenet5.baselines.combinations import (
    CombinationNet,
    l1_penalty,
    penalty_gradient,
    softmax_rows,
    train_combinations,
    train_online_combinations,
)
from lenet5.core import engine
from lenet5.core import numpy_reference as ref
from lenet5.core.architecture import C3_TABLE, table_mask


def buffers(net):
    """The workspace buffers the combination kernels take: activations, deltas, scratch."""
    ws = engine.workspace(net.theta, net.spec())
    return ws.acts, ws.deltas, ws.scratch


def net_with_random_c(seed=2, kernels="pair"):
    net = CombinationNet.init(seed=seed, dtype=np.float64, kernels=kernels)
    net.c[...] = np.random.default_rng(seed).normal(0.0, 1.0, net.c.shape)  # alpha not uniform
    net.sync()
    return net


def test_alpha_is_a_softmax_over_input_maps():
    c = np.random.default_rng(0).normal(0.0, 5.0, (16, 6))
    c[3] += 700.0  # large logits must not overflow
    alpha = np.empty_like(c)
    softmax_rows(c, alpha)
    assert np.all(alpha > 0)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=0, atol=1e-15)  # each output map j
    want = np.exp(c - c.max(axis=1, keepdims=True))
    np.testing.assert_allclose(alpha, want / want.sum(axis=1, keepdims=True), rtol=1e-14)
    net = CombinationNet.init(seed=0, dtype=np.float64)
    np.testing.assert_allclose(net.alpha(), 1.0 / 6.0, rtol=1e-15)  # c = 0 at init


def test_init_kernels_and_effective_weights_follow_the_fan_in_rule():
    net = CombinationNet.init(seed=1, dtype=np.float64)
    assert net.k.shape == (16, 6, 5, 5) and np.all(np.abs(net.k) <= 2.4 / 25)
    weight = net.params()["C3.weight"]
    np.testing.assert_allclose(weight, net.k / 6.0, rtol=1e-15)  # W = alpha k = k / 6
    assert np.abs(weight).max() > 0.9 * 2.4 / 150 and np.abs(weight).max() <= 2.4 / 150
    assert np.all(np.abs(net.params()["C3.bias"]) <= 2.4 / 150)
    shared = CombinationNet.init(seed=1, dtype=np.float64, kernels="input")
    assert shared.k.shape == (1, 6, 5, 5)
    np.testing.assert_allclose(shared.params()["C3.weight"],
                               np.broadcast_to(shared.k / 6, (16, 6, 5, 5)))


@pytest.mark.parametrize("kernels", ["pair", "input"])
def test_forward_is_the_notes_formula(kernels):
    """x_j = f(sum_i alpha_ij (x_i * k_ij) + b_j) through the slow reference network with every
    C3 pair connected and W_ij = alpha_ij k_ij."""
    net = net_with_random_c(seed=4, kernels=kernels)
    params = dict(net.params())
    alpha = net.alpha()
    k = np.broadcast_to(net.k, (16, 6, 5, 5))
    params["C3.weight"] = alpha[:, :, None, None] * k
    params["OUT.prototypes"] = net.prototypes
    x = images(1, seed=3)
    want = ref.network_forward(x[0], params, np.ones((16, 6), bool))["y"]
    np.testing.assert_allclose(net.forward(x)[0], want, rtol=1e-11)


def central_difference(f, arr, idx, h):
    old = arr[idx]
    values = {}
    for step in (-2, -1, 1, 2):
        arr[idx] = old + step * h
        values[step] = f()
    arr[idx] = old
    return (8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (12 * h)


@pytest.mark.parametrize("kernels", ["pair", "input"])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_gradients_match_central_differences_float64(kernels, lam):
    """dE/dk, dE/dc (and a sample of the other parameters) against the five-point central
    difference of E + lam sum |alpha|, relative error < 1e-6. h = 1e-2: the loss is ~80, so
    its rounding, not the O(h^4) truncation, limits smaller steps."""
    net = net_with_random_c(seed=7, kernels=kernels)
    x = images(3, seed=5)
    labels = np.array([0, 4, 9])
    _, grads = net.loss_and_gradients(x, labels, lam=lam)
    rng = np.random.default_rng(1)

    def loss():
        return net.loss_and_gradients(x, labels, lam=lam)[0]
    checked = 0
    for name, arr in (("k", net.k), ("c", net.c), ("theta", net.theta)):
        flat = grads[name].reshape(-1)
        candidates = np.flatnonzero(np.abs(flat) > 1e-3 * np.abs(flat).max())
        for pos in rng.choice(candidates, size=min(8, len(candidates)), replace=False):
            idx = np.unravel_index(pos, arr.shape)
            numeric = central_difference(loss, arr, idx, 1e-2 if name != "theta" else 1e-3)
            rel = abs(flat[pos] - numeric) / max(abs(flat[pos]), abs(numeric))
            assert rel < 1e-6, (name, idx, flat[pos], numeric, rel)
            checked += 1
    assert checked == 24


def test_c3_weight_gradient_is_routed_to_k_and_c_only():
    net = net_with_random_c(seed=3)
    _, grads = net.loss_and_gradients(images(2, seed=1), np.array([3, 8]))
    assert np.all(net.params()["C3.weight"] != 0)  # all 96 pairs live, unlike Table I
    assert np.all(LeNet5.views(grads["theta"])["C3.weight"] == 0)  # W is derived, not trained
    assert np.all(grads["k"] != 0) and np.all(grads["c"] != 0)


def test_l1_penalty_is_constant_and_its_gradient_vanishes():
    """alpha > 0 and each column sums to 1, so sum |alpha| = 16 for every c: Bouvrie's
    dOmega/dc = lam (|alpha_i| - alpha_i sum_k |alpha_k|) is zero."""
    rng = np.random.default_rng(0)
    lam = 0.7
    for _ in range(5):
        c = rng.normal(0.0, 3.0, (16, 6))
        alpha = np.empty_like(c)
        softmax_rows(c, alpha)
        assert l1_penalty(alpha, lam) == pytest.approx(16 * lam, rel=1e-14)
        assert np.abs(penalty_gradient(c, lam)).max() < 1e-15
    # end to end: the gradients with and without the penalty agree to rounding, the loss
    # differs by exactly 16 lam
    net = net_with_random_c(seed=5)
    x, labels = images(2, seed=6), np.array([1, 7])
    l0, g0 = net.loss_and_gradients(x, labels, lam=0.0)
    l1, g1 = net.loss_and_gradients(x, labels, lam=lam)
    assert l1 - l0 == pytest.approx(16 * lam, rel=1e-12)
    for name in g0:
        scale = 1 + np.abs(g0[name]).max()
        np.testing.assert_allclose(g1[name], g0[name], rtol=0, atol=1e-15 * scale)
    # and its finite difference in c is zero
    omega = lambda: l1_penalty(net.alpha(), lam)  # noqa: E731
    assert abs(central_difference(omega, net.c, (4, 2), 1e-2)) < 1e-12


def test_penalty_does_not_change_training():
    x = images(40, seed=8)
    labels = np.arange(40) % 10
    order = np.random.default_rng(0).permutation(40)
    runs = []
    for lam in (0.0, 1.0):
        net = CombinationNet.init(seed=0, dtype=np.float64)
        losses = np.zeros(40)
        train_online_combinations(x, labels, order, net.theta, net.k, net.c, 1e-3, 0.036, 0.036,
                                  lam, net.spec("map", 1.0), losses, buffers(net))
        runs.append((net, losses))
    (a, la), (b, lb) = runs
    np.testing.assert_allclose(lb - la, 16.0, rtol=1e-12)
    assert np.abs(a.c).max() > 1e-4  # alpha did learn ...
    for name in ("theta", "k", "c"):  # ... identically with the penalty
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-13)


def test_online_step_equals_gradient_step():
    """One fused online step = theta/k/c minus the step sizes times the batch-1 gradients."""
    net = net_with_random_c(seed=9)
    x, labels = images(1, seed=2), np.array([6])
    _, g = net.loss_and_gradients(x, labels, lam=0.2)
    lr, lr_k, lr_c = 1e-3, 2e-2, 5e-2
    want_theta = net.theta - lr * g["theta"]
    want_k, want_c = net.k - lr_k * g["k"], net.c - lr_c * g["c"]
    losses = np.zeros(1)
    train_online_combinations(x, labels, np.array([0]), net.theta, net.k, net.c, lr, lr_k, lr_c,
                              0.2, net.spec("map", 1.0), losses, buffers(net))
    np.testing.assert_allclose(net.k, want_k, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(net.c, want_c, rtol=1e-12, atol=1e-16)
    fresh = CombinationNet(want_theta, want_k, want_c, net.prototypes)  # C3.weight re-derived
    np.testing.assert_allclose(net.theta, fresh.theta, rtol=1e-12, atol=1e-16)


def test_short_mnist_run_learns(mnist):
    """300 samples, one pass. lr = 3e-3 rather than the default 1e-3: at 1e-3 the net (like
    LeNet-5 with Table I at that rate) is still on its initial plateau after 300 samples
    (~88 % test error); at 3e-3 it is at ~73 %."""
    result = train_combinations(mnist, epochs=1, seed=0, lr=3e-3, train_size=300,
                                progress=False, log=lambda s: None)
    (row,) = result["history"]
    assert set(row) >= {"epoch", "train_error_pct", "test_error_pct", "seconds"}
    assert np.isfinite(row["train_loss"])
    assert row["test_error_pct"] < 82.0  # chance is 90 %
    alpha = result["alpha"]
    assert alpha.shape == (16, 6)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(alpha, 1 / 6)  # the combinations moved
    assert np.array_equal(result["paper_table"], table_mask(C3_TABLE, 6))
