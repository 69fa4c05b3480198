"""The tray icon (truepix.service.tray): the menu model, the icons, the headless fallback, and real icons on a real
X server (Xvfb): pystray's xorg backend, and its gtk/appindicator backends (PyGObject) on a D-Bus session bus.

pystray picks its backend once per process, at import, so everything that starts an icon runs in a child process.
"""

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from truepix.service import tray as T

IDLE = {"paused": False, "queued": 0, "running": 0, "current": None, "progress": None}
WORKING = {"paused": False, "queued": 3, "running": 1, "current": "IMG_0042.CR3", "progress": 0.42}
PAUSED = {"paused": True, "queued": 3, "running": 0, "current": None, "progress": None}

# The start of every child script: log capture, a fake controller, and a way to report back.
PRELUDE = '''
import json, logging, pathlib, sys, threading, time

records = []

class _Capture(logging.Handler):
    def emit(self, r):
        records.append({"name": r.name, "level": r.levelname, "msg": r.getMessage()})

for _name in ("truepix", "pystray"):
    logging.getLogger(_name).addHandler(_Capture())
    logging.getLogger(_name).setLevel(logging.INFO)


class FakeController:
    def __init__(self, **snap):
        self.snap = {"paused": False, "queued": 3, "running": 1, "current": "IMG_0042.CR3", "progress": 0.5, **snap}
        self.calls = []

    def snapshot(self):
        return dict(self.snap)

    def pause(self):
        self.calls.append("pause")
        self.snap["paused"] = True

    def resume(self):
        self.calls.append("resume")
        self.snap["paused"] = False

    def quit(self):
        self.calls.append("quit")

    def output_folder(self):
        return pathlib.Path.cwd()

    def log_file(self):
        return pathlib.Path.cwd() / "truepix.log"


def wait_for(pred, timeout=10.0):  # returns as soon as pred() holds; the margin is for a loaded 2-core CI
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def done(**result):
    print("RESULT " + json.dumps({**result, "records": records}), flush=True)
'''


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "PYSTRAY_BACKEND")}
    env.update(NO_AT_BRIDGE="1", PYTHONPATH=str(REPO / "daemon"), **extra)
    return env


def _child(code: str, env: dict, tmp_path, wrapper=(), timeout: float = 30) -> dict:
    """Run PRELUDE + code in a fresh interpreter; it must exit 0 and report one RESULT line."""
    env = {**env, "XDG_RUNTIME_DIR": str(tmp_path)}  # no user session bus is found by accident
    proc = subprocess.run([*wrapper, sys.executable, "-c", PRELUDE + code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and len(lines) == 1, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[0][len("RESULT "):])
    if result.get("skip"):
        pytest.skip(result["skip"])
    return result


def _tray_lines(result: dict) -> list[dict]:
    return [r for r in result["records"] if r["name"] == "truepix.tray"]


# -- without any display ---------------------------------------------------------------------------------------


def test_menu_entries_follow_the_state():
    assert T.menu_entries(IDLE) == [
        ("Pause", "pause"), ("0 queued, 0 running", "info"), ("Open output folder", "open_output"),
        ("Open log", "open_log"), ("Quit", "quit")]
    assert T.menu_entries(WORKING)[:2] == [("Pause", "pause"), ("3 queued, 1 running", "info")]
    assert T.menu_entries(PAUSED)[:2] == [("Resume", "resume"), ("3 queued, 0 running", "info")]
    assert [a for _, a in T.menu_entries(PAUSED)][2:] == ["open_output", "open_log", "quit"]
    assert T.menu_entries({})[0] == ("Pause", "pause")  # a sparse snapshot is read as idle


def test_state_and_title():
    assert [T.state_of(s) for s in (IDLE, WORKING, PAUSED)] == ["idle", "working", "paused"]
    assert T.state_of({**WORKING, "paused": True}) == "paused"  # pausing while the last job finishes
    assert T.title_text(IDLE) == "truepix: idle"
    assert T.title_text(WORKING) == "truepix: IMG_0042.CR3 42% (3 queued)"
    assert T.title_text(PAUSED) == "truepix: paused (3 queued, 0 running)"


def test_icon_images_are_distinct():
    images = {s: T.icon_image(s) for s in T.STATES}
    for img in images.values():
        assert img.size == (64, 64) and img.mode == "RGBA"
        assert img.getpixel((0, 0))[3] == 0 and img.getpixel((32, 32))[3] == 255  # a disc on transparency
    assert len({img.tobytes() for img in images.values()}) == 3
    r, g, b, _ = images["paused"].getpixel((32, 32))
    assert r > 200 and 120 < g < 200 and b < 80  # amber between the pause bars
    with pytest.raises(ValueError):
        T.icon_image("sleeping")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="xdg-open is the Linux opener")
