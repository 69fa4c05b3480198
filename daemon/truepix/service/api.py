"""The localhost API: HTTP/1.1 + JSON on 127.0.0.1, every request with ``Authorization: Bearer <token>``
(or the daemon's own web page's session cookie: service/web/, ``truepix open``; served on the same port).

The endpoints are documented, with curl examples, in docs/protocol.md; a test
runs those examples against a live daemon.  Every error is JSON (on the web page's own ``/web/`` paths,
a short page)::

    {"error": {"status": 400, "message": "paths[0]: /x/y.jpg: no such file"}}

including the HTTP layer's own errors (a malformed request line, headers too long).  The limits:
at most ``MAX_CONNECTIONS`` connections at once (one more gets a 503 at once, with no thread of its
own), ``REQUEST_TIMEOUT`` seconds to send a whole request (line, headers and body), a ``Host`` that
names the loopback (DNS rebinding), bodies of ``MAX_BODY`` bytes nested at most ``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import pathlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from truepix import __version__
from truepix.errors import TruepixError
from truepix.io import SUPPORTED_SUFFIXES
from truepix.recipes import Recipe, from_mapping
from truepix.service.http import ApiError, JsonServer, Limits, Reply, Request, host_allowed
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


JOB = r"/v1/jobs/(\d{1,18})"  # a job's id: its group, the handler's argument


class Api:
    """Request routing and validation; no HTTP here (http.py does that).

    ``ROUTES`` (at the end of the class) maps (method, path pattern) to the method that answers: a
    pattern matches the whole path, and its groups follow the query and body as the handler's arguments.
    HEAD is answered wherever GET is (as GET; the HTTP layer leaves the body out).  A path some pattern
    matches, but not with this method, gets 405 with ``Allow``; a path none matches, 404.
    """

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict | None) -> tuple[int, dict]:
        allowed: list[str] = []
        for verb, pattern, handler in self._table:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            if verb == method or (verb == "GET" and method == "HEAD"):
                return handler(self, query, body or {}, *m.groups())
            allowed.append(verb)
        if not allowed:
            raise ApiError(404, f"no endpoint {path}; see docs/protocol.md (all endpoints are under /v1/)")
        raise ApiError(405, f"method {method} not allowed here; use {' or '.join(allowed)}",
                       {"Allow": ", ".join((*allowed, "HEAD") if "GET" in allowed else allowed)})

    # -- the endpoints: (self, query, body, *the path's groups) -> (status, payload) ----------------------

    def _health(self, query: dict, body: dict) -> tuple[int, dict]:
        problems = self.b.health()
        return (503 if problems else 200), {"status": "degraded" if problems else "ok", "problems": problems,
                                            "version": __version__, "api": API_VERSION, "pid": os.getpid()}

    def _status(self, query: dict, body: dict) -> tuple[int, dict]:
        return 200, {"version": __version__, "counts": self.b.queue.counts(), **self.b.status()}

    def _recipes(self, query: dict, body: dict) -> tuple[int, dict]:
        recipes = self.b.recipes()
        return 200, {"default": "upscale", "recipes": [_recipe_view(r) for r in recipes.values()]}

    def _pause(self, query: dict, body: dict) -> tuple[int, dict]:
        _fields(body, {})
        self.b.pause()
        return 200, {"paused": True}

    def _resume(self, query: dict, body: dict) -> tuple[int, dict]:
        _fields(body, {})
        self.b.resume()
        return 200, {"paused": False}

    def _get_job(self, query: dict, body: dict, job_id: str) -> tuple[int, dict]:
        return 200, self._job(int(job_id))

    def _cancel(self, query: dict, body: dict, job_id: str) -> tuple[int, dict]:
        _fields(body, {})
        with _queue_errors():
            job = self.b.queue.cancel(int(job_id))
            if job.state == "running":
                self.b.cancel_running(int(job_id))
        return 200, job.as_dict()

    def _retry(self, query: dict, body: dict, job_id: str) -> tuple[int, dict]:
        _fields(body, {})
        with _queue_errors():
            job = self.b.queue.retry(int(job_id))
            self.b.submitted()
        return 200, job.as_dict()

    def _job(self, job_id: int) -> dict:
        try:
            job = self.b.queue.get(job_id)
        except QueueError as e:
            raise ApiError(404, str(e)) from None
        view = job.as_dict()
        cur = self.b.status().get("current")
        view["progress"] = cur["progress"] if cur and cur["id"] == job_id else (1.0 if job.state == "done" else 0.0)
        return view

    def _list(self, query: dict[str, list[str]], body: dict) -> tuple[int, dict]:
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

    def _submit(self, query: dict, body: dict) -> tuple[int, dict]:
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

    ROUTES: dict[tuple[str, str], Callable[..., tuple[int, dict]]] = {
        ("GET", "/v1/health"): _health,
        ("GET", "/v1/status"): _status,
        ("GET", "/v1/recipes"): _recipes,
        ("POST", "/v1/pause"): _pause,
        ("POST", "/v1/resume"): _resume,
        ("GET", "/v1/jobs"): _list,
        ("POST", "/v1/jobs"): _submit,
        ("GET", JOB): _get_job,
        ("POST", JOB + "/cancel"): _cancel,
        ("POST", JOB + "/retry"): _retry,
    }
    _table = [(verb, re.compile(pattern), handler) for (verb, pattern), handler in ROUTES.items()]


@contextlib.contextmanager
def _queue_errors() -> Iterator[None]:
    """A QueueError as the API's answer: 404 for an unknown job, else 409 (not in a state for that)."""
    try:
        yield
    except QueueError as e:
        raise ApiError(404 if "no such job" in str(e) else 409, str(e)) from None


