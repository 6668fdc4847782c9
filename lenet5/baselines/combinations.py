"""Learned combinations of feature maps in C3 (Bouvrie, "Notes on Convolutional Neural
Networks", 2006, section 3.3), in place of LeCun's fixed connection table (Table I).

Each C3 map j reads all six S2 maps, mixed by weights that are learned:

    x_j = f( sum_i alpha_ij (x_i * k_ij) + b_j ),    alpha_ij = exp(c_ij) / sum_k exp(c_kj)

so for every output map j the alpha_ij are a softmax over the input maps i (positive, summing
to one). Optionally an L1 penalty Omega = lam * sum_ij |alpha_ij| is added to the loss.

Kernels: one per (input, output) pair. The notes write the kernel as k_i (input map only),
which would make all 16 C3 pre-activations linear mixtures of the same six filtered maps: a
layer that cannot even represent LeCun's Table I layer (60 distinct kernels). With one kernel
k_ij per pair, C3 is exactly the fully connected convolution with effective weights

    W_ij = alpha_ij * k_ij,

so the existing engine (all 96 pairs instead of Table I's 60) gives dE/dW, and the chain rule

    dE/dk_ij     = alpha_ij dE/dW_ij
    dE/dalpha_ij = sum_ab k_ij[a,b] dE/dW_ij[a,b]  (+ lam sign(alpha_ij) from Omega)
    dE/dc_ij     = alpha_ij (dE/dalpha_ij - sum_k alpha_kj dE/dalpha_kj)     (notes, eq. for c)

gives the rest. `kernels="input"` runs the notes' literal k_i (stored as a (1, 6, 5, 5)
array shared by every output map; dE/dk_i then sums over j) for comparison; "pair" is the
default. Arrays are indexed [j, i] like `C3.weight` (output map first): `alpha` is (16, 6),
each ROW sums to one (a column alpha_.j of the notes), comparable with
`architecture.table_mask(C3_TABLE, 6)`.

The L1 penalty does nothing under the softmax: alpha_ij > 0 and sum_i alpha_ij = 1, so
sum_ij |alpha_ij| = 16 whatever c is, and its gradient, the notes' lam (|alpha_ij| - alpha_ij
sum_k |alpha_kj|) = lam alpha_ij (1 - sum_k alpha_kj), is zero (to rounding). It is
implemented as written anyway (it adds 16 lam to the reported loss); the tests show its
gradient vanishes and that training with and without it is the same. A penalty that drives
some alpha_ij to zero, as the notes intend, needs alpha without the sum-to-one constraint
(e.g. alpha = sigmoid(c), or an Lp penalty with p < 1).

Initialisation: everything but C3 as `LeNet5.init` (the paper's +-2.4/F rule); c = 0, i.e.
alpha = 1/6 (no map preferred: nothing to break a symmetry here, the kernels differ);
kernels uniform +-2.4/25 so that the effective weights W = k/6 are uniform +-2.4/150, the
fan-in rule for a C3 unit reading 6 maps x 25 taps; C3's bias +-2.4/150 for the same reason.

Training: online SGD (one sample per step, shuffled every pass) with the paper's MAP
criterion (j = model.MAP_J) and the fixed RBF prototypes, in one Numba loop
(`train_online_combinations`). Step sizes: `lr` for the LeNet-5 parameters, `lr_kernels` for
k (default 36 lr = lr / alpha0^2: since dW = alpha dk and dE/dk = alpha dE/dW, this moves W
at the start exactly as `lr` moves the weights of a plain fully connected C3) and `lr_logits`
for c (default also 36 lr). All three follow the pass schedule of `mlp.pass_factor` (the
ratios of the paper's epsilon schedule, Appendix C). lr = 1e-3 is the project's plain-SGD
rate (`TrainConfig.lr`). One pass over 20k samples, lr = 1e-3, lr_kernels = 0.036, test
error by lr_logits: 0 (c frozen, alpha = 1/6: a fully connected C3) 3.83 %; 0.0036 4.20 %
(alpha in [0.10, 0.26]); 0.036 3.97 % (alpha in [0.04, 0.51]); 0.1 5.15 %; 0.36 5.80 %
(alpha in [0.003, 0.93]). LeNet-5 with Table I at the same lr: 5.89 %.

Measured, 3 passes over the 60k, seed 0, float32, defaults: test error 5.64 / 2.18 / 1.72 %,
~9,500 samples/s on one core (the Table I net, same SGD and lr: 3.21 / 2.57 / 1.62 % at
~12,000 samples/s; c frozen at alpha = 1/6: 4.33 / 2.61 / 1.77 %). One seed each: on 10k
test digits a 1.7 % error has a binomial standard error of ~0.13 points, so the three
finish level. alpha moves away from 1/6 in 11 of the 16 C3 maps (largest weight 0.39) and
stays at ~1/6 in 5; the moved rows favour S2 maps 4 and 5 and match Table I no better than
chance (a row's |table row| largest weights hit the table's links 47 % of the time; chance
~50 %).
"""

