"""Running an experiment's jobs on a Dask distributed cluster (`--scheduler tcp://HOST:PORT`).

The jobs are the same as in the local process pool (pool.Job: `module:function` and keyword
arguments, seeds included), so the numbers are the same. No filesystem is shared with the
workers:

- MNIST: the client sends its four verified .gz files (about 11 MB) to every worker once; a
  worker writes them into its own scratch folder and the job loads them from there (checking
  their SHA-256 as any load does). Workers need neither network access nor a data folder.
- Run folders: a job that writes under a `runs` folder writes, on the worker, into a temporary
  folder; the files it wrote (checkpoints, metrics) come back to the client as bytes, and the
  client writes them under its own `runs` folder, with the result's paths pointing there, as
  a local run would have written them. With --reuse the client also sends a job's earlier run
  folder, so an interrupted run continues from its checkpoint wherever it runs.

A worker that dies mid-job (even kill -9) loses only that job's temporary folder; the
scheduler runs the job again on another worker, from the same inputs. Before any job is
sent, every worker must run the same lenet5 as the client (version and a digest of its
source files); otherwise nothing runs. Dask is imported only here, when a scheduler is given.
"""
import builtins
import hashlib
import logging
import os
import socket
import tempfile
import threading
import types
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from ..errors import Lenet5Error
from ..files import write_bytes_atomic

EXTRA = "cluster"  # pip install "lenet5[cluster]"


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise Lenet5Error(f"--scheduler needs Dask distributed: pip install \"lenet5[{EXTRA}]\"") from None
    return distributed


# ---------------------------------------------------------------- what a worker runs

@lru_cache(maxsize=1)
def source_digest():
    """SHA-256 (first 12 hex digits) over the package's .py files: two lenet5 copies with the
    same digest run the same code, hence give the same numbers."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def identity():
    """What a machine runs: lenet5's version and source digest, its host name and CPUs."""
    import lenet5

    return {"version": lenet5.__version__, "source": source_digest(), "host": socket.gethostname(),
            "cpus": os.cpu_count() or 1}


def _probe():
    """Run on every worker, sent by value (see by_value), so that it runs where lenet5 cannot
    be imported too and says so."""
    import socket

    try:
        from lenet5.experiments.cluster import identity
    except Exception as e:  # noqa: BLE001 (any import failure is the answer)
        return {"host": socket.gethostname(), "missing": f"{type(e).__name__}: {e}"}
    return identity()


def by_value(fn):
    """A copy of `fn` that belongs to no module, so it is pickled with its code, not by name."""
    return types.FunctionType(fn.__code__, {"__builtins__": builtins}, fn.__name__)


def remote_job(fn, kwargs, threads_by_host, mnist_files, inputs, topic, key):
    """On a worker: run one job as the local pool would, in a temporary run folder; return
    {"result", "files" (relative path -> bytes of what it wrote there), "worker", "host"}."""
    import numba
    from distributed import get_worker

    from .pool import call

    worker = get_worker()
    host = socket.gethostname()
    worker.log_event(topic, {"key": key, "worker": worker.address, "host": host})
    scratch = Path(worker.local_directory)
    kwargs = dict(kwargs)
    if mnist_files is not None and "data_dir" in kwargs:
        kwargs["data_dir"] = str(materialise(mnist_files, scratch / "lenet5-mnist"))
    threads = threads_by_host.get(host) or max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    runs = kwargs.get("runs")
    with tuned_for_training(worker), tempfile.TemporaryDirectory(prefix="lenet5-job-", dir=scratch) as tmp:
        if runs is None:
            return {"result": call(fn, kwargs), "files": {}, "worker": worker.address, "host": host}
        local = Path(tmp) / "runs"
        local.mkdir()
        for rel, data in inputs.items():
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(data)
        kwargs["runs"] = str(local)
        result = call(fn, kwargs)
        files = {path.relative_to(local).as_posix(): path.read_bytes()
                 for path in sorted(local.rglob("*")) if path.is_file()}
    return {"result": moved(result, str(local), str(Path(runs))), "files": files,
            "worker": worker.address, "host": host}


_RUNNING = {"jobs": 0}  # lenet5 jobs running in this worker process (tuned_for_training)
_RUNNING_LOCK = threading.Lock()
# glibc's mallopt parameters, and the values a job runs with (those glibc's own dynamic
# thresholds grow to: 32 MB before mmap, trim at twice that)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
JOB_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD = 32 << 20, 128 << 10


