"""Rejecting doubtful digits: the paper's confidence measure and the threshold for 0.5% error.

The paper (section V-B, Fig. 10) measures how many test patterns must be rejected for the
rest to reach 0.5% error, rejecting by "the difference between the scores of the top two
classes". With RBF outputs (squared distances, smaller = better) that is the gap

    gap = second-smallest output - smallest output,

and a pattern is accepted when its gap is at least a threshold. `threshold_for` finds the
smallest threshold whose accepted test patterns have at most the target error: sort the
patterns by gap, largest first, and take the longest run of most-confident patterns with
error <= target that ends where the gap changes (so "gap >= threshold" accepts exactly that
run). The threshold is the smallest accepted gap.

`lenet5 predict`, `lenet5 show` and the demo label a digit "confident" or "reject" by the
threshold of their checkpoint: `rejection_threshold(checkpoint)`. It reads the sidecar
`<checkpoint>.rejection.json` that `lenet5 experiment rejection` writes beside the checkpoint
it analyses (the shipped network has one, so no MNIST data is needed); without a valid sidecar
it computes the threshold on the MNIST test set when the files are there, else returns None.
"""
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.paper import PAPER_RESULTS
from ..errors import Lenet5Error
from ..files import UnreadableFile, open_regular, write_json_atomic

TARGET_ERROR_PCT = PAPER_RESULTS["rejection_target_error_pct"]  # 0.5
SIDECAR_SUFFIX = ".rejection.json"
NO_THRESHOLD = ("no rejection threshold is known for this checkpoint: run `lenet5 experiment "
                "rejection --checkpoint CKPT` once, or give the MNIST test set (--data-dir)")
UNREACHABLE = ("no rejection threshold: this network does not reach {target:g}% error on any share "
               "of the MNIST test set ({error:.2f}% test error), so no answer is marked confident "
               "or rejected")


def top2_gap(outputs):
    """Second-smallest minus smallest RBF output, per row of (N, 10) (or of one (10,) row)."""
    y = np.asarray(outputs, dtype=np.float64)
    two = np.sort(y, axis=-1)[..., :2]
    return two[..., 1] - two[..., 0]


def rejection_curve(outputs, labels):
    """Sort test patterns by confidence (gap, largest first); accepting the k most confident
    gives an error; returns (rejected %, error %) for k = 1..N."""
    gap = top2_gap(outputs)
    wrong = (np.argmin(outputs, axis=1) != labels)[np.argsort(-gap, kind="stable")]
    n = len(labels)
    accepted = np.arange(1, n + 1)
    return 100.0 * (n - accepted) / n, 100.0 * np.cumsum(wrong) / accepted


@dataclass(frozen=True)
class Threshold:
    """Accept a digit when its top-2 gap >= `gap`; on the test set that rejects `reject_pct`%
    and leaves `accepted_error_pct`% error (<= `target_error_pct`)."""
    gap: float
    target_error_pct: float
    reject_pct: float
    accepted_error_pct: float
    test_error_pct: float
    source: str = ""

    def accepts(self, gap):
        return bool(gap >= self.gap)

    @property
    def reachable(self):
        """False when even the most confident test patterns miss the target (gap = infinity:
        every pattern would be rejected); such a threshold is no threshold for a user."""
        return math.isfinite(self.gap)


def verdict(gap, threshold):
    """What a prediction with top-2 gap `gap` is under `threshold` (a RejectionThreshold, or None
    when the network has none): "confident", "reject" or "unknown"."""
    if threshold is None:
        return "unknown"
    return "confident" if threshold.accepts(gap) else "reject"


