"""Training with the paper's protocol (Appendix C): online stochastic diagonal
Levenberg-Marquardt, step sizes re-estimated from the Hessian diagonal before every pass.
Plain SGD (online or mini-batch) is available for comparison.

Everything needed to continue a run is in its checkpoint (`state.*` arrays), so an
interrupted run resumed with `--resume` ends exactly where the uninterrupted run would.
"""
import json
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import engine
from .errors import Lenet5Error
from .files import csv_text, write_json_atomic, write_text_atomic
from .model import C1_PAIRS, C3_WIRINGS, DTYPES, MAP_J, LeNet5, loss_code
from .progress import Progress

# Appendix C: eta_k = epsilon / (mu + h_kk), h re-estimated on 500 samples before each pass.
# The paper prints mu = 0.02. Here that diverges: at the paper's initialisation activations
# are small, so h_kk is ~1e-5 for most weights and their step is epsilon/mu = 0.025 (2.5x the
# largest stable plain-SGD rate); as activations grow within the pass the steps overshoot.
# It also diverges when started from a network trained for one pass. Test error after 20
# passes, seeds 0/1/2: mu 0.5 -> 1.23/1.06/1.21%, mu 1.0 -> 1.02/1.12/1.16% (README, "Choices
# the paper left open"). `--mu 0.02` runs the printed value.
PAPER_MU = 0.02
SDLM_MU = 1.0
HESSIAN_SAMPLES = 500
# epsilon by pass (1-based): 0.0005 for passes 1-2, 0.0002 for 3-5, 0.0001 for 6-8,
# 0.00005 for 9-12, 0.00001 after
EPSILON_SCHEDULE = ((2, 5e-4), (5, 2e-4), (8, 1e-4), (12, 5e-5))
EPSILON_FINAL = 1e-5

# S2/S4 variants: the paper's trainable coefficient and bias, or a fixed 2x2 average (the
# coefficient held at 1/4 and the bias at 0 by a zero step size; the squashing stays).
POOLINGS = ("trainable", "average")
SUBSAMPLING_PARAMS = ("S2.coeff", "S2.bias", "S4.coeff", "S4.bias")

CHUNK = 500  # samples per kernel call: the granularity of progress, Ctrl-C and NaN checks
METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_error_pct", "test_error_pct", "seconds",
                 "samples_per_s")


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
    mu: float = SDLM_MU  # SDLM only
    train_size: int = 0  # 0: all 60,000
    dtype: str = "float32"
    distortions: int = 0  # distorted copies added to the training set (paper: 540,000)
    c3: str = "table"  # C3 wiring: "table" (LeCun's Table I) or "full"
    pooling: str = "trainable"  # S2/S4: "trainable" (paper) or "average" (coefficient 1/4, bias 0, frozen)

    def check(self):
        if self.optimizer not in ("sdlm", "sgd"):
            raise Lenet5Error(f"unknown optimizer {self.optimizer!r}: choose sdlm or sgd")
        loss_code(self.loss)
        if self.optimizer == "sdlm" and self.batch_size != 1:
            raise Lenet5Error("sdlm is the paper's online method: use --batch-size 1")
        if self.batch_size < 1 or self.epochs < 0 or self.train_size < 0 or self.lr <= 0 or self.mu <= 0:
            raise Lenet5Error("--batch-size, --lr and --mu must be positive, --epochs/--train-size >= 0")
        if self.c3 not in C3_WIRINGS:
            raise Lenet5Error(f"unknown C3 wiring {self.c3!r}: choose one of {', '.join(C3_WIRINGS)}")
        if self.pooling not in POOLINGS:
            raise Lenet5Error(f"unknown pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}")
        if self.distortions < 0:
            raise Lenet5Error("--distortions must be >= 0")
        if self.distortions and self.batch_size != 1:
            raise Lenet5Error("training on distorted copies is online only: use --batch-size 1")
        if self.dtype not in DTYPES:
            raise Lenet5Error(f"unknown dtype {self.dtype!r}: choose float32 or float64")


