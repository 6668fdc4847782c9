"""LeCun's diagonal second-derivative back-propagation (Appendix C) against an independent
reference built from explicit Jacobian matrices, for the paper's network and every variant.

Every layer's pre-activation u = L(x; w) is linear in its input x and in its weights w (max
pooling too, once its winners are fixed), so its Jacobians are obtained column by column
from the reference layer (L(e_k) - L(0)). The diagonal Gauss-Newton recursion is then, with
J**2 the elementwise square:
    d2E/du^2 = f'(u)^2 d2E/dx^2,   d2E/dx^2 = (Jx**2)^T d2E/du^2,   h_w = (Jw**2)^T d2E/du^2,
starting from d2E/dx6^2 = 2 at the RBF output (the distance to the target prototype), or
from d2E/dz^2 = p(1-p) at the softmax output's logits (the diagonal of the cross-entropy's
Gauss-Newton matrix diag(p) - p p^T).
A shared weight sums the terms of its connections (the paper's rule). For a subsampling
coefficient, which reaches each unit through four connections (its 2x2 block), that is the
sum over the four block offsets of the squared per-connection Jacobians -- not the square
of their sum, which would keep the cross terms the diagonal approximation drops.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from lenet5 import LeNet5
from lenet5.core import engine
from lenet5.core import numpy_reference as ref
from lenet5.core.architecture import Variant, table_mask

VARIANTS = [Variant(), Variant(c3="full"), Variant(pooling="average"), Variant(pooling="max"),
            Variant(activation="tanh"), Variant(activation="sigmoid"), Variant(activation="relu"),
            Variant(output="softmax"),
            Variant(c3="full", pooling="max", activation="relu", output="softmax"),
            Variant(inputs="unit"),  # the paper's graph on standardised inputs
            # LeNet-1 and LeNet-4: the same engine under other sizes
            Variant(arch="lenet1", output="softmax"), Variant(arch="lenet4", output="softmax"),
            Variant(arch="lenet4", output="softmax", pooling="max", activation="relu"),
            # LeCun's Lush demo network: C5 feeding 10 squashed units, +-1 targets, Lush's inputs
            Variant(arch="lush", output="targets", inputs="lush")]


def conv(x, weight, mask):
    """Bias-free 'valid' correlation over the connected maps (vectorised reference)."""
    windows = sliding_window_view(x, weight.shape[2:], axis=(1, 2))  # (c, H, W, 5, 5)
    return np.einsum("mcij,chwij->mhw", weight * mask[:, :, None, None], windows)


def jacobian(fn, n_in):
    """Columns fn(e_k) for a linear fn of a flat vector of size n_in."""
    return np.stack([fn(np.eye(1, n_in, k)[0]).reshape(-1) for k in range(n_in)], axis=1)


def per_offset(x):
    """The subsampling coefficient's four per-connection Jacobians, one per block offset."""
    maps = x.shape[0]
    return [jacobian(lambda c, p=p, q=q: c[:, None, None] * x[:, p::2, q::2], maps)
            for p in (0, 1) for q in (0, 1)]


