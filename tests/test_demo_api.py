"""The demo's HTTP API without a browser: the page's files, the answers (the same as
`LeNet5.forward` on `digit_from_ink` of the same pixels), every kind of bad request (a 4xx
with a one-line JSON error, and the server keeps serving), 200 concurrent requests, and the
`lenet5 demo` command starting and stopping on Ctrl-C."""
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lenet5.core.model import LeNet5, reference_checkpoint
from lenet5.data.digits import digit_from_ink
from lenet5.tools.demo.classify import Classifier
from lenet5.tools.demo.samples import shipped
from lenet5.tools.demo.server import MAX_BODY, STATIC, make_server


@pytest.fixture(scope="module")
def net():
    return LeNet5.load(reference_checkpoint())


@pytest.fixture(scope="module")
def server():
    """The demo on a free port of 127.0.0.1, serving from a thread of this process."""
    srv = make_server(Classifier.from_checkpoint(reference_checkpoint()), shipped(), port=0, seed=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(server, method, path, body=None, headers=None, conn=None):
    """(status, headers, body bytes) of one request; a fresh connection unless one is given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        if own:
            conn.close()


def classify(server, ink, conn=None):
    h, w = ink.shape
    status, _, body = call(server, "POST", "/api/classify",
                           {"pixels": ink.ravel().tolist(), "width": w, "height": h}, conn=conn)
    assert status == 200, body
    return json.loads(body)


def assert_alive(server):
    status, _, body = call(server, "GET", "/api/info")
    assert status == 200 and json.loads(body)["checkpoint"] == "lenet5-seed0.npz"


def ink_of(digits, i, scale=1, top=0, left=0, size=None):
    """Shipped digit i as ink, enlarged `scale` times, placed at (top, left) in a size field."""
    ink = np.kron(digits.images[i] / 255.0, np.ones((scale, scale)))
    size = size or ink.shape
    field = np.zeros(size)
    field[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    return field


# ---------------------------------------------------------------- the page

def test_page_and_static_files_are_served_and_self_contained(server):
    status, headers, page = call(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<canvas id="pad"' in page
    for name in STATIC:
        status, headers, body = call(server, "GET", f"/static/{name}")
        assert status == 200 and headers["Content-Type"] == STATIC[name]
        # no external scripts, fonts, styles or CDNs: nothing is fetched from another host
        assert not re.search(rb"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", body), name
        assert f"/static/{name}".encode() in page or name == "index.html"


def test_info_gives_checkpoint_threshold_and_prototypes(server, net):
    status, _, body = call(server, "GET", "/api/info")
    info = json.loads(body)
    assert status == 200
    assert np.array_equal(info["prototypes"], net.prototypes)
    assert info["threshold"]["target_error_pct"] == 0.5 and info["threshold"]["gap"] > 0


# ---------------------------------------------------------------- the answers

def test_every_shipped_digit_is_answered_as_forward_does_and_named_correctly(server, net):
    digits = shipped()
    assert sorted(digits.labels) == list(range(10))
    threshold = server.classifier.threshold
    for i, label in enumerate(digits.labels):
        ink = digits.images[i] / 255.0
        answer = classify(server, ink)
        image = digit_from_ink(ink)
        distances = net.forward(image)[0]
        assert answer["digit"] == int(np.argmin(distances)) == label
        np.testing.assert_allclose(answer["distances"], distances, rtol=1e-5, atol=1e-5)
        two = np.sort(distances)[:2]
        assert answer["gap"] == pytest.approx(two[1] - two[0], rel=1e-5, abs=1e-5)
        assert answer["rejected"] == (answer["gap"] < threshold.gap)
        np.testing.assert_allclose(answer["input"], image, atol=1e-4)
        assert np.array_equal(answer["prototype"], net.prototypes[label])
        layers = net.layers(image)
        for name, shape in {"C1": (6, 28, 28), "S2": (6, 14, 14), "C3": (16, 10, 10), "S4": (16, 5, 5),
                            "C5": (120,), "F6": (84,)}.items():
            assert np.shape(answer["layers"][name]) == shape
            np.testing.assert_allclose(answer["layers"][name], layers[name], atol=1e-4)


def test_random_digit_is_a_shipped_mnist_digit(server):
    digits = shipped()
    seen = set()
    for _ in range(20):
        status, _, body = call(server, "GET", "/api/digit")
        d = json.loads(body)
        assert status == 200 and (d["width"], d["height"]) == (28, 28) and len(d["pixels"]) == 784
        i = list(digits.indices).index(d["index"])
        assert d["label"] == digits.labels[i]
        np.testing.assert_allclose(np.reshape(d["pixels"], (28, 28)), digits.images[i] / 255, atol=1e-4)
        seen.add(d["label"])
    assert len(seen) >= 5


def test_a_larger_drawing_of_the_same_digit_gets_the_same_answer(server):
    digits = shipped()
    small = classify(server, ink_of(digits, 3))
    large = classify(server, ink_of(digits, 3, scale=4, top=40, left=100, size=(200, 300)))
    assert small["digit"] == large["digit"] == 3


# ---------------------------------------------------------------- bad requests

def pixels(w, h, value=0.5):
    return [value] * (w * h)


BAD_BODIES = {  # name -> (body, expected status)
    "not JSON": (b"hello", 400),
    "not UTF-8": (b"\xff\xfe{", 400),
    "JSON not an object": (b"[1, 2, 3]", 400),
    "missing pixels": ({"width": 8, "height": 8}, 400),
    "missing width": ({"pixels": pixels(8, 8), "height": 8}, 400),
    "too few pixels": ({"pixels": pixels(8, 8)[:-1], "width": 8, "height": 8}, 400),
    "too many pixels": ({"pixels": pixels(8, 8) + [0], "width": 8, "height": 8}, 400),
    "width below 8": ({"pixels": pixels(7, 8), "width": 7, "height": 8}, 400),
    "height above 512": ({"pixels": pixels(8, 513), "width": 8, "height": 513}, 400),
    "width zero": ({"pixels": [], "width": 0, "height": 8}, 400),
    "width a string": ({"pixels": pixels(8, 8), "width": "8", "height": 8}, 400),
    "width a fraction": ({"pixels": pixels(8, 8), "width": 8.5, "height": 8}, 400),
    "width a boolean": ({"pixels": pixels(8, 8), "width": True, "height": 8}, 400),
    "pixels not a list": ({"pixels": "0" * 64, "width": 8, "height": 8}, 400),
    "pixels nested": ({"pixels": [[0.5] * 8] * 8, "width": 8, "height": 8}, 400),
    "a pixel a string": ({"pixels": ["0.5"] + pixels(8, 8)[1:], "width": 8, "height": 8}, 400),
    "a pixel null": ({"pixels": [None] + pixels(8, 8)[1:], "width": 8, "height": 8}, 400),
    "a pixel above 1": ({"pixels": [1.5] + pixels(8, 8)[1:], "width": 8, "height": 8}, 400),
    "a pixel negative": ({"pixels": [-0.1] + pixels(8, 8)[1:], "width": 8, "height": 8}, 400),
    "NaN": (('{"pixels": [NaN' + ", 0.5" * 63 + '], "width": 8, "height": 8}').encode(), 400),
    "Infinity": (('{"pixels": [Infinity' + ", 0.5" * 63 + '], "width": 8, "height": 8}').encode(), 400),
    "1e999 (inf)": (('{"pixels": [1e999' + ", 0.5" * 63 + '], "width": 8, "height": 8}').encode(), 400),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, 400),
    "no ink": ({"pixels": pixels(8, 8, 0.0), "width": 8, "height": 8}, 422),
}


def assert_json_error(status, body, expected):
    assert status == expected, body
    text = body.decode()
    assert text.count("\n") <= 1 and text.endswith("\n")  # one line
    assert json.loads(text)["error"]


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_body_gets_a_4xx_json_error_and_the_server_keeps_serving(server, name):
    body, expected = BAD_BODIES[name]
    status, _, reply = call(server, "POST", "/api/classify", body, {"Content-Type": "application/json"})
    assert_json_error(status, reply, expected)
    assert_alive(server)


BAD_ROUTES = {  # name -> (method, path, expected status)
    "GET the API": ("GET", "/api/classify", 405),
    "POST the page": ("POST", "/", 405),
    "PUT": ("PUT", "/api/classify", 405),
    "DELETE": ("DELETE", "/", 405),
    "PATCH": ("PATCH", "/api/info", 405),
    "OPTIONS": ("OPTIONS", "/api/classify", 405),
    "an invented method": ("BREW", "/", 405),
    "unknown path": ("GET", "/nope", 404),
    "POST to an unknown path": ("POST", "/api/nope", 404),
    "unknown static file": ("GET", "/static/server.py", 404),
    "path traversal": ("GET", "/static/../server.py", 404),
    "encoded traversal": ("GET", "/static/%2e%2e/classify.py", 404),
    "absolute path": ("GET", "//etc/passwd", 404),
    "package file": ("GET", "/samples.npz", 404),
}


@pytest.mark.parametrize("name", BAD_ROUTES)
def test_wrong_method_or_path_gets_a_4xx_json_error(server, name):
    method, path, expected = BAD_ROUTES[name]
    status, _, reply = call(server, method, path, b"{}" if method != "GET" else None)
    assert_json_error(status, reply, expected)
    assert_alive(server)


def test_head_is_refused_without_a_body(server):
    status, _, reply = call(server, "HEAD", "/")
    assert status == 405 and reply == b""


def raw_request(server, head, body=b""):
    """Send raw bytes; (status, body) of the answer."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.connect()
    try:
        conn.sock.sendall(head + body)
        resp = http.client.HTTPResponse(conn.sock, method="POST")
        resp.begin()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_body_over_1mb_is_refused_before_it_is_read(server):
    head = (f"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n").encode()
    status, reply = raw_request(server, head, b"{")  # the rest never comes: the reply must not wait
    assert_json_error(status, reply, 413)
    assert_alive(server)


def test_a_real_body_just_under_the_limit_is_read(server):
    w = h = 512  # 262,144 pixels written as "0.25," is 1.3 MB: too big; "0," is 0.5 MB
    ink = np.zeros((h, w))
    ink[100:400, 240:270] = 1  # a "1"
    body = json.dumps({"pixels": ink.astype(int).ravel().tolist(), "width": w, "height": h}).encode()
    assert len(body) < MAX_BODY
    status, _, reply = call(server, "POST", "/api/classify", body)
    assert status == 200 and json.loads(reply)["digit"] == 1


def test_missing_or_chunked_length_gets_411(server):
    status, reply = raw_request(server, b"POST /api/classify HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_json_error(status, reply, 411)
    status, reply = raw_request(server, b"POST /api/classify HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert_json_error(status, reply, 411)
    status, reply = raw_request(server, b"POST /api/classify HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: -5\r\n\r\n")
    assert_json_error(status, reply, 400)
    assert_alive(server)


def test_garbage_request_line_gets_a_json_400(server):
    status, reply = raw_request(server, b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n")  # a space in the path
    assert_json_error(status, reply, 400)
    assert_alive(server)


def test_errors_keep_a_keep_alive_connection_usable(server):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        assert call(server, "POST", "/api/classify", b"nope", conn=conn)[0] == 400
        assert call(server, "GET", "/nope", conn=conn)[0] == 404
        assert classify(server, shipped().images[0] / 255.0, conn=conn)["digit"] == shipped().labels[0]
    finally:
        conn.close()


# ---------------------------------------------------------------- concurrency

@pytest.mark.slow
def test_200_concurrent_requests_from_8_threads_match_forward(server, net):
    digits = shipped()
    rng = np.random.default_rng(0)
    inks = []
    for k in range(200):  # every shipped digit at several sizes and places, plus faint noise
        side = 28 * int(rng.integers(1, 4))
        size = tuple(int(n) for n in rng.integers(side, side + 60, 2))
        top, left = (int(rng.integers(0, n - side + 1)) for n in size)
        ink = ink_of(digits, k % 10, side // 28, top, left, size)
        inks.append(np.clip(ink + rng.uniform(0, 0.05, ink.shape), 0, 1).round(3))
    expected = [net.forward(digit_from_ink(ink))[0] for ink in inks]

    local = threading.local()

    def one(k):
        if not hasattr(local, "conn"):  # one keep-alive connection per thread
            local.conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
        return classify(server, inks[k], conn=local.conn)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, range(200)))
    for k, (answer, distances) in enumerate(zip(answers, expected, strict=True)):
        assert answer["digit"] == int(np.argmin(distances)), k
        np.testing.assert_allclose(answer["distances"], distances, rtol=1e-5, atol=1e-5)
    assert sum(a["digit"] == k % 10 for k, a in enumerate(answers)) >= 190
    assert_alive(server)


# ---------------------------------------------------------------- the command

def test_lenet5_demo_prints_its_address_serves_and_stops_on_ctrl_c(tmp_path):
    command = [sys.executable, "-m", "lenet5", "demo", "--port", "0", "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "shipped MNIST test digits (10)" in lines[0], lines
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[1])
        assert url, lines
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=30)
        conn.request("GET", "/api/digit")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err and "stopped" in err, err


def test_lenet5_demo_bad_port_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "lenet5", "demo", "--port", "70000"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--port" in proc.stderr
