"""SDLM's step sizes (Appendix C): eta_k = epsilon / (mu + h_kk), with epsilon from the pass's
global schedule and h_kk the diagonal Gauss-Newton term averaged over HESSIAN_SAMPLES images.
"""
import numpy as np

from ..core import engine
from ..core.model import MAP_J, LeNet5

CHUNK = 500  # samples per kernel call: the granularity of progress, Ctrl-C and NaN checks
HESSIAN_SAMPLES = 500
# The global step epsilon by pass (1-based), as ((last pass, epsilon), ...), then the final one:
# "paper"  the printed schedule (section III): 5e-4 for passes 1-2, 2e-4 for 3-5, 1e-4 for 6-8,
#          5e-5 for 9-12, 1e-5 after
# "lush"   the schedule of LeCun's own LeNet-5 demo in Lush, as the QMNIST authors reran it
#          (facebookresearch/qmnist, making_qmnist/lenet5.lsh.patch: `doit 10` passes at each of
#          1e-4, 1e-5, 1e-6): 1e-4 for passes 1-10, 1e-5 for 11-20, 1e-6 after
SCHEDULES = {
    "paper": (((2, 5e-4), (5, 2e-4), (8, 1e-4), (12, 5e-5)), 1e-5),
    "lush": (((10, 1e-4), (20, 1e-5)), 1e-6),
}
# The seed d2E/dx6^2 of the Hessian at the RBF output (TrainConfig.gn_seed)
GN_SEEDS = {"2": engine.SEED_GAUSS_NEWTON, "1": engine.SEED_HALF, "exact": engine.SEED_EXACT}
# How S2/S4's trainable coefficient is read (TrainConfig.subsample): "sum": it multiplies the
# 2x2 block's sum (the stored parameter c_s) | "average": it multiplies the block's mean,
# c_a = 4 c_s. A reparametrisation for SDLM: the initial draw is c_a (stored as c_a / 4),
# h(c_a) = h(c_s) / 16, and the step on c_a is eps / (mu + h(c_a)), i.e. on c_s eps / (16 mu + h(c_s)).
SUBSAMPLES = ("sum", "average")
SUBSAMPLING_COEFFS = ("S2.coeff", "S4.coeff")


def sdlm_epsilon(epoch, schedule="paper"):
    """The global step epsilon for pass `epoch` (1-based) under SCHEDULES[schedule]."""
    steps, final = SCHEDULES[schedule]
    for last_pass, eps in steps:
        if epoch <= last_pass:
            return eps
    return final


def hessian_estimates_per_pass(n, hessian_every):
    """How many Hessian estimates an SDLM pass of n samples makes: one before it, and one at
    every multiple of hessian_every inside it (Trainer._run_pass)."""
    return 1 + ((n - 1) // hessian_every if hessian_every else 0)


def hessian_estimate(net, images, rng, gn_seed="2", loss=None, j=MAP_J, samples=HESSIAN_SAMPLES):
    """Mean diagonal Gauss-Newton term h_kk over `samples` random training images
    (`images`: an array, or a source with `__len__` and `images(indices)`), seeded at an RBF
    output by GN_SEEDS[gn_seed] ("exact": of the criterion `loss` with constant j)."""
    pick = np.sort(rng.choice(len(images), size=min(samples, len(images)), replace=False))
    chosen = images[pick] if isinstance(images, np.ndarray) else images.images(pick)
    hess = np.zeros_like(net.theta)
    engine.hessian_diagonal_seeded(np.ascontiguousarray(chosen, dtype=net.dtype), net.theta,
                                   net.spec(loss or net.default_loss, j), GN_SEEDS[gn_seed], hess)
    return hess / len(pick)


def sdlm_rates(config, hess, epsilon):
    """(h, eta) in the chosen parametrisation, and the step of the stored parameters:
    h = r^2 h_stored, eta = epsilon / (mu + h), eta_stored = r^2 eta, with r = 1/4 for the
    subsampling coefficients read as an average (c_s = c_a / 4), else 1."""
    if config.subsample == "sum":
        eta = epsilon / (config.mu + hess)
        return hess, eta, eta
    r2 = np.ones_like(hess)
    views = LeNet5.views(r2)
    for name in SUBSAMPLING_COEFFS:
        views[name][...] = 1.0 / 16.0
    h = r2 * hess
    eta = epsilon / (config.mu + h)
    return h, eta, r2 * eta
