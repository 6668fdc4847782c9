"""The open choices of SDLM: the rate report's h_kk against an independent numpy computation
from explicit Jacobians, the exact MAP seed against finite differences, the "average"
reparametrisation, and every choice through a checkpoint and --resume.

The numpy side forms, with its own vectorised forward pass, the full Jacobian J_l = dx6/du_l
of F6's output with respect to every unit's pre-activation (products of dense layer
Jacobians) and from it the exact Gauss-Newton curvature of every unit, G_l[i] =
sum_j S_j J_l[j, i]^2 (S the seed d2E/dx6^2); a shared parameter sums x_in^2 G over its
connections (the paper's rule). LeCun's back-propagation keeps only the diagonal,
d2E/dx^2 = sum w^2 d2E/du^2, so it equals this exactly for F6 and C5 (no cross terms dropped
above C5) and approximates it below (tests/test_hessian.py checks the recursion itself).
"""
import json

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from lenet5 import LeNet5
from lenet5.cli import main
from lenet5.core import engine
from lenet5.core.architecture import C3_TABLE, TANH_A, TANH_S, Variant, table_mask
from lenet5.core.model import MAP_J
from lenet5.errors import Lenet5Error
from lenet5.experiments.sdlm import INTERPRETATIONS, interpretation_config, pass1_rates
from lenet5.training.config import LUSH_DEMO, TrainConfig
from lenet5.training.interruption import Interrupted
from lenet5.training.step_sizes import sdlm_epsilon, sdlm_rates
from lenet5.training.trainer import Trainer

MASK3 = table_mask(C3_TABLE, 6)
NAMES = ("C1.weight", "C1.bias", "S2.coeff", "S2.bias", "C3.weight", "C3.bias", "S4.coeff", "S4.bias",
         "C5.weight", "C5.bias", "F6.weight", "F6.bias")


def f(u):
    return TANH_A * np.tanh(TANH_S * u)


def fp(u):
    return TANH_A * TANH_S / np.cosh(TANH_S * u) ** 2


def conv(x, w, mask):
    win = sliding_window_view(x, w.shape[2:], axis=(1, 2))
    return np.einsum("mcij,chwij->mhw", w * mask[:, :, None, None], win)


