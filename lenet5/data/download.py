"""Fetch the four MNIST files from a list of mirrors, verifying each one.

For every file of the table (`lenet5.data.idx.FILES` by default: name -> SHA-256 of the
decompressed content, decompressed size):

* if it is already in the data directory and its decompressed content verifies, it is
  kept; when every file is present and good, nothing touches the network;
* a present but corrupt file (a broken download: bad or cut gzip) is fetched again, and
  kept until an intact copy replaces it. A present file that is a readable IDX file but not
  MNIST's (a user's own data under MNIST's name) is never overwritten: it is moved aside to
  `<name>.not-mnist` (`.not-mnist-2`, ... if taken) before the fetch, and the move is reported;
* otherwise the mirrors are tried in order. Each copy goes to a temp file in the data
  directory (HTTP(S) streamed through one `requests.Session` with connect/read timeouts
  and bounded retries for connection errors, timeouts, truncated bodies and 5xx
  responses; a local directory copied), is verified, and only then renamed to its final
  name with `os.replace`. A copy that fails verification is deleted and the next mirror
  is tried;
* sizes are capped by what the table knows: a copy is refused at the first byte past the
  largest gzip its decompressed size can give (`max_compressed_size`), or past that size
  once decompressed, so a huge stream or a gzip bomb costs neither disk nor memory; a
  Content-Length over the cap is refused before any byte is read;
* each mirror gets an overall deadline per file (all attempts together), so a server that
  sends a byte now and then, never letting the read timeout fire, is still given up on;
* temp files (`.<name>.<pid>.<hex>.part`) of a download that was killed are removed by the
  next run; `lenet5 download` turns SIGTERM into a clean exit that removes its temp file;
* every file is tried; when any fails at every mirror, one Lenet5Error names each such file,
  what was wrong with the local copy, and what went wrong at each mirror. No new file is left
  under its final name after a failure, and no temp file at all.

Mirror order: the `mirrors` argument, then $LENET5_MNIST_MIRROR (one or more URLs or local
directories, separated by commas), then `MIRRORS` (unless include_defaults=False).
"""
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from ..errors import Lenet5Error
from ..files import UnreadableFile, atomic_file, open_regular, remove_stale_temps
from . import idx

MIRRORS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRROR_ENV = "LENET5_MNIST_MIRROR"
DEFAULT_TIMEOUT = (10.0, 30.0)  # seconds: (connect, read -- the longest wait for any data)
DEFAULT_DEADLINE = 600.0  # seconds for one file from one mirror, all attempts together
PART = ".part"  # suffix of the temp file a download is written to
ASIDE = ".not-mnist"  # suffix a user's own IDX file under an MNIST name is moved to
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


