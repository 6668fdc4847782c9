"""`lenet5 experiment NAME --scheduler`: the jobs run on a real Dask cluster (a scheduler and
two workers started here on 127.0.0.1) and give the same results and files as a local run."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the [cluster] extra (dask[distributed]) is not installed")
pytestmark = pytest.mark.slow  # real scheduler and worker processes

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")
EXPERIMENT = "train-size"  # --tiny: three short runs (100, 200, 300 samples)
KEYS = ("n100", "n200", "n300")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(pythonpath=REPO, **extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")]),
               **extra)
    return env


class Cluster:
    """A `dask scheduler` and `dask worker`s on 127.0.0.1, as subprocesses a user would start."""

    def __init__(self, folder):
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.workers = {}  # address -> Popen
        self.scheduler = self.start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port",
                                                  self.address.rsplit(":", 1)[1], "--no-dashboard"])

    def start(self, name, args, env=None):
        log = open(self.folder / f"{name}.log", "w")
        return subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env or environment(), cwd=self.folder)

    def add_worker(self, pythonpath=REPO, wait=True):
        """One worker process, one job at a time (no nanny: the process is the worker)."""
        address = f"tcp://127.0.0.1:{free_port()}"
        port = address.rsplit(":", 1)[1]
        self.workers[address] = self.start(f"worker-{port}", [
            "worker", self.address, "--host", "127.0.0.1", "--worker-port", port, "--nthreads", "1",
            "--no-nanny", "--no-dashboard", "--local-directory", str(self.folder / f"worker-{port}")],
            env=environment(pythonpath))
        if wait:
            self.wait_for(len(self.workers))
        return address

    def wait_for(self, n):
        with distributed.Client(self.address, timeout="20s", set_as_default=False) as client:
            deadline = time.monotonic() + 30
            while len(client.scheduler_info()["workers"]) != n:
                assert time.monotonic() < deadline, f"the cluster did not reach {n} workers"
                time.sleep(0.1)

    def stop_worker(self, address):
        process = self.workers.pop(address)
        process.terminate()
        process.wait(timeout=20)
        self.wait_for(len(self.workers))

    def close(self):
        for process in [*self.workers.values(), self.scheduler]:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        for _ in range(2):
            cluster.add_worker()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def data_dir(mnist_dir):
    return str(mnist_dir)


def lenet5(folder, data_dir, *args, env=None):
    """`python -m lenet5 experiment train-size --tiny ...` into folder/{results,runs}; returns
    (exit code, stdout, stderr)."""
    command = [sys.executable, "-m", "lenet5", "experiment", EXPERIMENT, "--tiny", "--results",
               str(folder / "results"), "--runs", str(folder / "runs"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=environment(**{"LENET5_DATA_DIR": data_dir, **(env or {})}))
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def local(tmp_path_factory, data_dir):
    """The local run everything is compared with; it also shows that without --scheduler Dask
    is never imported (the run happens in a process that reports the modules it loaded)."""
    folder = tmp_path_factory.mktemp("local")
    code = ("import sys; from lenet5.cli import main; code = main(sys.argv[1:]); "
            "print('dask modules:', sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
            "; sys.exit(code)")
    command = [sys.executable, "-c", code, "experiment", EXPERIMENT, "--tiny", "--processes", "2",
               "--results", str(folder / "results"), "--runs", str(folder / "runs")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=environment(LENET5_DATA_DIR=data_dir))
    assert done.returncode == 0, done.stderr
    assert "dask modules: []" in done.stdout
    return folder


def results(folder):
    return json.loads((folder / "results" / EXPERIMENT / "results.json").read_text())


def assert_same_as_local(folder, local):
    mine, theirs = results(folder), results(local)
    assert mine["rows"] == theirs["rows"] and mine["data"] == theirs["data"]
    runs, local_runs = folder / "runs" / EXPERIMENT, local / "runs" / EXPERIMENT
    files = sorted(p.relative_to(runs).as_posix() for p in runs.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(local_runs).as_posix() for p in local_runs.rglob("*") if p.is_file())
    assert f"{KEYS[0]}/checkpoint.npz" in files and f"{KEYS[0]}/metrics.json" in files
    for key in KEYS:
        with np.load(runs / key / "checkpoint.npz") as a, np.load(local_runs / key / "checkpoint.npz") as b:
            assert a.files == b.files  # every number identical (only text, e.g. the timings, may differ)
            assert all(np.array_equal(a[name], b[name]) for name in a.files if a[name].dtype.kind in "fiub")
        saved = json.loads((runs / f"{key}.result.json").read_text())["result"]
        assert saved["checkpoint"] == str(runs / key / "checkpoint.npz")  # the client's path, not the worker's
        assert Path(saved["checkpoint"]).exists()


def test_cluster_run_matches_the_local_run(cluster, local, data_dir, tmp_path):
    code, out, err = lenet5(tmp_path, data_dir, "--scheduler", cluster.address)
    assert code == 0, err
    assert_same_as_local(tmp_path, local)
    readme = (tmp_path / "results" / EXPERIMENT / "README.md").read_text()
    workers = set(cluster.workers)
    assert any(f"{KEYS[0]} on {socket.gethostname()} ({w})" in readme for w in workers)
    assert f"on the Dask cluster at {cluster.address}" in out
    assert "0 queued" in out and "3 done, 0 running, 0 queued" in out

    # --reuse across the two: a local run takes every run the cluster saved
    code, out, err = lenet5(tmp_path, data_dir, "--reuse", "--processes", "1")
    assert code == 0, err
    assert all(f"[{key}] reusing" in out for key in KEYS)
    assert_same_as_local(tmp_path, local)


def test_an_interrupted_local_run_resumes_on_the_cluster(cluster, local, data_dir, tmp_path):
    code, _, err = lenet5(tmp_path, data_dir, "--processes", "1")
    assert code == 0, err
    (tmp_path / "runs" / EXPERIMENT / f"{KEYS[0]}.result.json").unlink()  # as if it had been stopped
    code, out, err = lenet5(tmp_path, data_dir, "--reuse", "--scheduler", cluster.address)
    assert code == 0, err
    assert all(f"[{key}] reusing" in out for key in KEYS[1:]) and f"[{KEYS[0]}] reusing" not in out
    assert f"[{KEYS[0]}] running on" in out
    assert_same_as_local(tmp_path, local)


def test_a_worker_killed_mid_job_loses_nothing(cluster, local, data_dir, tmp_path):
    command = [sys.executable, "-m", "lenet5", "experiment", EXPERIMENT, "--tiny", "--results",
               str(tmp_path / "results"), "--runs", str(tmp_path / "runs"), "--scheduler", cluster.address]
    client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=environment(LENET5_DATA_DIR=data_dir))
    killed = None
    lines = []
    for line in client.stdout:
        lines.append(line)
        if killed is None and " running on " in line:  # "[n100] running on HOST (tcp://...); ..."
            killed = line.split("(")[1].split(")")[0]
            os.kill(cluster.workers[killed].pid, signal.SIGKILL)
    assert client.wait(timeout=120) == 0, client.stderr.read()
    out = "".join(lines)
    assert killed and cluster.workers[killed].wait(timeout=10) == -signal.SIGKILL
    assert_same_as_local(tmp_path, local)
    readme = (tmp_path / "results" / EXPERIMENT / "README.md").read_text()
    assert f"({killed})" not in readme  # every run's files came from the surviving worker
    assert "again (its worker was lost)" in out
    cluster.workers.pop(killed)
    cluster.add_worker()  # back to two for the other tests


def test_a_worker_with_another_lenet5_is_refused(cluster, data_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(REPO / "lenet5", other / "lenet5", ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "lenet5" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
    address = cluster.add_worker(pythonpath=other)
    try:
        code, out, err = lenet5(tmp_path, data_dir, "--scheduler", cluster.address)
    finally:
        cluster.stop_worker(address)
    assert code == 2
    import lenet5 as mine

    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"runs lenet5 {mine.__version__}" in err and f"{address} runs lenet5 9.9.9+{mine.__version__}" in err
    assert "no job was sent" in err and " running on " not in out
    assert not (tmp_path / "runs" / EXPERIMENT).exists()


def test_an_unreachable_scheduler_is_one_line(data_dir, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, err = lenet5(tmp_path, data_dir, env={"LENET5_SCHEDULER": address,
                                                      "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot reach the Dask scheduler {address}" in err and "no job was sent" in err


def test_a_scheduler_that_goes_away_is_one_line(data_dir, tmp_path):
    alone = Cluster(tmp_path)
    try:
        alone.add_worker()  # one worker: the other runs wait in the queue
        command = [sys.executable, "-m", "lenet5", "experiment", EXPERIMENT, "--tiny", "--results",
                   str(tmp_path / "results"), "--runs", str(tmp_path / "runs"), "--scheduler", alone.address]
        client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=environment(LENET5_DATA_DIR=data_dir))
        for line in client.stdout:
            if " running on " in line:
                alone.scheduler.kill()
        err = client.stderr.read()
        assert client.wait(timeout=60) == 2
    finally:
        alone.close()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"lost the Dask scheduler {alone.address}" in err
    assert f"of 3 jobs finished and are saved under {tmp_path / 'runs' / EXPERIMENT}" in err


def _profiler_around_a_job():
    """On a worker (sent by value): is the worker's statistical profiler running before, during
    and after a block under tuned_for_training?"""
    import time

    from distributed import get_worker

    from lenet5.experiments.cluster import tuned_for_training

    def settled(callback, running):
        deadline = time.monotonic() + 5  # (the worker's event loop starts and stops it)
        while callback.is_running() != running and time.monotonic() < deadline:
            time.sleep(0.01)
        return callback.is_running()

    worker = get_worker()
    callback = worker.periodic_callbacks["profile"]
    before = callback.is_running()
    with tuned_for_training(worker):
        with tuned_for_training(worker):  # two jobs in one worker: it restarts after the last
            during = settled(callback, False)
        between = settled(callback, False)
    return before, during, between, settled(callback, True)


def test_the_workers_profiler_pauses_while_jobs_run_and_restarts_after(cluster):
    from lenet5.experiments.cluster import by_value

    with distributed.Client(cluster.address, timeout="20s", set_as_default=False) as client:
        state = client.submit(by_value(_profiler_around_a_job), pure=False).result(timeout=60)
    assert state == (True, False, False, True)


def test_jobs_relax_the_nannys_malloc_trimming_and_restore_it(monkeypatch):
    """Under MALLOC_TRIM_THRESHOLD_ (set by Dask's nanny), the first job raises glibc's mmap
    and trim thresholds and the last one to end puts Dask's values back; without it nothing
    is touched."""
    from types import SimpleNamespace

    from lenet5.experiments import cluster

    calls = []
    monkeypatch.setattr(cluster, "glibc_mallopt", lambda: lambda param, value: calls.append((param, value)))
    worker = SimpleNamespace(periodic_callbacks={}, loop=None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with cluster.tuned_for_training(worker):
        with cluster.tuned_for_training(worker):
            assert calls == [(cluster.M_MMAP_THRESHOLD, 32 << 20), (cluster.M_TRIM_THRESHOLD, 64 << 20)]
        assert len(calls) == 2  # another job still runs
    assert calls[2:] == [(cluster.M_MMAP_THRESHOLD, 128 << 10), (cluster.M_TRIM_THRESHOLD, 65536)]
    calls.clear()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    with cluster.tuned_for_training(worker):
        pass
    assert calls == []
