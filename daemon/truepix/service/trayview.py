"""What the tray shows, as pure functions of a daemon snapshot: state, texts, menu entries, icon images;
and opening a file or folder in the desktop's default application.  No pystray here (tray.py runs the icon).
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import subprocess
import sys
import threading

from PIL import Image, ImageDraw

log = logging.getLogger("truepix.tray")

STATES = ("idle", "working", "paused")
ICON_SIZE = 64


# -- the pure part: what the icon, the tooltip and the menu show for a snapshot --------------------------------


def _normalise(snapshot: dict | None) -> dict:
    s = snapshot or {}
    progress = s.get("progress")
    return {
        "paused": bool(s.get("paused")),
        "queued": max(0, int(s.get("queued") or 0)),
        "running": max(0, int(s.get("running") or 0)),
        "current": str(s["current"]) if s.get("current") else None,
        "progress": None if progress is None else min(1.0, max(0.0, float(progress))),
    }


def state_of(snapshot: dict) -> str:
    """``"paused"`` (wins, even while the last job finishes), ``"working"`` or ``"idle"``."""
    s = _normalise(snapshot)
    if s["paused"]:
        return "paused"
    if s["running"] or s["current"]:
        return "working"
    return "idle"


def queue_text(snapshot: dict) -> str:
    s = _normalise(snapshot)
    return f"{s['queued']} queued, {s['running']} running"


def menu_entries(snapshot: dict) -> list[tuple[str, str]]:
    """The menu for a snapshot: ``(text, action)`` pairs, top to bottom.

    Actions: ``pause``, ``resume``, ``info`` (disabled, shows the queue), ``open_output``, ``open_log``, ``quit``.
    The first entry (Pause or Resume) is the default one: the action of a left click where the backend has one.
    """
    paused = _normalise(snapshot)["paused"]
    return [
        ("Resume", "resume") if paused else ("Pause", "pause"),
        (queue_text(snapshot), "info"),
        ("Open output folder", "open_output"),
        ("Open log", "open_log"),
        ("Quit", "quit"),
    ]


def title_text(snapshot: dict) -> str:
    """The icon's title / tooltip, one line."""
    s = _normalise(snapshot)
    state = state_of(s)
    if state == "paused":
        return f"truepix: paused ({queue_text(s)})"
    if state == "working":
        doing = s["current"] or "working"
        if s["progress"] is not None:
            doing += f" {round(100 * s['progress'])}%"
        return f"truepix: {doing} ({s['queued']} queued)"
    return f"truepix: idle ({s['queued']} queued)" if s["queued"] else "truepix: idle"


_COLOURS = {
    "idle": (128, 128, 128, 255),  # grey
    "working": (30, 136, 229, 255),  # blue
    "paused": (245, 166, 35, 255),  # amber
}


def icon_image(state: str) -> Image.Image:
    """A fresh 64x64 RGBA icon: an aperture glyph (grey idle, blue working) or an amber disc with a pause sign."""
    if state not in _COLOURS:
        raise ValueError(f"unknown tray state {state!r}")
    ss = 4  # drawn 4x larger, then reduced: cheap antialiasing
    n = ICON_SIZE * ss
    c, r = n / 2, n / 2 - 3 * ss
    disc = Image.new("L", (n, n), 0)
    ImageDraw.Draw(disc).ellipse((c - r, c - r, c + r, c + r), fill=255)
    img = Image.new("RGBA", (n, n), _COLOURS[state])
    draw = ImageDraw.Draw(img)
    light = (255, 255, 255, 255)
    if state == "paused":
        w, h = 0.22 * r, 0.9 * r
        for x in (c - 0.42 * r, c + 0.2 * r):
            draw.rounded_rectangle((x, c - h / 2, x + w, c + h / 2), radius=0.06 * r, fill=(70, 45, 0, 255))
    else:
        ri = 0.36 * r  # the hexagonal opening of the aperture, and six blade edges running from it to the rim
        pts = [(c + ri * math.cos(math.pi / 3 * k + 0.3), c + ri * math.sin(math.pi / 3 * k + 0.3)) for k in range(6)]
        draw.polygon(pts, fill=light)
        for k in range(6):
            (x0, y0), (x1, y1) = pts[k - 1], pts[k]
            dx, dy = x1 - x0, y1 - y0
            norm = math.hypot(dx, dy)
            draw.line((x1, y1, x1 + 2 * r * dx / norm, y1 + 2 * r * dy / norm), fill=light, width=int(0.09 * r))
    img.putalpha(disc)
    return img.resize((ICON_SIZE, ICON_SIZE), Image.LANCZOS)


# -- opening files ------------------------------------------------------------------------------------------


def open_path(path: pathlib.Path | str) -> bool:
    """Open a file or folder in the desktop's default application, without waiting.

    ``xdg-open`` on Linux/BSD, ``open`` on macOS, ``os.startfile`` on Windows.  Returns whether the opener could
    be started; a failure is logged, never raised.
    """
    path = pathlib.Path(path)
    try:
        if not path.exists():
            log.warning("cannot open %s: it does not exist", path)
            return False
        if sys.platform == "win32":
            os.startfile(str(path))  # type: ignore[attr-defined]
            return True
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        proc = subprocess.Popen([opener, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        threading.Thread(target=proc.wait, name="truepix-tray-open", daemon=True).start()  # reap it, no zombie
        return True
    except Exception as exc:  # a menu action must not take the tray down
        log.warning("cannot open %s: %s", path, exc)
        return False