import numba as nb
import numpy as np

from ..core import engine
from ..core.architecture import C3_TABLE, KERNEL, LAYER, Variant, table_mask
from ..core.kernels import JIT_OPTIONS
from ..core.model import MAP_J, LeNet5, default_prototypes
from .mlp import pass_factor
from .online import online_pass

OUT_MAPS, IN_MAPS = LAYER["C3"].maps, LAYER["C3"].in_maps  # 16, 6
FULL_C3 = Variant(c3="full")  # the engine computes all 96 (j, i) kernels
PAPER_MASK = table_mask(C3_TABLE, IN_MAPS)  # (16, 6) Table I, for comparison
KERNEL_FAN_IN = KERNEL * KERNEL  # one kernel's taps; W = alpha k then has the 150 rule
C3_FAN_IN = IN_MAPS * KERNEL * KERNEL
KERNEL_MODES = ("pair", "input")

_C3W = engine.OFFSETS["C3.weight"]  # (start, stop) of C3.weight in theta
_C3_SHAPE = (OUT_MAPS, IN_MAPS, KERNEL, KERNEL)

kernel = nb.njit(**JIT_OPTIONS)


# ---------------------------------------------------------------- the layer's maths (Numba)

@kernel
def softmax_rows(c, alpha):
    """alpha[j, i] = exp(c[j, i]) / sum_k exp(c[j, k]): softmax over the input maps i."""
    for r in range(c.shape[0]):
        top = c[r, 0]
        for i in range(1, c.shape[1]):
            top = max(top, c[r, i])
        total = c.dtype.type(0.0)
        for i in range(c.shape[1]):
            alpha[r, i] = np.exp(c[r, i] - top)
            total += alpha[r, i]
        for i in range(c.shape[1]):
            alpha[r, i] /= total


@kernel
def effective_weights(k, alpha, weight):
    """weight[j, i] = alpha[j, i] * k[j, i] (k[0, i] when the kernels are per input map)."""
    shared = k.shape[0] == 1
    for r in range(weight.shape[0]):
        kr = 0 if shared else r
        for i in range(weight.shape[1]):
            a = alpha[r, i]
            for p in range(weight.shape[2]):
                for q in range(weight.shape[3]):
                    weight[r, i, p, q] = a * k[kr, i, p, q]


@kernel
def chain_rule(k, alpha, dweight, lam, dk, dc):
    """From dE/dW (dweight) to dE/dk (accumulated into dk) and dE/dc (written into dc), the
    penalty lam * sum |alpha| included through dE/dalpha."""
    shared = k.shape[0] == 1
    dalpha = np.empty(alpha.shape[1], alpha.dtype)
    for r in range(alpha.shape[0]):
        kr = 0 if shared else r
        mean = alpha.dtype.type(0.0)
        for i in range(alpha.shape[1]):
            a = alpha[r, i]
            s = alpha.dtype.type(0.0)
            for p in range(k.shape[2]):
                for q in range(k.shape[3]):
                    g = dweight[r, i, p, q]
                    s += k[kr, i, p, q] * g
                    dk[kr, i, p, q] += a * g
            dalpha[i] = s + lam * np.sign(a)  # dOmega/dalpha = lam sign(alpha)
            mean += a * dalpha[i]
        for i in range(alpha.shape[1]):
            dc[r, i] = alpha[r, i] * (dalpha[i] - mean)


@kernel
def l1_penalty(alpha, lam):
    total = alpha.dtype.type(0.0)
    for r in range(alpha.shape[0]):
        for i in range(alpha.shape[1]):
            total += abs(alpha[r, i])
    return lam * total


