"""Training with the paper's protocol (Appendix C): online stochastic diagonal
Levenberg-Marquardt, step sizes re-estimated from the Hessian diagonal before every pass.
Plain SGD (online or mini-batch) is available for comparison.

Everything needed to continue a run is in its checkpoint (`state.*` arrays), so an
interrupted run resumed with `--resume` ends exactly where the uninterrupted run would.
The pieces: settings in `config`, step sizes in `step_sizes`, the end-of-pass evaluation in
`evaluation`, the run's files in `run_checkpoint`, stopping on a signal in `interruption`,
divergence checks in `divergence`; this module is the loop that ties them together.
"""
import json
import time
from pathlib import Path

import numba as nb
import numpy as np

from ..core import engine
from ..core.inputs import check_images
from ..core.model import DTYPES, LeNet5
from ..errors import Lenet5Error
from .config import RECIPES, TrainConfig
from .distorted_source import DistortedSource
from .divergence import divergence
from .evaluation import ERROR_FIELDS, METRIC_FIELDS, PendingPass, error_pct, format_row, with_errors
from .interruption import Interrupted, StopRequest
from .progress import Progress
from .run_checkpoint import RunCheckpoint, bytes_needed
from .rundir import RunLock, check_writable, claim
from .step_sizes import CHUNK, SUBSAMPLING_COEFFS, hessian_estimate, sdlm_rates