def down(x):
    m, h, w = x.shape
    return x.reshape(m, h // 2, 2, w // 2, 2).sum(axis=(2, 4))


def forward(p, image):
    s = {"x0": image[None]}
    s["u1"] = conv(s["x0"], p["C1.weight"], np.ones((6, 1), bool)) + p["C1.bias"][:, None, None]
    s["x1"] = f(s["u1"])
    s["u2"] = p["S2.coeff"][:, None, None] * down(s["x1"]) + p["S2.bias"][:, None, None]
    s["x2"] = f(s["u2"])
    s["u3"] = conv(s["x2"], p["C3.weight"], MASK3) + p["C3.bias"][:, None, None]
    s["x3"] = f(s["u3"])
    s["u4"] = p["S4.coeff"][:, None, None] * down(s["x3"]) + p["S4.bias"][:, None, None]
    s["x4"] = f(s["u4"])
    s["u5"] = p["C5.weight"].reshape(120, -1) @ s["x4"].reshape(-1) + p["C5.bias"]
    s["x5"] = f(s["u5"])
    s["u6"] = p["F6.weight"] @ s["x5"] + p["F6.bias"]
    s["x6"] = f(s["u6"])
    return s


def linear_jacobian(fn, n_in):
    """Matrix of a linear map given as a function of a flat vector (columns fn(e_k))."""
    return np.stack([fn(np.eye(1, n_in, k)[0]).reshape(-1) for k in range(n_in)], axis=1)


def map_seed(x6, prototypes, j):
    """Diagonal of d2E/dx6^2 for E = y_L + log(e^-j + sum e^-y_i), written independently:
    E's Hessian is 2 (1 - sum p) I + D^T (diag p - p p^T) D, D_ij = 2 (x_j - P_ij)."""
    y = ((x6[None] - prototypes) ** 2).sum(axis=1)
    pr = np.exp(-y) / (np.exp(-j) + np.exp(-y).sum())
    d = 2.0 * (x6[None] - prototypes)
    return np.diag(2.0 * (1.0 - pr.sum()) * np.eye(84) + d.T @ (np.diag(pr) - np.outer(pr, pr)) @ d).copy()


def exact_h(p, prototypes, images, gn_seed, j=MAP_J):
    """Mean over `images` of the per-connection exact Gauss-Newton term of every parameter."""
    jx = {2: linear_jacobian(lambda v: p["S2.coeff"][:, None, None] * down(v.reshape(6, 28, 28)), 4704),
          3: linear_jacobian(lambda v: conv(v.reshape(6, 14, 14), p["C3.weight"], MASK3), 1176),
          4: linear_jacobian(lambda v: p["S4.coeff"][:, None, None] * down(v.reshape(16, 10, 10)), 1600),
          5: p["C5.weight"].reshape(120, -1), 6: p["F6.weight"]}
    h = {name: np.zeros_like(p[name]) for name in NAMES}
    for image in images:
        s = forward(p, image)
        seed = map_seed(s["x6"], prototypes, j) if gn_seed == "exact" else np.full(84, float(gn_seed))
        jac = np.diag(fp(s["u6"]))  # dx6/du6
        g = {6: seed @ jac ** 2}
        for layer in (5, 4, 3, 2, 1):
            jac = (jac @ jx[layer + 1]) * fp(s[f"u{layer}"]).reshape(-1)[None, :]  # dx6/du_layer
            g[layer] = seed @ jac ** 2
        g1, g2 = g[1].reshape(6, 28, 28), g[2].reshape(6, 14, 14)
        g3, g4 = g[3].reshape(16, 10, 10), g[4].reshape(16, 5, 5)
        win = lambda x: sliding_window_view(x, (5, 5), axis=(1, 2))  # noqa: E731
        h["C1.weight"] += np.einsum("mhw,chwij->mcij", g1, win(s["x0"] ** 2))
        h["C1.bias"] += g1.sum(axis=(1, 2))
        h["S2.coeff"] += (g2 * down(s["x1"] ** 2)).sum(axis=(1, 2))  # per connection: x^2 summed
        h["S2.bias"] += g2.sum(axis=(1, 2))
        h["C3.weight"] += np.einsum("mhw,chwij->mcij", g3, win(s["x2"] ** 2)) * MASK3[:, :, None, None]
        h["C3.bias"] += g3.sum(axis=(1, 2))
        h["S4.coeff"] += (g4 * down(s["x3"] ** 2)).sum(axis=(1, 2))
        h["S4.bias"] += g4.sum(axis=(1, 2))
        h["C5.weight"] += (g[5][:, None] * (s["x4"].reshape(-1) ** 2)[None, :]).reshape(h["C5.weight"].shape)
        h["C5.bias"] += g[5]
        h["F6.weight"] += g[6][:, None] * (s["x5"] ** 2)[None, :]
        h["F6.bias"] += g[6]
    return {name: v / len(images) for name, v in h.items()}


def small(mnist, n_train, n_test):
    (x, y), (tx, ty) = mnist
    return (x[:n_train], y[:n_train]), (tx[:n_test], ty[:n_test])


def finite_difference_seed(x6, prototypes, j, label, step=1e-4):
    def energy(x):
        y = ((x[None] - prototypes) ** 2).sum(axis=1)
        return y[label] + np.log(np.exp(-j) + np.exp(-y).sum())
    out = np.empty(84)
    for k in range(84):
        e = np.zeros(84)
        e[k] = step
        out[k] = (energy(x6 + e) - 2 * energy(x6) + energy(x6 - e)) / step ** 2
    return out


def test_exact_map_seed_matches_finite_differences():
    net = LeNet5.init(seed=0, dtype=np.float64)
    spec = net.spec("map", MAP_J)
    rng = np.random.default_rng(1)
    for label in (3, 7):
        x6 = np.clip(net.prototypes[label] + rng.normal(0, 0.1, 84), -1.7, 1.7)
        y = ((x6[None] - net.prototypes) ** 2).sum(axis=1)
        got = np.zeros(84)
        engine.rbf_curvature(x6, y, spec, engine.SEED_EXACT, got)
        np.testing.assert_allclose(got, finite_difference_seed(x6, net.prototypes, MAP_J, label), rtol=1e-5)
        np.testing.assert_allclose(got, map_seed(x6, net.prototypes, MAP_J), rtol=1e-10)
        assert got.max() < 2.0  # near a prototype the exact curvature is below the constant 2
    far = np.zeros(84)
    engine.rbf_curvature(np.zeros(84), np.full(10, 84.0), spec, engine.SEED_EXACT, far)
    np.testing.assert_allclose(far, 2.0, rtol=1e-12)  # far from every prototype: 2
    engine.rbf_curvature(np.zeros(84), np.full(10, 84.0), spec, engine.SEED_HALF, far)
    assert np.all(far == 1.0)


@pytest.mark.parametrize("key", ["sqrt,gn=exact", "lush"])
def test_rate_report_hessian_matches_numpy_jacobians(mnist, key):
    """The sdlm experiment's h (the trainer's pass-1 estimate, here over all of 6 images) equals
    the exact per-connection Gauss-Newton term for F6 and C5; below, LeCun's diagonal
    propagation stays within 2x of it (the study measured medians 0.94-1.31 at init)."""
    overrides = INTERPRETATIONS[key][1]
    config = dict(interpretation_config(overrides), train_size=6)
    net, h, eta, free = pass1_rates(config, small(mnist, 6, 10))
    got = LeNet5.views(h)
    want = exact_h(net.params, net.prototypes, mnist[0][0][:6].astype(np.float64), overrides.get("gn_seed", "2"))
    for name in ("F6.weight", "F6.bias", "C5.weight", "C5.bias"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-15, err_msg=name)
    for name in ("C1.weight", "S2.coeff", "C3.weight", "S4.coeff"):
        sel = want[name] > 0
        ratio = np.median(got[name][sel] / want[name][sel])
        assert 0.5 < ratio < 2.0, (name, ratio)
    np.testing.assert_allclose(eta[free], 5e-4 / (0.02 + h[free]))  # the reported rates


def test_average_subsampling_is_a_reparametrisation():
    """c_s = c_a / 4: h(c_a) = h(c_s) / 16 and the stored step is eps / (16 mu + h(c_s))."""
    cfg = TrainConfig(mu=0.02, subsample="average")
    hess = np.abs(np.random.default_rng(0).normal(size=engine.N_THETA))
    h_read, eta_read, eta_stored = sdlm_rates(cfg, hess, 5e-4)
    hv, rv, sv, raw = (LeNet5.views(a) for a in (h_read, eta_read, eta_stored, hess))
    np.testing.assert_allclose(hv["S2.coeff"], raw["S2.coeff"] / 16)
    np.testing.assert_allclose(sv["S4.coeff"], 5e-4 / (16 * 0.02 + raw["S4.coeff"]))
    np.testing.assert_array_equal(sv["C5.weight"], rv["C5.weight"])  # other parameters unchanged


def test_init_scales():
    paper, sqrt, lush = (LeNet5.init(seed=4, dtype=np.float64, scale=s).params for s in ("paper", "sqrt", "lush"))
    # the same draws, another bound: C1's F = 25, so +-2.4/25 -> +-1/5
    np.testing.assert_allclose(sqrt["C1.weight"], paper["C1.weight"] * (1 / 5) / (2.4 / 25))
    assert np.all(lush["S2.coeff"] == 0.5) and np.all(lush["C5.bias"] == 0)
    np.testing.assert_array_equal(lush["F6.weight"], sqrt["F6.weight"])
    with pytest.raises(Lenet5Error, match="init scale"):
        LeNet5.init(scale="big")


@pytest.mark.parametrize("bad, match", [
    (dict(gn_seed="exact", optimizer="sgd"), "SDLM setting"),
    (dict(hessian_every=700), "multiple of 500"),
    (dict(subsample="average", pooling="average"), "has none"),
    (dict(gn_seed="1", output="softmax", loss="ce"), "RBF output"),
    (dict(init="huge"), "unknown init"),
])
def test_choices_that_mean_nothing_are_refused(bad, match):
    with pytest.raises(Lenet5Error, match=match):
        TrainConfig(**bad).check()


@pytest.mark.slow
def test_choices_resume_exactly(mnist, tmp_path):
    """Every choice at once, interrupted mid-pass after an in-pass Hessian re-estimate and
    before the next one: the resumed run ends on the same weights."""
    data = small(mnist, 1500, 300)
    config = dict(epochs=2, seed=3, train_size=1500, init="lush", subsample="average",
                  gn_seed="exact", hessian_every=1000, inputs="unit", mu=1.0)  # (stable with these)
    quiet = dict(progress=False, log=lambda s: None)
    straight = Trainer(TrainConfig(**config), data, tmp_path / "a", **quiet)
    straight.run()
    interrupted = Trainer(TrainConfig(**config), data, tmp_path / "b", **quiet)
    original, calls = interrupted._train_slice, []

    def slice_then_interrupt(idx, losses):
        original(idx, losses)
        calls.append(1)
        if interrupted.epoch == 2 and len(calls) >= 5:  # pass 2, after 1,000 samples
            interrupted.stop.request()

    interrupted._train_slice = slice_then_interrupt
    with pytest.raises(Interrupted):
        interrupted.run()
    net, state = LeNet5.load(tmp_path / "b" / "checkpoint.npz", with_state=True)
    assert int(state["state.position"]) == 1000
    saved = json.loads(str(state["state.config"]))
    assert {k: saved[k] for k in config} == config
    resumed = Trainer(TrainConfig(**saved), data, tmp_path / "b", net=net, state=state, **quiet)
    resumed.run()
    assert np.array_equal(resumed.net.theta, straight.net.theta)
    per_pass = Trainer(TrainConfig(**dict(config, hessian_every=0)), data, tmp_path / "c", **quiet)
    per_pass.run()
    assert not np.array_equal(per_pass.net.theta, straight.net.theta)  # the re-estimates did act


@pytest.mark.slow
def test_cli_records_the_choices_and_resume_keeps_them(mnist_dir, tmp_path, capsys):
    common = ["--quiet", "--data-dir", str(mnist_dir)]
    flags = ["--init", "sqrt", "--subsample", "average", "--gn-seed", "1", "--hessian-every", "500",
             "--inputs", "unit", "--mu", "1"]
    assert main(["train", "--epochs", "1", "--train-size", "1000", *flags,
                 "--out", str(tmp_path / "r"), *common]) == 0
    checkpoint = tmp_path / "r" / "checkpoint.npz"
    conflict = main(["train", "--resume", str(checkpoint), "--epochs", "2", "--gn-seed", "2", *common])
    assert conflict == 2 and "--gn-seed 2 (the checkpoint has 1)" in capsys.readouterr().err
    assert main(["train", "--resume", str(checkpoint), "--epochs", "2", *common]) == 0
    _, state = LeNet5.load(checkpoint, with_state=True)
    saved = json.loads(str(state["state.config"]))
    choices = (saved["init"], saved["subsample"], saved["gn_seed"], saved["hessian_every"], saved["inputs"])
    assert choices == ("sqrt", "average", "1", 500, "unit")
    assert LeNet5.load(checkpoint).variant == Variant(inputs="unit")  # the network carries its inputs
    assert len(json.loads(str(state["state.history"]))) == 2


def test_recipes_set_their_settings_together_and_a_given_flag_wins():
    from lenet5.cli import build_parser
    from lenet5.commands.train import given_settings, new_config
    from lenet5.training.config import DEFAULT_RECIPE, RECIPES

    def config(*argv):
        return new_config(given_settings(build_parser().parse_args(["train", *argv])))
    default = config()
    assert {k: getattr(default, k) for k in RECIPES[DEFAULT_RECIPE]} == RECIPES[DEFAULT_RECIPE]
    damped = config("--recipe", "damped")
    assert {k: getattr(damped, k) for k in RECIPES["damped"]} == RECIPES["damped"]
    assert damped.variant == Variant() and default.variant == Variant(inputs=RECIPES[DEFAULT_RECIPE]["inputs"])
    mixed = config("--recipe", "damped", "--mu", "0.5")
    assert mixed.mu == 0.5 and mixed.init == "paper"
    assert config("--optimizer", "sgd").hessian_every == 0  # an SDLM setting


def test_a_checkpoint_from_before_a_setting_existed_resumes_as_it_was_trained(mnist, tmp_path):
    """An older checkpoint's config lacks the settings added since (inputs, init, ...): they
    are read as their values then (the damped recipe), not as today's defaults."""
    from lenet5.training.config import RECIPES, saved_config

    old = {"epochs": 2, "seed": 0, "mu": 1.0, "train_size": 300}  # written before init/inputs/hessian_every
    full = saved_config(json.dumps(old))
    assert {k: full[k] for k in RECIPES["damped"]} == RECIPES["damped"]
    assert TrainConfig(**full).variant == Variant()


def test_hessian_estimates_per_pass_counts_what_the_trainer_does(mnist, tmp_path):
    from lenet5.training.step_sizes import hessian_estimates_per_pass

    for every in (0, 500, 1000):
        trainer = Trainer(TrainConfig(epochs=1, train_size=1500, hessian_every=every, mu=1.0),
                          small(mnist, 1500, 100), tmp_path / f"h{every}", progress=False, log=lambda s: None)
        calls, real = [], trainer._step_sizes
        trainer._step_sizes = lambda *a, calls=calls, real=real, **kw: (calls.append(1), real(*a, **kw))[1]
        trainer.run()
        assert len(calls) == hessian_estimates_per_pass(1500, every), every


def test_hessian_kept_over_passes_and_across_a_resume(mnist, tmp_path):
    """hessian_passes=2 (the Lush demo's h per schedule step, shortened): pass 2 steps with pass
    1's h and its own epsilon; a run stopped after pass 2 and resumed finishes exactly as the
    uninterrupted run, its kept h coming back from the checkpoint (state.hessian)."""
    data = small(mnist, 1000, 200)
    quiet = dict(log=lambda *a: None, progress=False, evaluate_concurrently=False)
    config = dict(LUSH_DEMO, epochs=3, hessian_passes=2, hessian_samples=300, schedule="paper")
    estimates = []

    class Counting(Trainer):
        def _step_sizes(self, epoch, rng, keep_hessian=False):
            lr, eta = super()._step_sizes(epoch, rng, keep_hessian)
            estimates.append((epoch, keep_hessian, self.hessian.copy(), eta.copy()))
            return lr, eta

    straight = Counting(TrainConfig(**config), data, tmp_path / "a", **quiet)
    straight.run()
    assert [(e, kept) for e, kept, _, _ in estimates] == [(1, False), (2, True), (3, False)]
    (_, _, h1, eta1), (_, _, h2, eta2), (_, _, h3, _) = estimates
    assert np.array_equal(h1, h2) and not np.array_equal(h2, h3)
    free = ~straight.net.fixed_mask()
    np.testing.assert_allclose(eta2[free] / eta1[free], sdlm_epsilon(2, "paper") / sdlm_epsilon(1, "paper"),
                               rtol=1e-6)
    two = Trainer(TrainConfig(**dict(config, epochs=2)), data, tmp_path / "b", **quiet)
    two.run()
    net, state = LeNet5.load(tmp_path / "b" / "checkpoint.npz", with_state=True)
    np.testing.assert_array_equal(state["state.hessian"], h1)
    resumed = Trainer(TrainConfig(**config), data, tmp_path / "b", net=net, state=state, **quiet)
    resumed.run()
    assert np.array_equal(resumed.net.theta, straight.net.theta)
    with pytest.raises(Lenet5Error, match="choose one"):
        TrainConfig(**dict(config, hessian_every=500)).check()
