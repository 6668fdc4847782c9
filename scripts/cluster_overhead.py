"""Time the same experiment in the local process pool and through a Dask cluster on this
machine, alternating, and print each time and the ratio (the cluster's cost).

    python scripts/cluster_overhead.py [--repeats 3] [--workers 2] [--data-dir DIR] [-- ARGS]

Each repetition runs `lenet5 experiment curves --epochs 20 --seeds 0,1` (or the experiment
ARGS after `--`) once with --processes WORKERS and once through a `dask scheduler` and `dask
worker --nworkers WORKERS --nthreads 1` started here on 127.0.0.1 (random ports, a fresh
cluster per repetition), each into its own temporary folder (results/ is not touched). A
first tiny run warms the Numba cache and is not timed. Needs the [cluster] extra.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ARGS = ["curves", "--epochs", "20", "--seeds", "0,1"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lenet5(args, folder, *extra):
    """Seconds `lenet5 experiment ARGS` took, its output into folder/log.txt."""
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "lenet5", "experiment", *args, "--results", str(folder / "results"),
               "--runs", str(folder / "runs"), *extra]
    started = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - started


def cluster(workers, folder):
    """(address, processes) of a scheduler and `workers` single-threaded workers on 127.0.0.1."""
    dask = str(Path(sys.executable).with_name("dask"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = [open(folder / name, "w") for name in ("scheduler.log", "workers.log")]
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=logs[0], stderr=subprocess.STDOUT)
    time.sleep(3)
    pool = subprocess.Popen([dask, "worker", address, "--nworkers", str(workers), "--nthreads", "1",
                             "--no-dashboard"], stdout=logs[1], stderr=subprocess.STDOUT)
    time.sleep(8)  # (the workers start and register; not timed)
    return address, (pool, scheduler)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="local + cluster pairs (default 3)")
    p.add_argument("--workers", type=int, default=2, help="local processes = cluster workers (default 2)")
    p.add_argument("--data-dir", default=os.environ.get("LENET5_DATA_DIR", "data/mnist"),
                   help="MNIST folder (default $LENET5_DATA_DIR or data/mnist)")
    p.add_argument("args", nargs="*", help="the experiment and its options (default: "
                   + " ".join(DEFAULT_ARGS) + ")")
    opts = p.parse_args()
    args = (opts.args or DEFAULT_ARGS) + ["--data-dir", str(Path(opts.data_dir).resolve())]
    with tempfile.TemporaryDirectory(prefix="lenet5-overhead-") as tmp:
        tmp = Path(tmp)
        lenet5([args[0], "--tiny", *args[-2:]], tmp / "warm")
        times = {"local": [], "cluster": []}
        for rep in range(1, opts.repeats + 1):
            times["local"].append(lenet5(args, tmp / f"local{rep}", "--processes", str(opts.workers)))
            (tmp / f"dask{rep}").mkdir()
            address, processes = cluster(opts.workers, tmp / f"dask{rep}")
            try:
                times["cluster"].append(lenet5(args, tmp / f"cluster{rep}", "--scheduler", address))
            finally:
                for process in processes:
                    process.terminate()
                    process.wait(timeout=30)
            print(f"repetition {rep}: local {times['local'][-1]:.1f} s, cluster {times['cluster'][-1]:.1f} s "
                  f"({times['cluster'][-1] / times['local'][-1]:.3f})", flush=True)
    local, remote = (sum(t) / len(t) for t in (times["local"], times["cluster"]))
    ratios = [c / lo for c, lo in zip(times["cluster"], times["local"])]
    spread = {k: f"{min(t):.1f}-{max(t):.1f}" for k, t in times.items()}
    print(f"local {local:.1f} s ({spread['local']}), cluster {remote:.1f} s ({spread['cluster']}): the cluster "
          f"takes {100 * (remote / local - 1):+.1f}% (per repetition {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
