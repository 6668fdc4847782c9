"""Training with the paper's protocol (Appendix C): online stochastic diagonal
Levenberg-Marquardt, step sizes re-estimated from the Hessian diagonal before every pass.
Plain SGD (online or mini-batch) is available for comparison.

Everything needed to continue a run is in its checkpoint (`state.*` arrays), so an
interrupted run resumed with `--resume` ends exactly where the uninterrupted run would.
"""
import json
import math
import numbers
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numba as nb
import numpy as np

from ..core import engine
from ..core.architecture import Variant
from ..core.model import DTYPES, INIT_SCALES, MAP_J, LeNet5, check_images, check_loss
from ..errors import Lenet5Error
from ..files import csv_text, write_json_atomic, write_text_atomic
from .progress import Progress
from .rundir import RunLock, check_writable, claim, reason

# Appendix C: eta_k = epsilon / (mu + h_kk), h re-estimated on 500 samples before each pass.
PAPER_MU = 0.02  # the paper's printed damping
# The training recipes (README "Choices the paper left open"), each named by what it changes:
# the TrainConfig defaults are RECIPES[DEFAULT_RECIPE]; `lenet5 train --recipe NAME` picks one.
# "standardised": the printed mu = 0.02 with the choices the sdlm experiment's selection rule
#   picks (the interpretation closest to the printed settings that runs at mu = 0.02 and puts the
#   pass-1 rates within 2x of the paper's 7e-5 .. 0.016): Lush's initial scale, inputs
#   standardised to variance 1, and the Hessian re-estimated every 5,000 samples (with it only
#   before each pass, pass 2 blows up).
# "damped": the printed init and inputs, h before each pass, and the damping raised to mu = 1
#   (at mu = 0.02 that init diverges in the first 500 samples).
# A setting missing from an older checkpoint's config did not exist when it was written, so it
# had its "damped" value then (saved_config).
RECIPES = {
    "standardised": {"mu": PAPER_MU, "init": "lush", "inputs": "unit", "hessian_every": 5000},
    "damped": {"mu": 1.0, "init": "paper", "inputs": "paper", "hessian_every": 0},
}
DEFAULT_RECIPE = "standardised"
_DEFAULT = RECIPES[DEFAULT_RECIPE]
HESSIAN_SAMPLES = 500
# epsilon by pass (1-based): 0.0005 for passes 1-2, 0.0002 for 3-5, 0.0001 for 6-8,
# 0.00005 for 9-12, 0.00001 after
EPSILON_SCHEDULE = ((2, 5e-4), (5, 2e-4), (8, 1e-4), (12, 5e-5))
EPSILON_FINAL = 1e-5

# The choices the paper leaves open about SDLM (TrainConfig fields, recorded in
# the checkpoint's state.config; none changes what a trained network computes):
# init       LeNet5.init's scale: "paper" +-2.4/F | "sqrt" +-1/sqrt(F) | "lush" (see there)
# subsample  "sum": S2/S4's coefficient multiplies the 2x2 block's sum (the stored parameter
#            c_s) | "average": it multiplies the block's mean, c_a = 4 c_s. A reparametrisation
#            for SDLM: the initial draw is c_a (stored as c_a / 4), h(c_a) = h(c_s) / 16, and
#            the step on c_a is eps / (mu + h(c_a)), i.e. on c_s eps / (16 mu + h(c_s)).
# gn_seed    the seed d2E/dx6^2 of the Hessian at the RBF output: "2" | "1" | "exact" (engine.SEED_*)
# hessian_every  0: h estimated once before each pass (the paper) | N: also every N samples
#            within the pass (a multiple of CHUNK), each estimate on HESSIAN_SAMPLES images
SUBSAMPLES = ("sum", "average")
GN_SEEDS = {"2": engine.SEED_GAUSS_NEWTON, "1": engine.SEED_HALF, "exact": engine.SEED_EXACT}
SUBSAMPLING_COEFFS = ("S2.coeff", "S4.coeff")

CHUNK = 500  # samples per kernel call: the granularity of progress, Ctrl-C and NaN checks
METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_error_pct", "test_error_pct", "seconds",
                 "samples_per_s")
ERROR_FIELDS = ("train_error_pct", "test_error_pct")  # what the end-of-pass evaluation adds


def sdlm_epsilon(epoch):
    """The paper's global step epsilon for pass `epoch` (1-based)."""
    for last_pass, eps in EPSILON_SCHEDULE:
        if epoch <= last_pass:
            return eps
    return EPSILON_FINAL