@kernel
def train_online_combinations(images, labels, order, theta, k, c, lr, lr_k, lr_c, lam,
                              spec, losses, work):
    """Online SGD over images[order]: per sample, forward/backward through the engine with the
    effective C3 weights, chain rule to k and c, then theta (C3.weight excepted: it is derived),
    k and c updated and W recomputed. losses[n] = E + Omega of sample n."""
    a, b = _C3W
    grad = np.zeros_like(theta)
    weight = theta[a:b].reshape(_C3_SHAPE)
    dweight = grad[a:b].reshape(_C3_SHAPE)
    alpha = np.empty(c.shape, c.dtype)
    dk = np.zeros_like(k)
    dc = np.zeros_like(c)
    softmax_rows(c, alpha)
    effective_weights(k, alpha, weight)
    for n in range(order.shape[0]):
        s = order[n]
        losses[n] = engine.sample_loss_gradient(images[s], labels[s], theta, spec, work, grad)
        losses[n] += l1_penalty(alpha, lam)
        chain_rule(k, alpha, dweight, lam, dk, dc)
        for t in range(a):
            theta[t] -= lr * grad[t]
            grad[t] = 0.0
        for t in range(b, theta.shape[0]):
            theta[t] -= lr * grad[t]
            grad[t] = 0.0
        dweight[...] = 0.0
        kf = k.reshape(-1)
        dkf = dk.reshape(-1)
        for t in range(kf.shape[0]):
            kf[t] -= lr_k * dkf[t]
            dkf[t] = 0.0
        for r in range(c.shape[0]):
            for i in range(c.shape[1]):
                c[r, i] -= lr_c * dc[r, i]
        softmax_rows(c, alpha)
        effective_weights(k, alpha, weight)


# ---------------------------------------------------------------- the network

def penalty_gradient(c, lam):
    """The notes' closed form dOmega/dc_ij = lam (|alpha_ij| - alpha_ij sum_k |alpha_kj|), for
    c indexed [j, i] (sums over the input maps i). Zero (to rounding) under the softmax."""
    alpha = np.exp(c - c.max(axis=1, keepdims=True))
    alpha /= alpha.sum(axis=1, keepdims=True)
    return lam * (np.abs(alpha) - alpha * np.abs(alpha).sum(axis=1, keepdims=True))


class CombinationNet:
    """LeNet-5 with a learned-combination C3. `theta` is laid out like `LeNet5.theta`; its
    C3.weight slot always holds the effective weights alpha * k (derived, never trained
    directly); `k` (16 or 1, 6, 5, 5) and `c` (16, 6) are C3's own parameters."""

    def __init__(self, theta, k, c, prototypes):
        self.theta = np.ascontiguousarray(theta)
        dtype = self.theta.dtype
        self.k = np.ascontiguousarray(k, dtype=dtype)
        self.c = np.ascontiguousarray(c, dtype=dtype)
        self.prototypes = np.ascontiguousarray(prototypes, dtype=dtype)
        shapes_ok = self.k.shape in (_C3_SHAPE, (1,) + _C3_SHAPE[1:])
        if self.c.shape != (OUT_MAPS, IN_MAPS) or not shapes_ok:
            raise ValueError(f"k must be (16 or 1, 6, 5, 5) and c (16, 6); "
                             f"got {self.k.shape} and {self.c.shape}")
        self.sync()

    @classmethod
    def init(cls, seed=0, dtype=np.float32, kernels="pair"):
        if kernels not in KERNEL_MODES:
            raise ValueError(f"kernels must be one of {KERNEL_MODES}, got {kernels!r}")
        base = LeNet5.init(seed=seed, dtype=np.float64)
        rng = np.random.default_rng([seed, 3])  # C3's own draws, apart from LeNet5.init's
        shape = _C3_SHAPE if kernels == "pair" else (1,) + _C3_SHAPE[1:]
        k = rng.uniform(-1.0, 1.0, shape) * (2.4 / KERNEL_FAN_IN)
        base.params["C3.bias"][...] = rng.uniform(-1.0, 1.0, OUT_MAPS) * (2.4 / C3_FAN_IN)
        c = np.zeros((OUT_MAPS, IN_MAPS))
        return cls(base.theta.astype(dtype), k.astype(dtype), c.astype(dtype),
                   default_prototypes(dtype))

    @property
    def dtype(self):
        return self.theta.dtype

    @property
    def kernels(self):
        return "input" if self.k.shape[0] == 1 else "pair"

    def alpha(self):
        alpha = np.empty_like(self.c)
        softmax_rows(self.c, alpha)
        return alpha

    def params(self):
        """Name -> view of the LeNet-5 parameters (C3.weight = alpha k, derived)."""
        return LeNet5.views(self.theta)

    def sync(self):
        """Write the effective weights alpha * k into theta's C3.weight slot."""
        effective_weights(self.k, self.alpha(), self.theta[_C3W[0]:_C3W[1]].reshape(_C3_SHAPE))

    def spec(self, loss="map", j=MAP_J):
        """The engine's record: LeNet-5 with every C3 kernel computed (alpha * k fills them)."""
        return engine.make_spec(FULL_C3, self.prototypes, loss, j)

    def forward(self, x):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        out = np.empty((len(x), 10), dtype=self.dtype)
        engine.forward_batch(x, self.theta, self.spec(), engine.thread_bounds(len(x)), out)
        return out

    def predict(self, x, batch=2000):
        return np.concatenate([self.forward(x[i:i + batch]).argmin(axis=1)
                               for i in range(0, len(x), batch)])

    def loss_and_gradients(self, x, labels, lam=0.0, loss="map", j=MAP_J):
        """(mean of E + Omega, {"theta": dE/dtheta with C3.weight zeroed, "k": ..., "c": ...}),
        mean gradients over the samples."""
        self.sync()
        x = np.ascontiguousarray(x, dtype=self.dtype)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        losses = np.empty(len(x), dtype=self.dtype)
        grad = np.empty_like(self.theta)
        engine.loss_gradient_batch(x, labels, self.theta, self.spec(loss, j), engine.thread_bounds(len(x)),
                                   losses, grad)
        grad /= len(x)
        alpha = self.alpha()
        dk = np.zeros_like(self.k)
        dc = np.zeros_like(self.c)
        dweight = grad[_C3W[0]:_C3W[1]].reshape(_C3_SHAPE)
        chain_rule(self.k, alpha, dweight, self.dtype.type(lam), dk, dc)
        dweight[...] = 0.0
        value = float(losses.mean()) + float(l1_penalty(alpha, self.dtype.type(lam)))
        return value, {"theta": grad, "k": dk, "c": dc}


