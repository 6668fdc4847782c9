"""Running an experiment: independent training runs as jobs in separate processes (both
cores busy), then one folder of results, `results/<name>/`, that puts our figures beside
the paper's.

A job is a plain function `module:function` and keyword arguments, so it can run in a
fresh (spawned) process; each job returns a JSON-able dict.

Ctrl-C stops the whole experiment: runs in flight save their checkpoints, finished runs stay
saved, and the same command with --reuse continues from there. `--tiny` output goes under
runs/tiny/ unless --results / --runs say otherwise, never over the committed results/.
"""
import datetime
import importlib
import inspect
import json
import os
import platform
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from ..errors import Lenet5Error
from ..files import csv_text, write_json_atomic, write_text_atomic

TINY_TRAIN_SIZE = 300  # a tiny configuration: a few hundred samples, one pass
TINY_ROOT = Path("runs") / "tiny"  # where --tiny writes unless told otherwise
# paths under this folder (the repository, or site-packages for an installed copy) are
# written into results relative to it, so results carry no machine's absolute paths
PROJECT_ROOT = Path(__file__).resolve().parents[2]


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


@dataclass
class Job:
    key: str  # unique within the experiment, e.g. "seed0" or "pooling=max"
    fn: str  # "module:function", called as fn(**kwargs, key=key, threads=n)
    kwargs: dict = field(default_factory=dict)


def function(fn):
    module, name = fn.split(":")
    return getattr(importlib.import_module(module), name)


def call(fn, kwargs):
    return function(fn)(**kwargs)


def call_arguments(job, opts):
    """A job's keyword arguments plus its key, and reuse=True (continue an interrupted run
    from its checkpoint) for the job functions that take it."""
    kwargs = dict(job.kwargs, key=job.key)
    if opts.reuse and "reuse" in inspect.signature(function(job.fn)).parameters:
        kwargs["reuse"] = True
    return kwargs


_STOP = None  # in a worker: the pool's stop event (set by _stop_pool)


def _worker_start(stop):
    """In each worker process: its own process group, so a Ctrl-C at the terminal reaches
    only the parent, which passes it on once to every worker (see _stop_pool). An idle worker
    ignores it (it has nothing to save, and would only print a traceback from its queue)."""
    global _STOP
    _STOP = stop
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _in_worker(fn, kwargs, threads):
    import numba

    from ..training.trainer import Interrupted

    # The executor hands a worker its next job before the current one ends, beyond the reach
    # of future.cancel(); a job that arrives after Ctrl-C must not start.
    if _STOP is not None and _STOP.is_set():
        raise Interrupted("not started: the experiment was stopped")
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a job in progress hears Ctrl-C
    try:
        return call(fn, kwargs)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def saved_path(job, opts, name):
    return Path(opts.runs) / name / f"{job.key}.result.json"


def load_saved(job, opts, name):
    """A job's result saved by an earlier run with the same function and arguments, or None.
    A result whose checkpoint is gone is not reused (the run is trained again)."""
    path = saved_path(job, opts, name)
    if not (opts.reuse and path.exists()):
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        opts.log(f"[{job.key}] cannot read {path} ({e}): running it again")
        return None
    if saved.get("fn") != job.fn or saved.get("kwargs") != json.loads(json.dumps(job.kwargs)):
        return None
    result = saved.get("result")
    checkpoint = result.get("checkpoint") if isinstance(result, dict) else None
    if checkpoint and not Path(checkpoint).exists():
        opts.log(f"[{job.key}] its saved checkpoint {checkpoint} is missing: running it again")
        return None
    return result


def save_result(job, opts, name, result):
    """Every finished job's result is kept, so a crash or Ctrl-C loses only the runs in flight."""
    path = saved_path(job, opts, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"fn": job.fn, "kwargs": job.kwargs, "result": result})


def run_jobs(jobs, opts, name="jobs"):
    """Run every job; returns key -> result. More than one job and --processes > 1: a pool of
    spawned processes (Numba's thread pool does not survive fork), the cores shared out."""
    from ..training.trainer import Interrupted

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
        """Keep a finished job's result; a failed job is reported once all others are done;
        an interrupted one stops the experiment."""
        try:
            results[job.key] = get()
        except (Interrupted, KeyboardInterrupt):
            raise
        except Exception as e:
            failed.append(f"{job.key}: {e if isinstance(e, Lenet5Error) else f'{type(e).__name__}: {e}'}")
            opts.log(f"[{job.key}] failed: {e}")
            return
        save_result(job, opts, name, results[job.key])
        opts.log(f"[{job.key}] done")

    try:
        if opts.scheduler and todo:
            from .cluster import run_on_cluster

            run_on_cluster(todo, opts, finish, name)
        elif workers == 1:
            for job in todo:
                opts.log(f"[{job.key}] starting")
                finish(job, lambda job=job: call(job.fn, call_arguments(job, opts)))
        else:
            _run_pool(todo, workers, opts, finish)
    except (KeyboardInterrupt, Interrupted) as e:
        raise _stopped(name, jobs, results, opts, e) from None
    if failed:
        raise Lenet5Error(f"{len(failed)} of {len(jobs)} runs failed (the others are saved; rerun "
                          "with --reuse to keep them): " + "; ".join(failed))
    return {key: results[key] for key in keys}


