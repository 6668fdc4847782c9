"""The Fig. 9 fully connected baselines: parameter counts, initialisation, the crop, the
forward pass against numpy, finite-difference gradients, the online step, a short MNIST run."""
import numpy as np
import pytest
from random_inputs import images

from lenet5.baselines.mlp import (
    MLP,
    PAPER_BASELINES,
    flatten_images,
    layer_sizes,
    n_params,
    pass_factor,
    train_mlp,
    train_online,
)
from lenet5.core.architecture import TANH_A, TANH_S


def test_parameter_counts_are_the_papers():
    # weights + one bias per unit, worked out by hand
    assert 784 * 10 + 10 == 7_850
    assert (784 * 300 + 300) + (300 * 10 + 10) == 238_510
    assert (784 * 1000 + 1000) + (1000 * 10 + 10) == 795_010
    assert (784 * 300 + 300) + (300 * 100 + 100) + (100 * 10 + 10) == 266_610
    expected = {(): 7_850, (300,): 238_510, (1000,): 795_010, (300, 100): 266_610}
    for hidden, count in expected.items():
        assert n_params(hidden) == count == PAPER_BASELINES[hidden][0]
        assert MLP.init(hidden, seed=0).n_params == count


def test_init_follows_the_fan_in_rule():
    net = MLP.init((300, 100), seed=0, dtype=np.float64)
    for l, fan_in in enumerate((784, 300, 100)):
        w, b = net.weights(l)
        bound = 2.4 / fan_in
        assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
        assert np.abs(w).max() > 0.9 * bound
    assert not np.array_equal(net.theta, MLP.init((300, 100), seed=1, dtype=np.float64).theta)


def test_images_are_cropped_to_the_28x28_digit():
    x = images(2)
    flat = flatten_images(x)
    assert flat.shape == (2, 784)
    np.testing.assert_array_equal(flat.reshape(2, 28, 28), x[:, 2:30, 2:30])
    np.testing.assert_array_equal(flatten_images(x[:, 2:30, 2:30]), flat)


@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
def test_forward_matches_numpy(hidden):
    net = MLP.init(hidden, seed=3, dtype=np.float64)
    # larger weights than the init so that tanh is exercised away from its linear part
    net.theta *= 50
    x = flatten_images(images(4, seed=1))
    h = x
    n_layers = len(net.sizes) - 1
    for l in range(n_layers):
        w, b = net.weights(l)
        h = h @ w.T + b
        if l < n_layers - 1 or hidden:  # linear output only for the linear classifier
            h = TANH_A * np.tanh(TANH_S * h)
    np.testing.assert_allclose(net.forward(x), h, rtol=1e-12, atol=1e-13)
    loss, _ = net.loss_and_gradient(x, np.array([0, 3, 5, 9]))
    targets = -np.ones((4, 10))
    targets[np.arange(4), [0, 3, 5, 9]] = 1.0
    assert loss == pytest.approx(0.5 * ((h - targets) ** 2).sum(axis=1).mean(), rel=1e-12)


@pytest.mark.parametrize("hidden", [(), (7,), (6, 5), (300, 100)])
def test_gradients_match_central_differences_float64(hidden):
    net = MLP.init(hidden, seed=11, dtype=np.float64)
    net.theta *= 20  # away from the near-linear start, so every layer's curvature shows
    x = images(3, seed=2)
    labels = np.array([0, 4, 9])
    _, grad = net.loss_and_gradient(x, labels)
    rng = np.random.default_rng(0)
    h = 1e-3
    for l in range(len(net.sizes) - 1):  # every layer, weights and biases
        lo, hi = net.w_off[l], net.b_off[l] + net.sizes[l + 1]
        part = grad[lo:hi]
        candidates = lo + np.flatnonzero(np.abs(part) > 1e-3 * np.abs(part).max())
        for k in rng.choice(candidates, size=min(6, len(candidates)), replace=False):
            old = net.theta[k]
            f = {}
            for step in (-2, -1, 1, 2):
                net.theta[k] = old + step * h
                f[step] = net.loss_and_gradient(x, labels)[0]
            net.theta[k] = old
            numeric = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
            rel = abs(grad[k] - numeric) / max(abs(grad[k]), abs(numeric))
            assert rel < 1e-6, (hidden, l, k, grad[k], numeric, rel)


