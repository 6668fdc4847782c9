"""The assembled network: reference agreement, finite-difference gradients, C3 sparsity,
precision, checkpoints."""
import numpy as np
import pytest
from random_inputs import images

from lenet5 import LeNet5, Lenet5Error
from lenet5.core import engine
from lenet5.core import numpy_reference as ref
from lenet5.core.architecture import C3_TABLE, LAYERS, table_mask
from lenet5.core.model import C3_UNCONNECTED

MASK = table_mask(C3_TABLE, 6)



@pytest.fixture(scope="module")
def net64():
    return LeNet5.init(seed=3, dtype=np.float64)


def test_params_have_the_documented_names_and_shapes(net64):
    expected = {
        "C1.weight": (6, 1, 5, 5), "C1.bias": (6,), "S2.coeff": (6,), "S2.bias": (6,),
        "C3.weight": (16, 6, 5, 5), "C3.bias": (16,), "S4.coeff": (16,), "S4.bias": (16,),
        "C5.weight": (120, 16, 5, 5), "C5.bias": (120,), "F6.weight": (84, 120), "F6.bias": (84,),
        "OUT.prototypes": (10, 84),
    }
    assert {n: a.shape for n, a in net64.params.items()} == expected
    assert set(np.unique(net64.params["OUT.prototypes"])) == {-1.0, 1.0}


def test_init_follows_the_fan_in_rule():
    net = LeNet5.init(seed=0, dtype=np.float64)
    for layer in LAYERS:
        if layer.kind == "rbf":
            continue
        first = "coeff" if layer.kind == "subsample" else "weight"
        for part in (first, "bias"):
            arr = net.params[f"{layer.name}.{part}"]
            bound = 2.4 / np.array(layer.fan_in).reshape((-1,) + (1,) * (arr.ndim - 1))
            assert np.all(np.abs(arr) <= bound), layer.name
            assert np.abs(arr).max() > 0.5 * (2.4 / max(layer.fan_in))  # not all tiny
    assert np.all(net.params["C3.weight"][C3_UNCONNECTED] == 0)
    assert np.all(net.params["C3.weight"][~C3_UNCONNECTED] != 0)
    # different seeds, different nets; same seed, same net
    assert not np.array_equal(net.theta, LeNet5.init(seed=1, dtype=np.float64).theta)
    assert np.array_equal(net.theta, LeNet5.init(seed=0, dtype=np.float64).theta)


def test_forward_matches_layer_by_layer_reference(net64):
    x = images(2)
    y = net64.forward(x)
    for n in range(2):
        want = ref.network_forward(x[n], net64.params, MASK)["y"]
        np.testing.assert_allclose(y[n], want, rtol=1e-11)


