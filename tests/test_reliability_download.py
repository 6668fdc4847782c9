"""The downloader against hostile mirrors on 127.0.0.1: a gzip bomb, an endless stream, a
huge Content-Length, a server that sends a byte now and then; a download killed by SIGTERM
or SIGKILL; a user's own IDX file under an MNIST name; nonsense timeouts."""
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from reliability_tools import REPO, lenet5_env, run_measured
from test_download import FAST, GZ, IMAGES, LABELS, RAW, TABLE, running_server, serve, wrong_content

from lenet5.cli import main
from lenet5.data import idx
from lenet5.data.download import MIRROR_ENV, PART, ensure_mnist, max_compressed_size
from lenet5.errors import Lenet5Error

BIG = "train-images-idx3-ubyte.gz"


@pytest.fixture
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def endless(total, length=None):
    """Send `total` bytes of zeros, with a Content-Length of `length` (None: no header, the
    body ends when the connection closes); the bytes really sent go to server.sent."""
    def handle(h):
        h.send_response(200)
        if length is not None:
            h.send_header("Content-Length", str(length))
        h.end_headers()
        sent, block = 0, bytes(1 << 16)
        try:
            while sent < total:
                h.wfile.write(block)
                sent += len(block)
        except OSError:
            pass
        finally:
            h.server.sent.append(sent)
            h.close_connection = True
    return handle


