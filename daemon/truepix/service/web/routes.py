"""The web page's endpoints, beside the API's (api.py's ``ApiServer`` asks ``Web.route`` first).

- ``POST /v1/web/code``: a one-time sign-in code and the URL to open (token only: ``truepix open``).
- ``GET /web/login?code=...``: the code for a session cookie, then on to the page (public).
- ``GET /web/`` and ``/web/static/NAME``: the page, its style and script (token or session).
- ``GET /v1/models``: the installed models, with licence and measured quality.
- ``GET /v1/jobs/ID/report``: a job's recipe, models, seconds, outputs and fidelity, in words.
- ``GET /v1/jobs/ID/thumbnail`` and ``/crop``: the previews (previews.py), rendered from the real files.

Everything else is the API's (docs/protocol.md); the page reads the queue through the same ``/v1``
endpoints as any client, signed in by its cookie.
"""

from __future__ import annotations

import contextlib
import html
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from truepix.service.http import ApiError, Reply, Request
from truepix.service.web.auth import Sessions
from truepix.service.web.previews import PreviewError, Previews
from truepix.service.web.words import fidelity_lines, quality_lines

STATIC = pathlib.Path(__file__).resolve().parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
# The page's files come from the package and nowhere else; no frame may hold it (clickjacking); the code in
# the login URL is not passed on to anything (no Referer).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
OPEN_HINT = "Open this page with <code>truepix open</code> (it signs you in)."
JOB = r"/v1/jobs/(\d{1,18})"


def short_page(status: int, title: str, text: str, headers: dict[str, str] | None = None) -> Reply:
    """A page of one heading and one paragraph (``text`` is HTML: the caller escapes what is not its own)."""
    body = (f"<!doctype html><html lang=en><meta charset=utf-8><title>truepix: {html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{text}</p></html>\n").encode()
    return Reply(status, body, TYPES[".html"], {**PAGE_HEADERS, **(headers or {})})


def _number(query: dict[str, list[str]], key: str, default: float, kind: type = float) -> Any:
    try:
        return kind(query.get(key, [default])[-1])
    except ValueError:
        raise ApiError(400, f"{key} must be a number") from None


class Web:
    """The page's routes.  ``base_url()``: http://127.0.0.1:PORT (the port is known once the server is bound)."""

    def __init__(self, backend: Any, sessions: Sessions, previews: Previews, base_url: Callable[[], str],
                 cookie_name: Callable[[], str]) -> None:
        self.b, self.sessions, self.previews = backend, sessions, previews
        self.base_url, self.cookie_name = base_url, cookie_name

    def route(self, req: Request) -> tuple[int, dict] | Reply | None:
        """The answer, or None when the path is the API's."""
        for verb, pattern, handler in self._table:
            m = pattern.fullmatch(req.path)
            if m is not None:
                if req.method not in (verb, "HEAD" if verb == "GET" else verb):
                    raise ApiError(405, f"method {req.method} not allowed here; use {verb}", {"Allow": verb})
                return handler(self, req, *m.groups())
        return None

    # -- sign-in ---------------------------------------------------------------------------------------

    def _code(self, req: Request) -> tuple[int, dict]:
        if req.auth != "token":  # a signed-in page must not mint sign-ins for others
            raise ApiError(403, "a sign-in code is given for the API token only (`truepix open`)")
        if req.body:
            raise ApiError(400, f"unknown field(s) {', '.join(sorted(req.body))}; this endpoint takes none")
        code = self.sessions.new_code()
        return 200, {"code": code, "url": f"{self.base_url()}/web/login?code={code}",
                     "expires_in": self.sessions.code_ttl}

    def _login(self, req: Request) -> Reply:
        code = req.query.get("code", [""])[-1]
        session = self.sessions.exchange(code) if code else None
        if session is None:
            return short_page(401, "Sign-in link used or expired",
                              "Each link from <code>truepix open</code> works once, for a minute. " + OPEN_HINT)
        cookie = f"{self.cookie_name()}={session}; HttpOnly; SameSite=Strict; Path=/"
        # Not a redirect: when the sign-in came from another site (``truepix open``'s local file), a browser
        # keeps a SameSite=Strict cookie off the whole redirect chain, and the page said "not signed in"
        # (Chromium 156, tried); a refresh from this page is a navigation of the page's own origin, and the
        # cookie goes with it.
        return short_page(200, "Signed in", 'Opening <a href="/web/">the page</a>…',
                          {"Set-Cookie": cookie, "Refresh": "0; url=/web/"})

    # -- the page's files -------------------------------------------------------------------------------

    def _index(self, req: Request) -> Reply:
        return self._file("index.html")

    def _static(self, req: Request, name: str) -> Reply:
        return self._file(name)

    def _file(self, name: str) -> Reply:
        path = STATIC / name
        if path.suffix not in TYPES or not path.is_file():
            raise ApiError(404, f"no file {name} in the page")
        return Reply(200, path.read_bytes(), TYPES[path.suffix], PAGE_HEADERS)

    # -- what the page shows beyond the API -------------------------------------------------------------

    def _models(self, req: Request) -> tuple[int, dict]:
        from truepix.engine.models import load_manifest

        return 200, {"models": [_model_view(m) for m in load_manifest().values()]}

    def _job_of(self, job_id: str):
        from truepix.service.queue import QueueError

        try:
            return self.b.queue.get(int(job_id))
        except QueueError as e:
            raise ApiError(404, str(e)) from None

    def _report(self, req: Request, job_id: str) -> tuple[int, dict]:
        job = self._job_of(job_id)
        recipe = job.recipe
        outputs = []
        if job.state == "done":
            for i, out in enumerate(job.outputs):
                if job.report:  # the run's own report, kept with the job (the guard's correction included)
                    figures = dict(job.report)
                else:  # a job done by an older truepix: measured from the files
                    try:
                        figures = self.previews.measure(pathlib.Path(job.source), pathlib.Path(out))
                    except PreviewError as e:
                        figures = {"unmeasured": str(e)}
                outputs.append({"index": i, "path": out, "name": pathlib.Path(out).name, "figures": figures,
                                "fidelity": fidelity_lines(figures, bool(recipe.get("guard", True)))})
        models = _ran_models(job.models) if job.models else _recipe_models(recipe)
        return 200, {"job": job.as_dict(), "recipe": recipe, "models": models,
                     "seconds": job.seconds, "outputs": outputs}

    def _preview_files(self, job_id: str, query: dict) -> tuple[pathlib.Path, pathlib.Path]:
        job = self._job_of(job_id)
        index = _number(query, "output", 0, int)
        if job.state != "done" or not 0 <= index < len(job.outputs):
            raise ApiError(409, f"job {job.id} has no output {index} to preview (it is {job.state})")
        return pathlib.Path(job.source), pathlib.Path(job.outputs[index])

    def _thumbnail(self, req: Request, job_id: str) -> Reply:
        source, output = self._preview_files(job_id, req.query)
        side = req.query.get("side", ["after"])[-1]
        if side not in ("before", "after"):
            raise ApiError(400, f"side must be before or after, not {side!r}")
        with _preview_errors():
            data = self.previews.thumbnail(output if side == "after" else source)
        return Reply(200, data, "image/jpeg", {"Cache-Control": "private, max-age=3600"})

    def _crop(self, req: Request, job_id: str) -> Reply:
        source, output = self._preview_files(job_id, req.query)
        x, y = _number(req.query, "x", 0.5), _number(req.query, "y", 0.5)
        zoom, side = _number(req.query, "zoom", 1, int), req.query.get("side", ["after"])[-1]
        if zoom not in (1, 2) or side not in ("before", "after"):
            raise ApiError(400, f"zoom must be 1 or 2 and side before or after (got {zoom}, {side!r})")
        with _preview_errors():
            data = self.previews.crop(source, output, x, y, zoom, side)
        return Reply(200, data, "image/png", {"Cache-Control": "private, max-age=3600"})

    ROUTES: dict[tuple[str, str], Callable[..., Any]] = {
        ("POST", "/v1/web/code"): _code,
        ("GET", "/web/login"): _login,
        ("GET", "/web"): _index,
        ("GET", r"/web/static/([a-z0-9-]{1,40}\.[a-z]{2,4})"): _static,
        ("GET", "/v1/models"): _models,
        ("GET", JOB + "/report"): _report,
        ("GET", JOB + "/thumbnail"): _thumbnail,
        ("GET", JOB + "/crop"): _crop,
    }
    _table = [(verb, re.compile(pattern), handler) for (verb, pattern), handler in ROUTES.items()]


