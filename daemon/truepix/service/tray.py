"""The system-tray icon of the daemon (pystray): idle / working / paused, and a small menu.

The tray owns no state.  It reads everything from a :class:`TrayController` (the daemon, wired by app.py) and
calls it back for the menu actions:

    Pause / Resume          (one item; its text follows the state; also the default action, see below)
    3 queued, 1 running     (disabled, information only)
    Open output folder
    Open log
    Quit                    (asks the daemon to shut down; the daemon later calls Tray.stop())

Backends.  pystray picks its backend once, when ``import pystray`` runs, from the environment variable
``PYSTRAY_BACKEND``; :func:`start_tray` sets that variable itself, so the backend is the one the configuration
asks for (``[server] tray``), and logs the one it got.  Because Python caches the import, **the backend can be
chosen only once per process**: a later ``start_tray`` with another backend reuses the first one (and says so).
``pystray`` is imported lazily, inside :func:`start_tray`, because without a display the import itself raises
(``Xlib.error.DisplayNameError``) on Linux.

- ``auto``: Windows -> ``win32``; macOS -> ``darwin``; Linux/BSD with a display -> ``appindicator`` if it loads,
  else ``gtk``, else ``xorg``; no display (neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``) -> headless.
- ``appindicator`` / ``gtk`` have menus.  They need PyGObject (``pip install "PyGObject<3.51"``; on Debian/Ubuntu
  first ``apt-get install libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0``, plus
  ``gir1.2-ayatanaappindicator3-0.1`` for appindicator) and a D-Bus session bus (any desktop session has one).
- ``xorg`` (python-xlib only) has no menus: a left click on the icon toggles pause/resume (pystray activates the
  menu's default item on click), the tooltip shows the queue.  It shows only where an XEMBED system tray runs.
- ``darwin``: AppKit wants the icon's run loop on the process's main thread, which the daemon keeps for itself.
  The tray tries ``Icon.run_detached()`` (works when the host runs the NSApplication loop) and otherwise runs the
  icon in a thread, which macOS may refuse; then the daemon runs on without an icon (the reason is logged).
- ``none``: no icon.

Whatever goes wrong while starting the icon is logged once and :func:`start_tray` returns ``None``: the daemon
runs on without a tray.  The icon runs in its own daemon thread; a second small thread calls :meth:`Tray.refresh`
about once a second.
"""

from __future__ import annotations

import logging
import pathlib
import sys
import threading
import time
from typing import Any, Protocol

from PIL import Image

from truepix.service.traybackend import (
    _candidates, _dock_filter, _headless_reason, _import_pystray, _loaded_backend,
)
from truepix.service.trayview import (  # noqa: F401 -- re-exported: the tray's public view
    ICON_SIZE, STATES, _normalise, icon_image, menu_entries, open_path, queue_text, state_of, title_text,
)

log = logging.getLogger("truepix.tray")

BACKENDS = ("auto", "gtk", "appindicator", "xorg", "win32", "darwin", "none")
REFRESH_INTERVAL = 1.0  # seconds between two refreshes by the refresher thread
START_TIMEOUT = 5.0  # seconds to wait for the icon's event loop to come up
STOP_TIMEOUT = 2.0  # seconds stop() waits for each thread

_PYGOBJECT_HINT = (
    'install PyGObject (pip install "PyGObject<3.51"; Debian/Ubuntu first: apt-get install libgirepository1.0-dev '
    "libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1) and run in a desktop session"
)


class TrayController(Protocol):
    def snapshot(self) -> dict: ...  # {"paused", "queued", "running", "current", "progress"}
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def quit(self) -> None: ...  # asks the daemon to shut down (the daemon will later call Tray.stop())
    def output_folder(self) -> pathlib.Path: ...
    def log_file(self) -> pathlib.Path: ...