def test_open_path_failures_are_logged_not_raised(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="truepix.tray")
    assert T.open_path(tmp_path / "missing") is False
    monkeypatch.setenv("PATH", str(tmp_path))  # no xdg-open on it
    assert T.open_path(tmp_path) is False
    assert len(caplog.records) == 2 and "does not exist" in caplog.records[0].getMessage()


def test_headless_returns_none_and_says_so_once(tmp_path):
    result = _child('''
from truepix.service.tray import start_tray
tray = start_tray("auto", FakeController())
auto = [r["msg"] for r in records if r["name"] == "truepix.tray"]
records.clear()
none = start_tray("none", FakeController())
done(auto=tray is None, none=none is None, imported="pystray" in sys.modules, auto_lines=auto)
''', _env(), tmp_path)
    assert result["auto"] and result["none"] and not result["imported"]
    assert len(result["auto_lines"]) == 1 and "headless" in result["auto_lines"][0], result
    assert len(_tray_lines(result)) == 1  # "none" says so once too


def _unused_display() -> str:
    n = next(n for n in range(4242, 4342) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    return f":{n}"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="X11 only")
@pytest.mark.parametrize("backend", ["xorg", "auto"])
def test_unreachable_display_returns_none(tmp_path, backend):
    result = _child(f'''
from truepix.service.tray import start_tray
done(tray=start_tray({backend!r}, FakeController()) is None)
''', _env(DISPLAY=_unused_display()), tmp_path)
    assert result["tray"]
    lines = _tray_lines(result)
    assert len(lines) == 1 and lines[0]["level"] == "WARNING" and "running without" in lines[0]["msg"], result


# -- on a real X server ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xvfb():
    """A private Xvfb; it picks a free display number itself (-displayfd)."""
    if sys.platform in ("win32", "darwin"):
        pytest.skip("X11 only")
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()  # written once the server accepts connections
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("backend", ["xorg", "auto"])
def test_xorg_icon_under_xvfb(xvfb, tmp_path, backend):
    result = _child(f'''
from Xlib import X, display as xdisplay
from Xlib.protocol import event
from truepix.service.tray import icon_image, start_tray

c = FakeController()
tray = start_tray({backend!r}, c)
out = dict(backend=tray.backend, has_menu=tray.has_menu, first=tray.state)
c.snap["paused"] = True
tray.refresh()
out["paused"] = [tray.state, tray.icon.icon is tray.image, tray.icon.icon.tobytes() == icon_image("paused").tobytes(),
                 tray.icon.title]
c.snap["paused"] = False
tray.refresh()
out["working"] = [tray.state, tray.icon.icon.tobytes() == icon_image("working").tobytes(), tray.icon.title]

# A left click on the icon's window (sent to the client that made it) toggles pause, the xorg stand-in for a menu.
d = xdisplay.Display()
win = d.create_resource_object("window", tray.icon._window.id)
win.send_event(event.ButtonPress(time=X.CurrentTime, root=d.screen().root, window=win, same_screen=1, child=X.NONE,
                                 root_x=0, root_y=0, event_x=0, event_y=0, state=0, detail=1), event_mask=0)
d.flush()
out["clicked"] = wait_for(lambda: c.calls == ["pause"]) and wait_for(lambda: tray.state == "paused")

t0 = time.monotonic()
tray.stop()
tray.stop()
out["stop_s"] = time.monotonic() - t0
out["threads"] = sorted(t.name for t in threading.enumerate() if t.name.startswith("truepix"))
done(**out)
''', _env(DISPLAY=xvfb), tmp_path)
    assert result["backend"] == "xorg" and result["has_menu"] is False and result["first"] == "working"
    assert result["paused"] == ["paused", True, True, "truepix: paused (3 queued, 1 running)"]
    assert result["working"] == ["working", True, "truepix: IMG_0042.CR3 50% (3 queued)"]
    assert result["clicked"], result
    assert result["stop_s"] < 2 and result["threads"] == [], result
    started = [r for r in _tray_lines(result) if "tray icon started" in r["msg"]]
    assert len(started) == 1 and "'xorg'" in started[0]["msg"] and "PyGObject" in started[0]["msg"]
    assert (started[0]["level"] == "WARNING") == (backend == "auto")  # auto fell back to a menu-less icon
    # No system tray runs on a bare Xvfb: pystray's docking errors come out as one short warning.
    assert [r["level"] for r in result["records"] if r["name"].startswith("pystray")] == ["WARNING"]


