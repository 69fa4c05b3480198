"""The localhost API: HTTP/1.1 + JSON on 127.0.0.1, every request with ``Authorization: Bearer <token>``.

The endpoints are documented, with curl examples, in docs/protocol.md; a test
runs those examples against a live daemon.  Every error is JSON::

    {"error": {"status": 400, "message": "paths[0]: /x/y.jpg: no such file"}}

including the HTTP layer's own errors (a malformed request line, headers too long).  The limits:
at most ``MAX_CONNECTIONS`` connections at once (one more gets a 503 at once, with no thread of its
own), ``REQUEST_TIMEOUT`` seconds to send a whole request (line, headers and body), a ``Host`` that
names the loopback (DNS rebinding), bodies of ``MAX_BODY`` bytes nested at most ``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import os
import pathlib
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from truepix import __version__
from truepix.errors import TruepixError
from truepix.io import SUPPORTED_SUFFIXES
from truepix.recipes import Recipe, from_mapping
from truepix.service.queue import STATES, JobQueue, QueueError

log = logging.getLogger("truepix.api")

API_VERSION = 1
MAX_BODY = 1 << 20  # 1 MiB: a submit of thousands of paths fits; anything bigger is a mistake or an attack
MAX_PATHS = 10000
MAX_DEPTH = 32  # JSON nesting; a real request is 4 deep ({"recipe": {"steps": [{...}]}})
MAX_CONNECTIONS = 32  # open connections at once; one more is answered 503 and closed, never given a thread
REQUEST_TIMEOUT = 10.0  # seconds to send a whole request (line + headers + body), and to idle between requests
SEND_TIMEOUT = 30.0  # seconds a client may take to read an answer
MAX_LINE = 65536  # bytes in the request line (414 beyond); http.server limits header lines and count (431)
# DNS rebinding: a web page of evil.example whose name later resolves to 127.0.0.1 reaches this port with
# "Host: evil.example"; every client of this API (the CLI, the plugins, curl) sends one of these.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


# -- the token ----------------------------------------------------------------------------------------


def load_or_create_token(path: pathlib.Path) -> str:
    """The API token in ``path``; created (32 random bytes, hex, mode 0600) when absent.

    A token file readable by others is tightened to 0600 (and said so in the log).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077 and os.name == "posix":
            log.warning("%s: token file was readable by others (mode %o); set to 0600", path, mode)
            path.chmod(0o600)
        token = path.read_text(encoding="ascii").strip()
        if len(token) < 32:
            raise TruepixError(f"{path}: the API token is too short or empty; delete the file and restart "
                               "`truepix run` to make a new one") from None
        return token
    token = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.info("API token created: %s (mode 0600)", path)
    return token


# -- what the API serves --------------------------------------------------------------------------------


@dataclass
class Backend:
    """What the API needs from the daemon (app.py wires it)."""

    queue: JobQueue
    recipes: Callable[[], dict[str, Recipe]]
    submitted: Callable[[], None]          # a job was queued: wake the worker
    pause: Callable[[], None]
    resume: Callable[[], None]
    cancel_running: Callable[[int], None]  # stop this job at its next tile
    status: Callable[[], dict[str, Any]]   # paused, current job, folders...
    health: Callable[[], list[str]] = list  # what is wrong (a stopped worker thread, a failing queue)


