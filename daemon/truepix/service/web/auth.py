"""The web page's sign-in: one-time codes exchanged for session cookies, all in memory.

``truepix open`` asks the daemon, with the API token, for a code; the browser brings the code to
``/web/login`` once and gets a session cookie (HttpOnly: the page's script never sees it; SameSite=Strict:
other sites' pages do not send it).  The promises:

- A code is 32 random bytes, good for ``CODE_TTL`` seconds and for one exchange: it travels in a URL
  (the browser's history, a process list), so it must be worthless once used or stale.
- A session is another 32 random bytes, good for ``SESSION_TTL`` seconds.  Only its sha256 is kept, so
  the lookup's timing says nothing of the secret.
- Nothing is written to disk: a daemon restart signs every page out (``truepix open`` again).
- At most ``MAX_LIVE`` codes and sessions each: the oldest go first, so no one can fill the memory.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict

CODE_TTL = 60.0  # seconds from `truepix open` to the browser's first request: a browser starting cold fits
SESSION_TTL = 12 * 3600.0  # a working day; then `truepix open` again
MAX_LIVE = 64


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    """The codes and sessions of one daemon process (thread-safe)."""

    def __init__(self, code_ttl: float = CODE_TTL, session_ttl: float = SESSION_TTL) -> None:
        self.code_ttl, self.session_ttl = code_ttl, session_ttl
        self._codes: OrderedDict[str, float] = OrderedDict()     # sha256(code) -> expiry (time.monotonic)
        self._sessions: OrderedDict[str, float] = OrderedDict()  # sha256(session) -> expiry
        self._lock = threading.Lock()

    def new_code(self) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._add(self._codes, _key(code), self.code_ttl)
        return code

    def exchange(self, code: str) -> str | None:
        """A new session for ``code``, which is used up; None when it is unknown, used or expired."""
        with self._lock:
            expiry = self._codes.pop(_key(code), None)
            if expiry is None or expiry < time.monotonic():
                return None
            session = secrets.token_urlsafe(32)
            self._add(self._sessions, _key(session), self.session_ttl)
        return session

    def valid(self, session: str) -> bool:
        with self._lock:
            expiry = self._sessions.get(_key(session))
            if expiry is not None and expiry < time.monotonic():
                del self._sessions[_key(session)]
                expiry = None
        return expiry is not None

    def _add(self, table: OrderedDict[str, float], key: str, ttl: float) -> None:
        now = time.monotonic()
        for old in [k for k, expiry in table.items() if expiry < now]:
            del table[old]
        while len(table) >= MAX_LIVE:
            table.popitem(last=False)
        table[key] = now + ttl
