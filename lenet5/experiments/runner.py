"""Running an experiment: independent training runs as jobs in separate processes (both
cores busy), then one folder of results, `results/<name>/`, that puts our figures beside
the paper's.

A job is a plain function `module:function` and keyword arguments, so it can run in a
fresh (spawned) process; each job returns a JSON-able dict.
"""
import datetime
import importlib
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from ..errors import Lenet5Error
from ..files import csv_text, write_json_atomic, write_text_atomic

TINY_TRAIN_SIZE = 300  # a tiny configuration: a few hundred samples, one pass


@dataclass
class Options:
    """What every experiment accepts (the CLI's flags)."""
    tiny: bool = False  # a few hundred samples, one pass: exercises every code path in seconds
    seeds: tuple = ()  # () = the experiment's default
    epochs: int | None = None  # None: the experiment's default (20 passes, as in the paper)
    processes: int = 2  # independent runs in parallel
    data_dir: str | None = None
    results: Path = Path("results")  # results/<name>/ is written here
    runs: Path = Path("runs") / "experiments"  # checkpoints and per-run metrics (not committed)
    checkpoint: str | None = None  # rejection: the network to analyse (default: the shipped one)
    reuse: bool = False  # take a job's saved result (runs/<name>/<key>.json) when its inputs match
    log: object = print

    def seed_list(self, default):
        seeds = tuple(self.seeds) or tuple(default)
        return seeds[:1] if self.tiny else seeds

    def passes(self, default=20):
        """Passes per training run: 1 when tiny, else --epochs, else the experiment's default."""
        return 1 if self.tiny else (self.epochs or default)


@dataclass
class Job:
    key: str  # unique within the experiment, e.g. "seed0" or "pooling=max"
    fn: str  # "module:function", called as fn(**kwargs, key=key, threads=n)
    kwargs: dict = field(default_factory=dict)


def call(fn, kwargs):
    module, name = fn.split(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def _in_worker(fn, kwargs, threads):
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return call(fn, kwargs)


def saved_path(job, opts, name):
    return Path(opts.runs) / name / f"{job.key}.result.json"


def load_saved(job, opts, name):
    """A job's result saved by an earlier run with the same function and arguments, or None."""
    path = saved_path(job, opts, name)
    if not (opts.reuse and path.exists()):
        return None
    saved = json.loads(path.read_text())
    if saved.get("fn") != job.fn or saved.get("kwargs") != json.loads(json.dumps(job.kwargs)):
        return None
    return saved["result"]


def save_result(job, opts, name, result):
    """Every finished job's result is kept, so a crash or Ctrl-C loses only the runs in flight."""
    path = saved_path(job, opts, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"fn": job.fn, "kwargs": job.kwargs, "result": result})


def run_jobs(jobs, opts, name="jobs"):
    """Run every job; returns key -> result. More than one job and --processes > 1: a pool of
    spawned processes (Numba's thread pool does not survive fork), the cores shared out."""
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate job keys in {keys}")
    results = {}
    for job in jobs:
        saved = load_saved(job, opts, name)
        if saved is not None:
            opts.log(f"[{job.key}] reusing {saved_path(job, opts, name)}")
            results[job.key] = saved
    todo = [job for job in jobs if job.key not in results]
    workers = max(1, min(opts.processes, len(todo)))
    failed = []

    def finish(job, get):
        """Keep a finished job's result; a failed job is reported once all others are done."""
        try:
            results[job.key] = get()
        except (Exception, KeyboardInterrupt) as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            failed.append(f"{job.key}: {e if isinstance(e, Lenet5Error) else f'{type(e).__name__}: {e}'}")
            opts.log(f"[{job.key}] failed: {e}")
            return
        save_result(job, opts, name, results[job.key])
        opts.log(f"[{job.key}] done")

    if workers == 1:
        for job in todo:
            opts.log(f"[{job.key}] starting")
            finish(job, lambda: call(job.fn, dict(job.kwargs, key=job.key)))
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_in_worker, job.fn, dict(job.kwargs, key=job.key), threads): job
                       for job in todo}
            opts.log(f"running {len(todo)} jobs in {workers} processes ({threads} thread(s) each)")
            for future in as_completed(futures):
                finish(futures[future], future.result)
    if failed:
        raise Lenet5Error(f"{len(failed)} of {len(jobs)} runs failed (the others are saved; rerun "
                          "with --reuse to keep them): " + "; ".join(failed))
    return {key: results[key] for key in keys}