def _fields(body: dict, known: dict[str, type | tuple[type, ...]], required: tuple[str, ...] = ()) -> dict:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for key in required:
        if key not in body:
            raise ApiError(400, f"missing field {key!r}")
    for key, value in body.items():
        kind = known[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            want = " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
            want = want.replace("str", "string").replace("dict", "object").replace("list", "array")
            raise ApiError(400, f"field {key!r} must be {want}, not {type(value).__name__}")
    return body


def _check_source(i: int, raw: Any) -> pathlib.Path:
    if not isinstance(raw, str) or not raw:
        raise ApiError(400, f"paths[{i}]: must be a non-empty string")
    path = pathlib.Path(raw)
    if not path.is_absolute():
        raise ApiError(400, f"paths[{i}]: {raw}: must be an absolute path (the daemon has no working folder)")
    if ".." in path.parts:
        raise ApiError(400, f"paths[{i}]: {raw}: '..' is not allowed in a path; send the resolved path")
    if not path.exists():
        raise ApiError(400, f"paths[{i}]: {raw}: no such file")
    if not path.is_file():
        raise ApiError(400, f"paths[{i}]: {raw}: not a regular file")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ApiError(400, f"paths[{i}]: {raw}: not a photo truepix reads (supported: "
                            f"{', '.join(sorted(SUPPORTED_SUFFIXES))})")
    if not os.access(path, os.R_OK):
        raise ApiError(400, f"paths[{i}]: {raw}: not readable by the daemon")
    return path


class Api:
    """Request routing and validation; no HTTP here (the handler below does that)."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict | None) -> tuple[int, dict]:
        if path == "/v1/health":
            self._method(method, "GET")
            problems = self.b.health()
            return (503 if problems else 200), {"status": "degraded" if problems else "ok", "problems": problems,
                                                "version": __version__, "api": API_VERSION, "pid": os.getpid()}
        if path == "/v1/status":
            self._method(method, "GET")
            return 200, {"version": __version__, "counts": self.b.queue.counts(), **self.b.status()}
        if path == "/v1/recipes":
            self._method(method, "GET")
            recipes = self.b.recipes()
            return 200, {"default": "upscale", "recipes": [_recipe_view(r) for r in recipes.values()]}
        if path in ("/v1/pause", "/v1/resume"):
            self._method(method, "POST")
            _fields(body or {}, {})
            (self.b.pause if path == "/v1/pause" else self.b.resume)()
            return 200, {"paused": path == "/v1/pause"}
        if path == "/v1/jobs":
            self._method(method, "GET", "POST")
            return self._submit(body or {}) if method == "POST" else self._list(query)
        m = re.fullmatch(r"/v1/jobs/(\d{1,18})(/cancel|/retry)?", path)
        if m:
            job_id, action = int(m.group(1)), m.group(2)
            if action is None:
                self._method(method, "GET")
                return 200, self._job(job_id)
            self._method(method, "POST")
            _fields(body or {}, {})
            try:
                if action == "/cancel":
                    job = self.b.queue.cancel(job_id)
                    if job.state == "running":
                        self.b.cancel_running(job_id)
                else:
                    job = self.b.queue.retry(job_id)
                    self.b.submitted()
            except QueueError as e:
                raise ApiError(404 if "no such job" in str(e) else 409, str(e)) from None
            return 200, job.as_dict()
        raise ApiError(404, f"no endpoint {path}; see docs/protocol.md (all endpoints are under /v1/)")

    @staticmethod
    def _method(method: str, *allowed: str) -> None:
        if method == "HEAD" and "GET" in allowed:
            return  # answered as GET, without the body
        if method not in allowed:
            raise ApiError(405, f"method {method} not allowed here; use {' or '.join(allowed)}",
                           {"Allow": ", ".join((*allowed, "HEAD") if "GET" in allowed else allowed)})

    def _job(self, job_id: int) -> dict:
        try:
            job = self.b.queue.get(job_id)
        except QueueError as e:
            raise ApiError(404, str(e)) from None
        view = job.as_dict()
        cur = self.b.status().get("current")
        view["progress"] = cur["progress"] if cur and cur["id"] == job_id else (1.0 if job.state == "done" else 0.0)
        return view

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict]:
        unknown = sorted(set(query) - {"state", "limit", "before"})
        if unknown:
            raise ApiError(400, f"unknown query parameter(s) {', '.join(unknown)}; known: state, limit, before")
        state = query.get("state", [None])[-1]
        if state is not None and state not in STATES:
            raise ApiError(400, f"state must be one of {', '.join(STATES)}, not {state!r}")
        try:
            limit = int(query.get("limit", ["100"])[-1])
            before = int(query["before"][-1]) if "before" in query else None
        except ValueError:
            raise ApiError(400, "limit and before must be integers") from None
        if not 1 <= limit <= 1000:
            raise ApiError(400, f"limit must be 1..1000, not {limit}")
        return 200, {"jobs": [j.as_dict() for j in self.b.queue.jobs(state, limit, before)]}

    def _submit(self, body: dict) -> tuple[int, dict]:
        body = _fields(body, {"paths": list, "recipe": (str, dict), "output_dir": str, "force": bool}, ("paths",))
        paths = body["paths"]
        if not paths:
            raise ApiError(400, "paths: must list at least one file")
        if len(paths) > MAX_PATHS:
            raise ApiError(400, f"paths: at most {MAX_PATHS} files per request, not {len(paths)}")
        recipe = self._recipe(body.get("recipe", "upscale"))
        if "output_dir" in body:
            out = pathlib.Path(body["output_dir"])
            if not out.is_absolute() or ".." in out.parts:
                raise ApiError(400, f"output_dir: {body['output_dir']}: must be an absolute path without '..'")
            if out.exists() and not out.is_dir():
                raise ApiError(400, f"output_dir: {out}: exists and is not a folder")
            recipe = _with_output(recipe, out)
        sources = [_check_source(i, p) for i, p in enumerate(paths)]  # all or nothing: validate before queueing
        try:  # ... and queue them in one transaction: every file or none
            jobs = self.b.queue.submit_many(sources, recipe, origin="api", force=body.get("force", False))
        except QueueError as e:
            index = getattr(e, "index", None)
            raise ApiError(400, f"paths[{index}]: {e}" if index is not None else str(e)) from None
        self.b.submitted()
        for job in jobs:
            if job.duplicate:
                log.info("%s: same content and recipe as job %d (%s); not queued again", job.source, job.id, job.state)
        return 201, {"jobs": [j.as_dict() for j in jobs]}

    def _recipe(self, spec: str | dict) -> Recipe:
        if isinstance(spec, str):
            known = self.b.recipes()
            if spec not in known:
                raise ApiError(400, f"recipe: unknown recipe {spec!r}; known: {', '.join(known)}")
            return known[spec]
        try:
            recipe = from_mapping(str(spec.get("name", "inline")), {"name": "inline", **spec}, "recipe")
        except TruepixError as e:
            raise ApiError(400, str(e)) from None
        from truepix.engine.models import load_manifest

        installed = load_manifest()
        missing = [s.model for s in recipe.steps if s.model not in installed]
        if missing:
            raise ApiError(400, f"recipe: unknown model(s) {', '.join(missing)}; installed: {', '.join(installed)}")
        return recipe


def _with_output(recipe: Recipe, out: pathlib.Path) -> Recipe:
    import dataclasses

    return dataclasses.replace(recipe, output=out)


def _recipe_view(recipe: Recipe) -> dict:
    from truepix.engine.models import load_manifest

    table = load_manifest()
    inputs = {table[s.model].input if s.model in table else "rgb" for s in recipe.steps}
    return {**recipe.to_mapping(), "input": "raw" if "bayer" in inputs or recipe.format == "dng" else "rgb"}


# -- HTTP ------------------------------------------------------------------------------------------------


def _host_allowed(host: str) -> bool:
    """``host`` (a Host header) names the loopback: 127.0.0.1, localhost or [::1], with or without a port."""
    name, colon, port = host.strip().lower().rpartition(":")
    if not colon or name.endswith(":") or (not name.startswith("[") and ":" in name):
        name, port = host.strip().lower(), ""  # no port (or a bare IPv6 address, which is not allowed anyway)
    if port and not (port.isdigit() and len(port) <= 5):
        return False
    return name in LOOPBACK_HOSTS


def _depth(value: Any) -> int:
    """How deeply ``value`` (parsed JSON) nests arrays and objects; iterative, so any depth is safe."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            todo.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _error_body(status: int, message: str) -> dict:
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
    _reader: _DeadlineReader

    def setup(self) -> None:
        self.timeout = REQUEST_TIMEOUT
        super().setup()
        self.rfile.close()  # http.server's reader, replaced by one with a deadline
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def handle_one_request(self) -> None:
        """One request, received within ``REQUEST_TIMEOUT`` seconds (http.server's, with a deadline and JSON)."""
        self._reader.deadline, self._reader.received = time.monotonic() + REQUEST_TIMEOUT, 0
        self.command, self.request_version, self.requestline = None, self.default_request_version, ""
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if len(self.raw_requestline) > MAX_LINE:
                self.request_version = ""
                self.send_error(414, f"the request line is over {MAX_LINE} bytes")
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
            log.debug("%s: request not received within %g s; connection closed", self.address_string(),
                      REQUEST_TIMEOUT)
            try:
                self._send(408, _error_body(408, f"the request did not arrive within {REQUEST_TIMEOUT:g} s"))
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
        self._send(code, _error_body(code, text))

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
        server: ApiServer = self.server  # type: ignore[assignment]
        try:
            # The HTTP layer first (framing: 400/411/413), then who asks (Host: 421, token: 401), then the API.
            n = self._length()
            self._check_host()
            try:
                self._authorise(server.token, server.token_path)
            except ApiError:
                self._skip(n)
                raise
            body = self._body(n)
            self._reader.deadline = None  # the request is in; what follows is ours to do
            url = urlsplit(self.path)
            status, payload = server.api.route(method, url.path.rstrip("/") or "/", parse_qs(url.query), body)
        except ApiError as e:
            self._send(e.status, _error_body(e.status, e.message), e.headers)
            return
        except TimeoutError:
            raise  # the body did not arrive in time: handle_one_request answers 408
        except Exception:
            log.exception("API: %s %s failed", method, self.path)
            status, payload = 500, _error_body(500, "internal error; see the daemon's log")
        self._send(status, payload)

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            self.close_connection = True
            raise ApiError(400, "more than one Host header")
        # No Host at all (HTTP/1.0) comes from no browser, so it cannot be DNS rebinding.
        if hosts and not _host_allowed(hosts[0]):
            self.close_connection = True
            raise ApiError(421, f"Host not allowed: {hosts[0][:100]!r}; this API answers only to "
                                f"{', '.join(LOOPBACK_HOSTS[:-1])} or {LOOPBACK_HOSTS[-1]} (with or without the port)")

    def _authorise(self, token: str, token_path: pathlib.Path | None) -> None:
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        where = f"; the token is in {token_path}" if token_path else ""
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, f"missing 'Authorization: Bearer <token>' header{where}",
                           {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, f"wrong token{where}", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

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
        if n > MAX_BODY:
            # Not read: the connection is closed instead, so a huge body costs us nothing.
            self.close_connection = True
            raise ApiError(413, f"request body is {n} bytes; the limit is {MAX_BODY} bytes (1 MiB)")
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
        try:
            body = json.loads(raw)
        except RecursionError:
            raise ApiError(400, f"request body: nested too deeply (at most {MAX_DEPTH} levels)") from None
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
            raise ApiError(400, f"malformed JSON body: not valid JSON ({e})") from None
        if _depth(body) > MAX_DEPTH:
            raise ApiError(400, f"request body: nested too deeply (at most {MAX_DEPTH} levels)")
        if not isinstance(body, dict):
            raise ApiError(400, f"the body must be a JSON object, not {type(body).__name__}")
        return body

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._reader.deadline = None
        if self.request_version == "HTTP/0.9":  # not yet parsed: http.server would write no status line
            self.request_version = "HTTP/1.0"
        self.connection.settimeout(SEND_TIMEOUT)
        data = (json.dumps(payload, indent=1) + "\n").encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # HEAD: the headers GET would send, no body
            self.wfile.write(data)


class ApiServer(ThreadingHTTPServer):
    """The HTTP server, bound to 127.0.0.1 only.  ``port=0`` picks a free port (see ``.port``).

    A thread per connection, at most ``MAX_CONNECTIONS`` of them: a connection over that is answered
    503 by the accepting thread and closed.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, backend: Backend, token: str, port: int, token_path: pathlib.Path | None = None) -> None:
        self.api = Api(backend)
        self.token, self.token_path = token, token_path
        self.max_connections = MAX_CONNECTIONS
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._refused_logged = 0.0
        super().__init__(("127.0.0.1", port), _Handler)
        self._thread: threading.Thread | None = None

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
        data = json.dumps(_error_body(503, message)).encode() + b"\n"
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
        import sys

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
