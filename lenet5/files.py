"""Every file the project writes goes through here: written to a temp file beside its final
name, flushed to disk, then renamed over it, so a crash or a full disk never leaves a
half-written file under the final name (and an old file stays intact until then)."""
import csv
import io
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def open_temp_beside(path, suffix=".tmp"):
    """(binary file open for writing, its Path): a new hidden file in path's directory, named
    after it, with the usual permissions (0666 less the umask, unlike tempfile's 0600)."""
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), tmp
    raise FileExistsError(f"no free temp file name beside {path}")


@contextmanager
def atomic_file(path, suffix=".tmp"):
    """`with atomic_file(p) as (f, tmp):` write to f (binary); on a clean exit it is flushed,
    fsynced and renamed to p; on an exception the temp file is removed and p is untouched.
    `tmp` is the temp file's path, for a check of what was written before it is committed."""
    path = Path(path)
    f, tmp = open_temp_beside(path, suffix)
    try:
        with f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