def drip(body, every):
    """The whole body promised, then one byte per `every` seconds (never a read timeout)."""
    def handle(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for k in range(len(body)):
            if h.server.release.wait(every):
                return
            h.wfile.write(body[k:k + 1])
            h.wfile.flush()
    return handle


def stall_after_half(body):
    def handle(h):
        h.send_body(body[: len(body) // 2], length=len(body))
        h.server.release.wait(60)
    return handle


def fetch(data_dir, mirrors, **kwargs):
    statuses = []
    ensure_mnist(data_dir, mirrors, on_file=statuses.append, **{**FAST, "files": TABLE, **kwargs})
    return statuses


def bomb(gigabytes):
    """A gzip of `gigabytes` GB of zeros, a few MB: members of 100 MB each, one after another."""
    return gzip.compress(bytes(100 << 20), compresslevel=9) * (10 * gigabytes)


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_at_the_first_byte_over_in_little_memory(tmp_path, server, shared_mnist_dir):
    data = tmp_path / "data"
    data.mkdir()
    for name in idx.FILES:
        if name != BIG:  # the other three are present and good
            shutil.copy(shared_mnist_dir / name, data / name)
    payload = bomb(3)
    url = server.mirror("bomb", {BIG: serve(payload)})
    started = time.perf_counter()
    peak_mb, code, out, err = run_measured("download", "--dir", data, "--mirror", url,
                                           "--no-default-mirrors", "--quiet")
    seconds = time.perf_counter() - started
    print(f"\n{len(payload) / 1e6:.1f} MB gzip of 3 GB of zeros: refused in {seconds:.1f} s, "
          f"peak memory {peak_mb:.0f} MB")
    assert code == 2 and "Traceback" not in err
    assert f"too large: more than {idx.FILES[BIG][1]:,} bytes decompressed" in err
    assert peak_mb < 200
    assert sorted(os.listdir(data)) == sorted(n for n in idx.FILES if n != BIG)


def test_a_stream_without_length_stops_at_the_cap(tmp_path, server):
    url = server.mirror("endless", {LABELS: endless(300 << 20), IMAGES: serve(GZ[IMAGES])})
    with pytest.raises(Lenet5Error, match=f"{LABELS} .* too large: more than "
                       f"{max_compressed_size(TABLE[LABELS][1]):,} bytes sent"):
        fetch(tmp_path, [url])
    server.release.set()
    time.sleep(0.3)
    assert server.sent and server.sent[0] < 20 << 20  # not 300 MB: the client hung up
    assert sorted(os.listdir(tmp_path)) == [IMAGES]


def test_a_content_length_over_the_cap_is_refused_before_the_body(tmp_path, server):
    url = server.mirror("huge", {IMAGES: endless(300 << 20, length=300 << 20)})
    with pytest.raises(Lenet5Error, match=f"too large: {300 << 20:,} bytes, the file is at most"):
        fetch(tmp_path, [url], files={IMAGES: TABLE[IMAGES]})
    assert os.listdir(tmp_path) == []


def test_a_too_large_local_mirror_file_is_refused(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / IMAGES).write_bytes(GZ[IMAGES] + bytes(max_compressed_size(TABLE[IMAGES][1])))
    with pytest.raises(Lenet5Error, match="too large"):
        fetch(tmp_path / "data", [str(mirror)], files={IMAGES: TABLE[IMAGES]})


@pytest.mark.slow
def test_a_server_that_drips_is_given_up_at_the_deadline(tmp_path, server):
    url = server.mirror("drip", {IMAGES: drip(GZ[IMAGES], 0.1)})
    started = time.perf_counter()
    with pytest.raises(Lenet5Error, match="gave up at the deadline of 1.5 s"):
        fetch(tmp_path, [url], files={IMAGES: TABLE[IMAGES]}, timeout=(2.0, 0.5), retries=2,
              deadline=1.5)
    seconds = time.perf_counter() - started
    assert seconds < 4, seconds  # ~30 s of dripping without a deadline
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("timeout", [("0", "0"), ("-1", "nan"), ("10", "inf")])
def test_nonsense_timeouts_are_one_line(tmp_path, capsys, timeout):
    code = main(["download", "--dir", str(tmp_path), "--timeout", *timeout, "--no-default-mirrors"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "must be a number of seconds > 0" in err


def test_a_nonsense_deadline_is_one_line(tmp_path, capsys):
    assert main(["download", "--dir", str(tmp_path), "--deadline", "0", "--no-default-mirrors"]) == 2
    assert "the deadline must be a number of seconds > 0" in capsys.readouterr().err


def start_download(data, url):
    return subprocess.Popen([sys.executable, "-m", "lenet5", "download", "--dir", str(data), "--mirror",
                             url, "--no-default-mirrors", "--quiet", "--timeout", "5", "30"],
                            cwd=REPO, env=lenet5_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_part(data, proc):
    for _ in range(300):
        parts = [p for p in os.listdir(data) if p.endswith(PART)] if data.exists() else []
        if parts:
            return parts
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no .part file appeared")


def real_table_server(server, shared_mnist_dir, stall_name):
    """A mirror of the real files where `stall_name` stalls halfway."""
    routes = {n: serve((shared_mnist_dir / n).read_bytes()) for n in idx.FILES}
    routes[stall_name] = stall_after_half((shared_mnist_dir / stall_name).read_bytes())
    return server.mirror("stall", routes), server.mirror("real", {
        n: serve((shared_mnist_dir / n).read_bytes()) for n in idx.FILES})


def test_sigterm_during_a_download_removes_its_temp_file(tmp_path, server, shared_mnist_dir):
    stalling, _ = real_table_server(server, shared_mnist_dir, BIG)
    data = tmp_path / "data"
    proc = start_download(data, stalling)
    wait_for_part(data, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped (SIGTERM)" in err and "Traceback" not in err
    assert not [p for p in os.listdir(data) if p.endswith(PART)]


def test_a_part_left_by_a_killed_download_is_removed_by_the_next(tmp_path, server, shared_mnist_dir):
    stalling, good = real_table_server(server, shared_mnist_dir, BIG)
    data = tmp_path / "data"
    proc = start_download(data, stalling)
    stale = wait_for_part(data, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)
    assert (data / stale[0]).exists()  # SIGKILL leaves it
    paths = ensure_mnist(data, [good], progress=False, include_defaults=False)
    assert sorted(os.listdir(data)) == sorted(idx.FILES) and len(paths) == 4


def test_a_part_beside_a_present_good_file_is_removed_too(tmp_path):
    (tmp_path / IMAGES).write_bytes(GZ[IMAGES])
    stale = tmp_path / f".{IMAGES}.999999999.0123abcd{PART}"  # no such process
    stale.write_bytes(b"half")
    fetch(tmp_path, [], files={IMAGES: TABLE[IMAGES]})
    assert os.listdir(tmp_path) == [IMAGES]


def test_a_users_own_idx_file_is_moved_aside_not_overwritten(tmp_path, server, capsys):
    theirs = wrong_content(IMAGES)  # a valid IDX file, one byte different from MNIST's
    (tmp_path / IMAGES).write_bytes(theirs)
    (tmp_path / LABELS).write_bytes(GZ[LABELS])
    statuses = {s.name: s for s in fetch(tmp_path, [server.good()])}
    assert (tmp_path / (IMAGES + ".not-mnist")).read_bytes() == theirs
    assert gzip.decompress((tmp_path / IMAGES).read_bytes()) == RAW[IMAGES]
    assert re.search(f"checksum mismatch .*, though it is an IDX file; it was moved to {IMAGES}.not-mnist$",
                     statuses[IMAGES].replaced)
    # a second one goes beside the first, never over it
    raw = bytearray(RAW[IMAGES])
    raw[-2] ^= 0xFF
    (tmp_path / IMAGES).write_bytes(gzip.compress(bytes(raw)))
    fetch(tmp_path, [server.good()])
    assert (tmp_path / (IMAGES + ".not-mnist")).read_bytes() == theirs
    assert gzip.decompress((tmp_path / (IMAGES + ".not-mnist-2")).read_bytes()) == bytes(raw)


def test_a_broken_download_is_still_replaced_in_place(tmp_path, server):
    (tmp_path / IMAGES).write_bytes(GZ[IMAGES][:-30])  # a cut gzip: not someone's data
    fetch(tmp_path, [server.good()])
    assert sorted(os.listdir(tmp_path)) == sorted(TABLE)