@dataclass
class TrainConfig:
    epochs: int = 20
    seed: int = 0
    optimizer: str = "sdlm"  # "sdlm" or "sgd"
    loss: str = "map"  # "map" or "mse"
    j: float = MAP_J
    batch_size: int = 1
    lr: float = 1e-3  # SGD only; SDLM follows the paper's epsilon schedule
    mu: float = _DEFAULT["mu"]  # SDLM only
    train_size: int = 0  # 0: all 60,000
    dtype: str = "float32"
    distortions: int = 0  # distorted copies added to the training set (paper: 540,000)
    # the network's variant (lenet5.core.architecture.VARIANT_CHOICES; defaults: the paper's)
    arch: str = "lenet5"
    c3: str = "table"
    pooling: str = "trainable"
    activation: str = "scaled-tanh"
    output: str = "rbf"
    inputs: str = _DEFAULT["inputs"]
    # the open choices of SDLM (see SUBSAMPLES above; defaults: RECIPES[DEFAULT_RECIPE])
    init: str = _DEFAULT["init"]
    subsample: str = "sum"
    gn_seed: str = "2"
    hessian_every: int = _DEFAULT["hessian_every"]  # SDLM only (plain SGD ignores it)

    @property
    def variant(self):
        return Variant(arch=self.arch, c3=self.c3, pooling=self.pooling, activation=self.activation,
                       output=self.output, inputs=self.inputs)

    def check(self):
        self._check_types()
        if self.optimizer not in ("sdlm", "sgd"):
            raise Lenet5Error(f"unknown optimizer {self.optimizer!r}: choose sdlm or sgd")
        check_loss(self.variant, self.loss)  # (also checks every variant choice)
        if self.optimizer == "sdlm" and self.batch_size != 1:
            raise Lenet5Error("sdlm is the paper's online method: use --batch-size 1")
        self._check_numbers()
        self._check_sdlm_choices()
        if self.distortions < 0:
            raise Lenet5Error("--distortions must be >= 0")
        if self.distortions and self.batch_size != 1:
            raise Lenet5Error("training on distorted copies is online only: use --batch-size 1")
        if self.dtype not in DTYPES:
            raise Lenet5Error(f"unknown dtype {self.dtype!r}: choose float32 or float64")

    def _check_sdlm_choices(self):
        """The open SDLM choices: known values, each used only where it means something."""
        for name, allowed in (("init", INIT_SCALES), ("subsample", SUBSAMPLES), ("gn_seed", GN_SEEDS)):
            if getattr(self, name) not in allowed:
                raise Lenet5Error(f"unknown {name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        if self.hessian_every < 0 or self.hessian_every % CHUNK:
            raise Lenet5Error(f"--hessian-every must be 0 or a multiple of {CHUNK}, got {self.hessian_every}")
        sdlm_only = {"subsample": "sum", "gn_seed": "2"}
        for name, default in sdlm_only.items():
            if getattr(self, name) != default and self.optimizer != "sdlm":
                raise Lenet5Error(f"--{name.replace('_', '-')} is an SDLM setting; it does nothing "
                                  "with --optimizer sgd")
        if self.subsample != "sum" and self.pooling != "trainable":
            raise Lenet5Error(f"--subsample {self.subsample} reads the trainable subsampling "
                              f"coefficient; --pooling {self.pooling} has none")
        if self.gn_seed != "2" and self.output != "rbf":
            raise Lenet5Error(f"--gn-seed seeds the RBF output; --output {self.output} has its own")

    def _check_types(self):
        """Every int/float/str setting holds a value of that type (an int will do for a float),
        so a setting read from a damaged checkpoint cannot break a comparison."""
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool) or not isinstance(default, (int, float, str)):
                continue
            kind = (str if isinstance(default, str) else
                    numbers.Integral if isinstance(default, int) else numbers.Real)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise Lenet5Error(f"setting {f.name} must be {type(default).__name__}, got {value!r}")

    def _check_numbers(self):
        """Counts at least their minimum; rates finite and in the range where training works."""
        for name, low in COUNT_MINIMUMS.items():
            if getattr(self, name) < low:
                flag = "--" + name.replace("_", "-")
                raise Lenet5Error(f"{flag} must be at least {low}, got {getattr(self, name)}")
        for name, (bracket, low, high, why) in RATE_RANGES.items():
            value = getattr(self, name)
            above = value > low if bracket == "(" else value >= low
            if not (math.isfinite(value) and above and value <= high):
                raise Lenet5Error(f"--{name} must be a finite number in {bracket}{low:g}, {high:g}], "
                                  f"got {value!r} ({why})")


