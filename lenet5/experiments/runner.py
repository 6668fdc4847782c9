"""Running an experiment: the options every experiment accepts, then its jobs (pool.py: in
separate processes, finished results saved) and its report (report.py: one folder of
results, `results/<name>/`, that puts our figures beside the paper's).

Ctrl-C stops the whole experiment: runs in flight save their checkpoints, finished runs stay
saved, and the same command with --reuse continues from there. `--tiny` output goes under
runs/tiny/ unless --results / --runs say otherwise, never over the committed results/.
"""
import time
from dataclasses import dataclass, field, replace
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
    scheduler: str | None = None  # a Dask scheduler (tcp://HOST:PORT): run the jobs on its cluster
    ran_on: dict = field(default_factory=dict)  # on a cluster: experiment -> job key -> host and worker

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


# The options only some experiments take, by their flags. An experiment module lists those
# it takes in FLAGS; "seed" there means --seeds with one seed (it trains one).
FLAG_NAMES = {"seeds": "--seeds", "epochs": "--epochs", "checkpoint": "--checkpoint",
              "rates_only": "--rates-only", "only": "--only"}


def takes(exp):
    """The Options fields of FLAG_NAMES that experiment module `exp` reads."""
    return {"seeds" if flag == "seed" else flag for flag in exp.FLAGS}


def check(name, opts):
    """The experiment's module once its options are known to suit it: the checks made before
    anything runs (for `all`, before the first experiment starts). A flag the experiment
    does not use is refused rather than ignored."""
    from . import NAMES, module

    if name not in NAMES:
        raise Lenet5Error(f"unknown experiment {name!r}: choose from {', '.join(NAMES)} or all")
    exp = module(name)
    unused = [flag for field, flag in FLAG_NAMES.items() if getattr(opts, field) and field not in takes(exp)]
    if unused:
        accepted = ", ".join(FLAG_NAMES[field] for field in FLAG_NAMES if field in takes(exp))
        raise Lenet5Error(f"experiment {name} does not use {', '.join(unused)} (of the flags only "
                          f"some experiments use, it takes {accepted})")
    if "seed" in exp.FLAGS and len(opts.seeds) > 1:
        raise Lenet5Error(f"experiment {name} trains one seed: give --seeds N, not "
                          + ",".join(map(str, opts.seeds)))
    check_not_taken(exp.jobs(opts), opts, name)
    return exp


def suited(name, opts):
    """For `lenet5 experiment all`: `opts` with the flags experiment `name` does not use set
    back to their defaults, and the first seed only for one that trains one."""
    from . import module

    exp = module(name)
    unused = {field: Options.__dataclass_fields__[field].default
              for field in FLAG_NAMES if field not in takes(exp)}
    suited = replace(opts, **unused)
    if "seed" in exp.FLAGS:
        suited.seeds = tuple(suited.seeds)[:1]
    return suited


def run_experiment(name, opts):
    exp = check(name, opts)
    started = time.perf_counter()
    results = run_jobs(exp.jobs(opts), opts, name)
    report = exp.report(results, opts)
    report.setdefault("figures", {})
    if opts.ran_on.get(name):
        from .cluster import placement_note

        report.setdefault("notes", []).append(placement_note(opts.ran_on[name], opts.scheduler))
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