@contextmanager
def tuned_for_training(worker):
    """While lenet5 jobs run on a worker, undo two settings of Dask's that slow a training run
    and restore them when the worker's last lenet5 job ends:
    - the statistical profiler, which every 10 ms samples the running tasks' Python stacks on
      the worker's event loop, taking the GIL between a run's short kernel calls;
    - MALLOC_TRIM_THRESHOLD_=65536, which Dask's nanny sets for its workers so that freed
      memory goes back to the system: it also fixes glibc's mmap threshold at 128 KB, so every
      larger array a pass allocates is mapped afresh and faults its pages in again. A run's
      passes measured ~6% slower with it, in a local process given the same variable."""
    callback = worker.periodic_callbacks.get("profile")
    mallopt = glibc_mallopt() if "MALLOC_TRIM_THRESHOLD_" in os.environ else None
    with _RUNNING_LOCK:
        _RUNNING["jobs"] += 1
        if _RUNNING["jobs"] == 1:
            if callback is not None:
                worker.loop.add_callback(callback.stop)  # (the loop's own thread starts and stops it)
            if mallopt is not None:
                mallopt(M_MMAP_THRESHOLD, JOB_MMAP_THRESHOLD)
                mallopt(M_TRIM_THRESHOLD, 2 * JOB_MMAP_THRESHOLD)
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            _RUNNING["jobs"] -= 1
            if _RUNNING["jobs"] == 0:
                if callback is not None:
                    worker.loop.add_callback(callback.start)
                if mallopt is not None:
                    mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)
                    mallopt(M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"]))


def glibc_mallopt():
    """glibc's mallopt(param, value), or None where the C library has none (not Linux/glibc)."""
    import ctypes

    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def materialise(files, folder):
    """Write the MNIST files `files` (name -> bytes) into `folder` unless already there."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = folder / name
        if not (path.exists() and path.stat().st_size == len(data)):
            write_bytes_atomic(path, data)
    return folder


def moved(value, old, new):
    """`value` (JSON-able) with every path string under `old` rewritten under `new`."""
    if isinstance(value, dict):
        return {k: moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [moved(v, old, new) for v in value]
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):]
    return value


# ---------------------------------------------------------------- the client's side

def on_cluster(name):
    """The executor (pool.py) that runs experiment `name`'s jobs on the cluster at opts.scheduler."""
    return lambda todo, opts, finish: run_on_cluster(todo, opts, finish, name)


def run_on_cluster(todo, opts, finish, name="jobs"):
    """Run `todo` (pool.Job) on the Dask cluster at opts.scheduler, calling finish(job,
    get_result) as each ends, like the local pool; the client writes each job's run files
    under its own runs folder before finish sees the result. Records opts.ran_on[name][key]."""
    if not todo:  # (every job reused from saved results)
        return
    distributed = import_distributed()
    with quiet_dask():
        _run(distributed, todo, opts, finish, name)


@contextmanager
def quiet_dask():
    """Dask's own log lines (e.g. a reconnection's traceback) stay out of the terminal: what
    went wrong is said once, in a Lenet5Error."""
    names = ["distributed", "tornado"]
    names += [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado")]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _run(distributed, todo, opts, finish, name):
    from ..training.trainer import Interrupted
    from .pool import job_arguments

    address = opts.scheduler
    where = Path(opts.runs) / name
    client = connect(distributed, address, where)
    futures, done, saved = {}, [], 0
    try:
        check_workers(client, address)
        threads_by_host = threads_per_host(client)
        mnist = client.scatter([mnist_files(opts)], broadcast=True)[0] if needs_data(todo) else None
        topic = f"lenet5-{uuid.uuid4().hex[:8]}"
        slots = {addr: int(info.get("nthreads", 1)) for addr, info in client.scheduler_info()["workers"].items()}
        progress = Progress(todo, opts.log, slots)
        client.subscribe_topic(topic, progress.started)
        for job in todo:
            kwargs = job_arguments(job, opts)
            future = client.submit(remote_job, job.fn, kwargs, threads_by_host, mnist, run_inputs(job, kwargs),
                                   topic, job.key, key=f"{topic}-{job.key}", pure=False)
            futures[future] = job
        opts.log(f"running {len(todo)} jobs on the Dask cluster at {address} "
                 f"({len(client.scheduler_info()['workers'])} workers)")
        for future in distributed.as_completed(futures, loop=client.loop):
            job = futures[future]
            if future.status == "cancelled" or client.status not in ("running", "connecting"):
                raise Lenet5Error(lost_message(address, saved, len(todo), where))
            finish(job, lambda future=future, job=job: receive(future, job, opts, name))
            progress.finished(job.key)
            done.append(job.key)
            saved += job.key in opts.ran_on.get(name, {})  # (receive records the jobs whose files came back)
    except (KeyboardInterrupt, Interrupted):
        opts.log("stopping: cancelling the jobs on the cluster (a run in progress there is not kept; "
                 "finished runs are)")
        client.cancel([f for f, job in futures.items() if job.key not in done], force=True)
        raise
    except OSError as e:  # the connection to the scheduler broke
        raise Lenet5Error(lost_message(address, saved, len(todo), where, e)) from None
    finally:
        close(client)


def connect(distributed, address, where):
    """A Client of the scheduler at `address`, or a one-line Lenet5Error naming it."""
    try:
        return distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise Lenet5Error(f"cannot reach the Dask scheduler {address} ({one_line(e)}); no job was sent "
                          f"(runs finished earlier stay under {where})") from None


def close(client):
    try:
        client.close(timeout=5)
    except Exception:  # noqa: BLE001 (a scheduler already gone: nothing left to close)
        pass


def one_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def lost_message(address, done, total, where, error=None):
    cause = f" ({one_line(error)})" if error else ""
    return (f"lost the Dask scheduler {address}{cause}: {done} of {total} jobs finished and are saved "
            f"under {where}; run the same command with --reuse to continue")


def check_workers(client, address):
    """Refuse (Lenet5Error) unless every worker runs the client's lenet5, before any job runs."""
    workers = client.run(by_value(_probe), on_error="return")
    if not workers:
        raise Lenet5Error(f"the Dask scheduler {address} has no workers: start some with "
                          f"`dask worker {address}`")
    mine = identity()
    wrong = []
    for addr, found in sorted(workers.items()):
        if isinstance(found, BaseException):
            wrong.append(f"{addr} failed to answer ({one_line(found)})")
        elif "missing" in found:
            wrong.append(f"{addr} cannot import lenet5 ({found['missing']})")
        elif (found["version"], found["source"]) != (mine["version"], mine["source"]):
            wrong.append(f"{addr} runs lenet5 {found['version']} (source {found['source']})")
    if wrong:
        raise Lenet5Error(f"refused the Dask cluster at {address}: this machine runs lenet5 {mine['version']} "
                          f"(source {mine['source']}), but worker " + "; ".join(wrong) + ". Install the "
                          "same lenet5 on every worker; no job was sent")


def threads_per_host(client):
    """host -> Numba threads per job: the host's CPUs shared out over its workers' threads
    (one job per worker thread), as the local pool shares the cores over its processes."""
    identities = client.run(identity)
    slots = {}
    for addr, info in client.scheduler_info()["workers"].items():
        host = identities.get(addr, {}).get("host")
        if host:
            slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
    cpus = {info["host"]: info["cpus"] for info in identities.values()}
    return {host: max(1, cpus[host] // n) for host, n in slots.items()}


def needs_data(todo):
    return any("data_dir" in job.kwargs for job in todo)


def mnist_files(opts):
    """The four MNIST .gz files (name -> bytes) of the client's data folder, verified
    (fetched first if missing, as a local run would)."""
    from ..data.download import ensure_mnist
    from ..data.idx import FILES
    from ..data.mnist import default_data_dir

    folder = Path(opts.data_dir) if opts.data_dir else default_data_dir()
    paths = ensure_mnist(folder, progress=False)
    return {name: Path(paths[name]).read_bytes() for name in FILES}


def run_inputs(job, kwargs):
    """With reuse: the files of the job's earlier run folder (runs/key), relative to runs, so
    an interrupted run resumes from its checkpoint on the worker."""
    runs = kwargs.get("runs")
    if not (runs and kwargs.get("reuse")):
        return {}
    folder = Path(runs) / job.key
    if not folder.is_dir():
        return {}
    return {path.relative_to(runs).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def receive(future, job, opts, name):
    """A finished job's result, after writing its run files under the client's runs folder."""
    shipped = future.result()
    runs = job.kwargs.get("runs")
    for rel, data in shipped["files"].items():
        path = Path(runs) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    opts.ran_on.setdefault(name, {})[job.key] = f"{shipped['host']} ({shipped['worker']})"
    return shipped["result"]


class Progress:
    """Logs each job's start (with its worker) and end, with the counts done/running/queued.
    A worker's next start also tells that its previous job ended (its result may still be on
    the way to the client)."""

    def __init__(self, todo, log, slots):
        self.total, self.log, self.slots = len(todo), log, slots  # slots: worker -> its threads
        self.running, self.ended = {}, set()
        self.lock = threading.Lock()

    def counts(self):
        queued = self.total - len(self.ended) - len(self.running)
        return f"{len(self.ended)} done, {len(self.running)} running, {queued} queued"

    def started(self, event):
        """A worker's event (time, {"key", "worker", "host"}); runs on the client's event loop."""
        _, info = event
        with self.lock:
            key, worker = info["key"], info["worker"]
            if key in self.ended:
                return
            again = " again (its worker was lost)" if key in self.running else ""
            self.running.pop(key, None)
            busy = [k for k, w in self.running.items() if w == worker]
            for k in busy[:max(0, len(busy) + 1 - self.slots.get(worker, 1))]:
                self.running.pop(k)
                self.ended.add(k)
            self.running[key] = worker
            self.log(f"[{key}] running{again} on {info['host']} ({worker}); {self.counts()}")

    def finished(self, key):
        with self.lock:
            worker = self.running.pop(key, None)
            self.ended.add(key)
            self.log(f"[{key}] ended" + (f" on {worker}" if worker else "") + f"; {self.counts()}")


def placement_note(ran_on, address):
    """The report's line saying where each job ran."""
    where = ", ".join(f"{key} on {place}" for key, place in ran_on.items())
    return f"Runs trained on the Dask cluster at {address}: {where}."