def _stopped(name, jobs, results, opts, cause):
    """The Interrupted that ends an experiment stopped by Ctrl-C: what is kept, how to go on."""
    from ..training.trainer import Interrupted

    detail = f" ({cause})" if str(cause) else ""
    return Interrupted(f"experiment {name} interrupted{detail}: {len(results)} of {len(jobs)} runs "
                       f"finished and are kept under {Path(opts.runs) / name}; run the same command "
                       "with --reuse to continue (an interrupted training run resumes from its "
                       "checkpoint)")


def _run_pool(todo, workers, opts, finish):
    """Run `todo` in `workers` spawned processes, calling finish(job, future.result) as each
    ends. On Ctrl-C (or a worker's run interrupted) the rest stop too (_stop_pool)."""
    from ..training.trainer import Interrupted

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(stop,))
    futures = {}
    try:
        for job in todo:
            futures[pool.submit(_in_worker, job.fn, call_arguments(job, opts), threads)] = job
        opts.log(f"running {len(todo)} jobs in {workers} processes ({threads} thread(s) each)")
        for future in as_completed(futures):
            finish(futures[future], future.result)
    except (KeyboardInterrupt, Interrupted):
        stop.set()
        _stop_pool(pool, futures, finish, opts)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_pool(pool, futures, finish, opts):
    """Cancel the jobs not started, pass one SIGINT to every worker (a training run saves its
    checkpoint at the end of its current chunk) and wait for them; keep any result that
    arrives meanwhile. A second Ctrl-C terminates the workers at once."""
    for future in futures:
        future.cancel()
    workers = list(getattr(pool, "_processes", {}).values())  # the executor's own handle on them
    for process in workers:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    opts.log("stopping: the runs in flight save their checkpoints ...")
    try:
        for future in as_completed(futures):
            if not future.cancelled() and future.exception() is None:
                finish(futures[future], future.result)
    except KeyboardInterrupt:
        opts.log("second Ctrl-C: stopping the workers now; the runs in flight keep only the "
                 "checkpoints of their finished passes")
        for process in workers:
            process.terminate()


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
    if opts.rates_only:
        parts.append("--rates-only")
    if opts.only:
        parts.append("--only " + ",".join(opts.only))
    if opts.checkpoint:
        parts.append(f"--checkpoint {portable(str(opts.checkpoint))}")
    return " ".join(parts)


def portable(value):
    """`value` (a JSON-able structure) with every absolute path under PROJECT_ROOT written
    relative to it, e.g. lenet5/reference/lenet5-seed0.npz."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        try:
            return Path(value).resolve().relative_to(PROJECT_ROOT).as_posix()
        except (ValueError, OSError):
            return value
    return value


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
    report = dict(report, rows=portable(report["rows"]), data=portable(report.get("data", {})))
    write_json_atomic(folder / "results.json", dict(meta, headline=report["headline"],
                                             rows=report["rows"], data=report["data"]))
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


SUITE_TIME = "suite-time.md"  # the suite's measured wall time, kept by hand


def write_index(results_dir):
    """results/README.md: one line per experiment folder that holds a results.json, then
    the link to bench.md and the suite's wall time (SUITE_TIME), when they are there."""
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
    suite = results_dir / SUITE_TIME
    if suite.exists():  # the whole suite's wall time, measured by scripts/time_suite.py
        lines += ["", suite.read_text().strip()]
    write_text_atomic(results_dir / "README.md", "\n".join(lines) + "\n")


def run_experiment(name, opts):
    from . import NAMES, module

    if name not in NAMES:
        raise Lenet5Error(f"unknown experiment {name!r}: choose from {', '.join(NAMES)} or all")
    exp = module(name)
    if opts.only and not hasattr(exp, "GROUPS"):
        raise Lenet5Error(f"--only selects rows of fig9; experiment {name} has no such choice")
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