def test_online_steps_equal_gradient_steps():
    net = MLP.init((6, 5), seed=4, dtype=np.float64)
    x = flatten_images(images(3, seed=1))
    labels = np.array([2, 5, 1])
    order = np.array([2, 0, 1])
    rates = net.rates(32.0, 0.1)
    np.testing.assert_allclose(rates, [32 / 784, 32 / 6, 0.1 / 5])
    manual = MLP((6, 5), net.theta.copy())
    per_param = np.concatenate([np.full(net.b_off[l] + net.sizes[l + 1] - net.w_off[l], rates[l])
                                for l in range(3)])
    for s in order:
        _, g = manual.loss_and_gradient(x[s:s + 1], labels[s:s + 1])
        manual.theta -= per_param * g
    losses = np.zeros(3)
    train_online(np.ascontiguousarray(x), labels, order, net.theta, net.steps(32.0, 0.1), net.sizes, net.w_off,
                 net.b_off, net.a_off, net.tanh_out, losses)
    np.testing.assert_allclose(net.theta, manual.theta, rtol=1e-12, atol=1e-15)


def test_pass_schedule_is_the_papers_ratios():
    assert [pass_factor(e) for e in range(1, 15)] == [
        1, 1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.02, 0.02]
    assert list(layer_sizes((300, 100))) == [784, 300, 100, 10]


@pytest.mark.parametrize("hidden", [(), (300,)])
def test_short_mnist_run_learns(mnist, hidden):
    result = train_mlp(mnist, hidden=hidden, epochs=1, seed=0, train_size=500, progress=False,
                       log=lambda s: None)
    (row,) = result["history"]
    assert set(row) >= {"epoch", "train_error_pct", "test_error_pct", "seconds", "samples_per_s"}
    assert np.isfinite(row["train_loss"])
    assert row["test_error_pct"] < 60.0  # chance is 90 %
    assert result["n_params"] == n_params(hidden)


def test_distorted_passes_are_the_lenet5_trainers_samples(mnist):
    """Each pass of a [dist] net is the n samples the LeNet-5 trainer's DistortedSource draws
    for that pass, cropped to 28x28; passes differ and most samples are distorted copies."""
    from lenet5.baselines.mlp import distorted_passes
    from lenet5.training.distorted_source import DistortedSource

    (x, y), _ = mnist
    x, y = x[:100], y[:100]
    pass_set = distorted_passes(x, y, 900, seed=3, dtype=np.float64)
    source = DistortedSource(x, y, 900, 3)
    for epoch in (1, 2):
        images, labels = pass_set(epoch)
        order = source.pass_order(epoch)
        assert images.shape == (100, 784) and images.dtype == np.float64
        np.testing.assert_array_equal(labels, y[source.pool.source_index(order)])
        np.testing.assert_array_equal(images, source.pool.images(order)[:, 2:30, 2:30].reshape(100, 784))
        assert np.sum(order >= 100) > 50  # the pool is 10% originals, 90% copies
    assert not np.array_equal(pass_set(1)[0], pass_set(2)[0])


def test_distorted_training_steps_through_each_pass_set(mnist):
    """train_mlp(distortions=...) is online SGD over each pass's distorted samples, in the
    order of the undistorted protocol's shuffle; its training error is on the originals."""
    from lenet5.baselines.mlp import distorted_passes

    (x, y), test = mnist
    x, y = x[:100], y[:100]
    result = train_mlp(((x, y), test), hidden=(), epochs=2, seed=3, progress=False, log=lambda s: None,
                       dtype=np.float64, distortions=900)
    manual = MLP.init((), seed=3, dtype=np.float64)
    pass_set = distorted_passes(x, y, 900, seed=3, dtype=np.float64)
    for epoch in (1, 2):
        images, labels = pass_set(epoch)
        steps = manual.steps(32.0 * pass_factor(epoch), 0.1 * pass_factor(epoch))
        order = np.random.default_rng([3, epoch]).permutation(100)
        train_online(images, labels, order, manual.theta, steps, manual.sizes, manual.w_off, manual.b_off,
                     manual.a_off, manual.tanh_out, np.zeros(100))
    np.testing.assert_array_equal(result["net"].theta, manual.theta)
    originals = flatten_images(x).astype(np.float64)
    last = result["history"][-1]
    assert last["train_error_pct"] == 100.0 * np.mean(manual.predict(originals) != y)
    assert last["render_seconds"] >= 0.0


def output_jacobian(net, x, step=1e-6):
    """d outputs / d theta for each row of x, (rows, 10, parameters), by central differences
    of the forward pass (float64)."""
    jac = np.empty((len(x), 10, net.n_params))
    for k in range(net.n_params):
        old = net.theta[k]
        net.theta[k] = old + step
        up = net.forward(x)
        net.theta[k] = old - step
        down = net.forward(x)
        net.theta[k] = old
        jac[:, :, k] = (up - down) / (2 * step)
    return jac