def start_tray(backend: str, controller: TrayController) -> Tray | None:
    """Start the tray icon.

    backend: "auto" | "gtk" | "appindicator" | "xorg" | "win32" | "darwin" | "none".
    Returns a started :class:`Tray`, or ``None`` when running headless or when the icon cannot be started; the
    reason is logged once on ``logging.getLogger("truepix.tray")``.  Never raises.
    """
    backend = (backend or "auto").strip().lower()
    if backend == "none":
        log.info("tray disabled (tray = none): running without a tray icon")
        return None
    if backend not in BACKENDS:
        log.warning("unknown tray backend %r (expected one of %s): running without a tray icon",
                    backend, ", ".join(BACKENDS))
        return None
    reason = _headless_reason()
    if reason:
        log.info("%s", reason)
        return None

    pystray = sys.modules.get("pystray")
    notes: list[str] = []
    if pystray is not None and hasattr(pystray, "Icon"):
        used = _loaded_backend(pystray)
        if backend not in ("auto", used):
            notes.append(f"pystray is already loaded with its {used!r} backend in this process and its backend can "
                         f"be chosen only once, so {backend!r} is not used")
    else:
        pystray = None
        candidates, notes = _candidates(backend)
        for name in candidates:
            try:
                pystray = _import_pystray(name)
                used = _loaded_backend(pystray)
                break
            except Exception as exc:  # ImportError, ValueError (gi), Xlib display errors, ...
                notes.append(f"{name}: {type(exc).__name__}: {exc}".strip())
        if pystray is None:
            log.warning("no tray icon (tray = %s): no pystray backend could be loaded (%s); running without one",
                        backend, "; ".join(notes) or "none available")
            return None

    logging.getLogger("pystray._base").addFilter(_dock_filter)
    tray = None
    try:
        tray = Tray(pystray, used, controller)
        tray._start(START_TIMEOUT)
    except Exception as exc:  # the daemon runs on without a tray
        log.warning("no tray icon: the pystray %r backend failed to start: %s: %s", used, type(exc).__name__, exc)
        if tray is not None:
            tray.stop()
        return None

    if tray.has_menu:
        log.info("tray icon started (pystray backend %r, with menu)%s", used,
                 f"; skipped: {'; '.join(notes)}" if notes else "")
    else:
        level = logging.WARNING if backend == "auto" and sys.platform.startswith("linux") else logging.INFO
        log.log(level, "tray icon started (pystray backend %r) without a menu: left-click the icon to pause/resume, "
                "the tooltip shows the queue; for a menu, %s%s", used, _PYGOBJECT_HINT,
                f" (skipped: {'; '.join(notes)})" if notes else "")
    return tray


# -- the icon ----------------------------------------------------------------------------------------------


