"""Running an experiment: the options every experiment accepts, then its jobs (pool.py: in
separate processes, finished results saved) and its report (report.py: one folder of
results, `results/<name>/`, that puts our figures beside the paper's).

Ctrl-C stops the whole experiment: runs in flight save their checkpoints, finished runs stay
saved, and the same command with --reuse continues from there. `--tiny` output goes under
runs/tiny/ unless --results / --runs say otherwise, never over the committed results/.
"""
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import Lenet5Error
from .pool import check_not_taken, run_jobs
from .report import run_seconds, write_results

TINY_TRAIN_SIZE = 300  # a tiny configuration: a few hundred samples, one pass
TINY_ROOT = Path("runs") / "tiny"  # where --tiny writes unless told otherwise


@dataclass
class Options:
    """What every experiment accepts (the CLI's flags)."""
    tiny: bool = False  # a few hundred samples, one pass: exercises every code path in seconds
    seeds: tuple = ()  # () = the experiment's default
    epochs: int | None = None  # None: the experiment's default (20 passes, as in the paper)
    processes: int = 2  # independent runs in parallel
    data_dir: str | None = None
    results: Path | None = None  # results/<name>/ goes here (None: results, or runs/tiny/results)
    runs: Path | None = None  # checkpoints, per-run metrics (None: runs/experiments, or runs/tiny/...)
    checkpoint: str | None = None  # rejection: the network to analyse (default: the shipped one)
    rates_only: bool = False  # sdlm: the pass-1 rate screen only, no training runs
    reuse: bool = False  # take a job's saved result (runs/<name>/<key>.json) when its inputs match
    overwrite: bool = False  # train again over the runs saved under runs/<name>/ (else refused)
    only: tuple = ()  # fig9: run only these row groups, keep the others from its earlier results.json
    log: object = print

    def __post_init__(self):
        """Tiny runs write under TINY_ROOT unless a folder is given."""
        if self.results is None:
            self.results = TINY_ROOT / "results" if self.tiny else Path("results")
        if self.runs is None:
            self.runs = TINY_ROOT / "experiments" if self.tiny else Path("runs") / "experiments"
        self.results, self.runs = Path(self.results), Path(self.runs)

    def seed_list(self, default):
        seeds = tuple(self.seeds) or tuple(default)
        return seeds[:1] if self.tiny else seeds

    def passes(self, default=20):
        """Passes per training run: 1 when tiny, else --epochs, else the experiment's default."""
        return 1 if self.tiny else (self.epochs or default)


def check(name, opts):
    """The experiment's module once its options are known to suit it: the checks made before
    anything runs (for `all`, before the first experiment starts)."""
    from . import NAMES, module

    if name not in NAMES:
        raise Lenet5Error(f"unknown experiment {name!r}: choose from {', '.join(NAMES)} or all")
    exp = module(name)
    if opts.only and not hasattr(exp, "GROUPS"):
        raise Lenet5Error(f"--only selects rows of fig9; experiment {name} has no such choice")
    check_not_taken(exp.jobs(opts), opts, name)
    return exp


def run_experiment(name, opts):
    exp = check(name, opts)
    started = time.perf_counter()
    results = run_jobs(exp.jobs(opts), opts, name)
    report = exp.report(results, opts)
    report.setdefault("figures", {})
    folder = Path(opts.results) / name
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(exp, "figures"):
        from . import plots

        made, skipped = plots.draw(exp.figures, results, opts, folder)
        report["figures"].update(made)
        if skipped:
            report.setdefault("notes", []).append(skipped)
            opts.log(skipped)
    seconds = time.perf_counter() - started
    folder = write_results(name, opts, report, seconds, run_seconds(results))
    opts.log(report["table"])
    opts.log(f"{report['headline']}\nwrote {folder}/ in {seconds:.0f}s")
    return report