def layerwise_hessian(net, x):
    """SDLM's diagonal approximation written out in numpy, one sample at a time: h = 1 at the
    outputs, f'(u)^2 h through a unit, h_W = h (x^2)^T, h_b = h, h_x = (W^2)^T h below."""
    total = np.zeros(net.n_params)
    n_layers = len(net.sizes) - 1
    for row in x:
        acts, pre = [row], []
        for l in range(n_layers):
            w, b = net.weights(l)
            pre.append(w @ acts[-1] + b)
            squash = l < n_layers - 1 or net.tanh_out
            acts.append(TANH_A * np.tanh(TANH_S * pre[-1]) if squash else pre[-1])
        h_x = np.ones(10)
        for l in range(n_layers - 1, -1, -1):
            squash = l < n_layers - 1 or net.tanh_out
            fprime = TANH_A * TANH_S / np.cosh(TANH_S * pre[l]) ** 2 if squash else 1.0
            h_u = fprime ** 2 * h_x
            w, _ = net.weights(l)
            total[net.w_off[l]:net.b_off[l]] += np.outer(h_u, acts[l] ** 2).ravel()
            total[net.b_off[l]:net.b_off[l] + net.sizes[l + 1]] += h_u
            h_x = (w ** 2).T @ h_u
    return total / len(x)


@pytest.mark.parametrize("hidden", [(), (5,), (4, 3)])
def test_hessian_diagonal_is_sdlms_gauss_newton_term_float64(hidden):
    """Against the outputs' explicit Jacobian: h_kk = sum_o (do/dtheta_k)^2 exactly where each
    parameter reaches an output by one path (the last two layers); the first of two hidden
    layers gets the layer-wise diagonal approximation, checked against numpy."""
    net = MLP.init(hidden, seed=5, dtype=np.float64)
    net.theta *= 20  # so that f'(u) varies
    x = flatten_images(images(2, seed=3))
    got = net.hessian_diagonal(x, np.arange(2))
    np.testing.assert_allclose(got, layerwise_hessian(net, x), rtol=1e-10, atol=1e-14)
    jac = output_jacobian(net, x)
    exact = (jac ** 2).sum(axis=1).mean(axis=0)
    n_layers = len(net.sizes) - 1
    exact_from = net.w_off[max(0, n_layers - 2)]  # one path per parameter from here on
    np.testing.assert_allclose(got[exact_from:], exact[exact_from:], rtol=1e-6, atol=1e-10)
    if len(hidden) == 2:  # dropping the cross terms is an approximation below that
        assert not np.allclose(got[:exact_from], exact[:exact_from], rtol=1e-3)


def test_linear_classifiers_hessian_diagonal_is_the_exact_second_derivative():
    """With linear outputs and squared error the Gauss-Newton term is the whole Hessian:
    d2E/dW_ji^2 = x_i^2, d2E/db_j^2 = 1, checked by differences of the gradient."""
    net = MLP.init((), seed=2, dtype=np.float64)
    x = flatten_images(images(1, seed=4))
    got = net.hessian_diagonal(x, np.array([0]))
    rng = np.random.default_rng(0)
    for k in [*rng.choice(net.b_off[0], size=8, replace=False), net.b_off[0] + 3]:
        old, step = net.theta[k], 1e-4
        net.theta[k] = old + step
        up = net.loss_and_gradient(x, np.array([7]))[1][k]
        net.theta[k] = old - step
        down = net.loss_and_gradient(x, np.array([7]))[1][k]
        net.theta[k] = old
        assert got[k] == pytest.approx((up - down) / (2 * step), rel=1e-7, abs=1e-12)


def test_sdlm_training_steps_eps_over_mu_plus_h(mnist):
    """train_mlp(sdlm=...) makes h before each pass on the pass's own images and steps every
    parameter eps / (mu + h_kk): replayed here by hand for two passes."""
    from lenet5.baselines.mlp import lenet5_protocol
    from lenet5.training.step_sizes import sdlm_epsilon

    protocol = dict(lenet5_protocol(), samples=40)
    (train_x, train_y), test = mnist
    data = ((train_x[:120], train_y[:120]), (test[0][:50], test[1][:50]))
    result = train_mlp(data, hidden=(8,), epochs=2, seed=3, progress=False, log=lambda s: None,
                       dtype=np.float64, sdlm=protocol)
    net = MLP.init((8,), seed=3, dtype=np.float64)
    x = np.ascontiguousarray(flatten_images(train_x[:120]), dtype=np.float64)
    y = np.asarray(train_y[:120], dtype=np.int64)
    for epoch in (1, 2):
        picks = np.sort(np.random.default_rng([3, epoch, 1]).choice(120, 40, replace=False))
        h = net.hessian_diagonal(x, picks)
        steps = sdlm_epsilon(epoch, protocol["schedule"]) / (protocol["mu"] + h)
        for s in np.random.default_rng([3, epoch]).permutation(120):
            net.theta -= steps * net.loss_and_gradient(x[s:s + 1], y[s:s + 1])[1]
        assert result["history"][epoch - 1]["epsilon"] == sdlm_epsilon(epoch, protocol["schedule"])
    np.testing.assert_allclose(result["net"].theta, net.theta, rtol=1e-9, atol=1e-12)
