"""Helpers for the reliability tests: the peak memory of a command, measured in a process of
its own (so no earlier child of the test run counts)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")


def lenet5_env():
    env = {k: v for k, v in os.environ.items() if k not in ("LENET5_MNIST_MIRROR", "LENET5_DATA_DIR")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_measured(*args, timeout=300):
    """Run `python -m lenet5 *args`; (its peak resident memory in MB, exit code, stdout, stderr).
    The command runs as the only child of a small wrapper that reads RUSAGE_CHILDREN."""
    proc = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "lenet5", *map(str, args)],
                          cwd=REPO, env=lenet5_env(), capture_output=True, text=True, timeout=timeout)
    *out, last = proc.stdout.rstrip("\n").split("\n")
    kb, code = map(int, last.split())
    return kb / 1024, code, "\n".join(out), proc.stderr


def one_line_error(capsys, argv):
    """Run the CLI in this process; assert exit code 2 with one `lenet5: error:` line; return it."""
    from lenet5.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("lenet5: error: ") and "Traceback" not in err
    return err