@pytest.mark.parametrize("loss", ["mse", "map"])
def test_batch_gradients_match_reference_backprop(net64, loss):
    """The fused per-sample path against backprop written with the reference layers
    (Bouvrie's formulas applied by hand, in numpy)."""
    x, label, j = images(1, seed=5)[0], 7, 2.0
    s = ref.network_forward(x, net64.params, MASK)
    p = net64.params
    y = s["y"]
    dy = np.zeros(10)
    dy[label] = 1
    if loss == "map":
        z = np.exp(-j) + np.exp(-y).sum()
        dy -= np.exp(-y) / z
    dx6 = (2 * dy[:, None] * (s["x6"][None] - p["OUT.prototypes"])).sum(0)
    d6 = ref.squash_prime(s["u6"]) * dx6
    d5 = ref.squash_prime(s["u5"]) * (p["F6.weight"].T @ d6)
    dx4 = np.einsum("o,ocij->cij", d5, p["C5.weight"])
    d4 = ref.squash_prime(s["u4"]) * dx4
    c4, b4, dx3 = ref.subsample_backward(s["x3"], p["S4.coeff"], d4)
    d3 = ref.squash_prime(s["u3"]) * dx3  # beta * f'(u) * up(delta)
    w3, b3, dx2 = ref.conv_backward(s["x2"], p["C3.weight"], d3, MASK)
    d2 = ref.squash_prime(s["u2"]) * dx2
    c2, b2, dx1 = ref.subsample_backward(s["x1"], p["S2.coeff"], d2)
    d1 = ref.squash_prime(s["u1"]) * dx1
    w1, b1, _ = ref.conv_backward(s["x0"], p["C1.weight"], d1, np.ones((6, 1), bool))
    want = {
        "F6.weight": np.outer(d6, s["x5"]), "F6.bias": d6,
        "C5.weight": d5[:, None, None, None] * s["x4"][None], "C5.bias": d5,
        "S4.coeff": c4, "S4.bias": b4, "C3.weight": w3, "C3.bias": b3,
        "S2.coeff": c2, "S2.bias": b2, "C1.weight": w1, "C1.bias": b1,
    }
    value, grads = net64.loss_and_gradients(x[None], [label], loss=loss, j=j)
    assert value == pytest.approx(ref.loss(y, label, loss, j), rel=1e-11)
    for name, expected in want.items():
        np.testing.assert_allclose(grads[name], expected, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("loss", ["mse", "map"])
def test_gradients_match_central_differences_float64(loss):
    """Every parameter group, sampled entries, relative error < 1e-6. The losses are ~80 (RBF
    distances), so the five-point central stencil is used: its O(h^4) error lets h be large
    enough that rounding in the loss does not swamp small gradient entries."""
    net = LeNet5.init(seed=11, dtype=np.float64)
    x = images(3, seed=2)
    labels = np.array([0, 4, 9])
    j = 3.0
    _, grads = net.loss_and_gradients(x, labels, loss=loss, j=j)
    rng = np.random.default_rng(0)
    h = 1e-3

    def loss_at(param, idx, value):
        param[idx] = value
        return net.loss_and_gradients(x, labels, loss=loss, j=j)[0]
    for name in net.params:
        if name == "OUT.prototypes":
            assert np.all(grads[name] == 0)
            continue
        param = net.params[name]
        flat_grad = grads[name].reshape(-1)
        candidates = np.flatnonzero(np.abs(flat_grad) > 1e-3 * np.abs(flat_grad).max())
        for k in rng.choice(candidates, size=min(6, len(candidates)), replace=False):
            idx = np.unravel_index(k, param.shape)
            old = param[idx]
            f = {step: loss_at(param, idx, old + step * h) for step in (-2, -1, 1, 2)}
            param[idx] = old
            numeric = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
            analytic = flat_grad[k]
            rel = abs(analytic - numeric) / max(abs(analytic), abs(numeric))
            assert rel < 1e-6, (name, idx, analytic, numeric, rel)


def test_unconnected_c3_weights_zero_gradient_and_stay_zero():
    net = LeNet5.init(seed=0, dtype=np.float64)
    x = images(16, seed=9)
    labels = np.arange(16) % 10
    for loss in ("mse", "map"):
        _, grads = net.loss_and_gradients(x, labels, loss=loss)
        assert np.all(grads["C3.weight"][C3_UNCONNECTED] == 0)
        assert np.any(grads["C3.weight"][~C3_UNCONNECTED] != 0)
    # mini-batch updates through the public API
    for _ in range(3):
        _, grads = net.loss_and_gradients(x, labels, loss="map")
        for name, g in grads.items():
            net.params[name] -= 0.01 * g
    # online updates through the fused training kernel (per-parameter step sizes)
    eta = np.full_like(net.theta, 1e-3)
    losses = np.zeros(16)
    engine.train_online(x, labels, np.arange(16), net.theta, eta, net.spec("map", 1.0), losses)
    assert np.all(net.params["C3.weight"][C3_UNCONNECTED] == 0)
    assert np.any(net.params["C3.weight"][~C3_UNCONNECTED] != 0)


def test_online_step_equals_gradient_step():
    """The fused online kernel does exactly theta -= eta * grad of one sample, in order."""
    net = LeNet5.init(seed=4, dtype=np.float64)
    x = images(3, seed=1)
    labels = np.array([2, 5, 1])
    order = np.array([2, 0, 1])
    eta = np.random.default_rng(0).uniform(1e-4, 1e-3, net.theta.shape)
    manual = LeNet5(net.theta.copy(), net.prototypes)
    for s in order:
        _, grads = manual.loss_and_gradients(x[s:s + 1], labels[s:s + 1], loss="map", j=1.0)
        flat = np.zeros_like(net.theta)
        for n, view in LeNet5.views(flat).items():
            view[...] = grads.get(n, 0.0)
        manual.theta -= eta * flat
    losses = np.zeros(3)
    engine.train_online(x, labels, order, net.theta, eta, net.spec("map", 1.0), losses)
    np.testing.assert_allclose(net.theta, manual.theta, rtol=1e-12, atol=1e-15)


def test_batch_gradient_is_mean_of_sample_gradients_any_thread_split(net64):
    x = images(5, seed=8)
    labels = np.array([1, 2, 3, 4, 5])
    value, grads = net64.loss_and_gradients(x, labels, loss="map")
    singles = [net64.loss_and_gradients(x[i:i + 1], labels[i:i + 1], loss="map") for i in range(5)]
    assert value == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], np.mean([s[1][name] for s in singles], axis=0),
                                   rtol=1e-10, atol=1e-14)