def hessian_estimate(net, images, rng):
    """Mean diagonal Gauss-Newton term h_kk over HESSIAN_SAMPLES random training images
    (`images`: an array, or a source with `__len__` and `images(indices)`)."""
    pick = np.sort(rng.choice(len(images), size=min(HESSIAN_SAMPLES, len(images)), replace=False))
    chosen = images[pick] if isinstance(images, np.ndarray) else images.images(pick)
    hess = np.zeros_like(net.theta)
    engine.hessian_diagonal(np.ascontiguousarray(chosen, dtype=net.dtype), net.theta,
                            net.prototypes, C1_PAIRS, net.c3_pairs, hess)
    return hess / len(pick)


class DistortedSource:
    """The paper's distorted training set: the originals plus `copies` randomly distorted
    copies made once (deterministically by index, rendered when a chunk needs them, so the
    540,000 copies never sit in memory). Each pass draws `per_pass` samples (the size of the
    original set) from a stream of shuffles of the whole pool, so 20 passes of 60,000 see each
    of the 600,000 samples about twice."""

    def __init__(self, images, labels, copies, seed):
        from .data.distort import DistortedPool

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


def error_pct(net, images, labels):
    return 100.0 * float(np.mean(net.predict(images) != labels))


class Interrupted(Exception):
    pass