GTK_CHILD = '''
from truepix.service.tray import start_tray
if {backend!r} == "appindicator":
    import gi
    try:
        gi.require_version("AyatanaAppIndicator3", "0.1")
    except ValueError:
        try:
            gi.require_version("AppIndicator3", "0.1")
        except ValueError:
            done(skip="no AppIndicator typelib (Debian: apt-get install gir1.2-ayatanaappindicator3-0.1)")
            sys.exit(0)
from gi.repository import GLib, Gtk

def on_loop(fn):
    """Run fn in the icon's GLib loop (GTK is not thread-safe) and return its result."""
    box, ev = [], threading.Event()
    def call():
        try:
            box.append(fn())
        finally:
            ev.set()
        return False
    GLib.idle_add(call)
    assert ev.wait(3), "the icon's loop does not answer"
    return box[0]

def widgets():
    return [w for w in tray.icon._menu_handle.get_children() if not isinstance(w, Gtk.SeparatorMenuItem)]

def labels():
    return on_loop(lambda: [[w.get_child().get_text(), w.get_sensitive()] for w in widgets()])

def click(text):
    on_loop(lambda: [w.activate() for w in widgets() if w.get_child().get_text() == text] and None)

c = FakeController()
tray = start_tray({backend!r}, c)
out = dict(backend=tray.backend, has_menu=tray.has_menu, model=[str(i) for i in tray.icon.menu])
out["menu"] = labels()
click("Pause")
out["paused"] = wait_for(lambda: c.calls == ["pause"]) and wait_for(lambda: labels()[0][0] == "Resume")
c.snap["queued"] = 7
tray.refresh()
out["queue"] = wait_for(lambda: labels()[1][0] == "7 queued, 1 running")
click("Resume")
out["resumed"] = wait_for(lambda: c.calls == ["pause", "resume"]) and wait_for(lambda: labels()[0][0] == "Pause")
click("Quit")
out["quit"] = wait_for(lambda: c.calls == ["pause", "resume", "quit"])
t0 = time.monotonic()
tray.stop()
tray.stop()
out["stop_s"] = time.monotonic() - t0
out["threads"] = sorted(t.name for t in threading.enumerate() if t.name.startswith("truepix"))
done(**out)
'''


@pytest.mark.skipif(importlib.util.find_spec("gi") is None,
                    reason='PyGObject (gi) is not installed: pip install "PyGObject<3.51"')
@pytest.mark.skipif(shutil.which("dbus-run-session") is None, reason="dbus-run-session is not installed (Debian: dbus)")
@pytest.mark.parametrize("backend", ["gtk", "appindicator", "auto"])
def test_gtk_menu_under_xvfb_and_dbus(xvfb, tmp_path, backend):
    result = _child(GTK_CHILD.format(backend=backend), _env(DISPLAY=xvfb), tmp_path, wrapper=["dbus-run-session", "--"])
    if backend == "auto":
        assert result["backend"] in ("appindicator", "gtk")
    else:
        assert result["backend"] == backend
    assert result["has_menu"] is True
    assert result["model"] == ["Pause", "3 queued, 1 running", "- - - -", "Open output folder", "Open log",
                               "- - - -", "Quit"]
    assert result["menu"] == [["Pause", True], ["3 queued, 1 running", False], ["Open output folder", True],
                              ["Open log", True], ["Quit", True]]
    assert result["paused"] and result["queue"] and result["resumed"] and result["quit"], result
    assert result["stop_s"] < 2 and result["threads"] == [], result
    started = [r for r in _tray_lines(result) if "tray icon started" in r["msg"]]
    assert len(started) == 1 and "with menu" in started[0]["msg"]
