"""The demo server under hostile or careless clients: a Content-Length that is a digit only in
Unicode ("²"), two Content-Length headers, a burst of 100 connections at once, clients that
reset the connection mid-request; and `--host 0.0.0.0` naming a reachable address and warning
that the page is open to the network. Every server binds 127.0.0.1."""
import json
import select
import socket
import struct
import threading
import time

import pytest
from test_demo_api import assert_alive, assert_json_error, raw_request

from lenet5.cli import main
from lenet5.core.model import reference_checkpoint
from lenet5.tools.demo import server as demo_server
from lenet5.tools.demo.classify import Classifier
from lenet5.tools.demo.samples import shipped
from lenet5.tools.demo.server import exposure_warning, make_server, outward_address, page_url


@pytest.fixture(scope="module")
def classifier():
    return Classifier.from_checkpoint(reference_checkpoint())


@pytest.fixture(scope="module")
def server(classifier):
    srv = make_server(classifier, shipped(), port=0, seed=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_a_unicode_digit_content_length_is_a_400(server):
    status, reply = raw_request(server, b"POST /api/classify HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: \xb2\r\n\r\n{}")  # "\xb2" is "²" in Latin-1
    assert_json_error(status, reply, 400)
    assert b"is not a byte count" in reply
    assert_alive(server)


def test_two_content_length_headers_are_a_400(server):
    body = json.dumps({"pixels": [0] * 64, "width": 8, "height": 8}).encode()
    status, reply = raw_request(server, b"POST /api/classify HTTP/1.1\r\nHost: x\r\n"
                                + f"Content-Length: {len(body)}\r\nContent-Length: 2\r\n\r\n".encode(), body)
    assert_json_error(status, reply, 400)
    assert b"2 Content-Length headers" in reply
    assert_alive(server)


def test_a_burst_of_connections_is_queued_not_dropped(classifier):
    """100 connections at once to a server that is not accepting yet: all complete their
    handshake into the listen queue (with the default queue of 5, the kernel drops the SYNs
    past it and those clients retry a second later)."""
    srv = make_server(classifier, shipped(), port=0)
    socks = []
    try:
        for _ in range(100):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(srv.server_address)
            socks.append(s)
        pending, deadline = set(socks), time.monotonic() + 0.5
        while pending and time.monotonic() < deadline:
            _, ready, _ = select.select([], list(pending), [], 0.05)
            pending -= {s for s in ready if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
        assert len(pending) == 0, f"{len(pending)} of 100 connections still waiting after 0.5 s"
    finally:
        for s in socks:
            s.close()
        srv.server_close()


def test_a_client_that_resets_mid_request_leaves_no_traceback(server, capfd):
    for _ in range(3):
        s = socket.create_connection(server.server_address[:2])
        s.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"pix")
        time.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.close()
    time.sleep(0.3)
    assert_alive(server)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err, err


def test_all_interfaces_print_a_reachable_url_and_a_warning(monkeypatch, tmp_path, capsys):
    real = demo_server.make_server

    def bound_to_loopback(classifier, digits, host="127.0.0.1", port=8000, seed=None):
        """The real server, on 127.0.0.1, that says it listens on `host`; stops at once."""
        srv = real(classifier, digits, "127.0.0.1", port, seed)
        srv.server_close()
        srv.server_address = (host, 8123)
        srv.serve_forever = lambda: (_ for _ in ()).throw(KeyboardInterrupt)
        return srv

    monkeypatch.setattr(demo_server, "make_server", bound_to_loopback)
    assert main(["demo", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert f"serving on http://{outward_address()}:8123/" in out.out
    assert "127.0.0.1" not in out.out
    assert "lenet5 demo: warning: listening on every network interface: anyone who can reach this " \
           "machine on port 8123 can use the page" in out.err
    assert main(["demo", "--port", "0", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "serving on http://127.0.0.1:8123/" in out.out and "warning" not in out.err


def test_page_url_and_warning_by_address():
    assert page_url("127.0.0.1", 80) == "http://127.0.0.1:80/"
    assert page_url("::1", 80) == "http://[::1]:80/"
    assert page_url("0.0.0.0", 80) == f"http://{outward_address()}:80/"
    assert exposure_warning("127.0.0.1", 80) is None and exposure_warning("localhost", 80) is None
    assert "listening on 10.1.2.3" in exposure_warning("10.1.2.3", 80)