class Trainer:
    """Runs passes over the training set, writes metrics and checkpoints into `out_dir`."""

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
        self.net = net if net is not None else new_network(config, dtype)
        if self.net.dtype != dtype:
            raise Lenet5Error(f"checkpoint is {self.net.dtype}, run asks for {config.dtype}")
        if self.net.variant != config.variant:
            raise Lenet5Error(f"checkpoint's network is {self.net.variant.describe()}, the run asks "
                              f"for {config.variant.describe()}")
        self.frozen = self.net.fixed_mask()  # parameters never stepped (eta = 0)
        self.files = RunCheckpoint(Path(out_dir))
        self.log, self.progress = log, progress
        self.evaluate_concurrently = evaluate_concurrently
        self.stop = StopRequest()
        self._restore(state or {})
        self._measure_initial_loss = net is None
        self.phase, self.phase_epoch = "setting up", self.epoch
        self.bar = None  # the progress bar of the pass in progress

    def _restore(self, state):
        """Where the run stands: a new run, or a checkpoint's `state.*` entries."""
        self.history = json.loads(str(state["state.history"])) if "state.history" in state else []
        self.epoch = int(state.get("state.epoch", 1))  # the pass in progress (1-based)
        self.position = int(state.get("state.position", 0))  # samples of it already done
        self.lr, self.eta = None, state.get("state.eta")
        self.hessian = state.get("state.hessian")  # the last estimate of h, kept (hessian_passes > 1)
        self.epoch_losses = state.get("state.epoch_losses")
        self.epoch_seconds = float(state.get("state.epoch_seconds", 0.0))
        # the last pass, saved before its evaluation finished (see _save_then_evaluate_concurrently)
        self.pending = (PendingPass(json.loads(str(state["state.pending_row"])))
                        if "state.pending_row" in state else None)
        # the untrained network's mean loss: the yardstick of a loss blow-up
        self.initial_loss = float(state["state.initial_loss"]) if "state.initial_loss" in state else None

    # ---------------------------------------------------------------- the run's files
    @property
    def out_dir(self):
        return self.files.folder

    @out_dir.setter
    def out_dir(self, folder):
        self.files.folder = Path(folder)

    @property
    def checkpoint_path(self):
        return self.files.path

    @property
    def saved(self):
        return self.files.saved

    def state(self, mid_pass=False):
        """The checkpoint's `state.*` entries: everything needed to go on from here."""
        state = {"state.config": self.config.to_json(), "state.history": json.dumps(self.history),
                 "state.epoch": self.epoch, "state.position": self.position if mid_pass else 0}
        if self.pending is not None:  # (only at the end of a pass: see _save_then_evaluate_concurrently)
            state["state.pending_row"] = json.dumps(self.pending.row)
        if mid_pass:
            state.update({"state.eta": self.eta, "state.epoch_losses": self.epoch_losses,
                          "state.epoch_seconds": self.epoch_seconds})
        if self.initial_loss is not None:
            state["state.initial_loss"] = self.initial_loss
        if self.config.hessian_passes > 1 and self.hessian is not None:
            state["state.hessian"] = self.hessian
        return state

    def save(self, what, mid_pass=False):
        at = (self.epoch, self.position if mid_pass else 0)
        self.files.save(self.net, self.state(mid_pass), what, at, len(self.train_x))

    def _is_own(self, path):
        pending = self.pending.row if self.pending is not None else None
        return self.files.holds(path, self.config, self.epoch, self.position, self.history, pending)

    def check_folder(self, overwrite=False):
        """Fail now, before any time is spent, where run() would: a resumed state that does
        not fit the data, a run folder that cannot be written or holds another run."""
        self._check_state_fits()
        check_writable(self.out_dir, bytes_needed(self.net, len(self.train_x)))
        if not overwrite:
            claim(self.out_dir, self._is_own)

    # ---------------------------------------------------------------- running
    def run(self, overwrite=False):
        """Train up to config.epochs; returns the metrics history.

        Before any training the run folder is checked (a writable folder with room for a
        checkpoint), locked for the whole run, and claimed: it may hold nothing, or this run's
        own checkpoint (the one it resumes); another run's files are refused, or removed when
        `overwrite`. After every pass the checkpoint is written, then the metrics that
        describe it. Ctrl-C or SIGTERM finishes the current chunk of samples, saves and raises
        Interrupted; a second one stops at once, and Interrupted says what was saved.
        Divergence and failed writes are Lenet5Errors that say the same."""
        self.check_folder(overwrite=True)  # (the claim proper is made holding the lock)
        with RunLock(self.out_dir):
            claim(self.out_dir, self._is_own, overwrite)
            if self.checkpoint_path.exists():  # this run's own checkpoint (claim checked it)
                self.files.mark_saved((self.epoch, self.position), len(self.train_x))
                if self.pending is not None:  # saved before its evaluation finished
                    self._finish_pending()
                elif self.history:
                    self.files.write_metrics(self.history)  # in case a failed write left them behind
            with self.stop:
                try:
                    while self.epoch <= self.config.epochs:
                        self._run_pass()
                except KeyboardInterrupt:
                    by = self.stop.requested or "Ctrl-C"
                    raise Interrupted(f"stopped by a second {by} during {self.phase}: "
                                      f"{self.files.lost(self.phase_epoch)}; {self.files.note()}",
                                      by) from None
        return self.history

    def _run_pass(self):
        """One pass over the training set, chunk by chunk; then its evaluation and checkpoint."""
        cfg, epoch, n = self.config, self.epoch, len(self.train_x)
        self.phase, self.phase_epoch = f"the start of pass {epoch}", epoch
        rng = self._epoch_rng(epoch)
        order = rng.permutation(n) if self.source is None else self.source.pass_order(epoch)
        start = time.perf_counter()
        if self.position == 0:
            kept = self.hessian is not None and (epoch - 1) % cfg.hessian_passes != 0
            self.lr, self.eta = self._step_sizes(epoch, rng, keep_hessian=kept)
            self.epoch_losses, self.epoch_seconds = np.zeros(n, dtype=self.net.dtype), 0.0
        else:  # resumed mid-pass with the checkpoint's step sizes
            self.lr = cfg.epsilon(epoch) if cfg.optimizer == "sdlm" else cfg.lr
        self.phase = f"pass {epoch}"
        self.bar = Progress(n, desc=f"epoch {epoch:2d}", enabled=self.progress)
        self.bar.update(self.position)
        step = cfg.batch_size if cfg.batch_size > 1 else CHUNK
        if self._measure_initial_loss and self.initial_loss is None:
            self.initial_loss = self._untrained_loss()
        try:
            while self.position < n:
                if self._hessian_due():
                    self.lr, self.eta = self._step_sizes(epoch, self._within_pass_rng(epoch, self.position))
                a, b = self.position, min(self.position + step, n)
                self._train_slice(order[a:b], self.epoch_losses[a:b])
                self._check_divergence(order, a, b)
                self.position = b
                self.bar.update(b - a, note=f"loss {self.epoch_losses[:b].mean():.4f}")
                if self.pending is not None and self.pending.evaluated():
                    self._finish_pending()  # the pass before: its row, as soon as it is known
                if self.stop.requested and self.position < n:
                    self._stop_mid_pass(time.perf_counter() - start)
        except Lenet5Error:  # (divergence, a failed write): the pass before still gets its row
            self._finish_pending(quiet=True)
            raise
        self.bar.close()
        self.bar = None
        self._end_pass(self.epoch_seconds + time.perf_counter() - start)

    def _hessian_due(self):
        """A re-estimate of h inside the pass (hessian_every), SDLM only."""
        cfg = self.config
        return (cfg.optimizer == "sdlm" and cfg.hessian_every and self.position
                and self.position % cfg.hessian_every == 0)

    def _stop_mid_pass(self, seconds):
        """Asked to stop inside a pass: save where it stands (the history whole) and raise."""
        epoch, n = self.epoch, len(self.train_x)
        self.bar.close()
        self.epoch_seconds += seconds
        self._finish_pending()  # (the checkpoint below holds the whole history)
        self.phase = f"saving pass {epoch} mid-way"
        self.save(f"pass {epoch} up to sample {self.position:,}", mid_pass=True)
        raise Interrupted(f"interrupted in epoch {epoch} after {self.position:,} of {n:,} "
                          f"samples; saved {self.checkpoint_path}", self.stop.requested)

    def _end_pass(self, seconds):
        """The pass's metrics row, its evaluation and its checkpoint."""
        epoch, n = self.epoch, len(self.train_x)
        row = {"epoch": epoch, "lr": self.lr, "train_loss": float(np.mean(self.epoch_losses, dtype=np.float64)),
               "seconds": round(seconds, 3), "samples_per_s": round(n / seconds, 1)}
        self._finish_pending()
        concurrent = self.evaluate_concurrently if self.evaluate_concurrently is not None else nb.get_num_threads() > 1
        if concurrent and epoch < self.config.epochs and not self.stop.requested:
            self._save_then_evaluate_concurrently(row)
        else:
            self._evaluate_then_save(row)
        if self.stop.requested:
            raise Interrupted(f"interrupted after epoch {epoch}; saved {self.checkpoint_path}",
                              self.stop.requested)

    def _train_slice(self, idx, losses):
        """Train on the samples `idx` (in order), their losses into `losses`."""
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

    # ---------------------------------------------------------------- step sizes
    def _epoch_rng(self, epoch):
        """Each epoch's shuffle and Hessian sample come from (seed, epoch) alone, so a resumed
        run draws exactly what the uninterrupted run drew."""
        return np.random.default_rng([self.config.seed, epoch])

    def _within_pass_rng(self, epoch, position):
        """The Hessian sample of a re-estimate inside a pass (hessian_every) comes from (seed,
        epoch, position) alone, so a resumed run draws it as the uninterrupted run did."""
        return np.random.default_rng([self.config.seed, epoch, position])

    def _step_sizes(self, epoch, rng, keep_hessian=False):
        """(epsilon or lr, eta per parameter) for pass `epoch`; SDLM estimates h afresh unless
        keep_hessian (hessian_passes: a pass between estimates steps with the last one)."""
        cfg = self.config
        if cfg.optimizer == "sgd":
            lr, eta = cfg.lr, np.full_like(self.net.theta, cfg.lr)
        else:
            lr = cfg.epsilon(epoch)
            if not keep_hessian:
                self.hessian = hessian_estimate(self.net, self.source or self.train_x, rng, cfg.gn_seed,
                                                cfg.loss, cfg.j, cfg.hessian_samples)
            eta = sdlm_rates(cfg, self.hessian, lr)[2].astype(self.net.dtype)
        eta[self.frozen] = 0.0
        return lr, eta

    def pass_rates(self, epoch=1):
        """(h, eta) of every parameter (theta's layout; fixed ones too: mask them with
        net.fixed_mask()), in the chosen parametrisation, that pass `epoch` would start
        with if it began now (its own Hessian sample); for the sdlm experiment."""
        rng = self._epoch_rng(epoch)
        if self.source is None:
            rng.permutation(len(self.train_x))  # (drawn first, as _run_pass does)
        cfg = self.config
        hess = hessian_estimate(self.net, self.source or self.train_x, rng, cfg.gn_seed, cfg.loss, cfg.j,
                                cfg.hessian_samples)
        h, eta, _ = sdlm_rates(cfg, hess, cfg.epsilon(epoch))
        return h, eta

    # ---------------------------------------------------------------- evaluation
    def _save_then_evaluate_concurrently(self, row):
        """A pass with more to come: save it now, with its row pending, and evaluate a copy
        of its parameters on the evaluation thread while the next pass trains; the row joins
        the history when the errors are in (_finish_pending). A run stopped before that
        resumes from this checkpoint and evaluates it first."""
        epoch, n = row["epoch"], len(self.train_x)
        self.phase = f"saving pass {epoch}"
        self.pending = PendingPass(row)
        self.epoch, self.position = epoch + 1, 0
        try:
            self.save(f"pass {epoch}")
        except Lenet5Error:
            self.pending, self.epoch, self.position = None, epoch, n
            raise
        copy = LeNet5(self.net.theta.copy(), self.net.prototypes, self.net.variant)
        self.pending = PendingPass.evaluate_in_background(row, self._errors, copy)

    def _evaluate_then_save(self, row):
        """The last pass (or one stopped by a signal: nothing to overlap with; or any pass when
        concurrent evaluation is off): evaluate it on every thread, then save the checkpoint, then
        the metrics that describe it."""
        epoch, n = row["epoch"], len(self.train_x)
        self.phase = f"the end-of-pass evaluation of pass {epoch}"
        row = with_errors(row, self._errors(self.net))
        self.phase = f"saving pass {epoch}"
        self.history.append(row)
        self.epoch, self.position = epoch + 1, 0
        try:
            self.save(f"pass {epoch} (test error {row['test_error_pct']:.2f}%)")  # first the checkpoint,
        except Lenet5Error:
            self.history.pop()
            self.epoch, self.position = epoch, n
            raise
        self.files.write_metrics(self.history)  # then the metrics that describe it
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
            self.files.write_metrics(self.history)
        except Lenet5Error:
            if not quiet:
                raise
        if self.bar is not None:
            self.bar.clear()
        self.log(format_row(row))

    # ---------------------------------------------------------------- checks
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

    def _check_divergence(self, order, a, b):
        """Lenet5Error if the step that trained samples a..b broke the network (divergence)."""
        recent = float(np.mean(self.epoch_losses[max(0, b - CHUNK):b], dtype=np.float64))
        cause, k = divergence(self.epoch_losses[a:b], self.net.theta, recent, self.initial_loss)
        if cause:
            k += a
            raise Lenet5Error(f"training diverged: {cause} at epoch {self.epoch}, sample {k + 1:,} of "
                              f"{len(self.train_x):,} (training image {order[k]}); {self.files.note()}; "
                              f"{self._advice()}")

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
        *others, last = RECIPES
        return (f"raise --mu, SDLM's damping (it is {cfg.mu:g}), or use a recipe that is stable "
                f"at its own mu (--recipe {', '.join(others)} or {last})")


def new_network(config, dtype):
    """The untrained network of `config`: its variant, its initial scale, its seed."""
    net = LeNet5.init(seed=config.seed, dtype=dtype, variant=config.variant, scale=config.init)
    if config.subsample == "average":  # the draw was c_a; store c_s = c_a / 4
        for name in SUBSAMPLING_COEFFS:
            net.params[name][...] *= 0.25
    return net