# ---------------------------------------------------------------- training

def _error_pct(net, x, y):
    return 100.0 * float(np.mean(net.predict(x) != y))


def train_combinations(data, epochs=3, seed=0, lr=1e-3, lam=0.0, train_size=0, progress=True,
                       log=print, lr_kernels=None, lr_logits=None, kernels="pair",
                       dtype=np.float32, j=MAP_J):
    """Online SGD on LeNet-5 with the learned-combination C3. data = ((train_x, train_y),
    (test_x, test_y)) preprocessed 32x32. Returns {"history": rows (epoch, lr, train_loss,
    train_error_pct, test_error_pct, seconds, samples_per_s), "alpha": (16, 6) final alpha
    (rows sum to 1), "paper_table": (16, 6) bool Table I mask, "net": the CombinationNet,
    "settings": the step sizes used}."""
    (train_x, train_y), (test_x, test_y) = data
    if train_size:
        train_x, train_y = train_x[:train_size], train_y[:train_size]
    train_x = np.ascontiguousarray(train_x, dtype=dtype)
    train_y = np.ascontiguousarray(train_y, dtype=np.int64)
    test_x = np.ascontiguousarray(test_x, dtype=dtype)
    test_y = np.ascontiguousarray(test_y, dtype=np.int64)
    net = CombinationNet.init(seed=seed, dtype=dtype, kernels=kernels)
    lr_kernels = 36.0 * lr if lr_kernels is None else lr_kernels
    lr_logits = 36.0 * lr if lr_logits is None else lr_logits
    f = net.dtype.type
    spec = net.spec("map", j)
    n = len(train_x)
    history = []
    ws = engine.workspace(net.theta, spec)
    buffers = (ws.acts, ws.deltas, ws.scratch)  # what the combination kernels use of a workspace
    for epoch in range(1, epochs + 1):
        scale = pass_factor(epoch)

        def step(idx, losses, scale=scale):  # (called within this pass)
            train_online_combinations(train_x, train_y, idx, net.theta, net.k, net.c,
                                      f(lr * scale), f(lr_kernels * scale),
                                      f(lr_logits * scale), f(lam), spec, losses,
                                      buffers)

        losses, seconds = online_pass(n, seed, epoch, step, net.theta, net.dtype,
                                      f"epoch {epoch:2d}", progress)
        row = {"epoch": epoch, "lr": lr * scale,
               "train_loss": float(np.mean(losses, dtype=np.float64)),
               "train_error_pct": _error_pct(net, train_x, train_y),
               "test_error_pct": _error_pct(net, test_x, test_y),
               "seconds": round(seconds, 3), "samples_per_s": round(n / seconds, 1)}
        history.append(row)
        log(f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  train err "
            f"{row['train_error_pct']:5.2f}%  test err {row['test_error_pct']:5.2f}%  "
            f"{row['seconds']:6.1f}s  {row['samples_per_s']:,.0f} samples/s")
    return {"history": history, "alpha": net.alpha(), "paper_table": PAPER_MASK.copy(),
            "net": net, "settings": {"lr": lr, "lr_kernels": lr_kernels,
                                     "lr_logits": lr_logits, "lam": lam, "kernels": kernels}}


# Numba caches these functions with the code they call from the files below compiled in; a
# change to any of those files must recompile them (lenet5.core.jit_cache).
from ..core.jit_cache import flush_if_changed  # noqa: E402

flush_if_changed(globals(), "core/kernels.py", "core/engine.py", "baselines/combinations.py")