@contextlib.contextmanager
def _preview_errors() -> Iterator[None]:
    """A preview that cannot be made: 422 with the reason (the page shows it instead of the image)."""
    try:
        yield
    except PreviewError as e:
        raise ApiError(422, f"no preview: {e}") from None


def _step_view(name: str, label: str, table: dict) -> dict:
    info = table.get(name)
    return {"name": name, "label": label, "task": info.task if info else "?", "scale": info.scale if info else None}


def _recipe_models(recipe: dict) -> list[dict]:
    """Views of the models a recipe names (a job an older truepix ran, which recorded none)."""
    from truepix.engine.models import load_manifest

    table = load_manifest()
    names = [step.get("model") for step in recipe.get("steps", [])]
    return [_step_view(n, table[n].label if n in table else n, table) for n in names]


def _ran_models(labels: list[str]) -> list[dict]:
    """Views of the models a run recorded (``FileResult.models``: labels such as ``upscale-x2-int8@1``,
    or a blend ``upscale-x2@1 x0.40 + upscale-x2-adaptive@1 x0.60``), each step as it really ran."""
    from truepix.engine.models import load_manifest

    table = load_manifest()
    return [_step_view(label.split(" + ")[0].split(" x")[0].split("@")[0], label, table) for label in labels]


def _project_licence() -> str:
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        return metadata("truepix").get("License") or "see LICENSE"
    except PackageNotFoundError:
        return "see LICENSE"


def _model_view(m: Any) -> dict:
    licence = m.extra.get("license") or m.extra.get("licence")
    if not licence:  # the manifest names none: the model was trained by the project, under its licence
        licence = f"{_project_licence()} (truepix's own; trained by the project)"
    metrics = m.extra.get("metrics", {})
    training = m.extra.get("training", {})
    return {"name": m.name, "version": m.version, "task": m.task, "scale": m.scale, "precision": m.precision,
            "parameters": m.extra.get("parameters"), "licence": licence, "quality": quality_lines(metrics),
            "measured_by": metrics.get("command", ""),
            # what it learned from, each source with its terms (the manifest's training.data_licences)
            "trained_on": list(training.get("data_licences", [])) if isinstance(training, dict) else []}
