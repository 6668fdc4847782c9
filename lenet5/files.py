"""Every file the project writes goes through here: written to a temp file beside its final
name, flushed to disk, then renamed over it, so a crash or a full disk never leaves a
half-written file under the final name (and an old file stays intact until then).

What sits at the path decides where the bytes go:
* nothing, or a regular file: the new file takes its place;
* a symbolic link: the file it points to is replaced and the link stays a link (as text
  editors do), so `ln -s run3.npz best.npz` keeps working after a save to best.npz;
* a folder, a FIFO, a device or a socket: WriteError, one line, nothing written.

Temp files are named `.<name>.<pid>.<8 hex>.<suffix>`: a process killed mid-write (SIGKILL,
power loss) leaves one behind, and the next write to the same name removes every such file
whose process is gone.
"""
import csv
import io
import json
import os
import re
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import Lenet5Error

SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class WriteError(Lenet5Error, OSError):
    """A path that cannot be written: a folder, a special file, a missing folder, no
    permission. Also an OSError, so code that tolerates an unwritable cache still does."""


def write_target(path):
    """The regular file a write to `path` replaces: `path` itself, or the file its symlink
    chain ends at. WriteError if that is a folder, a FIFO, a device or a socket."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as e:  # a symlink loop, no permission on a parent folder
        raise WriteError(f"cannot write {printable(path)}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise WriteError(f"cannot write {printable(path)}: it is a folder; give a file name")
    for test, kind in SPECIAL_FILES:
        if test(mode):
            raise WriteError(f"cannot write {printable(path)}: it is {kind}, not a regular file")
    return target


def temp_pattern(path, suffix):
    """The names open_temp_beside gives temp files of `path` (group 1: the writer's pid)."""
    return re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}{re.escape(suffix)}")


def remove_stale_temps(path, suffix=".tmp"):
    """Delete temp files of `path` left by writers that no longer run; returns their Paths."""
    path = Path(path)
    pattern, removed = temp_pattern(path, suffix), []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _running(int(match.group(1))):
            try:
                (path.parent / name).unlink()
                removed.append(path.parent / name)
            except OSError:
                pass
    return removed


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def open_temp_beside(path, suffix=".tmp"):
    """(binary file open for writing, its Path): a new hidden file in path's directory, named
    after it, with the usual permissions (0666 less the umask, unlike tempfile's 0600)."""
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as e:  # no such folder, no permission, read-only file system
            raise WriteError(f"cannot write {printable(path)}: {e.strerror or e}") from None
        return os.fdopen(fd, "wb"), tmp
    raise WriteError(f"cannot write {printable(path)}: no free temp file name beside it")


class UnreadableFile(Lenet5Error):
    """A path that is not a regular file to read; the message is the reason, without the path."""


def open_regular(path):
    """`path` opened for binary reading if it is a regular file (or a symlink to one). A FIFO
    is opened without blocking and refused, so a named pipe never hangs a reader waiting for a
    writer; UnreadableFile says what the path is instead."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UnreadableFile("no such file") from None
    except IsADirectoryError:
        raise UnreadableFile("is a folder, not a file") from None
    except OSError as e:
        raise UnreadableFile(f"cannot read ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise UnreadableFile("is a folder, not a file")
        kind = next((kind for test, kind in SPECIAL_FILES if test(mode)), "a special file")
        raise UnreadableFile(f"is {kind}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


@contextmanager
def atomic_file(path, suffix=".tmp"):
    """`with atomic_file(p) as (f, tmp):` write to f (binary); on a clean exit it is flushed,
    fsynced and renamed to p (to a symlink's target); on an exception the temp file is
    removed and p is untouched. `tmp` is the temp file's path, for a check of what was
    written before it is committed. WriteError if p is a folder or a special file."""
    target = write_target(path)
    remove_stale_temps(target, suffix)
    f, tmp = open_temp_beside(target, suffix)
    try:
        with f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path, write):
    """Call write(binary file) on a temp file beside `path`, then rename it to `path`."""
    with atomic_file(path) as (f, _):
        write(f)


def write_bytes_atomic(path, data):
    write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj, indent=1):
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def save_npz_atomic(path, arrays):
    """np.savez of `arrays` (name -> array), atomically; the folder is created if missing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def csv_text(rows, columns):
    """rows (dicts) as CSV text with a header of `columns`, for write_text_atomic."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def headless_pyplot():
    """matplotlib.pyplot with the file-only (Agg) backend, or None when matplotlib (the
    `[plots]` extra) is not installed; figures are then written with save_figure_atomic."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure_atomic(fig, path, dpi=110):
    """A matplotlib figure as a PNG, atomically (savefig would write the final name in place)."""
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def printable(name):
    """A file name as shown on a terminal: control characters (newline, escape, ...) and
    undecodable bytes as backslash escapes, so a name cannot break a line or drive the terminal;
    printable text, accents included, unchanged."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(name))