def _with_output(recipe: Recipe, out: pathlib.Path) -> Recipe:
    import dataclasses

    return dataclasses.replace(recipe, output=out)


def _recipe_view(recipe: Recipe) -> dict:
    from truepix.process import needs_raw

    return {**recipe.to_mapping(), "input": "raw" if needs_raw(recipe) else "rgb"}


# -- HTTP (the plumbing is http.py's) ---------------------------------------------------------------------


def _host_allowed(host: str) -> bool:
    """``host`` (a Host header) names the loopback: 127.0.0.1, localhost or [::1], with or without a port."""
    return host_allowed(host, LOOPBACK_HOSTS)


class ApiServer(JsonServer):
    """The API's HTTP server (http.py's ``JsonServer``), bound to 127.0.0.1 only.  ``port=0`` picks a free
    port (see ``.port``).  It serves the web page too (service/web/: ``truepix open``), signed in by a
    session cookie; the API's endpoints take that cookie as they take the token.

    At most ``MAX_CONNECTIONS`` connections at once (read when the server is made); the other limits
    above are read for each connection and request.  ``cache_dir``: where the page's previews are kept
    (default: the user cache folder's ``truepix/previews``).
    """

    def __init__(self, backend: Backend, token: str, port: int, token_path: pathlib.Path | None = None,
                 cache_dir: pathlib.Path | None = None) -> None:
        from truepix.service.web.auth import Sessions
        from truepix.service.web.previews import Previews, default_folder
        from truepix.service.web.routes import Web

        self.api = Api(backend)
        self.sessions = Sessions()
        self.previews = Previews(cache_dir or default_folder())
        self.web = Web(backend, self.sessions, self.previews, lambda: f"http://127.0.0.1:{self.port}",
                       self.cookie_name)
        super().__init__(self.route, token, port, token_path, MAX_CONNECTIONS)

    def route(self, req: Request) -> tuple[int, dict] | Reply:
        answer = self.web.route(req)
        if answer is not None:
            return answer
        return self.api.route(req.method, req.path, req.query, req.body)

    def limits(self) -> Limits:
        return Limits(request_timeout=REQUEST_TIMEOUT, send_timeout=SEND_TIMEOUT, max_body=MAX_BODY,
                      max_depth=MAX_DEPTH, max_line=MAX_LINE, hosts=LOOPBACK_HOSTS)

    def session_valid(self, session: str) -> bool:
        return self.sessions.valid(session)

    def public(self, path: str) -> bool:
        return path == "/web/login"

    def error_reply(self, path: str, error: ApiError) -> Reply | None:
        """On the page's own paths an error is a short page, not JSON: without a session, only how to
        sign in (nothing of the page itself)."""
        if not (path == "/web" or path.startswith("/web/")):
            return None
        from truepix.service.web.routes import OPEN_HINT, short_page

        if error.status == 401:
            return short_page(401, "Not signed in", OPEN_HINT)
        return short_page(error.status, HTTPStatus(error.status).phrase, html.escape(error.message))
