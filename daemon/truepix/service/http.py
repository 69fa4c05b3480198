"""The localhost API's HTTP plumbing: a threaded HTTP/1.1 server that reads each request within limits and
answers JSON (the web page: its files and images), every error included.

``JsonServer`` serves a ``route(Request) -> (status, payload) | Reply`` callable (api.py's ``ApiServer.route``)
behind a bearer token or a web page's session cookie.  What it checks, in order: the framing (400, 411 no
chunked bodies, 413 a body over the limit), the ``Host`` (421 unless it names the loopback: DNS rebinding),
who asks (401: no valid token, no valid session, not a public path; 403: a session's change without its
page's origin), the ``Origin`` (403 when a browser says the request comes from another origin, token or not),
then the JSON body (400: malformed, too deep, not an object).  ``route`` raises ``ApiError`` for its own
error answers.  Its limits come from the server's ``limits()``, read for each connection and each request;
the connection cap, at the server's making.  A subclass says which sessions are valid (``session_valid``),
which paths need no one (``public``) and how an error looks on a web path (``error_reply``).
"""

from __future__ import annotations

import io
import json
import logging
import pathlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from truepix import __version__
from truepix.service.web import access

log = logging.getLogger("truepix.api")


@dataclass
class Request:
    """One request as the routes see it; ``auth`` says who was let in: "token" (the bearer token),
    "session" (the web page's cookie) or "public" (a path that needs no one: the web page's login)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: dict | None
    auth: str
    headers: Message


@dataclass
class Reply:
    """An answer that is not JSON: the web page's files, a preview image, a redirect."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request], "tuple[int, dict] | Reply"]  # see JsonServer


