"""A run's files in its folder: the checkpoint (network + `state.*`, everything needed to go on)
and the metrics that describe it, written in that order; and what of the run is on disk, for
messages."""
import json

from ..core.model import LeNet5
from ..errors import Lenet5Error
from ..files import csv_text, write_json_atomic, write_text_atomic
from .config import RESUME_CHANGEABLE, saved_config
from .evaluation import METRIC_FIELDS
from .rundir import reason


class RunCheckpoint:
    """checkpoint.npz, metrics.json and metrics.csv in `folder`; `saved` says what of the run
    is on disk ("<path> (after pass 3)"), `saved_at` where: (pass, samples into it)."""

    def __init__(self, folder):
        self.folder = folder
        self.saved, self.saved_at = None, None

    @property
    def path(self):
        return self.folder / "checkpoint.npz"

    def save(self, net, state, what, at, samples_per_pass):
        """The checkpoint of `net` with `state`, made at `at` = (pass, samples into it); a
        failed write is a Lenet5Error saying that `what` was not saved and what is."""
        try:
            net.save(self.path, extra=state)
        except (OSError, Lenet5Error) as e:
            why = f"cannot write {self.path}: {reason(e)}" if isinstance(e, OSError) else str(e)
            raise Lenet5Error(f"{why}; {what} was not saved; {self.note()}") from None
        self.mark_saved(at, samples_per_pass)

    def mark_saved(self, at, samples_per_pass):
        epoch, position = at
        self.saved_at = at
        done = (f"pass {epoch}, {position:,} of {samples_per_pass:,} samples" if position
                else f"after pass {epoch - 1}")
        self.saved = f"{self.path} ({done})"

    def write_metrics(self, history):
        """metrics.json and metrics.csv, after the checkpoint they describe; a failure is a
        Lenet5Error."""
        try:
            write_json_atomic(self.folder / "metrics.json", history)
            write_text_atomic(self.folder / "metrics.csv", csv_text(history, METRIC_FIELDS))
        except OSError as e:
            raise Lenet5Error(f"cannot write the metrics in {self.folder}: {reason(e)}; "
                              f"{self.note()} (resuming from it writes them again)") from None

    def note(self):
        """Where this run stands on disk, for messages."""
        if self.saved is None:
            return f"nothing of this run has been saved in {self.folder} yet"
        return f"the last saved checkpoint is {self.saved}"

    def lost(self, epoch):
        """What a stop right now loses of pass `epoch`, the one in progress."""
        if self.saved_at and self.saved_at >= (epoch + 1, 0):
            return f"pass {epoch} is saved"
        if self.saved_at and self.saved_at[0] == epoch and self.saved_at[1]:
            return f"nothing from pass {epoch} after sample {self.saved_at[1]:,} was saved"
        return f"nothing from pass {epoch} was saved"

    def holds(self, path, config, epoch, position, history, pending_row):
        """Is the checkpoint at `path` this very run as it stands now (the one it resumes)?
        Same passes, same place in the pass, same settings apart from RESUME_CHANGEABLE."""
        try:
            _, state = LeNet5.load(path, with_state=True)
        except Lenet5Error:
            return False
        if "state.config" not in state:
            return False
        mine, theirs = json.loads(config.to_json()), saved_config(state["state.config"])
        for name in RESUME_CHANGEABLE:
            mine.pop(name, None), theirs.pop(name, None)
        return (mine == theirs and int(state.get("state.epoch", 1)) == epoch
                and int(state.get("state.position", 0)) == position
                and json.loads(str(state.get("state.history", "[]"))) == history
                and json.loads(str(state.get("state.pending_row", "null"))) == pending_row)


def bytes_needed(net, samples):
    """Room a checkpoint save takes: the new file beside the old one until the rename."""
    itemsize = net.theta.dtype.itemsize
    return 2 * (2 * net.theta.nbytes + samples * itemsize) + (1 << 20)