def pool_jacobians(x, p, name, variant, maps):
    """Jacobians of a pooling layer of `maps` maps reading x (LeNet-4's S2: pairs per x map)."""
    pick = ref.pool_sources(len(x), maps)
    size = x.shape[1]
    if variant.pooling == "max":  # the winners' selection: linear once they are fixed
        routes = ref.max_pool_routes(x[pick])
        return jacobian(lambda v: ref.down(routes * v.reshape(x.shape)[pick]), x.size), {}
    return (jacobian(lambda v: p[f"{name}.coeff"][:, None, None] * ref.down(v.reshape(x.shape)[pick]), x.size),
            {f"{name}.coeff": per_offset(x[pick]),
             f"{name}.bias": np.kron(np.eye(maps), np.ones(((size // 2) ** 2, 1)))})


def layer_jacobians(s, p, variant, mask3):
    """(Jx, {param: Jw}) for each layer, keyed by the layer's output index; sizes read from
    the parameters, so any architecture (LeNet-1 has no C5 and F6, LeNet-4 no F6)."""
    c1, c3 = p["C1.weight"], p["C3.weight"]
    x0, x1, x2, x3, x4 = (s[f"x{i}"] for i in range(5))
    jac = {}
    jac[1] = (None, {
        "C1.weight": jacobian(lambda w: conv(x0, w.reshape(c1.shape), np.ones((len(c1), 1), bool)), c1.size),
        "C1.bias": np.kron(np.eye(len(c1)), np.ones((x1[0].size, 1)))})
    jac[2] = pool_jacobians(x1, p, "S2", variant, c3.shape[1])
    jac[3] = (jacobian(lambda v: conv(v.reshape(x2.shape), c3, mask3), x2.size), {
        "C3.weight": jacobian(lambda w: conv(x2, w.reshape(c3.shape), mask3), c3.size),
        "C3.bias": np.kron(np.eye(len(c3)), np.ones((x3[0].size, 1)))})
    jac[4] = pool_jacobians(x3, p, "S4", variant, len(c3))
    if "C5.weight" in p:
        c5 = p["C5.weight"]
        jac[5] = (jacobian(lambda v: conv(v.reshape(x4.shape), c5, np.ones(c5.shape[:2], bool)), x4.size), {
            "C5.weight": np.kron(np.eye(len(c5)), x4.reshape(1, -1)), "C5.bias": np.eye(len(c5))})
    if "F6.weight" in p:
        f6 = p["F6.weight"]
        jac[6] = (f6, {"F6.weight": np.kron(np.eye(len(f6)), s["x5"].reshape(1, -1)),
                       "F6.bias": np.eye(len(f6))})
    return jac


def reference_hessian(net, image, variant):
    p = net.params
    mask3 = table_mask(variant.c3_table, p["C3.weight"].shape[1])
    s = ref.network_forward(image, p, mask3, variant)
    jac = layer_jacobians(s, p, variant, mask3)
    h = {}
    if variant.output == "softmax":
        prob = np.exp(-s["y"])
        d2z = prob * (1 - prob)
        h["OUT.weight"] = (np.kron(np.eye(10), s["last"].reshape(1, -1)) ** 2).T @ d2z
        h["OUT.bias"] = d2z
        d2x = (p["OUT.weight"] ** 2).T @ d2z
    else:
        d2x = np.full(len(s["x6"]), 2.0)  # d2E/dx6^2 (84 F6 units, or the Lush demo's 10)
    fprime = ref.ACTIVATIONS[variant.activation][1]
    pool_fprime = ref.ACTIVATIONS["identity" if variant.pooling == "max" else variant.activation][1]
    for layer in sorted(jac, reverse=True):
        prime = pool_fprime if layer in (2, 4) else fprime
        d2u = prime(s[f"u{layer}"]).reshape(-1) ** 2 * d2x
        jx, jws = jac[layer]
        for name, jw in jws.items():
            parts = jw if isinstance(jw, list) else [jw]
            h[name] = sum((part ** 2).T @ d2u for part in parts)
        if jx is not None:
            d2x = (jx ** 2).T @ d2u
    return h


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.describe())
def test_hessian_diagonal_matches_explicit_jacobian_reference(variant):
    net = LeNet5.init(seed=6, dtype=np.float64, variant=variant)
    # larger weights than at init, so every layer's curvature is far from zero
    net.theta *= 3.0
    # two images for the paper's network (the sum over samples), one for each variant (time)
    images = np.random.default_rng(4).uniform(-0.1, 1.175, (2 if variant.is_paper else 1, 32, 32))
    hess = np.zeros_like(net.theta)
    engine.hessian_diagonal(images, net.theta, net.spec(net.default_loss), hess)
    got = LeNet5.views(hess, variant)
    want = {}
    for image in images:
        for name, value in reference_hessian(net, image, variant).items():
            want[name] = want.get(name, 0) + value
    mask3 = table_mask(variant.c3_table, got["C3.weight"].shape[1])
    assert set(want) == {n for n in net.params if n != "OUT.prototypes"}
    for name, value in want.items():
        expected = value.reshape(got[name].shape)
        if name == "C3.weight":
            expected = expected * mask3[:, :, None, None]
        np.testing.assert_allclose(got[name], expected, rtol=1e-9, atol=1e-14, err_msg=name)
        assert np.all(got[name] >= 0)
        assert np.any(got[name] > 0), name
    assert np.all(got["C3.weight"][~mask3] == 0)
    for name in set(got) - set(want):  # arrays the variant does not use get no curvature
        assert np.all(got[name] == 0), name
