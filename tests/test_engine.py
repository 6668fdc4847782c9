"""The engine's fast paths against its reference composition (float64, tight tolerance)."""
import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.core import engine
from lenet5.core.architecture import Variant

VARIANTS = {
    "paper": Variant(),
    "max-relu-softmax": Variant(pooling="max", activation="relu", output="softmax"),
    "lenet1": Variant(arch="lenet1", output="softmax"),
    "lenet4": Variant(arch="lenet4", output="softmax"),
    "unit-inputs": Variant(inputs="unit"),
    "lush-demo": Variant(arch="lush", output="targets", inputs="lush"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_online_step_equals_reference_gradient_then_step(name):
    """train_online (sample_loop, MODE_STEP: the dense layers step inside the backward pass)
    against one sample's gradient from the reference path (loss_gradient_batch, which steps
    nothing) followed by theta -= eta * grad, sample after sample."""
    net = LeNet5.init(seed=3, dtype=np.float64, variant=VARIANTS[name])
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.1, 1.175, (4, 32, 32))
    labels = np.array([3, 1, 4, 1])
    order = np.array([2, 0, 3, 1])
    eta = rng.uniform(1e-3, 1e-2, net.theta.shape)
    spec = net.spec(net.default_loss)
    manual = net.theta.copy()
    want_losses = []
    for s in order:
        loss, grad = np.zeros(1), np.zeros_like(manual)
        engine.loss_gradient_batch(x[s:s + 1], labels[s:s + 1], manual, spec, engine.thread_bounds(1), loss, grad)
        want_losses.append(loss[0])
        manual -= eta * grad
    theta, losses = net.theta.copy(), np.zeros(4)
    engine.train_online(x, labels, order, theta, eta, spec, losses)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    np.testing.assert_allclose(theta, manual, rtol=1e-12, atol=1e-14)


def test_batch_drivers_any_thread_split():
    """forward_batch and loss_gradient_batch give the same results whatever the chunks."""
    net = LeNet5.init(seed=1, dtype=np.float64)
    x = np.random.default_rng(2).uniform(-0.1, 1.175, (7, 32, 32))
    labels = np.arange(7)
    spec = net.spec("map")
    results = []
    for bounds in (np.array([0, 7]), np.array([0, 3, 7]), np.array([0, 1, 2, 7])):
        out, losses, grad = np.zeros((7, 10)), np.zeros(7), np.zeros_like(net.theta)
        engine.forward_batch(x, net.theta, spec, bounds, out)
        engine.loss_gradient_batch(x, labels, net.theta, spec, bounds, losses, grad)
        results.append((out, losses, grad))
    for out, losses, grad in results[1:]:
        np.testing.assert_allclose(out, results[0][0], rtol=1e-13)
        np.testing.assert_allclose(losses, results[0][1], rtol=1e-13)
        np.testing.assert_allclose(grad, results[0][2], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", VARIANTS)
def test_forward_through_the_training_loop_equals_the_per_sample_pass(name, dtype):
    """The trainer's evaluation (forward_batch through sample_loop, MODE_FORWARD) gives
    sample_forward's outputs exactly (what the training steps see), on one thread or split.
    (forward_batch's default path, the lanes, agrees to rounding: tests/test_lanes.py.)"""
    net = LeNet5.init(seed=2, dtype=dtype, variant=VARIANTS[name])
    x = np.random.default_rng(3).uniform(-0.1, 1.175, (9, 32, 32)).astype(dtype)
    spec = net.spec(net.default_loss)
    want = np.stack([engine.forward_layers(image, net.theta, spec).out for image in x])
    for bounds in (np.array([0, 9]), np.array([0, 4, 9])):
        got = np.full((9, 10), np.nan, dtype)
        engine.forward_batch(x, net.theta, spec, bounds, got, shared_loop=True)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("flags", [[], ["--optimizer", "sgd", "--batch-size", "32", "--threads", "2"]],
                         ids=["online-sdlm", "minibatch-2-threads"])
@pytest.mark.slow
def test_two_trainings_write_identical_parameters(mnist_dir, tmp_path, flags):
    """Determinism: on one machine, with the same thread count, the same command gives the
    same bits (online SDLM with its Hessian estimates, and mini-batch SGD split over threads)."""
    from lenet5.cli import main

    thetas = []
    for run, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert main(["train", "--epochs", "1", "--train-size", "600", "--quiet", "--data-dir", str(mnist_dir),
                     "--seed", seed, "--out", str(tmp_path / run), *flags]) == 0
        thetas.append(LeNet5.load(tmp_path / run / "checkpoint.npz").theta)
    assert thetas[0].dtype == np.float32 and thetas[0].tobytes() == thetas[1].tobytes()
    assert thetas[0].tobytes() != thetas[2].tobytes()  # (another seed: the comparison can tell)
