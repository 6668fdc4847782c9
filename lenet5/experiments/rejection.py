"""`rejection`: the paper's rejection measure -- the share of test patterns that must be
rejected, by the gap between the best and the second-best RBF output, for the rest to have
0.5% error. No training: it analyses a checkpoint (default: the one shipped in the package)."""
import numpy as np

from ..architecture import PAPER_RESULTS
from .jobs import mnist
from .runner import Job


def jobs(opts):
    return [Job("reject", "lenet5.experiments.rejection:analyse",
                dict(checkpoint=opts.checkpoint, data_dir=opts.data_dir))]


def rejection_curve(outputs, labels):
    """Sort test patterns by confidence (gap between the two smallest RBF outputs, largest
    first); accepting the k most confident gives an error; returns (rejected %, error %)."""
    two = np.sort(outputs, axis=1)[:, :2]
    gap = two[:, 1] - two[:, 0]
    wrong = (np.argmin(outputs, axis=1) != labels)[np.argsort(-gap, kind="stable")]
    n = len(labels)
    accepted = np.arange(1, n + 1)
    error = 100.0 * np.cumsum(wrong) / accepted
    rejected = 100.0 * (n - accepted) / n
    return rejected, error


def reject_for(outputs, labels, target_pct):
    """Smallest share (%) of test patterns to reject so the accepted ones have <= target error."""
    rejected, error = rejection_curve(outputs, labels)
    ok = np.flatnonzero(error <= target_pct)
    return float(rejected[ok[-1]]) if len(ok) else 100.0


def analyse(key, checkpoint=None, data_dir=None):
    from ..commands.evaluate import reference_checkpoint
    from ..model import LeNet5

    path = checkpoint or reference_checkpoint()
    net = LeNet5.load(path)
    images, labels = mnist(data_dir)[1]
    y = net.forward(images.astype(net.dtype)).astype(np.float64)
    target = PAPER_RESULTS["rejection_target_error_pct"]
    rejected, error = rejection_curve(y, labels)
    return {"checkpoint": str(path), "test_error_pct": float(error[-1]),
            "reject_pct": reject_for(y, labels, target),
            "curve": {"rejected_pct": rejected[::50].tolist(), "error_pct": error[::50].tolist()}}


def report(results, opts):
    r = results["reject"]
    target = PAPER_RESULTS["rejection_target_error_pct"]
    table = "\n".join([
        "| network | test error % (no rejection) | rejected for 0.5% error |",
        "|---|---:|---:|",
        f"| `{r['checkpoint'].split('/')[-1]}` | {r['test_error_pct']:.2f} | {r['reject_pct']:.2f}% |"])
    headline = f"{r['reject_pct']:.2f}% of test patterns rejected to reach {target}% error on the rest"
    notes = ["Confidence is the gap between the smallest and second-smallest RBF output "
             "(the paper: 'the difference between the scores of the top two classes').",
             "The paper's Fig. 10 plots this measure for its classifiers; we compare against that "
             "figure only qualitatively (we did not have a reliable copy of its LeNet-5 value offline)."]
    return {"headline": headline, "table": table, "notes": notes,
            "rows": [{"checkpoint": r["checkpoint"], "test_error_pct": r["test_error_pct"],
                      "reject_pct_for_0.5": r["reject_pct"]}],
            "data": r}
