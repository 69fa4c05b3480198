"""Who may ask the daemon: the rules for the token, the web page's session cookie and a browser's ``Origin``.

``check`` answers for one request, after the ``Host`` check (http.py) and before any route:

1. An ``Authorization`` header must carry the token (else 401, whatever cookie comes with it): "token".
2. Without one, the web page's session cookie (``truepix_session_PORT``), when the daemon knows it, is a
   "session" -- unless ``Sec-Fetch-Site`` says the request comes from another site *or another port of this
   host* (same-site: SameSite=Strict lets the cookie go there), or it changes something (not GET/HEAD)
   without the page's ``Origin`` or ``Sec-Fetch-Site: same-origin``: 403.  That is the CSRF rule.
3. Else a public path (the page's login) is "public"; anything else 401.  A request without a credential
   learns no more than that, whatever its ``Origin``.
4. Then, for whoever was let in, an ``Origin`` header that is not the daemon's own page is refused (403),
   token or not: a page of another origin must not act through the cookie, nor through a token it somehow
   holds.  Programs that are not browsers (the CLI, the plug-ins, curl) send no ``Origin``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

SESSION_COOKIE = "truepix_session"  # + "_PORT": browsers share cookies between the ports of one host
# Sec-Fetch-Site values of the page's own requests: the page itself, or the user typing or opening the URL.
SAME_ORIGIN_FETCH = ("same-origin", "none")


@dataclass
class Refusal:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def cookie_value(headers: list[str], name: str) -> str | None:
    """The value of cookie ``name`` in ``Cookie`` headers, or None.  Parsed by hand: http.cookies gives up on
    the whole header at the first cookie it dislikes, and a browser sends every cookie of 127.0.0.1."""
    for header in headers:
        for part in header.split(";"):
            key, eq, value = part.strip().partition("=")
            if eq and key == name:
                return value.strip().strip('"')
    return None


def check(headers: Message, method: str, path: str, gate: Any) -> str | Refusal:
    """"token", "session" or "public" (http.py's ``Request.auth``), or the refusal.  ``gate``: the server
    (``token``, ``token_path``, ``origins()``, ``cookie_name()``, ``session_valid()``, ``public()``)."""
    who = _who(headers, method, path, gate)
    if isinstance(who, Refusal):
        return who
    origins = headers.get_all("Origin") or []
    if len(origins) > 1:
        return Refusal(400, "more than one Origin header")
    if origins and origins[0].strip().lower().rstrip("/") not in gate.origins():
        return Refusal(403, f"Origin not allowed: {origins[0][:100]!r}; this daemon answers only its own page "
                            f"({gate.origins()[0]}) and programs that send no Origin")
    return who


def _who(headers: Message, method: str, path: str, gate: Any) -> str | Refusal:
    where = f"; the token is in {gate.token_path}" if gate.token_path else ""
    missing = Refusal(401, f"missing 'Authorization: Bearer <token>' header{where}", {"WWW-Authenticate": "Bearer"})
    given = headers.get("Authorization", "")
    if given:  # a token given must be the right one, whatever cookie comes with it
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return missing
        if not hmac.compare_digest(value.strip().encode(), gate.token.encode()):
            return Refusal(401, f"wrong token{where}", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return "token"
    session = cookie_value(headers.get_all("Cookie") or [], gate.cookie_name())
    if session and gate.session_valid(session):
        site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
        if site and site not in SAME_ORIGIN_FETCH:
            return Refusal(403, f"a request from another site or port ({site[:40]}) cannot use the page's session")
        if method not in ("GET", "HEAD") and not (headers.get("Origin") or site == "same-origin"):
            return Refusal(403, "a change through the page's session must come from the page (no Origin or "
                                "Sec-Fetch-Site header was sent)")
        return "session"
    if gate.public(path):
        return "public"
    if session:
        return Refusal(401, "the page's session has expired or the daemon restarted; sign in again with "
                            "`truepix open`")
    return missing