class ApiError(Exception):
    """An error answer: ``status``, ``message`` (the JSON error's), and any extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Limits:
    request_timeout: float  # seconds to send a whole request (line + headers + body), and to idle between requests
    send_timeout: float  # seconds a client may take to read an answer
    max_body: int  # bytes in a body (413 beyond, the body unread)
    max_depth: int  # JSON nesting of a body
    max_line: int  # bytes in the request line (414 beyond); http.server limits header lines and count (431)
    hosts: tuple[str, ...]  # what a Host header may name (with or without a port); Origin: http://NAME:PORT


def host_allowed(host: str, names: tuple[str, ...]) -> bool:
    """``host`` (a Host header) is one of ``names`` (e.g. 127.0.0.1, localhost, [::1]), with or without a port."""
    name, colon, port = host.strip().lower().rpartition(":")
    if not colon or name.endswith(":") or (not name.startswith("[") and ":" in name):
        name, port = host.strip().lower(), ""  # no port (or a bare IPv6 address, which is not allowed anyway)
    if port and not (port.isdigit() and len(port) <= 5):
        return False
    return name in names


def json_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` (parsed JSON) nests arrays and objects, counted up to just past ``limit``;
    iterative, so any depth is safe."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                break
            todo.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def error_body(status: int, message: str) -> dict:
    return {"error": {"status": status, "message": message}}


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads fail with TimeoutError once ``deadline`` has passed.

    A socket timeout alone bounds each ``recv``; a client sending a byte now and then (slowloris) would
    keep its thread for ever.  The deadline bounds the whole request.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None  # time.monotonic(); None: no limit (the answer is being sent)
        self.received = 0  # bytes received since the deadline was set

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request did not arrive in time")
            self._sock.settimeout(left)
        n = self._sock.recv_into(buffer)
        self.received += n
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"truepix/{__version__}"
    server: JsonServer
    _reader: _DeadlineReader
    limits: Limits

    def setup(self) -> None:
        self.limits = self.server.limits()
        self.timeout = self.limits.request_timeout
        super().setup()
        self.rfile.close()  # http.server's reader, replaced by one with a deadline
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def handle_one_request(self) -> None:
        """One request, received within the request timeout (http.server's, with a deadline and JSON)."""
        self.limits = self.server.limits()
        self._reader.deadline, self._reader.received = time.monotonic() + self.limits.request_timeout, 0
        self.command, self.request_version, self.requestline = None, self.default_request_version, ""
        try:
            max_line = self.limits.max_line
            self.raw_requestline = self.rfile.readline(max_line + 1)
            if len(self.raw_requestline) > max_line:
                self.request_version = ""
                self.send_error(414, f"the request line is over {max_line} bytes")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():  # the headers; errors are answered (send_error)
                return
            handler = getattr(self, "do_" + self.command, None)
            if handler is None:
                self.send_error(501)
                return
            handler()  # reads the body, answers
            self.wfile.flush()
        except TimeoutError:
            self._timed_out()

    def _timed_out(self) -> None:
        self.close_connection = True
        if self._reader.deadline is None:
            return  # the answer was being sent: the client does not read it
        if self._reader.received:  # a request had begun: say why it is dropped (an idle connection just closes)
            timeout = self.limits.request_timeout
            log.debug("%s: request not received within %g s; connection closed", self.address_string(), timeout)
            try:
                self._send(408, error_body(408, f"the request did not arrive within {timeout:g} s"))
            except OSError:
                pass

    def parse_request(self) -> bool:
        if len(self.raw_requestline.split()) == 2:  # "GET /path": HTTP/0.9, which http.server would serve
            self.send_error(400, "HTTP/0.9 requests are not accepted; send HTTP/1.1")
            return False
        return super().parse_request()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, 414 URI too long, 431 headers, 501 method) as JSON."""
        code = int(code)
        text = message or HTTPStatus(code).phrase
        if explain and explain != text:
            text = f"{text}: {explain}"
        if code == 501 and self.command:
            text = f"method {self.command} not implemented; the API uses GET and POST (docs/protocol.md)"
        log.debug("%s: HTTP %d %s", self.address_string(), code, text)
        self.close_connection = True  # after a malformed request, the stream cannot be trusted
        self._send(code, error_body(code, text))

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")  # no CORS preflight answer: 401 or 405, without Access-Control-* headers

    def _serve(self, method: str) -> None:
        server = self.server
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        try:
            # The HTTP layer first (framing: 400/411/413), then who asks (Host: 421, token or session: 401/403,
            # Origin: 403), then the API.
            n = self._length()
            self._check_host()
            auth = access.check(self.headers, method, path, server)
            if isinstance(auth, access.Refusal):
                self._skip(n)
                raise ApiError(auth.status, auth.message, auth.headers)
            body = self._body(n)
            self._reader.deadline = None  # the request is in; what follows is ours to do
            answer = server.route(Request(method, path, parse_qs(url.query), body, auth, self.headers))
        except ApiError as e:
            reply = server.error_reply(path, e)
            if reply is not None:
                self._send_reply(reply)
            else:
                self._send(e.status, error_body(e.status, e.message), e.headers)
            return
        except TimeoutError:
            raise  # the body did not arrive in time: handle_one_request answers 408
        except Exception:
            log.exception("API: %s %s failed", method, self.path)
            answer = 500, error_body(500, "internal error; see the daemon's log")
        if isinstance(answer, Reply):
            self._send_reply(answer)
        else:
            self._send(*answer)

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            self.close_connection = True
            raise ApiError(400, "more than one Host header")
        # No Host at all (HTTP/1.0) comes from no browser, so it cannot be DNS rebinding.
        names = self.limits.hosts
        if hosts and not host_allowed(hosts[0], names):
            self.close_connection = True
            raise ApiError(421, f"Host not allowed: {hosts[0][:100]!r}; this API answers only to "
                                f"{', '.join(names[:-1])} or {names[-1]} (with or without the port)")

    def _length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "send the body with a Content-Length (chunked bodies are not accepted)")
        lengths = self.headers.get_all("Content-Length") or ["0"]
        raw = lengths[0]
        try:
            n = int(raw)
            if n < 0 or len(set(lengths)) > 1:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ApiError(400, f"bad Content-Length {', '.join(lengths)!r}") from None
        limit = self.limits.max_body
        if n > limit:
            # Not read: the connection is closed instead, so a huge body costs us nothing.
            self.close_connection = True
            raise ApiError(413, f"request body is {n} bytes; the limit is {limit} bytes ({limit / (1 << 20):g} MiB)")
        return n

    def _skip(self, n: int) -> None:
        """Read (and drop) the body of a refused request, so the connection stays usable."""
        if n and not self.close_connection:
            if len(self.rfile.read(n)) < n:
                self.close_connection = True

    def _body(self, n: int) -> dict | None:
        if n == 0:
            return None
        raw = self.rfile.read(n)
        if len(raw) < n:
            self.close_connection = True
            raise ApiError(400, f"body ended after {len(raw)} of {n} bytes")
        max_depth = self.limits.max_depth
        try:
            body = json.loads(raw)
        except RecursionError:
            raise ApiError(400, f"request body: nested too deeply (at most {max_depth} levels)") from None
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
            raise ApiError(400, f"malformed JSON body: not valid JSON ({e})") from None
        if json_depth(body, max_depth) > max_depth:
            raise ApiError(400, f"request body: nested too deeply (at most {max_depth} levels)")
        if not isinstance(body, dict):
            raise ApiError(400, f"the body must be a JSON object, not {type(body).__name__}")
        return body

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = (json.dumps(payload, indent=1) + "\n").encode()
        self._send_reply(Reply(status, data, "application/json; charset=utf-8", headers or {}))

    def _send_reply(self, reply: Reply) -> None:
        self._reader.deadline = None
        if self.request_version == "HTTP/0.9":  # not yet parsed: http.server would write no status line
            self.request_version = "HTTP/1.0"
        self.connection.settimeout(self.limits.send_timeout)
        status, data = reply.status, reply.body
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        headers = {"Cache-Control": "no-store", **reply.headers}
        for key, value in headers.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # HEAD: the headers GET would send, no body
            self.wfile.write(data)


class JsonServer(ThreadingHTTPServer):
    """The HTTP server, bound to 127.0.0.1 only.  ``port=0`` picks a free port (see ``.port``).

    A thread per connection, at most ``max_connections`` of them: a connection over that is answered
    503 by the accepting thread and closed.  A subclass gives the limits (``limits()``).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, route: Route, token: str, port: int, token_path: pathlib.Path | None,
                 max_connections: int) -> None:
        self.route = route
        self.token, self.token_path = token, token_path
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._refused_logged = 0.0
        super().__init__(("127.0.0.1", port), _Handler)
        self._thread: threading.Thread | None = None

    def limits(self) -> Limits:
        raise NotImplementedError

    def origins(self) -> tuple[str, ...]:
        """The origins a browser's request may come from: this server's own, under each loopback name."""
        return tuple(f"http://{name}:{self.port}" for name in self.limits().hosts)

    def cookie_name(self) -> str:
        return f"{access.SESSION_COOKIE}_{self.port}"

    def session_valid(self, session: str) -> bool:
        """Whether ``session`` (the cookie's value) is a signed-in web page's; none is, here."""
        return False

    def public(self, path: str) -> bool:
        """Whether ``path`` is answered to anyone who passes the Host and Origin checks; none is, here."""
        return False

    def error_reply(self, path: str, error: ApiError) -> Reply | None:
        """How ``error`` is answered on ``path`` when not as JSON (a web page's); None: JSON."""
        return None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket, client_address: Any) -> None:
        """503 to a connection over the cap, from the accepting thread: nothing is waited for."""
        now = time.monotonic()
        if now - self._refused_logged > 60:
            self._refused_logged = now
            log.warning("API: %d connections open; refusing more (503) until some close", self.max_connections)
        message = f"too many connections (at most {self.max_connections} at once); try again in a moment"
        data = json.dumps(error_body(503, message)).encode() + b"\n"
        head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\nRetry-After: 1\r\n"
                "Connection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)
            try:  # what has arrived already: unread data at close would reset the connection (no 503 seen)
                request.recv(65536)
            except OSError:
                pass
            request.settimeout(1.0)  # a new socket's send buffer is empty: this does not wait
            request.sendall(head + data)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception out of a connection's handler: to the log, never a traceback on stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client went away (reset, broken pipe)
            log.debug("API: connection from %s: %s", client_address, error)
        else:
            log.exception("API: connection from %s failed", client_address)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="truepix-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)
