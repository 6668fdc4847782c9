"""Every variant of `architecture.Variant`: kernels against the numpy reference, the whole
network's forward against the reference graph, and every parameter's gradient against
central differences in float64. (The Hessian terms: test_hessian.py, same variants.)"""
import itertools
import json

import numpy as np
import pytest
from random_inputs import images
from test_hessian import VARIANTS

from lenet5 import LeNet5, Lenet5Error
from lenet5.core import kernels
from lenet5.core import numpy_reference as ref
from lenet5.core.architecture import VARIANT_CHOICES, Variant, input_affine_values, table_mask
from lenet5.tools.audit import audit_rows
from lenet5.training.config import RECIPES, TrainConfig
from lenet5.training.trainer import Trainer

ACT_CODES = {"scaled-tanh": kernels.ACT_SCALED_TANH, "tanh": kernels.ACT_TANH,
             "sigmoid": kernels.ACT_SIGMOID, "relu": kernels.ACT_RELU, "identity": kernels.ACT_IDENTITY}
ids = {"ids": lambda v: v.describe()}



@pytest.mark.parametrize("name", list(ACT_CODES))
def test_activation_kernels_match_their_definitions(name):
    u = np.random.default_rng(1).normal(0, 3, 500)
    u[:3] = (0.0, 40.0, -40.0)
    f, fprime = ref.ACTIVATIONS[name]
    x, delta, delta2 = np.empty_like(u), np.empty_like(u), np.empty_like(u)
    kernels.activation_forward(u, x, ACT_CODES[name])
    np.testing.assert_allclose(x, f(u), rtol=1e-14, atol=1e-15)
    dx = np.random.default_rng(2).normal(size=u.shape)
    kernels.activation_backward(x, dx, delta, 1, ACT_CODES[name])
    kernels.activation_backward(x, dx, delta2, 2, ACT_CODES[name])
    np.testing.assert_allclose(delta, fprime(u) * dx, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(delta2, fprime(u) ** 2 * dx, rtol=1e-12, atol=1e-15)
    x32 = np.empty(u.shape, np.float32)
    kernels.activation_forward(u.astype(np.float32), x32, ACT_CODES[name])
    np.testing.assert_allclose(x32, f(u), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("ties", [False, True])
def test_max_pooling_routes_delta_to_the_winner_only(ties):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 6))
    if ties:  # whole blocks equal, and blocks with a tie between two of their four
        x[0] = 0.5
        x[1, 0:2, 0:2] = [[1.0, 2.0], [2.0, 0.0]]
        x[1, 2:4, 2:4] = [[-1.0, -1.0], [-1.0, -3.0]]
    u = np.empty((3, 3, 3))
    none = np.zeros(3)
    kernels.pool_forward(x, none, none, u, kernels.POOL_MAX, np.arange(len(u)))
    np.testing.assert_array_equal(u, ref.max_pool(x))
    delta = rng.normal(size=u.shape)
    dx, dcoeff, dbias = np.full_like(x, 7.0), np.zeros(3), np.zeros(3)
    kernels.pool_backward(x, x, none, delta, dcoeff, dbias, dx, kernels.POOL_MAX, np.arange(len(delta)))
    routes = ref.max_pool_routes(x)  # first in row-major order on a tie
    np.testing.assert_array_equal(dx, routes * ref.up(delta))
    assert np.all(dcoeff == 0) and np.all(dbias == 0)
    if ties:
        assert dx[1, 0, 1] == delta[1, 0, 0] and dx[1, 1, 0] == 0  # 2.0 at (0,1) wins over (1,0)
        assert dx[0, 0, 0] == delta[0, 0, 0] and dx[0, 1, 1] == 0


def test_mean_pooling_spreads_delta_evenly():
    rng = np.random.default_rng(4)
    x, coeff, bias = rng.normal(size=(2, 4, 4)), np.array([0.25, 0.25]), np.zeros(2)
    u = np.empty((2, 2, 2))
    kernels.pool_forward(x, coeff, bias, u, kernels.POOL_SUM, np.arange(len(u)))
    np.testing.assert_allclose(u, ref.down(x) / 4)
    delta = rng.normal(size=u.shape)
    dx, dcoeff, dbias = np.empty_like(x), np.zeros(2), np.zeros(2)
    kernels.pool_backward(x, x, coeff, delta, dcoeff, dbias, dx, kernels.POOL_SUM, np.arange(len(delta)))
    np.testing.assert_allclose(dx, ref.up(delta) / 4)