def saved_config(text):
    """A checkpoint's state.config (JSON) as a dict, settings added since it was written
    (e.g. arch, inputs) filled in with the values they had before they existed (the "damped"
    recipe's, else the default), which is what it was trained with."""
    before = dict(json.loads(json.dumps(asdict(TrainConfig()))), **RECIPES["damped"])
    return dict(before, **json.loads(str(text)))


def hessian_estimates_per_pass(n, hessian_every):
    """How many Hessian estimates an SDLM pass of n samples makes: one before it, and one at
    every multiple of hessian_every inside it (Trainer._run_epoch)."""
    return 1 + ((n - 1) // hessian_every if hessian_every else 0)


def hessian_estimate(net, images, rng, gn_seed="2", loss=None, j=MAP_J):
    """Mean diagonal Gauss-Newton term h_kk over HESSIAN_SAMPLES random training images
    (`images`: an array, or a source with `__len__` and `images(indices)`), seeded at an RBF
    output by GN_SEEDS[gn_seed] ("exact": of the criterion `loss` with constant j)."""
    pick = np.sort(rng.choice(len(images), size=min(HESSIAN_SAMPLES, len(images)), replace=False))
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


class DistortedSource:
    """The paper's distorted training set: the originals plus `copies` randomly distorted
    copies made once (deterministically by index, rendered when a chunk needs them, so the
    540,000 copies never sit in memory). Each pass draws `per_pass` samples (the size of the
    original set) from a stream of shuffles of the whole pool, so 20 passes of 60,000 see each
    of the 600,000 samples about twice."""

    def __init__(self, images, labels, copies, seed):
        from ..data.distort import DistortedPool

        self.pool = DistortedPool(images, labels, n_copies=copies, seed=seed)
        self.per_pass, self.seed = len(images), seed

    def __len__(self):
        return len(self.pool)

    def images(self, indices):
        return self.pool.images(indices)

    def pass_order(self, epoch):
        """Pool indices for pass `epoch` (1-based): positions [(epoch-1)*n, epoch*n) of the
        concatenated shuffles, shuffle c drawn from (seed, c) alone (so resume is exact)."""
        size = len(self.pool)
        start, stop = (epoch - 1) * self.per_pass, epoch * self.per_pass
        parts = []
        for cycle in range(start // size, (stop - 1) // size + 1):
            perm = np.random.default_rng([self.seed, 1998, cycle]).permutation(size)
            lo, hi = max(start - cycle * size, 0), min(stop - cycle * size, size)
            parts.append(perm[lo:hi])
        return np.concatenate(parts)

    def chunk(self, indices):
        """(images, labels) of the given pool indices, rendered now."""
        return self.pool.images(indices), self.pool.labels(indices)


def error_pct(net, images, labels, threads=None):
    """Error % of `net` on `images` already checked (model.check_images) and laid out as its
    engine takes them (C-contiguous, its dtype): one batch, no per-call checks or copies (the
    trainer evaluates 70,000 images after every pass), on `threads` threads (default all),
    through the training loop's compiled code (engine.forward_batch's shared_loop)."""
    outputs = net.forward_checked(images, threads, shared_loop=True)
    return 100.0 * float(np.mean(outputs.argmin(axis=1) != labels))


# The end-of-pass evaluation of every pass but the last runs here, on a copy of the pass's
# final parameters, while the next pass trains on the calling thread: one core each (the
# engine's kernels release the GIL), so 70,000 forward passes cost the protocol no wall time.
_EVALUATOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenet5-evaluation")


class PendingPass:
    """A finished pass whose metrics row still lacks its train and test error (ERROR_FIELDS):
    `row`, the parameters it ended with (`theta`), and the background evaluation of them
    (`future`; None when the errors are still to be computed, as after a resume)."""

    def __init__(self, row, theta=None, future=None):
        self.row, self.theta, self.future = row, theta, future

    def evaluated(self):
        """Are its errors in (without waiting)?"""
        return self.future is not None and self.future.done()


# Divergence, checked after every chunk of samples. Trained LeNet-5 weights stay below 2 in
# magnitude (the shipped reference: 1.29), so past WEIGHT_LIMIT the squashing units are
# saturated for good. An untrained network's F6 output is ~0, so its loss is ~84 for every
# sample (each RBF output ~ |prototype|^2 = 84); diverged runs sit at 180-420 (measured on 2,000
# images: --mu 0.02 and 0.001, SGD at --lr 0.1, 1, 100 and 1e9), healthy ones fall below 50
# within 500 samples. LOSS_BLOWUP times the untrained loss separates the two.
WEIGHT_LIMIT = 1e3
LOSS_BLOWUP = 1.5
# TrainConfig.check: the least value of each count, and (bracket, low, high, why) of each
# rate: "(" excludes low, "[" includes it.
COUNT_MINIMUMS = {"epochs": 1, "batch_size": 1, "seed": 0, "train_size": 0, "distortions": 0}
RATE_RANGES = {
    "lr": ("(", 0.0, 1.0, "plain SGD already diverges at 0.1 on LeNet-5"),
    "mu": ("(", 0.0, 1e3, "above that SDLM's steps are too small to train"),
    "j": ("[", 0.0, 50.0, "e^-j must stay far above float32's smallest number, e^-87"),
}
# Settings a resumed run may change: they only scale later steps or add passes.
RESUME_CHANGEABLE = ("epochs", "lr", "mu")


class Interrupted(Exception):
    """Training stopped by Ctrl-C; the message says what was saved."""


class Trainer:
    """Runs epochs, writes metrics and checkpoints into `out_dir`."""

    def __init__(self, config, data, out_dir, net=None, state=None, log=print, progress=True,
                 evaluate_concurrently=None):
        """evaluate_concurrently: evaluate each pass but the last on a second thread while the next
        pass trains (_save_then_evaluate_concurrently); None: when Numba may use 2 threads or more
        (`lenet5 train --threads 1`, and each process of `lenet5 experiment`, keep to one core)."""
        config.check()
        self.config = config
        dtype = DTYPES[config.dtype]
        (train_x, train_y), (test_x, test_y) = data
        if config.train_size > len(train_x):
            raise Lenet5Error(f"--train-size {config.train_size:,} is more than the "
                              f"{len(train_x):,} training images")
        if config.train_size:
            train_x, train_y = train_x[:config.train_size], train_y[:config.train_size]
        # checked once here (error_pct, after every pass, takes them as they are)
        self.train_x = np.ascontiguousarray(check_images(train_x), dtype=dtype)
        self.train_y = np.ascontiguousarray(train_y, dtype=np.int64)
        self.test_x = np.ascontiguousarray(check_images(test_x), dtype=dtype)
        self.test_y = np.ascontiguousarray(test_y, dtype=np.int64)
        self.source = (DistortedSource(self.train_x, self.train_y, config.distortions, config.seed)
                       if config.distortions else None)
        self.out_dir = Path(out_dir)
        self.net = net if net is not None else LeNet5.init(seed=config.seed, dtype=dtype,
                                                           variant=config.variant, scale=config.init)
        if net is None and config.subsample == "average":  # the draw was c_a; store c_s = c_a / 4
            for name in SUBSAMPLING_COEFFS:
                self.net.params[name][...] *= 0.25
        if self.net.dtype != dtype:
            raise Lenet5Error(f"checkpoint is {self.net.dtype}, run asks for {config.dtype}")
        if self.net.variant != config.variant:
            raise Lenet5Error(f"checkpoint's network is {self.net.variant.describe()}, the run asks "
                              f"for {config.variant.describe()}")
        self.frozen = self.net.fixed_mask()  # parameters never stepped (eta = 0)
        self.log, self.progress = log, progress
        state = state or {}
        self.history = json.loads(str(state["state.history"])) if "state.history" in state else []
        self.epoch = int(state.get("state.epoch", 1))  # the epoch in progress (1-based)
        self.position = int(state.get("state.position", 0))  # samples of it already done
        self.eta = state.get("state.eta")
        self.epoch_losses = state.get("state.epoch_losses")
        self.epoch_seconds = float(state.get("state.epoch_seconds", 0.0))
        # the last pass, saved before its evaluation finished (see _save_then_evaluate_concurrently)
        self.pending = (PendingPass(json.loads(str(state["state.pending_row"])))
                        if "state.pending_row" in state else None)
        # the untrained network's mean loss: the yardstick of a loss blow-up
        self.initial_loss = float(state["state.initial_loss"]) if "state.initial_loss" in state else None
        self._measure_initial_loss = net is None
        self._stop = False
        self.saved, self.saved_at = None, None  # what of this run is on disk: text, (epoch, position)
        self.phase = "setting up"
        self.bar = None  # the progress bar of the pass in progress
        self.evaluate_concurrently = evaluate_concurrently

    # ---------------------------------------------------------------- state
    @property
    def checkpoint_path(self):
        return self.out_dir / "checkpoint.npz"

    def save(self, mid_epoch=False):
        state = {"state.config": json.dumps(asdict(self.config)),
                 "state.history": json.dumps(self.history),
                 "state.epoch": self.epoch, "state.position": self.position if mid_epoch else 0}
        if self.pending is not None:  # (only at the end of a pass: see _save_then_evaluate_concurrently)
            state["state.pending_row"] = json.dumps(self.pending.row)
        if mid_epoch:
            state.update({"state.eta": self.eta, "state.epoch_losses": self.epoch_losses,
                          "state.epoch_seconds": self.epoch_seconds})
        if self.initial_loss is not None:
            state["state.initial_loss"] = self.initial_loss
        self.net.save(self.checkpoint_path, extra=state)

    def write_metrics(self):
        write_json_atomic(self.out_dir / "metrics.json", self.history)
        write_text_atomic(self.out_dir / "metrics.csv", csv_text(self.history, METRIC_FIELDS))

    def _save(self, what, mid_epoch=False):
        """save(); a failed write becomes a Lenet5Error saying what was and was not saved."""
        try:
            self.save(mid_epoch)
        except (OSError, Lenet5Error) as e:
            why = f"cannot write {self.checkpoint_path}: {reason(e)}" if isinstance(e, OSError) else str(e)
            raise Lenet5Error(f"{why}; {what} was not saved; {self.saved_note()}") from None
        self._mark_saved(self.epoch, self.position if mid_epoch else 0)

    def _mark_saved(self, epoch, position):
        self.saved_at = (epoch, position)
        done = (f"pass {epoch}, {position:,} of {len(self.train_x):,} samples" if position
                else f"after pass {epoch - 1}")
        self.saved = f"{self.checkpoint_path} ({done})"

    def _write_metrics(self):
        """write_metrics(), after the checkpoint they describe; a failure is a Lenet5Error."""
        try:
            self.write_metrics()
        except OSError as e:
            raise Lenet5Error(f"cannot write the metrics in {self.out_dir}: {reason(e)}; "
                              f"{self.saved_note()} (resuming from it writes them again)") from None

    def saved_note(self):
        """Where this run stands on disk, for messages."""
        if self.saved is None:
            return f"nothing of this run has been saved in {self.out_dir} yet"
        return f"the last saved checkpoint is {self.saved}"

    def _is_own(self, path):
        """Is the checkpoint at `path` this very run as it stands now (the one it resumes)?
        Same passes, same place in the pass, same settings apart from RESUME_CHANGEABLE."""
        try:
            _, state = LeNet5.load(path, with_state=True)
        except Lenet5Error:
            return False
        if "state.config" not in state:
            return False
        mine = json.loads(json.dumps(asdict(self.config)))
        theirs = saved_config(state["state.config"])
        for name in RESUME_CHANGEABLE:
            mine.pop(name, None), theirs.pop(name, None)
        pending = self.pending.row if self.pending is not None else None
        return (mine == theirs and int(state.get("state.epoch", 1)) == self.epoch
                and int(state.get("state.position", 0)) == self.position
                and json.loads(str(state.get("state.history", "[]"))) == self.history
                and json.loads(str(state.get("state.pending_row", "null"))) == pending)

    def _bytes_needed(self):
        """Room a checkpoint save takes: the new file beside the old one until the rename."""
        itemsize = self.net.theta.dtype.itemsize
        return 2 * (2 * self.net.theta.nbytes + len(self.train_x) * itemsize) + (1 << 20)

    # ---------------------------------------------------------------- running
    def _epoch_rng(self, epoch):
        """Each epoch's shuffle and Hessian sample come from (seed, epoch) alone, so a resumed
        run draws exactly what the uninterrupted run drew."""
        return np.random.default_rng([self.config.seed, epoch])

    def _step_sizes(self, epoch, rng):
        cfg = self.config
        if cfg.optimizer == "sgd":
            lr, eta = cfg.lr, np.full_like(self.net.theta, cfg.lr)
        else:
            lr = sdlm_epsilon(epoch)
            hess = hessian_estimate(self.net, self.source or self.train_x, rng, cfg.gn_seed, cfg.loss, cfg.j)
            eta = sdlm_rates(cfg, hess, lr)[2].astype(self.net.dtype)
        eta[self.frozen] = 0.0
        return lr, eta

    def _within_pass_rng(self, epoch, position):
        """The Hessian sample of a re-estimate inside a pass (hessian_every) comes from (seed,
        epoch, position) alone, so a resumed run draws it as the uninterrupted run did."""
        return np.random.default_rng([self.config.seed, epoch, position])

    def pass_rates(self, epoch=1):
        """(h, eta) of every parameter (theta's layout; fixed ones too: mask them with
        net.fixed_mask()), in the chosen parametrisation, that pass `epoch` would start
        with if it began now (its own Hessian sample); for the sdlm experiment."""
        rng = self._epoch_rng(epoch)
        if self.source is None:
            rng.permutation(len(self.train_x))  # (drawn first, as _run_epoch does)
        cfg = self.config
        hess = hessian_estimate(self.net, self.source or self.train_x, rng, cfg.gn_seed, cfg.loss, cfg.j)
        h, eta, _ = sdlm_rates(cfg, hess, sdlm_epsilon(epoch))
        return h, eta

    def check_folder(self, overwrite=False):
        """Fail now, before any time is spent, where run() would: a resumed state that does
        not fit the data, a run folder that cannot be written or holds another run."""
        self._check_state_fits()
        check_writable(self.out_dir, self._bytes_needed())
        if not overwrite:
            claim(self.out_dir, self._is_own)

    def run(self, overwrite=False):
        """Train up to config.epochs; returns the metrics history.

        Before any training the run folder is checked (a writable folder with room for a
        checkpoint), locked for the whole run, and claimed: it may hold nothing, or this run's
        own checkpoint (the one it resumes); another run's files are refused, or removed when
        `overwrite`. After every pass the checkpoint is written, then the metrics that
        describe it. SIGINT finishes the current chunk of samples, saves and raises
        Interrupted; a second SIGINT stops at once, and Interrupted says what was saved.
        Divergence and failed writes are Lenet5Errors that say the same."""
        self.check_folder(overwrite=True)  # (the claim proper is made holding the lock)
        with RunLock(self.out_dir):
            claim(self.out_dir, self._is_own, overwrite)
            if self.checkpoint_path.exists():  # this run's own checkpoint (claim checked it)
                self._mark_saved(self.epoch, self.position)
                if self.pending is not None:  # saved before its evaluation finished
                    self._finish_pending()
                elif self.history:
                    self._write_metrics()  # in case a failed write left them behind
            # (only the main thread may handle signals: a run in another thread, e.g. a job
            # on a Dask worker, is stopped by its caller instead)
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, self._on_sigint) if main else None
            try:
                while self.epoch <= self.config.epochs:
                    self._run_epoch()
            except KeyboardInterrupt:
                raise Interrupted(f"stopped by a second Ctrl-C during {self.phase}: "
                                  f"{self._lost()}; {self.saved_note()}") from None
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)
        return self.history

    def _on_sigint(self, signum, frame):
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def _lost(self):
        """What a stop right now loses, for the pass in progress (self.phase_epoch)."""
        epoch = self.phase_epoch
        if self.saved_at and self.saved_at >= (epoch + 1, 0):
            return f"pass {epoch} is saved"
        if self.saved_at and self.saved_at[0] == epoch and self.saved_at[1]:
            return f"nothing from pass {epoch} after sample {self.saved_at[1]:,} was saved"
        return f"nothing from pass {epoch} was saved"

    def _check_state_fits(self):
        """A resumed state must belong to this training set and hold a readable history."""
        n = len(self.train_x)
        if self.position and (self.position > n or len(self.epoch_losses) != n):
            raise Lenet5Error(f"the checkpoint was saved {self.position:,} samples into a pass of "
                              f"{len(self.epoch_losses):,} samples, but this run has {n:,}: resume "
                              "it with the same training data")
        for row in self.history:
            if set(row) != set(METRIC_FIELDS):
                raise Lenet5Error(f"the checkpoint's history has a pass with fields {sorted(row)}, "
                                  f"expected {list(METRIC_FIELDS)}")
        if self.pending is not None and set(self.pending.row) != set(METRIC_FIELDS) - set(ERROR_FIELDS):
            raise Lenet5Error(f"the checkpoint's unevaluated pass has fields {sorted(self.pending.row)}, "
                              f"expected {[f for f in METRIC_FIELDS if f not in ERROR_FIELDS]}")

    def _run_epoch(self):
        cfg, epoch, n = self.config, self.epoch, len(self.train_x)
        self.phase, self.phase_epoch = f"the start of pass {epoch}", epoch
        rng = self._epoch_rng(epoch)
        order = rng.permutation(n) if self.source is None else self.source.pass_order(epoch)
        start = time.perf_counter()
        if self.position == 0:
            self.lr, self.eta = self._step_sizes(epoch, rng)
            self.epoch_losses = np.zeros(n, dtype=self.net.dtype)
            self.epoch_seconds = 0.0
        else:
            self.lr = sdlm_epsilon(epoch) if cfg.optimizer == "sdlm" else cfg.lr
        self.phase = f"pass {epoch}"
        self.bar = bar = Progress(n, desc=f"epoch {epoch:2d}", enabled=self.progress)
        bar.update(self.position)
        step = cfg.batch_size if cfg.batch_size > 1 else CHUNK
        if self._measure_initial_loss and self.initial_loss is None:
            self.initial_loss = self._untrained_loss()
        try:
            while self.position < n:
                if (cfg.optimizer == "sdlm" and cfg.hessian_every and self.position
                        and self.position % cfg.hessian_every == 0):
                    self.lr, self.eta = self._step_sizes(epoch, self._within_pass_rng(epoch, self.position))
                a, b = self.position, min(self.position + step, n)
                self._train_slice(order[a:b], self.epoch_losses[a:b])
                self._check_divergence(order, a, b)
                self.position = b
                bar.update(b - a, note=f"loss {self.epoch_losses[:b].mean():.4f}")
                if self.pending is not None and self.pending.evaluated():
                    self._finish_pending()  # the pass before: its row, as soon as it is known
                if self._stop and self.position < n:
                    bar.close()
                    self.epoch_seconds += time.perf_counter() - start
                    self._finish_pending()  # (the checkpoint below holds the whole history)
                    self.phase = f"saving pass {epoch} mid-way"
                    self._save(f"pass {epoch} up to sample {self.position:,}", mid_epoch=True)
                    raise Interrupted(f"interrupted in epoch {epoch} after {self.position:,} of {n:,} "
                                      f"samples; saved {self.checkpoint_path}")
        except Lenet5Error:  # (divergence, a failed write): the pass before still gets its row
            self._finish_pending(quiet=True)
            raise
        bar.close()
        self.bar = None
        seconds = self.epoch_seconds + time.perf_counter() - start
        row = {"epoch": epoch, "lr": self.lr, "train_loss": float(np.mean(self.epoch_losses, dtype=np.float64)),
               "seconds": round(seconds, 3), "samples_per_s": round(n / seconds, 1)}
        self._finish_pending()
        concurrent = self.evaluate_concurrently if self.evaluate_concurrently is not None else nb.get_num_threads() > 1
        if concurrent and epoch < cfg.epochs and not self._stop:
            self._save_then_evaluate_concurrently(row)
        else:
            self._evaluate_then_save(row)
        if self._stop:
            raise Interrupted(f"interrupted after epoch {epoch}; saved {self.checkpoint_path}")

    def _save_then_evaluate_concurrently(self, row):
        """A pass with more to come: save it now, with its row pending, and evaluate a copy
        of its parameters on the evaluation thread while the next pass trains; the row joins
        the history when the errors are in (_finish_pending). A run stopped before that
        resumes from this checkpoint and evaluates it first."""
        epoch, n = row["epoch"], len(self.train_x)
        self.phase = f"saving pass {epoch}"
        self.pending = PendingPass(row, self.net.theta.copy())
        self.epoch, self.position = epoch + 1, 0
        try:
            self._save(f"pass {epoch}")
        except Lenet5Error:
            self.pending, self.epoch, self.position = None, epoch, n
            raise
        evaluated = LeNet5(self.pending.theta, self.net.prototypes, self.net.variant)
        self.pending.future = _EVALUATOR.submit(self._errors, evaluated, 1)

    def _evaluate_then_save(self, row):
        """The last pass (or one stopped by Ctrl-C: nothing to overlap with; or any pass when
        concurrent evaluation is off): evaluate it on every thread, then save the checkpoint, then
        the metrics that describe it."""
        epoch, n = row["epoch"], len(self.train_x)
        self.phase = f"the end-of-pass evaluation of pass {epoch}"
        row = with_errors(row, self._errors(self.net))
        self.phase = f"saving pass {epoch}"
        self.history.append(row)
        self.epoch, self.position = epoch + 1, 0
        try:
            self._save(f"pass {epoch} (test error {row['test_error_pct']:.2f}%)")  # first the checkpoint,
        except Lenet5Error:
            self.history.pop()
            self.epoch, self.position = epoch, n
            raise
        self._write_metrics()  # then the metrics that describe it
        self.log(format_row(row))

    def _errors(self, net, threads=None):
        """(train error %, test error %) of `net` (this run's network or a copy of it)."""
        return (error_pct(net, self.train_x, self.train_y, threads),
                error_pct(net, self.test_x, self.test_y, threads))

    def _finish_pending(self, quiet=False):
        """The pending pass's errors (waiting for its evaluation, or, after a resume, computing
        them from the checkpoint's parameters, which are the pass's), its row in the history,
        the metrics written and the row shown. quiet: a failed write is left to the resume."""
        pending = self.pending
        if pending is None:
            return
        if pending.future is not None:
            errors = pending.future.result()
        else:
            self.phase = f"the end-of-pass evaluation of pass {pending.row['epoch']}"
            errors = self._errors(self.net)
        self.pending = None
        row = with_errors(pending.row, errors)
        self.history.append(row)
        try:
            self._write_metrics()
        except Lenet5Error:
            if not quiet:
                raise
        if self.bar is not None:
            self.bar.clear()
        self.log(format_row(row))

    def _check_divergence(self, order, a, b):
        """Lenet5Error if the step that trained samples a..b broke the network: a NaN/inf loss
        or weight, weights past WEIGHT_LIMIT, or the recent loss past LOSS_BLOWUP times the
        untrained network's."""
        losses, theta = self.epoch_losses[a:b], self.net.theta
        k, cause = b - 1, None
        if not (np.isfinite(losses).all() and np.isfinite(theta).all()):
            bad = ~np.isfinite(losses)
            k = a + int(np.argmax(bad)) if bad.any() else k
            cause = "loss became NaN/inf"
        elif (peak := float(np.abs(theta).max())) > WEIGHT_LIMIT:
            cause = f"weights grew to {peak:.3g} (a trained LeNet-5's stay below 2)"
        elif self.initial_loss is not None:
            recent = float(np.mean(self.epoch_losses[max(0, b - CHUNK):b], dtype=np.float64))
            if recent > LOSS_BLOWUP * self.initial_loss:
                cause = (f"the loss rose to {recent:.4g}, over {LOSS_BLOWUP:g}x the untrained "
                         f"network's {self.initial_loss:.4g}")
        if cause:
            n = len(self.train_x)
            raise Lenet5Error(f"training diverged: {cause} at epoch {self.epoch}, sample {k + 1:,} of "
                              f"{n:,} (training image {order[k]}); {self.saved_note()}; {self._advice()}")

    def _untrained_loss(self, samples=100):
        """The mean loss of the (still untrained) network on the first training samples."""
        pick = slice(0, min(samples, len(self.train_x)))
        if self.config.batch_size == 1:  # online: the run's own kernel with a zero step, so that
            # a first run compiles no batch driver just for this (~10 s of compilation)
            n, net = pick.stop, self.net
            losses = np.empty(n, net.dtype)
            engine.train_online(self.train_x, self.train_y, np.arange(n, dtype=np.int64), net.theta.copy(),
                                np.zeros_like(net.theta), net.spec(self.config.loss, self.config.j), losses)
        else:
            losses, _ = self.net.losses_and_flat_gradient(self.train_x[pick], self.train_y[pick],
                                                          loss=self.config.loss, j=self.config.j)
        return float(np.mean(losses, dtype=np.float64))

    def _advice(self):
        """What to change when training diverges: the step size of the optimizer in use."""
        cfg = self.config
        if cfg.optimizer == "sgd":
            return f"lower --lr (it is {cfg.lr:g}; the default is {TrainConfig.lr:g})"
        return (f"raise --mu, SDLM's damping (it is {cfg.mu:g}), or use a recipe that is stable "
                f"at its own mu (--recipe {' or '.join(RECIPES)})")

    def _train_slice(self, idx, losses):
        cfg, net = self.config, self.net
        if cfg.batch_size == 1:
            images, labels = self.train_x, self.train_y
            if self.source is not None:  # render this chunk's distorted samples
                images, labels = self.source.chunk(idx)
                images = np.ascontiguousarray(images, dtype=net.dtype)
                labels = np.ascontiguousarray(labels, dtype=np.int64)
                idx = np.arange(len(idx), dtype=np.int64)
            engine.train_online(images, labels, idx, net.theta, self.eta, net.spec(cfg.loss, cfg.j),
                                losses)
            return
        batch_losses, grad = net.losses_and_flat_gradient(self.train_x[idx], self.train_y[idx],
                                                          loss=cfg.loss, j=cfg.j)
        net.theta -= self.eta * grad
        losses[:] = batch_losses


def with_errors(row, errors):
    """A pass's metrics row completed with its (train, test) error %, in METRIC_FIELDS order."""
    row = dict(row, **dict(zip(ERROR_FIELDS, errors)))
    return {name: row[name] for name in METRIC_FIELDS}


def format_row(row):
    return (f"epoch {row['epoch']:3d}  lr {row['lr']:.1e}  loss {row['train_loss']:.4f}  "
            f"train err {row['train_error_pct']:5.2f}%  test err {row['test_error_pct']:5.2f}%  "
            f"{row['seconds']:6.1f}s  {row['samples_per_s']:,.0f} samples/s")
