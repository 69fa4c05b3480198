"""Choosing and loading pystray's backend for the tray (service/tray.py): which backends to try on this
system, importing pystray with one of them, and a log filter for the xorg backend's noise."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from typing import Any


def _headless_reason() -> str | None:
    """Why there is no display to put an icon on (Linux/BSD), or None."""
    if sys.platform in ("win32", "darwin"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display (DISPLAY and WAYLAND_DISPLAY unset): running headless, no tray icon"


def _session_bus() -> bool:
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR") or (f"/run/user/{os.getuid()}" if hasattr(os, "getuid") else "")
    return bool(runtime) and os.path.exists(os.path.join(runtime, "bus"))


def _candidates(backend: str) -> tuple[list[str], list[str]]:
    """The pystray backends to try, in order, and why others were skipped (for the log)."""
    if backend != "auto":
        return [backend], []
    if sys.platform == "win32":
        return ["win32"], []
    if sys.platform == "darwin":
        return ["darwin"], []
    out, skipped = [], []
    if importlib.util.find_spec("gi") is None:
        skipped.append("appindicator/gtk: PyGObject (gi) is not installed")
    elif not _session_bus():
        skipped.append("appindicator/gtk: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset)")
    else:
        out += ["appindicator", "gtk"]
    if os.environ.get("DISPLAY"):
        out.append("xorg")
    else:
        skipped.append("xorg: DISPLAY unset")
    return out, skipped


def _loaded_backend(pystray: Any) -> str:
    return pystray.Icon.__module__.rsplit(".", 1)[-1].lstrip("_")


def _import_pystray(name: str) -> Any:
    """``import pystray`` with ``PYSTRAY_BACKEND=name``; on failure leave no half-imported pystray behind."""
    before = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = name
    try:
        return importlib.import_module("pystray")
    except BaseException:
        for mod in ("pystray", f"pystray._{name}"):
            sys.modules.pop(mod, None)
        raise
    finally:
        if before is None:
            os.environ.pop("PYSTRAY_BACKEND", None)
        else:
            os.environ["PYSTRAY_BACKEND"] = before


class _DockFilter(logging.Filter):
    """pystray's xorg backend logs 'Failed to dock icon' with a traceback at every icon change while no system tray
    runs on the display; let one short warning through instead."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Failed to dock icon"):
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg, record.args, record.exc_info, record.exc_text = (
            "xorg tray icon: no system tray (XEMBED) found on the display; the icon is not shown", None, None, None)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_dock_filter = _DockFilter()