def max_compressed_size(raw_size):
    """The largest a gzip of `raw_size` bytes can be: deflate's stored blocks add 5 bytes per
    65,535, gzip 18 bytes of header and trailer; 4 KB more allow a stored file name."""
    return raw_size + 5 * (raw_size // 65_535 + 1) + 18 + 4096


def check_timeouts(timeout, deadline):
    """Lenet5Error unless every timeout and the deadline are finite numbers of seconds > 0."""
    values = timeout if isinstance(timeout, (tuple, list)) else (timeout,)
    for name, value in [*zip(("connect timeout", "read timeout"), values), ("deadline", deadline)]:
        try:
            ok = math.isfinite(value) and value > 0
        except TypeError:
            ok = False
        if not ok:
            raise Lenet5Error(f"the {name} must be a number of seconds > 0, got {value!r}")


def ensure_mnist(data_dir, mirrors=None, progress=True, timeout=DEFAULT_TIMEOUT, files=None, *,
                 retries=2, backoff=0.5, include_defaults=True, on_file=None,
                 deadline=DEFAULT_DEADLINE):
    """Make sure every file of `files` (default idx.FILES) is in `data_dir` and verified;
    return {name: path}.

    mirrors: URLs or local directories tried before $LENET5_MNIST_MIRROR and MIRRORS.
    progress: show a live byte counter on stderr while fetching (only on a terminal).
    timeout: (connect, read) seconds for each HTTP request.
    deadline: seconds one file may take from one mirror, all attempts together.
    retries, backoff: repeats of a request after a transient failure, waiting
        backoff * 2**k seconds before repeat k.
    include_defaults: False tries only `mirrors` and $LENET5_MNIST_MIRROR.
    on_file: called with a FileStatus once each file is in place.
    Every file is tried; Lenet5Error names each file that could not be had, with every
    mirror's failure.
    """
    check_timeouts(timeout, deadline)
    files = idx.FILES if files is None else files
    data_dir = Path(data_dir)
    ordered = mirror_list(mirrors, include_defaults)
    paths, failed = {}, []
    with requests.Session() as session:
        session.headers.update({"Accept-Encoding": "identity", "User-Agent": "lenet5-download"})
        http = _Http(session, timeout, retries, backoff, deadline)
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
    remove_stale_temps(target, PART)  # (left by a download that was killed)
    problem, theirs = _present_problem(target, sha256, raw_size)
    if problem is None:
        return FileStatus(name, target, seconds=time.perf_counter() - started)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Lenet5Error(f"cannot write to data directory {data_dir}: {e.strerror or e}") from None
    if theirs:  # an IDX file of someone's own: never overwritten
        problem = f"{problem}; it was moved to {_move_aside(target).name}"
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
    local = ("" if problem == "missing" else f" ({problem})" if theirs
             else f" (the local copy is kept but {problem})")
    raise _FileFailed(f"could not fetch {name} into {data_dir}{local} -- {tried}")


class _FileFailed(Exception):
    """One file could not be had from any mirror; ensure_mnist goes on with the others."""


def _present_problem(target, sha256, raw_size):
    """(None if `target` holds the expected content, "missing", or what is wrong with it;
    True if it is nonetheless a readable IDX file -- someone's own data, not a broken copy)."""
    if not target.exists() and not target.is_symlink():
        return "missing", False
    try:
        data = idx.read_bytes(target, limit=raw_size)
    except idx.CorruptFileError as e:
        return e.reason, False
    except Lenet5Error as e:  # a folder, a FIFO, unreadable: not ours to replace
        raise _FileFailed(str(e)) from None
    problem = idx.content_problem(data, sha256, raw_size) if len(data) <= raw_size else (
        f"too large: more than {raw_size:,} bytes decompressed")
    if problem is None:
        return None, False
    return f"{problem}, though it is an IDX file", idx.looks_like_idx(data)


def _move_aside(target):
    """Rename `target` to a free `<name>.not-mnist[-k]` beside it; returns the new Path."""
    for k in range(1, 1000):
        aside = target.with_name(target.name + ASIDE + (f"-{k}" if k > 1 else ""))
        if not aside.exists() and not aside.is_symlink():
            try:
                os.rename(target, aside)
            except OSError as e:
                raise _FileFailed(f"{target} is an IDX file that is not MNIST's and cannot be moved "
                                  f"aside ({e.strerror or e}); move it away and run again") from None
            return aside
    raise _FileFailed(f"{target} is an IDX file that is not MNIST's; move it away and run again")


def _fetch(mirror, target, sha256, raw_size, http, progress):
    """Copy target.name from `mirror` into a temp file beside `target`, verify it, rename it
    to `target`. FetchError says what went wrong at the mirror; a failure to write locally
    (disk full, permissions) is a Lenet5Error. The temp file never survives."""
    try:
        with atomic_file(target, suffix=PART) as (out, tmp):
            _copy_from_mirror(mirror, target.name, out, http, progress, max_compressed_size(raw_size))
            out.flush()
            try:
                idx.read_verified(tmp, sha256, raw_size, compressed=target.suffix == ".gz")
            except idx.CorruptFileError as e:
                raise FetchError(e.reason) from None
    except Lenet5Error:  # (files.WriteError already names the file and the reason)
        raise
    except OSError as e:
        raise Lenet5Error(f"cannot write {target}: {e.strerror or e}") from None


def _copy_from_mirror(mirror, name, out, http, progress, cap):
    """Write the mirror's copy of `name` into the open file `out`; FetchError past `cap` bytes."""
    bar = _ByteProgress(f"{name} <- {mirror}", enabled=progress)
    sink = _CappedSink(out, bar, cap)
    try:
        if is_url(mirror):
            http.download(mirror.rstrip("/") + "/" + name, sink)
        else:
            _copy_local(_local_dir(mirror) / name, sink)
    finally:
        bar.close()


def _local_dir(mirror):
    """A local mirror's directory (a plain path or a file:// URL)."""
    return Path(mirror.removeprefix("file://")).expanduser()


class _CappedSink:
    """The temp file a copy goes to: counts bytes, draws progress, and raises FetchError
    before writing the first byte past `cap` (so nothing over the cap reaches the disk)."""

    def __init__(self, out, bar, cap):
        self.out, self.bar, self.cap, self.received = out, bar, cap, 0

    def start(self, expected):
        """A new attempt that promises `expected` bytes (None: unknown)."""
        if expected is not None and expected > self.cap:
            raise FetchError(f"too large: {expected:,} bytes, the file is at most {self.cap:,}")
        self.out.seek(0)
        self.out.truncate()
        self.received = 0
        self.bar.start(expected)

    def write(self, chunk):
        if self.received + len(chunk) > self.cap:
            raise FetchError(f"too large: more than {self.cap:,} bytes sent, the file is at most "
                             f"{self.cap:,}")
        self.out.write(chunk)
        self.received += len(chunk)
        self.bar.update(len(chunk))


def _copy_local(source, sink):
    """Copy the file `source` into `sink`; a missing or unreadable source is a FetchError."""
    try:
        f = open_regular(source)
    except UnreadableFile as e:
        raise FetchError(f"missing file {source}" if "no such file" in str(e) else f"{source}: {e}") from None
    with f:
        sink.start(os.fstat(f.fileno()).st_size)
        while True:
            try:
                chunk = f.read(CHUNK)
            except OSError as e:
                raise FetchError(f"cannot read {source}: {e.strerror or e}") from None
            if not chunk:
                return
            sink.write(chunk)


class _Http:
    """HTTP(S) downloads through one session, with timeouts and bounded retries."""

    def __init__(self, session, timeout, retries, backoff, deadline=DEFAULT_DEADLINE):
        self.session, self.timeout = session, timeout
        self.retries, self.backoff, self.deadline = retries, backoff, deadline

    def download(self, url, sink):
        """Stream `url` into `sink`; retry transient failures from the start, all within the
        deadline."""
        give_up = time.monotonic() + self.deadline
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), max(give_up - time.monotonic(), 0)))
            try:
                return self._download_once(url, sink, give_up)
            except _Retryable as e:
                last = e
            if time.monotonic() >= give_up:
                raise FetchError(f"{last}; gave up at the deadline of {self.deadline:g} s")
        attempts = f" (after {self.retries + 1} attempts)" if self.retries else ""
        raise FetchError(f"{last}{attempts}")

    def _download_once(self, url, sink, give_up):
        """One GET into `sink`. Each read waits at most the read timeout, and no longer than
        the deadline leaves, and the deadline is checked after every read."""
        expected = None
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
        left = give_up - time.monotonic()
        try:
            with self.session.get(url, stream=True, timeout=(min(connect, left), min(read, left))) as response:
                if response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code} {response.reason}")
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code} {response.reason}")
                expected = _content_length(response)
                sink.start(expected)
                while chunk := response.raw.read1(CHUNK, decode_content=True):  # (as soon as any data)
                    sink.write(chunk)
                    if time.monotonic() > give_up:
                        raise _Retryable(f"too slow ({sink.received:,} bytes in {self.deadline:g} s)")
        except requests.RequestException as e:
            raise _Retryable(self._describe(e, expected)) from None
        except urllib3.exceptions.HTTPError as e:  # (raw reads raise urllib3's own errors)
            raise _Retryable(self._describe(e, expected)) from None
        if expected and sink.received != expected:
            raise _Retryable(f"truncated body ({sink.received:,} of {expected:,} bytes)")

    def _describe(self, error, expected=None):
        """A short reason for a requests exception."""
        text = str(error)
        if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError)) or "timed out" in text.lower():
            connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
            if isinstance(error, requests.ConnectTimeout):
                return f"connect timed out after {connect} s"
            return f"timed out (no data for {read} s)"
        if (isinstance(error, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError))
                or "IncompleteRead" in text):
            of = f" the promised {expected:,}" if expected else " all"
            return f"truncated body (connection closed before{of} bytes arrived)"
        if isinstance(error, requests.ConnectionError):
            return f"connection failed ({_root_cause(error)})"
        return f"{type(error).__name__} ({_root_cause(error)})"


def _content_length(response):
    """The Content-Length header as an int, or None if absent or not a plain ASCII number."""
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


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

