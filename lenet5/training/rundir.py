"""Run folders: the one place a training run writes (checkpoint.npz, metrics.json, metrics.csv).

A run folder belongs to one run. Before training starts it is checked (a folder, writable,
room for a checkpoint, not inside the installed package), locked for as long as the run
writes (fcntl.flock on `.lock` in it), and refused if it holds another run's files unless
the caller says to replace them. Default folder names are claimed with an exclusive mkdir,
so two runs started in the same second get different folders.
"""
import fcntl
import os
import shutil
import time
from pathlib import Path

from ..errors import Lenet5Error
from ..files import open_temp_beside

RUN_FILES = ("checkpoint.npz", "metrics.json", "metrics.csv")
LOCK_NAME = ".lock"  # an empty file: only its flock matters
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RUNS_ROOT = Path("runs")


def reason(error):
    """An OSError as a few words: 'No space left on device', 'Permission denied'."""
    return error.strerror or str(error)


def inside_package(path):
    """True if `path` is in the installed lenet5 package (e.g. its reference checkpoint)."""
    try:
        Path(path).resolve().relative_to(PACKAGE_DIR)
    except ValueError:
        return False
    return True


def new_run_dir(root=RUNS_ROOT):
    """Create and return a fresh folder root/YYYYmmdd-HHMMSS (or ...-2, -3: the exclusive
    mkdir is the claim, so concurrent runs never share one)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        folder = Path(root) / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as e:
            raise Lenet5Error(f"cannot create run folder {folder}: {reason(e)}") from None
        return folder
    raise Lenet5Error(f"no free run folder name under {root} for {stamp}")


def check_writable(folder, need_bytes=0):
    """Make sure `folder` is (or can become) a folder we can write `need_bytes` into, before
    any training time is spent; returns it as a Path. Lenet5Error says what is wrong."""
    folder = Path(folder)
    if inside_package(folder):
        raise Lenet5Error(f"run folder {folder} is inside the installed lenet5 package; "
                          "runs are written to a folder of their own (choose another --out)")
    if folder.exists() and not folder.is_dir():
        raise Lenet5Error(f"run folder {folder} is a file, not a folder (choose another --out)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe, tmp = open_temp_beside(folder / "write-test", suffix=".probe")
        probe.close()
        tmp.unlink()
    except OSError as e:
        raise Lenet5Error(f"cannot write to run folder {folder}: {reason(e)}; nothing was "
                          "trained") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise Lenet5Error(f"run folder {folder} has {free:,} bytes free; a checkpoint needs about "
                          f"{need_bytes:,}; nothing was trained")
    return folder


class RunLock:
    """`with RunLock(folder):` -- this process is the only one writing a run into `folder`.
    A second run (another process, or another Trainer here) gets a Lenet5Error at once."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd = None

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise Lenet5Error(f"cannot create the lock file {self.path}: {reason(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise Lenet5Error(f"run folder {self.folder} is in use: another training is writing "
                              "to it right now; wait for it to finish or choose another --out") from None
        self.fd = fd
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def run_files(folder):
    """The run files present in `folder`."""
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def claim(folder, is_own, overwrite=False):
    """Make `folder` this run's (call it holding the RunLock): nothing there, or the files of
    this very run (`is_own(checkpoint path)` says so), or -- with overwrite -- another run's
    files, which are then removed. Anything else is a Lenet5Error naming the way out."""
    folder = Path(folder)
    present = run_files(folder)
    if not present:
        return
    checkpoint = folder / "checkpoint.npz"
    if checkpoint.exists() and is_own(checkpoint):
        return
    if overwrite:
        for name in present:
            (folder / name).unlink()
        return
    ways = [f"continue it with --resume {checkpoint}"] if checkpoint.exists() else []
    ways += ["replace it with --overwrite", "or choose another --out"]
    raise Lenet5Error(f"run folder {folder} already holds another run ({', '.join(present)}); "
                      + ", ".join(ways))