# ---------------------------------------------------------------- writing results

def machine():
    import numba
    import numpy as np

    return {"python": platform.python_version(), "numba": numba.__version__,
            "numpy": np.__version__, "cpus": os.cpu_count(), "platform": platform.platform()}


def command_line(name, opts):
    parts = ["lenet5 experiment", name]
    if opts.tiny:
        parts.append("--tiny")
    if opts.seeds:
        parts.append("--seeds " + ",".join(map(str, opts.seeds)))
    if opts.epochs:
        parts.append(f"--epochs {opts.epochs}")
    return " ".join(parts)


def run_seconds(results):
    """Training time summed over the runs (each run's own clock; sums passes if that is all
    a run reports)."""
    total = 0.0
    for r in results.values():
        if not isinstance(r, dict):
            continue
        total += r["seconds"] if "seconds" in r else sum(h.get("seconds", 0) for h in r.get("history", []))
    return total


def write_results(name, opts, report, seconds, runs_seconds=0.0):
    """results/<name>/{results.json, results.csv, README.md}; returns the folder.
    report: {"headline": str, "table": markdown str, "rows": [flat dicts], "data": {...},
             "notes": [str], "figures": {file: caption}}."""
    folder = Path(opts.results) / name
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"experiment": name, "command": command_line(name, opts), "tiny": opts.tiny,
            "date": datetime.date.today().isoformat(), "wall_seconds": round(seconds, 1),
            "run_seconds": round(runs_seconds, 1), "reused_saved_runs": opts.reuse,
            "machine": machine()}
    write_json_atomic(folder / "results.json", dict(meta, headline=report["headline"],
                                             rows=report["rows"], data=report.get("data", {})))
    rows = report["rows"]
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        write_text_atomic(folder / "results.csv", csv_text(rows, columns))
    lines = [f"# {name}", "", report["headline"], "", f"Command: `{meta['command']}` — {timing(meta)} "
             f"on this machine ({meta['machine']['cpus']} CPUs), {meta['date']}.", "",
             report["table"], ""]
    for note in report.get("notes", []):
        lines += [f"- {note}"]
    figures = report.get("figures", {})
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{file}]({file})\n\n*{caption}*\n" for file, caption in figures.items()]
    write_text_atomic(folder / "README.md", "\n".join(lines).rstrip() + "\n")
    write_index(Path(opts.results))
    return folder


def write_index(results_dir):
    """results/README.md: one line per experiment folder that holds a results.json."""
    from . import NAMES

    lines = ["# Results", "", "Each folder holds one experiment's numbers (`results.json`, "
             "`results.csv`) and a table beside the paper's figures (`README.md`). Regenerate one "
             "with `lenet5 experiment NAME` (or `python scripts/reproduce.py NAME|all`).", "",
             "| experiment | result | command | time |", "|---|---|---|---|"]
    for name in NAMES:
        path = results_dir / name / "results.json"
        if not path.exists():
            continue
        meta = json.loads(path.read_text())
        lines.append(f"| [{name}]({name}/README.md) | {meta['headline']} | `{meta['command']}` | "
                     f"{timing(meta)} |")
    if (results_dir / "bench.md").exists():
        lines += ["", "Speed: [bench.md](bench.md) (`lenet5 bench`, against PyTorch and JAX)."]
    write_text_atomic(results_dir / "README.md", "\n".join(lines) + "\n")


def run_experiment(name, opts):
    from . import NAMES, module

    if name not in NAMES:
        raise Lenet5Error(f"unknown experiment {name!r}: choose from {', '.join(NAMES)} or all")
    exp = module(name)
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


def timing(meta):
    """How long an experiment took: its wall time, or for a report assembled from saved runs
    (--reuse) the training time of those runs."""
    runs = meta.get("run_seconds", 0)
    if meta.get("reused_saved_runs"):
        return f"assembled from saved runs (`--reuse`) that trained for {duration(runs)} in all"
    extra = f" ({duration(runs)} of training summed over runs)" if runs > 1.2 * meta["wall_seconds"] else ""
    return f"{duration(meta['wall_seconds'])} wall{extra}"


def duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def log_prefixed(key):
    return lambda line: print(f"[{key}] {line}", flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: lenet5 experiment NAME")
