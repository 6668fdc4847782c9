"""Fetch the four MNIST files from a list of mirrors, verifying each one.

For every file of the table (`lenet5.data.idx.FILES` by default: name -> SHA-256 of the
decompressed content, decompressed size):

* if it is already in the data directory and its decompressed content verifies, it is
  kept; when every file is present and good, nothing touches the network;
* a present but corrupt file is fetched again, and kept until an intact copy replaces it;
* otherwise the mirrors are tried in order. Each copy goes to a temp file in the data
  directory (HTTP(S) streamed through one `requests.Session` with connect/read timeouts
  and bounded retries for connection errors, timeouts, truncated bodies and 5xx
  responses; a local directory copied), is verified, and only then renamed to its final
  name with `os.replace`. A copy that fails verification is deleted and the next mirror
  is tried;
* every file is tried; when any fails at every mirror, one Lenet5Error names each such file,
  what was wrong with the local copy, and what went wrong at each mirror. No new file is left
  under its final name after a failure, and no temp file at all.

Mirror order: the `mirrors` argument, then $LENET5_MNIST_MIRROR (one or more URLs or local
directories, separated by commas), then `MIRRORS` (unless include_defaults=False).
"""
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import Lenet5Error
from ..files import atomic_file
from . import idx

MIRRORS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRROR_ENV = "LENET5_MNIST_MIRROR"
DEFAULT_TIMEOUT = (10.0, 30.0)  # seconds: (connect, read -- the longest wait for any data)
CHUNK = 1 << 16


class FetchError(Exception):
    """What went wrong fetching one file from one mirror (a short reason)."""


class _Retryable(FetchError):
    """A failure that may pass if the request is repeated (connection, timeout, 5xx)."""


@dataclass
class FileStatus:
    """What ensure_mnist did for one file."""
    name: str
    path: Path
    fetched_from: str = None  # the mirror it came from; None if it was present and verified
    replaced: str = None  # why a file already present was replaced (it was corrupt)
    seconds: float = 0.0


def mirror_list(mirrors=None, include_defaults=True):
    """The mirrors to try, in order: `mirrors`, then $LENET5_MNIST_MIRROR (comma-separated),
    then the default MIRRORS; duplicates dropped."""
    env = [m.strip() for m in os.environ.get(MIRROR_ENV, "").split(",")]
    candidates = [str(m) for m in (mirrors or ())] + env + list(MIRRORS if include_defaults else ())
    seen, ordered = set(), []
    for mirror in candidates:
        key = mirror.rstrip("/")
        if mirror and key not in seen:
            seen.add(key)
            ordered.append(mirror)
    return ordered


def is_url(mirror):
    return mirror.startswith(("http://", "https://"))


def ensure_mnist(data_dir, mirrors=None, progress=True, timeout=DEFAULT_TIMEOUT, files=None, *,
                 retries=2, backoff=0.5, include_defaults=True, on_file=None):
    """Make sure every file of `files` (default idx.FILES) is in `data_dir` and verified;
    return {name: path}.

    mirrors: URLs or local directories tried before $LENET5_MNIST_MIRROR and MIRRORS.
    progress: show a live byte counter on stderr while fetching (only on a terminal).
    timeout: (connect, read) seconds for each HTTP request.
    retries, backoff: repeats of a request after a transient failure, waiting
        backoff * 2**k seconds before repeat k.
    include_defaults: False tries only `mirrors` and $LENET5_MNIST_MIRROR.
    on_file: called with a FileStatus once each file is in place.
    Every file is tried; Lenet5Error names each file that could not be had, with every
    mirror's failure.
    """
    files = idx.FILES if files is None else files
    data_dir = Path(data_dir)
    ordered = mirror_list(mirrors, include_defaults)
    paths, failed = {}, []
    with requests.Session() as session:
        session.headers.update({"Accept-Encoding": "identity", "User-Agent": "lenet5-download"})
        http = _Http(session, timeout, retries, backoff)
        for name, (sha256, raw_size) in files.items():
            try:
                status = _ensure_file(data_dir, name, sha256, raw_size, ordered, http, progress)
            except _FileFailed as e:
                failed.append(str(e))
                continue
            paths[name] = status.path
            if on_file:
                on_file(status)
    if failed:
        raise Lenet5Error(" | ".join(failed))
    return paths


def _ensure_file(data_dir, name, sha256, raw_size, mirrors, http, progress):
    """Keep the verified file, or fetch it from the first mirror that serves it intact."""
    started = time.perf_counter()
    target = data_dir / name
    problem = _present_problem(target, sha256, raw_size)
    if problem is None:
        return FileStatus(name, target, seconds=time.perf_counter() - started)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Lenet5Error(f"cannot write to data directory {data_dir}: {e.strerror or e}") from None
    failures = []
    for mirror in mirrors:
        try:
            _fetch(mirror, target, sha256, raw_size, http, progress)
        except FetchError as e:
            failures.append(f"{mirror}: {e}")
            continue
        return FileStatus(name, target, fetched_from=mirror,
                          replaced=None if problem == "missing" else problem,
                          seconds=time.perf_counter() - started)
    tried = "; ".join(failures) if failures else "no mirrors to try"
    local = "" if problem == "missing" else f" (the local copy is kept but {problem})"
    raise _FileFailed(f"could not fetch {name} into {data_dir}{local} -- {tried}")