@pytest.mark.parametrize("variant", VARIANTS, **ids)
def test_forward_matches_the_reference_graph(variant):
    net = LeNet5.init(seed=1, dtype=np.float64, variant=variant)
    x = images(2)
    mask3 = table_mask(variant.c3_table, net.params["C3.weight"].shape[1])
    y = net.forward(x)
    for n in range(2):
        s = ref.network_forward(x[n], net.params, mask3, variant)
        np.testing.assert_allclose(y[n], s["y"], rtol=1e-11)
        layers = net.layers(x[n])
        scale, shift = input_affine_values(variant.inputs)  # (the reference codes them itself)
        given = (s["x0"][0] - shift) / scale
        np.testing.assert_allclose(layers["input"], given, rtol=1e-12, atol=1e-15)  # the printed levels
        pairs = [(k, n) for k, n in (("x1", "C1"), ("x2", "S2"), ("x4", "S4"), ("x5", "C5"), ("x6", "F6"))
                 if k in s]
        assert {name for _, name in pairs} | {"input", "C3", "OUT"} == set(layers)
        for key, name in pairs:
            np.testing.assert_allclose(layers[name], s[key], rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("variant", VARIANTS, **ids)
def test_every_gradient_matches_central_differences_float64(variant):
    """Sampled entries of every parameter array the variant has, five-point stencil. Variants
    with kinks (relu, max) use a step small enough not to cross one between samples."""
    net = LeNet5.init(seed=11, dtype=np.float64, variant=variant)
    x, labels, j = images(3, seed=2), np.array([0, 4, 9]), 3.0
    loss = net.default_loss
    value, grads = net.loss_and_gradients(x, labels, loss=loss, j=j)
    assert set(grads) == set(net.params)
    kinks = variant.activation == "relu" or variant.pooling == "max"
    steps = (1e-5, 1e-6) if kinks else (1e-3,)
    rtol = 1e-5 if kinks else 1e-6
    rng = np.random.default_rng(0)

    def loss_at(param, idx, value):
        param[idx] = value
        return net.loss_and_gradients(x, labels, loss=loss, j=j)[0]

    def error(param, idx, analytic, h):
        """How far the five-point estimate misses, beyond its rounding floor (~100 ulp of E
        over h), relative to the gradient."""
        old = param[idx]
        f = {step: loss_at(param, idx, old + step * h) for step in (-2, -1, 1, 2)}
        param[idx] = old
        numeric = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
        floor = 100 * np.finfo(float).eps * abs(value) / h
        return (abs(analytic - numeric) - floor) / max(abs(analytic), abs(numeric))
    for name, param in net.params.items():
        if name == "OUT.prototypes":
            assert np.all(grads[name] == 0)
            continue
        flat = grads[name].reshape(-1)
        if variant.pooling == "average" and name[:2] in ("S2", "S4"):
            continue  # fixed by the trainer; its gradient is still the ordinary one
        candidates = np.flatnonzero(np.abs(flat) > 1e-3 * np.abs(flat).max())
        assert len(candidates), name
        for k in rng.choice(candidates, size=min(5, len(candidates)), replace=False):
            idx = np.unravel_index(k, param.shape)
            # with kinks, a stencil that straddles one misses; it cannot straddle one at both steps
            errors = [error(param, idx, flat[k], h) for h in steps]
            assert min(errors) < rtol, (name, idx, flat[k], errors)


@pytest.mark.parametrize("variant", VARIANTS, **ids)
def test_checkpoint_carries_the_variant(variant, tmp_path):
    net = LeNet5.init(seed=2, dtype=np.float32, variant=variant)
    net.save(tmp_path / "v.npz")
    back = LeNet5.load(tmp_path / "v.npz")
    assert back.variant == variant and set(back.params) == set(net.params)
    np.testing.assert_array_equal(back.forward(images(2)), net.forward(images(2)))


def test_a_checkpoint_cannot_be_read_as_another_variant(tmp_path):
    LeNet5.init(seed=0, variant=Variant(pooling="max")).save(tmp_path / "max.npz")
    arrays = dict(np.load(tmp_path / "max.npz"))
    arrays["meta.variant"] = np.array(Variant().to_json().replace("scaled-tanh", "tanh"))
    np.savez(tmp_path / "lied.npz", **arrays)  # claims trainable pooling: S2/S4 arrays missing
    with pytest.raises(Lenet5Error, match="missing .*S2.coeff"):
        LeNet5.load(tmp_path / "lied.npz")
    arrays["meta.variant"] = np.array('{"pooling": "median"}')
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(Lenet5Error, match="unknown pooling 'median'"):
        LeNet5.load(tmp_path / "bad.npz")


def test_audit_counts_follow_the_variant():
    def counts(**kw):
        return {r["layer"]: (r["parameters"], r["connections"]) for r in audit_rows(Variant(**kw))}
    assert counts(pooling="max")["S2"] == (0, 6 * 14 * 14 * 4) and counts(pooling="max")["S4"] == (0, 1600)
    assert counts(output="softmax")["OUT"] == (850, 850)
    assert counts(c3="full")["C3"] == (16 * 151, 100 * 16 * 151)
    assert counts()["total"] == (60_000, 340_908)
    assert all(r["matches_paper"] is None for r in audit_rows(Variant(activation="relu")))
    assert all(r["matches_paper"] for r in audit_rows(Variant(inputs="unit")))  # scaling changes no count
    from lenet5.core.model import free_parameters
    for v in VARIANTS:
        assert free_parameters(v) == counts(**v.changes())["total"][0], v


# LeNet-5's graph on the printed inputs (LeNet-1/4 and unit inputs: VARIANTS)
CHOICES = {k: [c for c in v if c != "targets"] for k, v in VARIANT_CHOICES.items()
           if k not in ("arch", "inputs")}  # (LeNet-5's graph; the targets output is the Lush demo's)
ALL_COMBINATIONS = [Variant(**dict(zip(CHOICES, choice))) for choice in itertools.product(*CHOICES.values())]


@pytest.mark.parametrize("variant", ALL_COMBINATIONS, **ids)
def test_every_combination_trains_a_pass_and_its_checkpoint_carries_it(variant, mnist, tmp_path):
    """2,000 training images, one SDLM pass, for every combination of choices: it runs, learns
    something (the loss falls within the pass) and its checkpoint loads as the same network."""
    (x, y), (tx, ty) = mnist
    loss = "ce" if variant.output == "softmax" else "map"
    # the damped recipe, stable for every combination (at the standardised recipe, 3 of the 48 stop as diverged
    # within this pass: pooling=average, c3=full with pooling=average or max; README, Variants)
    config = TrainConfig(epochs=1, train_size=2000, loss=loss, **dict(RECIPES["damped"], **variant.__dict__))
    trainer = Trainer(config, ((x, y), (tx[:500], ty[:500])), tmp_path / "run", progress=False,
                      log=lambda s: None)
    trainer.run()
    net = LeNet5.load(trainer.checkpoint_path)
    assert net.variant == variant
    assert np.array_equal(net.theta, trainer.net.theta) and np.all(np.isfinite(net.theta))
    assert np.isfinite(trainer.history[-1]["train_loss"])


def test_evaluate_and_audit_honour_a_variant_checkpoint(mnist, mnist_dir, tmp_path, capsys):
    from lenet5.cli import main

    variant = Variant(pooling="max", activation="relu", output="softmax")
    net = LeNet5.init(seed=0, variant=variant)
    net.save(tmp_path / "v.npz")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "v.npz"), "--data-dir", str(mnist_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    test_x, test_y = mnist[1]
    expected = 100.0 * np.mean(net.predict(test_x) != test_y)
    assert result["test_error_pct"] == pytest.approx(expected)
    assert main(["audit", "--pooling", "max", "--output", "softmax"]) == 0
    text = capsys.readouterr().out
    assert "pooling=max, output=softmax" in text and "60,806" in text and "MISMATCH" not in text

