"""The end-of-pass evaluation (train and test error after every pass), and the metrics row
it completes. Every pass but the last is evaluated on a second thread, on a copy of the pass's
final parameters, while the next pass trains: one core each (the engine's kernels release the
GIL), so 70,000 forward passes cost the protocol no wall time.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_error_pct", "test_error_pct", "seconds",
                 "samples_per_s")
ERROR_FIELDS = ("train_error_pct", "test_error_pct")  # what the end-of-pass evaluation adds

EVALUATOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenet5-evaluation")


def error_pct(net, images, labels, threads=None):
    """Error % of `net` on `images` already checked (core.inputs.check_images) and laid out as its
    engine takes them (C-contiguous, its dtype): one batch, no per-call checks or copies (the
    trainer evaluates 70,000 images after every pass), on `threads` threads (default all),
    through the training loop's compiled code (engine.forward_batch's shared_loop)."""
    outputs = net.forward_checked(images, threads, shared_loop=True)
    return 100.0 * float(np.mean(outputs.argmin(axis=1) != labels))


class PendingPass:
    """A finished pass whose metrics row still lacks its train and test error (ERROR_FIELDS):
    `row`, and the evaluation of the parameters it ended with (`future`; None when the errors
    are still to be computed, as after a resume)."""

    def __init__(self, row, future=None):
        self.row, self.future = row, future

    @classmethod
    def evaluate_in_background(cls, row, errors, net):
        """The pass of `row`, its errors(net) computed on the evaluation thread on one core."""
        return cls(row, EVALUATOR.submit(errors, net, 1))

    def evaluated(self):
        """Are its errors in (without waiting)?"""
        return self.future is not None and self.future.done()


def with_errors(row, errors):
    """A pass's metrics row completed with its (train, test) error %, in METRIC_FIELDS order."""
    row = dict(row, **dict(zip(ERROR_FIELDS, errors)))
    return {name: row[name] for name in METRIC_FIELDS}


def format_row(row):
    return (f"epoch {row['epoch']:3d}  lr {row['lr']:.1e}  loss {row['train_loss']:.4f}  "
            f"train err {row['train_error_pct']:5.2f}%  test err {row['test_error_pct']:5.2f}%  "
            f"{row['seconds']:6.1f}s  {row['samples_per_s']:,.0f} samples/s")
