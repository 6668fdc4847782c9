"""Running an experiment's jobs: independent training runs, each in a process of its own
(both cores busy), every finished result saved so that a crash or Ctrl-C loses only the runs
in flight and `--reuse` continues from the rest.

A job is a plain function `module:function` and keyword arguments, so it can run in a
fresh (spawned) process; each job returns a JSON-able dict.

run_jobs does the bookkeeping (saved results, failures, interruption) and hands the jobs
still to run to an executor: a function `execute(todo, opts, finish)` that runs every job of
`todo` (calling `call(job.fn, job_arguments(job, opts))` wherever it likes) and calls
`finish(job, get)` once per job as it ends, where `get()` returns the job's result or raises
its exception. On KeyboardInterrupt or Interrupted an executor stops the jobs in flight so
that they save their checkpoints, passes to `finish` the results that still arrive, and
re-raises. Two executors live here: in_order (this process, one job after another) and
process_pool (spawned worker processes); `executor(todo, opts, name)` picks one, or the
Dask cluster's (cluster.py) when a scheduler is given.
"""
import importlib
import inspect
import json
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from ..errors import Lenet5Error
from ..files import write_json_atomic


@dataclass
class Job:
    key: str  # unique within the experiment, e.g. "seed0" or "pooling=max"
    fn: str  # "module:function", called as fn(**kwargs, key=key)
    kwargs: dict = field(default_factory=dict)


def function(fn):
    module, name = fn.split(":")
    return getattr(importlib.import_module(module), name)


def call(fn, kwargs):
    return function(fn)(**kwargs)


def job_arguments(job, opts):
    """A job's keyword arguments plus its key, and reuse=True (continue an interrupted run
    from its checkpoint) for the job functions that take it."""
    kwargs = dict(job.kwargs, key=job.key)
    if opts.reuse and "reuse" in inspect.signature(function(job.fn)).parameters:
        kwargs["reuse"] = True
    return kwargs


def log_prefixed(key):
    """A job's log: its lines printed with its key, e.g. "[seed0] epoch 1 ..."."""
    return lambda line: print(f"[{key}] {line}", flush=True)


# ---------------------------------------------------------------- saved results

def saved_path(job, opts, name):
    return Path(opts.runs) / name / f"{job.key}.result.json"


def run_folder(job, opts, name):
    """Where a training job keeps its checkpoint (jobs.train_run: runs/<name>/<key>/)."""
    return Path(opts.runs) / name / job.key


def check_not_taken(jobs, opts, name):
    """Refuse to train over runs already there (a saved result, or a run folder holding files,
    e.g. an interrupted run's checkpoint) unless --reuse continues from them or --overwrite
    starts again. --tiny runs (seconds of training, under runs/tiny/) are replaced freely."""
    if opts.reuse and opts.overwrite:
        raise Lenet5Error("--reuse continues from saved runs and --overwrite starts again: pass one")
    if opts.reuse or opts.overwrite or opts.tiny:
        return
    taken = [job.key for job in jobs if saved_path(job, opts, name).exists()
             or (run_folder(job, opts, name).is_dir() and any(run_folder(job, opts, name).iterdir()))]
    if taken:
        shown = ", ".join(taken[:4]) + (f" and {len(taken) - 4} more" if len(taken) > 4 else "")
        raise Lenet5Error(f"{Path(opts.runs) / name} already holds runs of experiment {name} ({shown}): "
                          "pass --reuse to continue from them or --overwrite to start again")


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


# ---------------------------------------------------------------- running

def run_jobs(jobs, opts, name="jobs", execute=None):
    """Run every job; returns key -> result. The jobs not reused from saved results go to
    `execute` (an executor, see above; default `executor(todo, opts)`: more than one job and
    --processes > 1, a pool of spawned processes, the cores shared out)."""
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
    check_not_taken(todo, opts, name)
    if opts.overwrite:  # starting again: an interrupted attempt must not offer the old results to --reuse
        for job in todo:
            saved_path(job, opts, name).unlink(missing_ok=True)
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
        (execute or executor(todo, opts, name))(todo, opts, finish)
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


def executor(todo, opts, name="jobs"):
    """The executor for `todo`: one job, or --processes 1, runs here; more, in a process pool;
    with --scheduler, on that Dask cluster (cluster.py)."""
    if opts.scheduler:
        from .cluster import on_cluster

        return on_cluster(name)
    return in_order if min(opts.processes, len(todo)) <= 1 else process_pool


def in_order(todo, opts, finish):
    """Run the jobs in this process, one after another (Ctrl-C reaches the run in progress)."""
    for job in todo:
        opts.log(f"[{job.key}] starting")
        finish(job, lambda job=job: call(job.fn, job_arguments(job, opts)))


# ---------------------------------------------------------------- the local process pool

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


def process_pool(todo, opts, finish):
    """Run `todo` in min(--processes, len(todo)) spawned processes, the cores shared out,
    calling finish(job, future.result) as each ends. On Ctrl-C (or a worker's run
    interrupted) the rest stop too (_stop_pool)."""
    from ..training.trainer import Interrupted

    workers = max(1, min(opts.processes, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(stop,))
    futures = {}
    try:
        for job in todo:
            futures[pool.submit(_in_worker, job.fn, job_arguments(job, opts), threads)] = job
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