def threshold_for(outputs, labels, target_pct=TARGET_ERROR_PCT, source=""):
    """The smallest gap threshold leaving <= target_pct % error on the accepted patterns."""
    outputs = np.asarray(outputs, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0 or outputs.ndim != 2 or outputs.shape[0] != n or outputs.shape[1] < 2:
        raise Lenet5Error(f"expected (N, classes) outputs for {n} labels, got {outputs.shape}")
    gap = top2_gap(outputs)
    order = np.argsort(-gap, kind="stable")
    gap_sorted = gap[order]
    wrong = np.cumsum((np.argmin(outputs, axis=1) != labels)[order])
    accepted = np.arange(1, n + 1)
    error = 100.0 * wrong / accepted
    # a cut after position i is reachable by "gap >= t" only where the gap drops next
    cut = np.append(gap_sorted[:-1] > gap_sorted[1:], True)
    ok = np.flatnonzero(cut & (error <= target_pct))
    test_error = float(error[-1])
    if len(ok) == 0:  # even the most confident patterns are too often wrong: reject all
        return Threshold(float("inf"), target_pct, 100.0, 0.0, test_error, source)
    k = ok[-1]
    return Threshold(float(gap_sorted[k]), target_pct, 100.0 * (n - k - 1) / n,
                     float(error[k]), test_error, source)


def reject_for(outputs, labels, target_pct):
    """Smallest share (%) of test patterns to reject so the accepted ones have <= target error."""
    return threshold_for(outputs, labels, target_pct).reject_pct


# ---------------------------------------------------------------- the threshold of a checkpoint

def sidecar_path(checkpoint):
    """x.npz -> x.rejection.json beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(".npz") + SIDECAR_SUFFIX)


def file_sha256(path):
    """SHA-256 of a regular file, read in blocks (UnreadableFile for a FIFO, a folder, ...)."""
    digest = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_sidecar(checkpoint, threshold):
    """Store a checkpoint's threshold beside it (atomically), tied to its SHA-256."""
    record = {"checkpoint": Path(checkpoint).name, "checkpoint_sha256": file_sha256(checkpoint),
              "measure": "gap = second-smallest minus smallest RBF output; accept if gap >= threshold_gap",
              "threshold_gap": threshold.gap if threshold.reachable else None,  # (JSON has no infinity)
              "target_error_pct": threshold.target_error_pct,
              "reject_pct": threshold.reject_pct, "accepted_error_pct": threshold.accepted_error_pct,
              "test_error_pct": threshold.test_error_pct, "computed_on": "MNIST test set (10,000)"}
    write_json_atomic(sidecar_path(checkpoint), record)
    return sidecar_path(checkpoint)


def read_sidecar(checkpoint, target_pct=TARGET_ERROR_PCT):
    """The stored Threshold of a checkpoint, or None if there is no sidecar or it is for other
    weights (SHA-256 differs), another target, or unreadable."""
    path = sidecar_path(checkpoint)
    try:
        with open_regular(path) as f:
            record = json.loads(f.read(1 << 16))
        if record["checkpoint_sha256"] != file_sha256(checkpoint) or record["target_error_pct"] != target_pct:
            return None
        gap = math.inf if record["threshold_gap"] is None else float(record["threshold_gap"])
        if not (gap >= 0):  # (NaN or negative: not a threshold)
            return None
        return Threshold(gap, target_pct, float(record["reject_pct"]),
                         float(record["accepted_error_pct"]), float(record["test_error_pct"]),
                         f"{path.name} (MNIST test set)")
    except (OSError, ValueError, KeyError, TypeError, UnreadableFile):
        return None


def test_set_threshold(net, data_dir=None, target_pct=TARGET_ERROR_PCT):
    """Threshold of a loaded network on the MNIST test set (Lenet5Error if the files are missing)."""
    from ..data.mnist import load_mnist

    images, labels = load_mnist("test", data_dir=data_dir, download=False)
    return threshold_for(net.forward(images.astype(net.dtype)), labels, target_pct,
                         source="computed on the MNIST test set")


def rejection_threshold(checkpoint, data_dir=None):
    """The Threshold for a checkpoint file: its sidecar, else computed on the MNIST test set if
    the files are in data_dir (default $LENET5_DATA_DIR or ./data/mnist; never downloaded),
    else None -- also when the network never reaches the target (`no_threshold_reason` says
    which)."""
    threshold = _lookup(checkpoint, data_dir)
    return threshold if threshold is not None and threshold.reachable else None


def no_threshold_reason(checkpoint, data_dir=None):
    """Why rejection_threshold gives None for this checkpoint, as one line."""
    threshold = _lookup(checkpoint, data_dir)
    if threshold is None:
        return NO_THRESHOLD
    return UNREACHABLE.format(target=threshold.target_error_pct, error=threshold.test_error_pct)


def _lookup(checkpoint, data_dir):
    """The checkpoint's Threshold from its sidecar or the test set (reachable or not), or None."""
    from ..core.model import LeNet5
    from ..data.mnist import default_data_dir

    checkpoint = Path(str(checkpoint))
    stored = read_sidecar(checkpoint)
    if stored is not None:
        return stored
    net = LeNet5.load(checkpoint)  # (a missing or bad checkpoint is an error, not "unknown")
    key = (str(checkpoint.resolve()), file_sha256(checkpoint), str(data_dir or default_data_dir()))
    if key not in _COMPUTED:  # (a failure is not remembered: the files may appear later)
        try:
            _COMPUTED[key] = test_set_threshold(net, key[2])
        except Lenet5Error:  # no MNIST test set there
            return None
    return _COMPUTED[key]


_COMPUTED = {}  # (checkpoint, its SHA-256, data folder) -> Threshold computed in this process


def as_dict(threshold):
    return asdict(threshold) if threshold is not None else None