class _FileFailed(Exception):
    """One file could not be had from any mirror; ensure_mnist goes on with the others."""


def _present_problem(target, sha256, raw_size):
    """None if `target` holds the expected content, "missing", or what is wrong with it."""
    if not target.exists():
        return "missing"
    try:
        idx.read_verified(target, sha256, raw_size)
    except idx.CorruptFileError as e:
        return e.reason
    return None


def _fetch(mirror, target, sha256, raw_size, http, progress):
    """Copy target.name from `mirror` into a temp file beside `target`, verify it, rename it
    to `target`. FetchError says what went wrong at the mirror; a failure to write locally
    (disk full, permissions) is a Lenet5Error. The temp file never survives."""
    try:
        with atomic_file(target, suffix=".part") as (out, tmp):
            _copy_from_mirror(mirror, target.name, out, http, progress)
            out.flush()
            try:
                idx.read_verified(tmp, sha256, raw_size, compressed=target.suffix == ".gz")
            except idx.CorruptFileError as e:
                raise FetchError(e.reason) from None
    except Lenet5Error:  # (files.WriteError already names the file and the reason)
        raise
    except OSError as e:
        raise Lenet5Error(f"cannot write {target}: {e.strerror or e}") from None


def _copy_from_mirror(mirror, name, out, http, progress):
    """Write the mirror's copy of `name` into the open file `out`."""
    bar = _ByteProgress(f"{name} <- {mirror}", enabled=progress)
    try:
        if is_url(mirror):
            http.download(mirror.rstrip("/") + "/" + name, out, bar)
        else:
            _copy_local(_local_dir(mirror) / name, out, bar)
    finally:
        bar.close()


def _local_dir(mirror):
    """A local mirror's directory (a plain path or a file:// URL)."""
    return Path(mirror.removeprefix("file://")).expanduser()


def _copy_local(source, out, bar):
    """Copy the file `source` into `out`; a missing or unreadable source is a FetchError."""
    try:
        f = open(source, "rb")
    except FileNotFoundError:
        raise FetchError(f"missing file {source}") from None
    except OSError as e:
        raise FetchError(f"cannot read {source}: {e.strerror or e}") from None
    with f:
        bar.start(os.fstat(f.fileno()).st_size)
        while True:
            try:
                chunk = f.read(CHUNK)
            except OSError as e:
                raise FetchError(f"cannot read {source}: {e.strerror or e}") from None
            if not chunk:
                return
            out.write(chunk)
            bar.update(len(chunk))


class _Http:
    """HTTP(S) downloads through one session, with timeouts and bounded retries."""

    def __init__(self, session, timeout, retries, backoff):
        self.session, self.timeout = session, timeout
        self.retries, self.backoff = retries, backoff

    def download(self, url, out, bar):
        """Stream `url` into the file `out`; retry transient failures from the start."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
                out.seek(0)
                out.truncate()
            try:
                return self._download_once(url, out, bar)
            except _Retryable as e:
                last = e
        attempts = f" (after {self.retries + 1} attempts)" if self.retries else ""
        raise FetchError(f"{last}{attempts}")

    def _download_once(self, url, out, bar):
        expected = None
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code} {response.reason}")
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code} {response.reason}")
                expected = _content_length(response)
                bar.start(expected)
                received = 0
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except requests.RequestException as e:
            raise _Retryable(self._describe(e, expected)) from None
        if expected and received != expected:
            raise _Retryable(f"truncated body ({received:,} of {expected:,} bytes)")

    def _describe(self, error, expected=None):
        """A short reason for a requests exception."""
        text = str(error)
        if isinstance(error, requests.Timeout) or "timed out" in text.lower():
            connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
            if isinstance(error, requests.ConnectTimeout):
                return f"connect timed out after {connect} s"
            return f"timed out (no data for {read} s)"
        if isinstance(error, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text:
            of = f" the promised {expected:,}" if expected else " all"
            return f"truncated body (connection closed before{of} bytes arrived)"
        if isinstance(error, requests.ConnectionError):
            return f"connection failed ({_root_cause(error)})"
        return f"{type(error).__name__} ({_root_cause(error)})"


def _content_length(response):
    """The Content-Length header as an int, or None if absent or not a number."""
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _root_cause(error):
    """The innermost exception's message, which is where the useful part usually is."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    cause = getattr(error, "reason", None)
    if isinstance(cause, BaseException):
        error = cause
    return str(error).split(": ", 1)[-1][:160]


class _ByteProgress:
    """Bytes done/total and rate, redrawn in place on stderr when it is a terminal."""

    def __init__(self, label, enabled=True, stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.enabled = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.total, self.done = None, 0
        self.started = self.last_draw = time.perf_counter()

    def start(self, total):
        self.total, self.done = total, 0
        self.started = time.perf_counter()

    def update(self, n):
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self.last_draw >= 0.1:
            self.last_draw = now
            rate = self.done / max(now - self.started, 1e-9)
            of = f"/{self.total / 1e6:.1f}" if self.total else ""
            self.stream.write(f"\r{self.label}  {self.done / 1e6:.1f}{of} MB  {rate / 1e6:.1f} MB/s ")
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

