"""`rejection`: the paper's rejection measure -- the share of test patterns that must be
rejected, by the gap between the best and the second-best RBF output, for the rest to have
0.5% error, and the gap threshold that does it. No training: it analyses a checkpoint
(default: the one shipped in the package). The math is `lenet5.tools.rejection`; a full (not
--tiny) run also stores the threshold beside the checkpoint (`<name>.rejection.json`), which
`lenet5 predict`, `lenet5 show` and the demo read."""
from pathlib import Path

import numpy as np

from ..tools.rejection import TARGET_ERROR_PCT, rejection_curve, threshold_for, write_sidecar
from .jobs import mnist
from .pool import Job

FLAGS = ("checkpoint",)  # the options beyond the common ones it takes (runner.check)

REPO = Path(__file__).resolve().parents[2]


def jobs(opts):
    return [Job("reject", "lenet5.experiments.rejection:analyse",
                dict(checkpoint=opts.checkpoint, data_dir=opts.data_dir, store=not opts.tiny))]


def shown_path(path):
    """A path for the results: relative to the repository (or the current folder) when inside
    it, else just the file name -- never a machine-specific absolute path."""
    path = Path(str(path)).resolve()
    for root in (REPO, Path.cwd().resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def analyse(key, checkpoint=None, data_dir=None, store=False):
    from ..core.model import LeNet5, reference_checkpoint

    path = Path(str(checkpoint or reference_checkpoint()))
    net = LeNet5.load(path)
    images, labels = mnist(data_dir)[1]
    y = net.forward(images.astype(net.dtype)).astype(np.float64)
    threshold = threshold_for(y, labels, TARGET_ERROR_PCT, source="MNIST test set")
    sidecar = shown_path(write_sidecar(path, threshold)) if store else None
    rejected, error = rejection_curve(y, labels)
    return {"checkpoint": shown_path(path), "test_error_pct": threshold.test_error_pct,
            "reject_pct": threshold.reject_pct, "threshold_gap": threshold.gap,
            "accepted_error_pct": threshold.accepted_error_pct,
            "sidecar": sidecar,
            "curve": {"rejected_pct": rejected[::50].tolist(), "error_pct": error[::50].tolist()}}


def report(results, opts):
    r = results["reject"]
    target = TARGET_ERROR_PCT
    table = "\n".join([
        "| network | test error % (no rejection) | rejected for 0.5% error | gap threshold "
        "| error on the accepted |",
        "|---|---:|---:|---:|---:|",
        f"| `{Path(r['checkpoint']).name}` | {r['test_error_pct']:.2f} | {r['reject_pct']:.2f}% "
        f"| {r['threshold_gap']:.4f} | {r['accepted_error_pct']:.3f}% |"])
    headline = (f"{r['reject_pct']:.2f}% of test patterns rejected to reach {target}% error on the rest "
                f"(accept when the top-2 gap >= {r['threshold_gap']:.4f})")
    notes = ["Confidence is the gap between the smallest and second-smallest RBF output "
             "(the paper: 'the difference between the scores of the top two classes'); a pattern is "
             "accepted when its gap is at least the threshold, the smallest threshold whose accepted "
             "test patterns have at most 0.5% error.",
             "The paper's Fig. 10 plots this measure for its classifiers; we compare against that "
             "figure only qualitatively (we did not have a reliable copy of its LeNet-5 value offline)."]
    if r.get("sidecar"):
        notes.append(f"The threshold is stored in `{r['sidecar']}`, where `lenet5 predict`, "
                     "`lenet5 show` and the demo read it (no MNIST data needed).")
    return {"headline": headline, "table": table, "notes": notes,
            "rows": [{"checkpoint": r["checkpoint"], "test_error_pct": r["test_error_pct"],
                      "reject_pct_for_0.5": r["reject_pct"], "threshold_gap": r["threshold_gap"],
                      "accepted_error_pct": r["accepted_error_pct"]}],
            "data": r}
