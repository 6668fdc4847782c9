"""The MNIST downloader against a real HTTP server on 127.0.0.1 (never the internet).

The server serves small generated IDX .gz files whose checksums are injected through
ensure_mnist's `files` argument, and misbehaves on request: 404, 500, a body cut short,
wrong content, content that is not gzip, and a stall past the read timeout.
"""
import gzip
import hashlib
import os
import struct
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from lenet5.data import download, idx
from lenet5.data.download import MIRROR_ENV, MIRRORS, ensure_mnist, mirror_list
from lenet5.errors import Lenet5Error

REPO = Path(__file__).resolve().parents[1]
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
FAST = dict(progress=False, timeout=(2.0, 0.5), retries=0, backoff=0.0, include_defaults=False)


# --- generated files ------------------------------------------------------------------------

def idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape) + array.tobytes()


def make_files(seed=0):
    """{name: gz bytes} of a tiny images + labels pair, and their `files` table."""
    rng = np.random.default_rng(seed)
    raws = {IMAGES: idx_bytes(rng.integers(0, 256, (4, 28, 28))), LABELS: idx_bytes(rng.integers(0, 10, 4))}
    table = {name: (hashlib.sha256(raw).hexdigest(), len(raw)) for name, raw in raws.items()}
    return {name: gzip.compress(raw, mtime=0) for name, raw in raws.items()}, table


GZ, TABLE = make_files()
RAW = {name: gzip.decompress(data) for name, data in GZ.items()}


def wrong_content(name):
    """A valid gzip of the right size whose content differs by one byte."""
    raw = bytearray(RAW[name])
    raw[-1] ^= 0xFF
    return gzip.compress(bytes(raw))


# --- the server -------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
            route = server.routes.get(self.path)
        try:
            if route is None:
                self.send_error(404)
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def send_body(self, body, length=None):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def serve(body):
    return lambda h: h.send_body(body)


def status(code):
    return lambda h: h.send_error(code)