class Tray:
    """A running tray icon; made by :func:`start_tray`.

    ``backend``: the pystray backend in use; ``has_menu``: whether it shows menus; ``icon``: the ``pystray.Icon``;
    ``state``: what the icon shows now ("idle", "working" or "paused").
    """

    def __init__(self, pystray: Any, backend: str, controller: TrayController,
                 refresh_interval: float = REFRESH_INTERVAL) -> None:
        self.backend = backend
        self.controller = controller
        self.has_menu = bool(getattr(pystray.Icon, "HAS_MENU", False))
        self._pystray = pystray
        self._interval = refresh_interval
        self._images = {state: icon_image(state) for state in STATES}
        self._snapshot_failed = False
        self._snapshot = self._read_snapshot() or _normalise(None)
        self.state = state_of(self._snapshot)
        self._title = title_text(self._snapshot)
        self._entries = menu_entries(self._snapshot)
        self._lock = threading.Lock()  # one refresh at a time (refresher thread vs. the daemon)
        self._wake = threading.Event()
        self._ready = threading.Event()
        self._stopped = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._refresher: threading.Thread | None = None
        self.icon = pystray.Icon("truepix", icon=self._images[self.state], title=self._title,
                                 menu=pystray.Menu(self._menu_items))

    @property
    def image(self) -> Image.Image:
        """The image the icon shows now."""
        return self._images[self.state]

    # -- menu

    def _menu_items(self) -> list:
        item, separator = self._pystray.MenuItem, self._pystray.Menu.SEPARATOR
        items = []
        for i, (text, action) in enumerate(menu_entries(self._snapshot)):
            if action in ("open_output", "quit"):
                items.append(separator)
            items.append(item(text, self._action(action), default=(i == 0), enabled=(action != "info")))
        return items

    def _action(self, name: str):
        def action(icon, item):  # pystray calls it in the icon's thread
            self._do(name)

        action.__name__ = f"tray_{name}"
        return action

    def _do(self, name: str) -> None:
        c = self.controller
        try:
            if name == "pause":
                c.pause()
            elif name == "resume":
                c.resume()
            elif name == "quit":
                c.quit()
            elif name == "open_output":
                open_path(c.output_folder())
            elif name == "open_log":
                path = pathlib.Path(c.log_file())
                open_path(path if path.exists() or not path.parent.exists() else path.parent)
        except Exception:  # a failing action must not take the icon down
            log.exception("tray: the %r action failed", name)
        self._wake.set()  # the refresher thread shows the new state at once

    # -- refresh

    def _read_snapshot(self) -> dict | None:
        try:
            snap = _normalise(self.controller.snapshot())
        except Exception as exc:
            if not self._snapshot_failed:
                log.warning("tray: controller.snapshot() failed: %s: %s", type(exc).__name__, exc)
            self._snapshot_failed = True
            return None
        self._snapshot_failed = False
        return snap

    def refresh(self) -> None:
        """Re-read ``controller.snapshot()`` and update the icon image, title/tooltip and menu (what changed).

        Safe from any thread.  Called from the icon's own thread (a menu action that refreshes synchronously) it
        only wakes the refresher thread, since the backends update the icon through that very thread.
        """
        if self._stopped:
            return
        if self._thread is not None and threading.current_thread() is self._thread:
            self._wake.set()
            return
        if not self._lock.acquire(timeout=STOP_TIMEOUT):
            return
        try:
            if self._stopped:
                return
            snap = self._read_snapshot()
            if snap is None:
                return
            self._snapshot = snap
            alive = self._thread is not None and self._thread.is_alive()
            state, title, entries = state_of(snap), title_text(snap), menu_entries(snap)
            if state != self.state:
                self.state = state
                if alive:
                    self.icon.icon = self._images[state]
            if title != self._title:
                self._title = title
                if alive:
                    self.icon.title = title
            if entries != self._entries:
                self._entries = entries
                if alive and self.has_menu:
                    self.icon.update_menu()
        except Exception:  # never let a refresh kill the daemon or the refresher
            log.debug("tray: refresh failed", exc_info=True)
        finally:
            self._lock.release()

    def _refresh_loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopped:
                break
            self.refresh()

    # -- start / stop

    def _setup(self, icon) -> None:
        # Called by pystray in its setup thread once the event loop is up.  Retried: pystray's xorg backend
        # dispatches to its loop thread, which it records a moment after starting this callback.
        for attempt in range(20):
            try:
                icon.visible = True
                break
            except Exception:
                if attempt == 19:
                    log.debug("tray: could not show the icon", exc_info=True)
                time.sleep(0.05)
        self._ready.set()

    def _run_icon(self) -> None:
        try:
            self.icon.run(setup=self._setup)
        except BaseException as exc:  # the gtk backends raise here on stop (their notifier's cleanup)
            if self._ready.is_set():
                log.debug("tray: the icon's event loop ended with %s: %s", type(exc).__name__, exc)
            else:
                self._error = exc
        finally:
            self._wake.set()

    def _start(self, timeout: float) -> None:
        detached = False
        if self.backend == "darwin" and hasattr(self.icon, "run_detached"):
            try:
                self.icon.run_detached(setup=self._setup)
                detached = True
            except Exception:  # not wired to an NSApplication loop: try a thread
                log.debug("tray: run_detached failed", exc_info=True)
        if not detached:
            self._thread = threading.Thread(target=self._run_icon, name="truepix-tray", daemon=True)
            self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._error is not None:
                raise self._error
            if self._thread is not None and not self._thread.is_alive():
                raise RuntimeError("the icon's event loop ended at once")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the icon's event loop did not come up within {timeout:g} s")
        self._refresher = threading.Thread(target=self._refresh_loop, name="truepix-tray-refresh", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        """Remove the icon and join its threads (a couple of seconds at most).  Idempotent; never raises."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        me = threading.current_thread()
        try:
            if self._refresher is not None and self._refresher is not me and me is not self._thread:
                self._refresher.join(STOP_TIMEOUT)
            locked = me is not self._thread and self._lock.acquire(timeout=STOP_TIMEOUT)  # let a refresh finish
            try:
                alive = self._thread is None or self._thread.is_alive()  # detached (darwin): no thread to ask
                if alive:
                    try:
                        self.icon.visible = False
                    except Exception:
                        log.debug("tray: hiding the icon failed", exc_info=True)
                    try:
                        self.icon.stop()
                        # xorg: the loop thread destroys the icon's window (which ends the loop) and flushes, but
                        # python-xlib's flush returns at once while another thread is still sending, and that one
                        # may finish without the new request: it can stay queued, and the loop waits for ever.
                        # By now that other flush is over (it was ours, in icon.stop()); flush again.
                        display = getattr(self.icon, "_display", None)
                        if display is not None and self._thread is not None and self._thread is not me:
                            display.flush()
                    except Exception:
                        log.debug("tray: stopping the icon failed", exc_info=True)
                # With its loop gone, an Icon that still counts itself visible would try to hide through the dead
                # loop when garbage-collected (and wait for it for ever, with the xorg backend).
                self.icon._visible = False
            finally:
                if locked:
                    self._lock.release()
            if self._thread is not None and self._thread is not me:
                self._thread.join(STOP_TIMEOUT)
                if self._thread.is_alive():
                    log.debug("tray: the icon's thread did not end within %g s", STOP_TIMEOUT)
        except Exception:  # stop() never raises
            log.debug("tray: stop failed", exc_info=True)
