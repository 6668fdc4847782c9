"""Time the experiment suite: every experiment of `lenet5 experiment all`, one after another,
at a tenth of the paper's passes and one seed (every code path, every job), into a temporary
folder (results/ is not touched). Prints each experiment's wall seconds and the total.

    python scripts/time_suite.py [--tree DIR] [--epochs 2] [--seeds 0] [--data-dir DIR]

--tree runs another checkout's code (e.g. an older commit in a git worktree) with this
interpreter, so two versions are timed on the same machine in the same sitting. Each tree's
Numba cache is warmed first by `lenet5 experiment all --tiny` (not timed).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lenet5.experiments import NAMES, module  # noqa: E402  (this checkout's list, and each one's flags)


def experiment(tree, args, *flags):
    """Run `lenet5 experiment ...` from `tree`; the exit code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-m", "lenet5", "experiment", *flags, "--data-dir", args.data_dir],
                          cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", default=str(Path(__file__).resolve().parent.parent),
                   help="the checkout whose code to time (default: this one)")
    p.add_argument("--epochs", default="2", help="passes per training run (default 2)")
    p.add_argument("--seeds", default="0", help="seeds (default 0)")
    p.add_argument("--data-dir", default=os.environ.get("LENET5_DATA_DIR", "data/mnist"),
                   help="MNIST folder (default $LENET5_DATA_DIR or data/mnist)")
    args = p.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())
    tree = Path(args.tree).resolve()
    with tempfile.TemporaryDirectory(prefix="lenet5-suite-") as tmp:
        tmp = Path(tmp)
        experiment(tree, args, "all", "--tiny", "--results", str(tmp / "tiny"), "--runs", str(tmp / "tiny-runs"))
        total = 0.0
        for name in NAMES:
            start = time.perf_counter()
            flags = module(name).FLAGS  # (an experiment refuses a flag it does not use)
            code = experiment(tree, args, name, *(["--epochs", args.epochs] if "epochs" in flags else []),
                              *(["--seeds", args.seeds.split(",")[0] if "seed" in flags else args.seeds]
                                if {"seed", "seeds"} & set(flags) else []),
                              "--results", str(tmp / "results"), "--runs", str(tmp / "runs"))
            seconds = time.perf_counter() - start
            total += seconds
            print(f"{name:<12} {seconds:7.1f} s" + (f"  (exit {code})" if code else ""), flush=True)
        print(f"{'total':<12} {total:7.1f} s")


if __name__ == "__main__":
    sys.exit(main())