def test_float32_and_float64_agree():
    net64 = LeNet5.init(seed=2, dtype=np.float64)
    net32 = LeNet5(net64.theta.astype(np.float32), net64.prototypes)
    x = images(20, seed=3)
    y64 = net64.forward(x)
    y32 = net32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=2e-5)
    l64, g64 = net64.loss_and_gradients(x, np.arange(20) % 10, loss="map")
    l32, g32 = net32.loss_and_gradients(x, np.arange(20) % 10, loss="map")
    assert l32 == pytest.approx(l64, rel=1e-5)
    for name in g64:
        scale = np.abs(g64[name]).max() + 1e-30
        assert np.abs(g32[name] - g64[name]).max() / scale < 1e-4, name


def test_bad_inputs_are_clear_errors(net64):
    with pytest.raises(Lenet5Error, match=r"\(N, 32, 32\)"):
        net64.forward(np.zeros((2, 28, 28)))
    with pytest.raises(Lenet5Error, match="loss 'hinge' does not go with the rbf output"):
        net64.loss_and_gradients(images(1), [0], loss="hinge")
    with pytest.raises(Lenet5Error, match="digits 0-9"):
        net64.loss_and_gradients(images(1), [10])


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_is_exact(tmp_path):
    for dtype in (np.float32, np.float64):
        net = LeNet5.init(seed=5, dtype=dtype)
        path = tmp_path / f"net-{dtype.__name__}.npz"
        net.save(path, extra={"state.epoch": 3})
        back, state = LeNet5.load(path, with_state=True)
        assert back.dtype == dtype
        assert int(state["state.epoch"]) == 3
        for name in net.params:
            assert np.array_equal(back.params[name], net.params[name]), name
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _write(path, arrays):
    np.savez(path, **arrays)


@pytest.mark.parametrize("corrupt,match", [
    (lambda a: a.pop("C3.bias"), "missing"),
    (lambda a: a.update({"C1.weight": np.zeros((6, 5, 5))}), "shape"),
    (lambda a: a.update({"extra": np.zeros(3)}), "unknown"),
    (lambda a: a.update({"meta.format_version": np.array(99)}), "format version"),
    (lambda a: a.update({"F6.bias": np.full(84, np.nan)}), "NaN"),
    (lambda a: a.update({"C3.weight": np.ones((16, 6, 5, 5))}), "Table I"),
    (lambda a: a.update({"C1.bias": np.array([object()] * 6, dtype=object)}), "pickled"),
])
def test_bad_checkpoints_are_rejected_clearly(tmp_path, corrupt, match):
    arrays = LeNet5.init(seed=0).arrays()
    corrupt(arrays)
    path = tmp_path / "bad.npz"
    _write(path, arrays)
    with pytest.raises(Lenet5Error, match=match):
        LeNet5.load(path)


def test_truncated_or_missing_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "net.npz"
    LeNet5.init(seed=0).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Lenet5Error, match="not a valid .npz"):
        LeNet5.load(path)
    with pytest.raises(Lenet5Error, match="no such file"):
        LeNet5.load(tmp_path / "nope.npz")
