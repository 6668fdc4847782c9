"""The demo's HTTP server: the page, its two static files and a small JSON API, with the
standard library's ThreadingHTTPServer (one thread per connection).

Routes (anything else: 404; a known path with another method: 405):
  GET  /                  the page (static/index.html)
  GET  /static/<name>     only the names in STATIC; a request path never reaches the file system
  GET  /api/info          checkpoint name, rejection threshold, the ten prototypes
  GET  /api/digit         a random MNIST test digit (the test set if present, else a shipped one)
  POST /api/classify      {"pixels": [H*W in 0..1], "width": W, "height": H} -> the network's answer
Every error is a 4xx with a one-line JSON body {"error": "..."}; the server keeps serving.
"""
import ipaddress
import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

import numpy as np

from ...errors import Lenet5Error
from .classify import BadRequest, ink_from_request

MAX_BODY = 1_000_000  # bytes of a POST body
STATIC = {  # file name -> content type; the page's only files
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
GET_ROUTES = {"/", "/api/info", "/api/digit"} | {f"/static/{name}" for name in STATIC}
POST_ROUTES = {"/api/classify"}


def static_files():
    """name -> (content type, bytes) of the page's files, read once from the package."""
    folder = resources.files(__package__) / "static"
    try:
        return {name: (kind, folder.joinpath(name).read_bytes()) for name, kind in STATIC.items()}
    except OSError as e:
        raise Lenet5Error(f"the demo page's files are missing from the package ({e})") from None


ALL_INTERFACES = ("0.0.0.0", "", "::")
CLIENT_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class DemoServer(ThreadingHTTPServer):
    """Holds what every request needs; all of it read-only once serving."""

    daemon_threads = True  # an open keep-alive connection never blocks shutdown
    request_queue_size = 128  # connections waiting to be accepted (the default 5 makes a
    # burst of page loads wait for the client's SYN retry, a second or more)

    def __init__(self, address, classifier, digits, seed=None):
        self.classifier, self.digits = classifier, digits
        self.files = static_files()
        warm = digits.pick(np.random.default_rng(0))  # load the compiled kernels before the first visitor
        classifier.classify(np.reshape(warm["pixels"], (warm["height"], warm["width"])))
        self.info = json.dumps(classifier.info(), allow_nan=False).encode()
        self._rng, self._rng_lock = np.random.default_rng(seed), threading.Lock()
        super().__init__(address, Handler)

    def random_digit(self):
        with self._rng_lock:  # numpy Generators are not thread-safe
            return self.digits.pick(self._rng)

    @property
    def url(self):
        """The page's address; on all interfaces, this machine's address on its network."""
        host, port = self.server_address[:2]
        return page_url(host, port)

    @property
    def exposed(self):
        """A one-line warning when the page can be reached from other machines, else None."""
        return exposure_warning(*self.server_address[:2])

    def handle_error(self, request, client_address):
        """A client that hangs up mid-request is no error of ours: no traceback for it."""
        if isinstance(sys.exc_info()[1], CLIENT_GONE):
            return
        super().handle_error(request, client_address)


def page_url(host, port):
    """http://host:port/ for a browser: a listening address of all interfaces is replaced by
    this machine's address on its default route."""
    if host in ALL_INTERFACES:
        host = outward_address()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def outward_address():
    """This machine's address on its default route (a UDP socket is pointed at a TEST-NET
    address; no packet is sent), or its host name when it has no route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()


def exposure_warning(host, port):
    """What listening on `host` exposes, in one line; None for a loopback address."""
    try:
        loopback = ipaddress.ip_address(host or "0.0.0.0").is_loopback
    except ValueError:  # a host name: loopback only if it is this machine's own name for it
        loopback = host == "localhost"
    if loopback:
        return None
    where = "every network interface" if host in ALL_INTERFACES else host
    return (f"listening on {where}: anyone who can reach this machine on port {port} can use the "
            "page and its API (use --host 127.0.0.1 to keep it to this machine)")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the page sends up to ~10 requests a second
    server_version = "lenet5-demo"
    timeout = 30  # seconds a connection may sit idle or half-sent

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass  # quiet: the page polls while drawing

    # --------------------------------------------------------------- replies
    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, obj, status=200):
        self.reply(status, json.dumps(obj, allow_nan=False).encode())

    def fail(self, status, message):
        """A one-line JSON error; the connection stays open unless something already closed it."""
        try:
            self.reply(status, (json.dumps({"error": " ".join(str(message).split())}) + "\n").encode())
        except OSError:
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """The base class's own errors (bad request line, headers too long, ...), as one line
        of JSON; like the base class, it closes the connection."""
        self.close_connection = True
        self.fail(code, message or HTTPStatus(code).phrase)

    def __getattr__(self, name):
        """Any method other than GET and POST (PUT, DELETE, HEAD, OPTIONS, ...) -> 405."""
        if name.startswith("do_"):
            return self.method_not_allowed
        raise AttributeError(name)

    def method_not_allowed(self):
        self.discard_body()
        self.fail(405, f"{self.command} is not allowed here")

    def route(self, allowed):
        """The request's path (query ignored), or None after replying 404/405."""
        path = urlsplit(self.path).path
        if path in allowed:
            return path
        if path in GET_ROUTES | POST_ROUTES:
            self.fail(405, f"{self.command} is not allowed on {path}")
        else:
            self.fail(404, f"no such page: {path[:100]}")
        return None

    # --------------------------------------------------------------- methods
    def do_GET(self):
        path = self.route(GET_ROUTES)
        if path is None:
            return
        if path == "/api/info":
            self.reply(200, self.server.info, "application/json")
        elif path == "/api/digit":
            self.reply_json(self.server.random_digit())
        else:
            kind, body = self.server.files["index.html" if path == "/" else path.split("/")[-1]]
            self.reply(200, body, kind)

    def do_POST(self):
        if urlsplit(self.path).path not in POST_ROUTES:
            self.discard_body()
            self.route(POST_ROUTES)
            return
        try:
            payload = self.read_json()
            answer = self.server.classifier.classify(ink_from_request(payload))
        except BadRequest as e:
            self.fail(e.status, str(e))
            return
        self.reply_json(answer)

    # --------------------------------------------------------------- the body
    def body_length(self):
        """Content-Length (None if absent). A body we cannot delimit raises BadRequest and
        closes the connection, since its bytes would be read as the next request."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise BadRequest("chunked request bodies are not supported; send Content-Length", 411)
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:  # (which one delimits the body is anyone's guess: request smuggling)
            self.close_connection = True
            raise BadRequest(f"{len(lengths)} Content-Length headers; send one")
        if not lengths:
            return None
        length = lengths[0].strip()
        if not (length.isascii() and length.isdigit()):  # ("²".isdigit() is true, int("²") fails)
            self.close_connection = True
            raise BadRequest(f"Content-Length {length[:20]!r} is not a byte count")
        return int(length)

    def discard_body(self):
        """After an early reply, drop a small body so the connection stays usable."""
        try:
            length = self.body_length() or 0
        except BadRequest:
            return
        if length > MAX_BODY:
            self.close_connection = True
        else:
            self.rfile.read(length)

    def read_json(self):
        length = self.body_length()
        if length is None:
            raise BadRequest("Content-Length is required", 411)
        if length > MAX_BODY:
            self.close_connection = True
            raise BadRequest(f"request body of {length:,} bytes; the limit is {MAX_BODY:,}", 413)
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise BadRequest("request body shorter than its Content-Length")
        try:
            return json.loads(body, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise BadRequest(f"body is not valid JSON ({str(e).splitlines()[0][:120]})") from None


def _no_constant(name):
    """json accepts NaN, Infinity and -Infinity by default; JSON does not."""
    raise ValueError(f"{name} is not a JSON number")


def make_server(classifier, digits, host="127.0.0.1", port=8000, seed=None):
    """A bound DemoServer (port 0 picks a free one); call serve_forever() to run it."""
    return DemoServer((host, port), classifier, digits, seed)