class Trainer:
    """Runs epochs, writes metrics and checkpoints into `out_dir`."""

    def __init__(self, config, data, out_dir, net=None, state=None, log=print, progress=True):
        config.check()
        self.config = config
        dtype = DTYPES[config.dtype]
        (train_x, train_y), (test_x, test_y) = data
        if config.train_size:
            train_x, train_y = train_x[:config.train_size], train_y[:config.train_size]
        self.train_x = np.ascontiguousarray(train_x, dtype=dtype)
        self.train_y = np.ascontiguousarray(train_y, dtype=np.int64)
        self.test_x = np.ascontiguousarray(test_x, dtype=dtype)
        self.test_y = np.ascontiguousarray(test_y, dtype=np.int64)
        self.source = (DistortedSource(self.train_x, self.train_y, config.distortions, config.seed)
                       if config.distortions else None)
        self.out_dir = Path(out_dir)
        self.net = net if net is not None else LeNet5.init(seed=config.seed, dtype=dtype, c3=config.c3)
        if self.net.dtype != dtype:
            raise Lenet5Error(f"checkpoint is {self.net.dtype}, run asks for {config.dtype}")
        if self.net.c3 != config.c3:
            raise Lenet5Error(f"checkpoint's C3 is {self.net.c3!r}, run asks for {config.c3!r}")
        self.frozen = np.zeros_like(self.net.theta, dtype=bool)  # parameters never stepped
        if config.pooling == "average":
            views = LeNet5.views(self.frozen)
            for name in SUBSAMPLING_PARAMS:
                views[name][...] = True
            if net is None:  # a fresh network: the fixed average
                for name in SUBSAMPLING_PARAMS:
                    self.net.params[name][...] = 0.25 if name.endswith("coeff") else 0.0
        self.log, self.progress = log, progress
        state = state or {}
        self.history = json.loads(str(state["state.history"])) if "state.history" in state else []
        self.epoch = int(state.get("state.epoch", 1))  # the epoch in progress (1-based)
        self.position = int(state.get("state.position", 0))  # samples of it already done
        self.eta = state.get("state.eta")
        self.epoch_losses = state.get("state.epoch_losses")
        self.epoch_seconds = float(state.get("state.epoch_seconds", 0.0))
        self._stop = False

    # ---------------------------------------------------------------- state
    @property
    def checkpoint_path(self):
        return self.out_dir / "checkpoint.npz"

    def save(self, mid_epoch=False):
        state = {"state.config": json.dumps(asdict(self.config)),
                 "state.history": json.dumps(self.history),
                 "state.epoch": self.epoch, "state.position": self.position if mid_epoch else 0}
        if mid_epoch:
            state.update({"state.eta": self.eta, "state.epoch_losses": self.epoch_losses,
                          "state.epoch_seconds": self.epoch_seconds})
        self.net.save(self.checkpoint_path, extra=state)

    def write_metrics(self):
        write_json_atomic(self.out_dir / "metrics.json", self.history)
        write_text_atomic(self.out_dir / "metrics.csv", csv_text(self.history, METRIC_FIELDS))

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
            hess = hessian_estimate(self.net, self.source or self.train_x, rng)
            eta = (lr / (cfg.mu + hess)).astype(self.net.dtype)
        eta[self.frozen] = 0.0
        return lr, eta

    def run(self):
        """Train up to config.epochs; returns the metrics history. Raises Interrupted after
        saving when SIGINT arrives (the current chunk of samples is finished first)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while self.epoch <= self.config.epochs:
                self._run_epoch()
        finally:
            signal.signal(signal.SIGINT, previous)
        return self.history

    def _on_sigint(self, signum, frame):
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def _run_epoch(self):
        cfg, epoch, n = self.config, self.epoch, len(self.train_x)
        rng = self._epoch_rng(epoch)
        order = rng.permutation(n) if self.source is None else self.source.pass_order(epoch)
        start = time.perf_counter()
        if self.position == 0:
            self.lr, self.eta = self._step_sizes(epoch, rng)
            self.epoch_losses = np.zeros(n, dtype=self.net.dtype)
            self.epoch_seconds = 0.0
        else:
            self.lr = sdlm_epsilon(epoch) if cfg.optimizer == "sdlm" else cfg.lr
        bar = Progress(n, desc=f"epoch {epoch:2d}", enabled=self.progress)
        bar.update(self.position)
        step = cfg.batch_size if cfg.batch_size > 1 else CHUNK
        while self.position < n:
            a, b = self.position, min(self.position + step, n)
            self._train_slice(order[a:b], self.epoch_losses[a:b])
            bad = ~np.isfinite(self.epoch_losses[a:b])
            if bad.any() or not np.isfinite(self.net.theta).all():
                k = a + int(np.argmax(bad)) if bad.any() else b - 1
                raise Lenet5Error(
                    f"training diverged: loss became NaN/inf at epoch {epoch}, sample {k + 1} of "
                    f"{n} (training image {order[k]}); the last good checkpoint is "
                    f"{self.checkpoint_path} -- try a smaller learning rate")
            self.position = b
            bar.update(b - a, note=f"loss {self.epoch_losses[:b].mean():.4f}")
            if self._stop and self.position < n:
                bar.close()
                self.epoch_seconds += time.perf_counter() - start
                self.save(mid_epoch=True)
                raise Interrupted(f"interrupted in epoch {epoch} after {self.position:,} of {n:,} "
                                  f"samples; saved {self.checkpoint_path}")
        bar.close()
        seconds = self.epoch_seconds + time.perf_counter() - start
        row = {
            "epoch": epoch, "lr": self.lr,
            "train_loss": float(np.mean(self.epoch_losses, dtype=np.float64)),
            "train_error_pct": error_pct(self.net, self.train_x, self.train_y),
            "test_error_pct": error_pct(self.net, self.test_x, self.test_y),
            "seconds": round(seconds, 3), "samples_per_s": round(n / seconds, 1),
        }
        self.history.append(row)
        self.epoch, self.position = epoch + 1, 0
        self.write_metrics()
        self.save()
        self.log(format_row(row))
        if self._stop:
            raise Interrupted(f"interrupted after epoch {epoch}; saved {self.checkpoint_path}")

    def _train_slice(self, idx, losses):
        cfg, net = self.config, self.net
        code = loss_code(cfg.loss)
        j = net.dtype.type(cfg.j)
        if cfg.batch_size == 1:
            images, labels = self.train_x, self.train_y
            if self.source is not None:  # render this chunk's distorted samples
                images, labels = self.source.chunk(idx)
                images = np.ascontiguousarray(images, dtype=net.dtype)
                labels = np.ascontiguousarray(labels, dtype=np.int64)
                idx = np.arange(len(idx), dtype=np.int64)
            engine.train_online(images, labels, idx, net.theta, self.eta,
                                net.prototypes, C1_PAIRS, net.c3_pairs, code, j, losses)
            return
        batch_losses, grad = net.losses_and_flat_gradient(self.train_x[idx], self.train_y[idx],
                                                          loss=cfg.loss, j=cfg.j)
        net.theta -= self.eta * grad
        losses[:] = batch_losses


def format_row(row):
    return (f"epoch {row['epoch']:3d}  lr {row['lr']:.1e}  loss {row['train_loss']:.4f}  "
            f"train err {row['train_error_pct']:5.2f}%  test err {row['test_error_pct']:5.2f}%  "
            f"{row['seconds']:6.1f}s  {row['samples_per_s']:,.0f} samples/s")