def truncated(body):
    """Promise the whole body, send half, close the connection."""
    return lambda h: h.send_body(body[: len(body) // 2], length=len(body))


def stall(body):
    """Send half the body, then go silent (until the test ends)."""
    def handle(h):
        h.send_body(body[: len(body) // 2], length=len(body))
        h.server.release.wait(10)
    return handle


def fail_first(times, code, body):
    """Answer `code` to the first `times` requests, then serve the body."""
    count = [0]

    def handle(h):
        count[0] += 1
        if count[0] <= times:
            h.send_error(code)
        else:
            h.send_body(body)
    return handle


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes, self.requests, self.sent = {}, [], []  # sent: bytes a route really sent
        self.lock, self.release = threading.Lock(), threading.Event()

    def mirror(self, name, routes=None):
        """URL of a mirror folder `name`, serving {file name: route}."""
        for file_name, route in (routes or {}).items():
            self.routes[f"/{name}/{file_name}"] = route
        return f"http://127.0.0.1:{self.server_port}/{name}/"

    def good(self, name="good"):
        return self.mirror(name, {n: serve(body) for n, body in GZ.items()})


@contextmanager
def running_server():
    """A MirrorServer on 127.0.0.1 serving from a thread until the block ends."""
    srv = MirrorServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def assert_only(data_dir, names):
    """data_dir holds exactly `names`, no temp files, and each is intact."""
    present = sorted(os.listdir(data_dir)) if data_dir.exists() else []
    assert present == sorted(names)
    for name in names:
        assert gzip.decompress((data_dir / name).read_bytes()) == RAW[name]


def fetch(data_dir, mirrors, **kwargs):
    """ensure_mnist with the test table and fast settings; returns the FileStatus list."""
    statuses = []
    ensure_mnist(data_dir, mirrors, files=TABLE, on_file=statuses.append, **{**FAST, **kwargs})
    return statuses


# --- success paths ----------------------------------------------------------------------------

def test_fetches_and_verifies_every_file(tmp_path, server):
    url = server.good()
    paths = ensure_mnist(tmp_path / "data", [url], files=TABLE, **FAST)
    assert paths == {name: tmp_path / "data" / name for name in TABLE}
    assert_only(tmp_path / "data", TABLE)
    assert sorted(server.requests) == sorted(f"/good/{n}" for n in TABLE)


def test_first_mirror_404_then_second_succeeds(tmp_path, server):
    gone, good = server.mirror("gone"), server.good()
    statuses = fetch(tmp_path, [gone, good])
    assert [s.fetched_from for s in statuses] == [good, good]
    assert f"/gone/{IMAGES}" in server.requests
    assert_only(tmp_path, TABLE)


def test_5xx_is_retried_then_succeeds(tmp_path, server):
    flaky = server.mirror("flaky", {n: fail_first(1, 503, body) for n, body in GZ.items()})
    statuses = fetch(tmp_path, [flaky], retries=2)
    assert [s.fetched_from for s in statuses] == [flaky, flaky]
    assert server.requests.count(f"/flaky/{IMAGES}") == 2
    assert_only(tmp_path, TABLE)


def test_local_directory_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, body in GZ.items():
        (mirror / name).write_bytes(body)
    for form in (str(mirror), f"file://{mirror}"):
        data = tmp_path / form.replace("/", "_")
        statuses = fetch(data, [form])
        assert [s.fetched_from for s in statuses] == [form, form]
        assert_only(data, TABLE)


def test_rerun_touches_no_network(tmp_path, server):
    fetch(tmp_path, [server.good()])
    server.requests.clear()
    dead = "http://127.0.0.1:9/"  # nothing listens there; it must not even be tried
    statuses = fetch(tmp_path, [server.good(), dead], include_defaults=True)
    assert server.requests == []
    assert [s.fetched_from for s in statuses] == [None, None]
    assert_only(tmp_path, TABLE)


def test_corrupt_file_on_disk_is_replaced(tmp_path, server):
    (tmp_path / IMAGES).write_bytes(b"\x1f\x8b\x08 not really gzip")
    (tmp_path / LABELS).write_bytes(GZ[LABELS])
    statuses = {s.name: s for s in fetch(tmp_path, [server.good()])}
    assert statuses[IMAGES].fetched_from and "bad gzip" in statuses[IMAGES].replaced
    assert statuses[LABELS].fetched_from is None
    assert server.requests == [f"/good/{IMAGES}"]
    assert_only(tmp_path, TABLE)


# --- failure paths ----------------------------------------------------------------------------

BAD_MIRRORS = {  # route maker (name -> route), what the error must say
    "missing": (lambda n: None, "HTTP 404"),
    "server-error": (lambda n: status(500), "HTTP 500"),
    "truncated": (lambda n: truncated(GZ[n]), "truncated body"),
    "wrong-content": (lambda n: serve(wrong_content(n)), "checksum mismatch"),
    "not-gzip": (lambda n: serve(RAW[n]), "bad gzip"),
    "cut-gzip": (lambda n: serve(GZ[n][:-20]), "truncated gzip"),
    "stall": (lambda n: stall(GZ[n]), "timed out"),
}


def bad_mirror(server, kind):
    make, _ = BAD_MIRRORS[kind]
    routes = {n: make(n) for n in GZ if make(n) is not None}
    return server.mirror(kind, routes)


@pytest.mark.slow
@pytest.mark.parametrize("kind", BAD_MIRRORS)
def test_bad_mirror_alone_fails_cleanly(tmp_path, server, kind):
    url = bad_mirror(server, kind)
    with pytest.raises(Lenet5Error) as e:
        fetch(tmp_path, [url])
    message = str(e.value)
    assert IMAGES in message and url in message and BAD_MIRRORS[kind][1] in message
    assert "\n" not in message
    assert_only(tmp_path, [])  # nothing under a final name, no temp files


@pytest.mark.slow
@pytest.mark.parametrize("kind", BAD_MIRRORS)
def test_bad_mirror_then_good_one(tmp_path, server, kind):
    url, good = bad_mirror(server, kind), server.good()
    statuses = fetch(tmp_path, [url, good])
    assert [s.fetched_from for s in statuses] == [good, good]
    assert_only(tmp_path, TABLE)


@pytest.mark.slow
def test_all_mirrors_fail_names_each_mirror_and_reason(tmp_path, server):
    kinds = ["missing", "truncated", "wrong-content", "stall"]
    urls = [bad_mirror(server, k) for k in kinds]
    local = tmp_path / "empty-mirror"
    local.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / IMAGES).write_bytes(b"corrupt")  # kept until an intact copy replaces it
    with pytest.raises(Lenet5Error) as e:
        fetch(data, urls + [str(local)])
    message = str(e.value)
    assert message.startswith(f"could not fetch {IMAGES} into {data} (the local copy is kept but "
                              "bad gzip")
    for url, kind in zip(urls, kinds):
        assert f"{url}: {BAD_MIRRORS[kind][1]}" in message
    assert f"{local}: missing file {local / IMAGES}" in message
    assert "\n" not in message
    assert os.listdir(data) == [IMAGES]  # no temp file left
    assert (data / IMAGES).read_bytes() == b"corrupt"


def test_retries_are_bounded(tmp_path, server):
    url = bad_mirror(server, "server-error")
    with pytest.raises(Lenet5Error, match=r"HTTP 500 .*\(after 3 attempts\)"):
        fetch(tmp_path, [url], retries=2)
    assert server.requests.count(f"/server-error/{IMAGES}") == 3


def test_no_mirrors(tmp_path):
    with pytest.raises(Lenet5Error, match="no mirrors to try"):
        fetch(tmp_path, [])


def test_mirror_order_argument_then_environment_then_defaults(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, " /srv/mnist , http://a.example/mnist/,")
    assert mirror_list(["http://x.example/"]) == ["http://x.example/", "/srv/mnist",
                                                  "http://a.example/mnist/", *MIRRORS]
    assert mirror_list([MIRRORS[1]], include_defaults=False) == [MIRRORS[1], "/srv/mnist",
                                                                 "http://a.example/mnist/"]
    monkeypatch.delenv(MIRROR_ENV)
    assert mirror_list() == list(MIRRORS)
    assert download.MIRRORS[0] == "http://yann.lecun.com/exdb/mnist/"


# --- the real files -------------------------------------------------------------------------

def test_real_files_over_http(tmp_path, server, shared_mnist_dir):
    url = server.mirror("real", {n: serve((shared_mnist_dir / n).read_bytes()) for n in idx.FILES})
    paths = ensure_mnist(tmp_path, [url], **FAST | {"timeout": (2.0, 10.0)})
    assert sorted(paths) == sorted(idx.FILES)
    assert sorted(os.listdir(tmp_path)) == sorted(idx.FILES)
    assert len(server.requests) == 4


# --- the command line -----------------------------------------------------------------------

def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in (MIRROR_ENV, "LENET5_DATA_DIR")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "lenet5", "download", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_download_then_nothing_to_do(tmp_path, shared_mnist_dir):
    first = run_cli("--dir", str(tmp_path), "--mirror", str(shared_mnist_dir))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(f"fetched from {shared_mnist_dir}") == 4
    second = run_cli("--dir", str(tmp_path), "--mirror", str(shared_mnist_dir))
    assert second.returncode == 0, second.stderr
    assert "nothing fetched" in second.stdout and "fetched from" not in second.stdout
    assert second.stdout.count("present, verified") == 4


def test_cli_failure_is_one_line_and_exit_2(tmp_path):
    result = run_cli("--dir", str(tmp_path / "data"), "--mirror", str(tmp_path / "nowhere"),
                     "--no-default-mirrors", "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lenet5: error: could not fetch")
    assert "missing file" in lines[0] and "Traceback" not in result.stderr
    assert os.listdir(tmp_path / "data") == []


# --- local write failures and the progress counter -------------------------------------------

def test_local_write_failure_is_reported_and_cleaned_up(tmp_path, server, monkeypatch):
    def disk_full(mirror, name, out, http, progress, cap):
        out.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download, "_copy_from_mirror", disk_full)
    with pytest.raises(Lenet5Error, match="cannot write .*No space left on device"):
        fetch(tmp_path, [server.good()])
    assert_only(tmp_path, [])


class FakeTerminal:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_progress_counter_draws_only_on_a_terminal(tty):
    stream = FakeTerminal(tty)
    bar = download._ByteProgress("train-images-idx3-ubyte.gz <- mirror", stream=stream)
    bar.start(2_000_000)
    bar.last_draw = float("-inf")
    bar.update(1_000_000)
    bar.close()
    if tty:
        assert "train-images-idx3-ubyte.gz <- mirror  1.0/2.0 MB" in stream.text
        assert "MB/s" in stream.text and stream.text.endswith("\r\033[K")
    else:
        assert stream.text == ""
