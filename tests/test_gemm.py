"""The im2col + matrix-multiply formulation (lenet5.core.gemm) gives the reference engine's outputs,
losses and gradients for every variant and criterion: tightly in float64, to float32
rounding in float32."""
import itertools

import numpy as np
import pytest

from lenet5.core import engine, gemm
from lenet5.core.architecture import VARIANT_CHOICES, Variant
from lenet5.core.model import C3_UNCONNECTED, LeNet5, check_loss
from lenet5.errors import Lenet5Error

CHOICES = {k: [c for c in v if c != "targets"] for k, v in VARIANT_CHOICES.items()
           if k not in ("arch", "inputs")}  # (LeNet-5's graph; the targets output is the Lush demo's)
VARIANTS = [Variant(**dict(zip(CHOICES, combo))) for combo in itertools.product(*CHOICES.values())]
VARIANTS.append(Variant(inputs="unit"))  # (the im2col path is LeNet-5's graph only)


def digits(n, dtype, seed=0):
    """MNIST-like inputs: background -0.1 with random strokes, so that flat regions give the
    max pooling exact ties (the reference sends delta to the first of them)."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 32, 32), -0.1)
    ink = rng.random((n, 20, 20)) < 0.25
    x[:, 6:26, 6:26] = np.where(ink, rng.uniform(0.5, 1.175, ink.shape), -0.1)
    return x.astype(dtype), rng.integers(0, 10, n)


def reference(net, spec, x, labels):
    n = len(x)
    y = np.empty((n, 10), net.dtype)
    engine.forward_batch(x, net.theta, spec, engine.thread_bounds(n), y)
    losses, grad = np.empty(n, net.dtype), np.empty_like(net.theta)
    engine.loss_gradient_batch(x, labels, net.theta, spec, engine.thread_bounds(n), losses, grad)
    return y, losses, grad


def losses_for(variant):
    """The criteria that go with the variant's output."""
    allowed = []
    for loss in ("map", "mse", "ce"):
        try:
            check_loss(variant, loss)
            allowed.append(loss)
        except Lenet5Error:
            pass
    return allowed


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.describe().replace(" ", "_"))
def test_gemm_matches_the_reference_in_float64(variant, monkeypatch):
    monkeypatch.setattr(gemm, "CHUNK", 4)  # 11 samples: two whole chunks and a partial one
    x, labels = digits(11, np.float64)
    net = LeNet5.init(seed=5, dtype=np.float64, variant=variant)
    for loss in losses_for(variant):
        spec = net.spec(loss)
        y, losses, grad = reference(net, spec, x, labels)
        np.testing.assert_allclose(gemm.forward(net.theta, spec, x), y, rtol=1e-12, atol=1e-12)
        fast_losses, fast_grad = gemm.losses_and_gradient(net.theta, spec, x, labels)
        np.testing.assert_allclose(fast_losses, losses, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast_grad, grad, rtol=1e-10, atol=1e-12 * np.abs(grad).max())


@pytest.mark.parametrize("variant", [Variant(), Variant(c3="full", pooling="max", output="softmax")],
                         ids=["paper", "full-max-softmax"])
def test_gemm_matches_the_reference_in_float32(variant):
    x, labels = digits(40, np.float32, seed=1)
    net = LeNet5.init(seed=2, dtype=np.float32, variant=variant)
    spec = net.spec(net.default_loss)
    y, losses, grad = reference(net, spec, x, labels)
    fast_y = gemm.forward(net.theta, spec, x)
    assert fast_y.dtype == np.float32
    np.testing.assert_allclose(fast_y, y, rtol=1e-4, atol=1e-4)
    fast_losses, fast_grad = gemm.losses_and_gradient(net.theta, spec, x, labels)
    assert fast_grad.dtype == np.float32
    np.testing.assert_allclose(fast_losses, losses, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast_grad, grad, atol=1e-4 * np.abs(grad).max())


def test_unconnected_c3_kernels_get_no_gradient():
    x, labels = digits(6, np.float64, seed=3)
    net = LeNet5.init(seed=0, dtype=np.float64)
    _, grad = gemm.losses_and_gradient(net.theta, net.spec("map"), x, labels)
    c3 = LeNet5.views(grad)["C3.weight"]
    assert np.all(c3[C3_UNCONNECTED] == 0) and np.any(c3[~C3_UNCONNECTED] != 0)
