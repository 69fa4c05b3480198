"""The daemon's web page (issue 20): sign-in by a one-time code, the session cookie, the Origin and Host
checks, the previews and their cache, over real sockets; then the page itself in a real headless Chromium
against a real daemon, signed in through `truepix open --print`.

The HTTP tests run the server in this process (``ApiServer`` on a free port, a real queue, no worker), so a
test can make a finished job from real files and shorten a code's life; the browser test runs `truepix run`.
"""

import http.client
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, photo_like, wait_until
from truepix.recipes import BUILTIN
from truepix.service.api import ApiServer, Backend
from truepix.service.queue import JobQueue

TOKEN = "cd" * 32


class _Daemon:
    """What the API needs of a daemon, without a worker: pause and resume flip a flag."""

    def __init__(self):
        self.paused = False

    def status(self):
        return {"paused": self.paused, "current": None, "folders": []}


@pytest.fixture
def server(tmp_path):
    queue = JobQueue(tmp_path / "queue.db")
    daemon = _Daemon()
    backend = Backend(queue=queue, recipes=lambda: dict(BUILTIN), submitted=lambda: None,
                      pause=lambda: setattr(daemon, "paused", True), resume=lambda: setattr(daemon, "paused", False),
                      cancel_running=lambda job_id: None, status=daemon.status)
    srv = ApiServer(backend, TOKEN, 0, cache_dir=tmp_path / "cache")
    srv.start()
    srv.queue, srv.daemon = queue, daemon
    yield srv
    srv.stop()


def _get(srv, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def _token():
    return {"Authorization": f"Bearer {TOKEN}"}


def _sign_in(srv):
    """`truepix open`'s two steps: a code for the token, the cookie for the code.  The Set-Cookie header."""
    resp, body = _get(srv, "POST", "/v1/web/code", _token())
    assert resp.status == 200, body
    answer = json.loads(body)
    assert answer["url"] == f"http://127.0.0.1:{srv.port}/web/login?code={answer['code']}"
    resp, _ = _get(srv, "GET", f"/web/login?code={answer['code']}")
    assert resp.status == 200 and resp.getheader("Refresh") == "0; url=/web/"
    return resp.getheader("Set-Cookie")


def _cookie(set_cookie):
    return {"Cookie": set_cookie.split(";")[0]}


def test_without_cookie_or_token_nothing_is_served(server):
    for path in ("/web/", "/web/static/app.js", "/web/static/index.html", "/v1/status", "/v1/models",
                 "/v1/jobs/1/thumbnail"):
        resp, body = _get(server, "GET", path)
        assert resp.status == 401, (path, body)
        assert b"app.js" not in body and b"Queue" not in body and b"truepix_session" not in body
    resp, body = _get(server, "GET", "/web/")
    assert resp.getheader("Content-Type").startswith("text/html") and b"truepix open" in body
    # a cookie the daemon never gave, or of another port's daemon, is no session
    resp, body = _get(server, "GET", "/web/", {"Cookie": f"truepix_session_{server.port}=forged; other=1"})
    assert resp.status == 401 and b"truepix open" in body


def test_sign_in_code_works_once_and_expires(server):
    set_cookie = _sign_in(server)
    attributes = {a.strip().lower() for a in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert set_cookie.startswith(f"truepix_session_{server.port}=")
    resp, body = _get(server, "GET", "/web/", _cookie(set_cookie))
    assert resp.status == 200 and b"/web/static/app.js" in body
    assert "script-src 'self'" in resp.getheader("Content-Security-Policy")

    code = json.loads(_get(server, "POST", "/v1/web/code", _token())[1])["code"]
    assert _get(server, "GET", f"/web/login?code={code}")[0].status == 200
    resp, body = _get(server, "GET", f"/web/login?code={code}")  # used
    assert resp.status == 401 and resp.getheader("Set-Cookie") is None and b"truepix open" in body

    server.sessions.code_ttl = 0.05
    code = json.loads(_get(server, "POST", "/v1/web/code", _token())[1])["code"]
    time.sleep(0.1)
    resp, _ = _get(server, "GET", f"/web/login?code={code}")  # expired
    assert resp.status == 401 and resp.getheader("Set-Cookie") is None
    assert _get(server, "GET", "/web/login?code=made-up")[0].status == 401
    # a signed-in page cannot mint sign-ins: only the token can
    resp, body = _get(server, "POST", "/v1/web/code", {**_cookie(set_cookie), "Origin": f"http://127.0.0.1:{server.port}"})
    assert resp.status == 403, body


def test_origin_and_host_checks(server):
    cookie = _cookie(_sign_in(server))
    own = f"http://127.0.0.1:{server.port}"
    assert _get(server, "GET", "/v1/status", cookie)[0].status == 200
    # a change through the cookie must show it comes from the page
    assert _get(server, "POST", "/v1/pause", cookie)[0].status == 403 and not server.daemon.paused
    assert _get(server, "POST", "/v1/pause", {**cookie, "Origin": own})[0].status == 200 and server.daemon.paused
    assert _get(server, "POST", "/v1/resume", {**cookie, "Sec-Fetch-Site": "same-origin"})[0].status == 200
    assert _get(server, "POST", "/v1/pause", {**cookie, "Origin": f"http://localhost:{server.port}"})[0].status == 200
    # another port of this host is "same-site" (the Strict cookie goes along): refused all the same
    for headers in ({"Origin": "http://127.0.0.1:8080"}, {"Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}, {"Origin": "http://evil.example"}):
        resp, body = _get(server, "POST", "/v1/resume", {**cookie, **headers})
        assert resp.status == 403, (headers, body)
        assert _get(server, "GET", "/v1/status", {**cookie, **headers})[0].status == 403
    assert server.daemon.paused
    # a forged Origin is refused with the token too; no Origin (curl, the CLI, the plug-ins) is fine
    resp, body = _get(server, "GET", "/v1/status", {**_token(), "Origin": "http://evil.example"})
    assert resp.status == 403 and "Origin not allowed" in json.loads(body)["error"]["message"]
    assert _get(server, "GET", "/v1/status", _token())[0].status == 200
    # DNS rebinding: a foreign Host is refused before the cookie is looked at
    for path in ("/web/", "/v1/status"):
        assert _get(server, "GET", path, {**cookie, "Host": f"evil.example:{server.port}"})[0].status == 421
    # a wrong token is refused even with a good cookie
    assert _get(server, "GET", "/v1/status", {**cookie, "Authorization": "Bearer nope"})[0].status == 401


def _done_job(server, tmp_path):
    """A job the queue says is done, its output a real 2x enlargement written here (no worker runs)."""
    src = tmp_path / "IMG_7.png"
    Image.fromarray(np.round(photo_like(48, 64, 3) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "IMG_7-truepix.png"
    Image.open(src).resize((128, 96), Image.Resampling.BICUBIC).save(out)
    job = server.queue.submit(src, BUILTIN["upscale"], origin="api")
    assert server.queue.claim().id == job.id
    server.queue.begin(job.id)
    server.queue.finish(job.id, [str(out)], seconds=0.5)
    return job.id, src, out


def test_report_and_previews_are_cached(server, tmp_path):
    job_id, src, out = _done_job(server, tmp_path)
    cookie = _cookie(_sign_in(server))
    resp, body = _get(server, "GET", f"/v1/jobs/{job_id}/report", cookie)
    report = json.loads(body)
    assert resp.status == 200 and report["outputs"][0]["path"] == str(out)
    assert report["models"][0]["name"] == BUILTIN["upscale"].steps[0].model
    figures = report["outputs"][0]["figures"]
    assert figures["colour_shift_mean"] < 1 and figures["backprojection_psnr_db"] > 25
    assert any(line.startswith("Colours: no colour change") for line in report["outputs"][0]["fidelity"])

    resp, thumb = _get(server, "GET", f"/v1/jobs/{job_id}/thumbnail?output=0", cookie)
    assert resp.status == 200 and resp.getheader("Content-Type") == "image/jpeg" and thumb[:2] == b"\xff\xd8"
    cached = server.previews.cache_file("thumb", [str(out), out.stat().st_size, out.stat().st_mtime_ns], "thumb",
                                        ".jpg")
    assert cached.read_bytes() == thumb
    stamp, renders = cached.stat().st_mtime_ns, server.previews.renders
    assert _get(server, "GET", f"/v1/jobs/{job_id}/thumbnail?output=0", cookie)[1] == thumb
    assert server.previews.renders == renders and cached.stat().st_mtime_ns == stamp  # read, not made again

    crops = {}
    for side in ("after", "before"):
        for zoom in (1, 2):
            resp, data = _get(server, "GET", f"/v1/jobs/{job_id}/crop?side={side}&zoom={zoom}&x=0.25&y=0.5", cookie)
            assert resp.status == 200 and resp.getheader("Content-Type") == "image/png"
            crops[side, zoom] = np.asarray(Image.open(io.BytesIO(data)))
    assert server.previews.renders == renders + 1  # one decode made all four
    assert crops["after", 1].shape == (96, 128, 3)  # the whole of a photo smaller than a crop
    assert crops["after", 2].shape == (192, 256, 3) and crops["before", 2].shape == (192, 256, 3)  # 2 x 2 each
    # the same area of both: a plain enlargement of the original lines up with the output
    assert np.abs(crops["after", 1].astype(int) - crops["before", 1]).mean() < 12

    out.unlink()  # a preview that cannot be made says why
    resp, body = _get(server, "GET", f"/v1/jobs/{job_id}/crop?side=after&zoom=1&x=0.9&y=0.9", cookie)
    assert resp.status == 422 and "no longer there" in json.loads(body)["error"]["message"]


# -- the page in a real browser ---------------------------------------------------------------------------

def _browser():
    """Headless Chromium through Debian's chromedriver (never a downloaded one), or a skip with the reason;
    under CI (TRUEPIX_REQUIRE_TOOLS=1) a failure instead."""
    missing = [t for t in ("chromium", "chromedriver") if shutil.which(t) is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        reason = f"{', '.join(missing)} not installed (Debian: chromium chromium-driver)"
        if os.environ.get("TRUEPIX_REQUIRE_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.mark.slow
def test_the_page_in_a_real_browser(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from daemon_proc import DaemonProc

    driver = _browser()
    d = DaemonProc(tmp_path / "d", config="folders = []\n[engine]\ntile = 256\n").start()
    try:
        page = lambda css: driver.find_element(By.CSS_SELECTOR, css)  # noqa: E731
        shown = lambda css: driver.find_elements(By.CSS_SELECTOR, css)  # noqa: E731
        # `truepix open` as a user runs it: the browser is handed a private file that forwards it to the
        # one-time link (BROWSER: what Python's webbrowser starts; here, a script that notes what it got)
        noted = tmp_path / "browser-got.txt"
        fake = tmp_path / "browser.sh"
        fake.write_text(f'#!/bin/sh\nprintf %s "$1" > {noted}\n')
        fake.chmod(0o755)
        env = {**d.env, "BROWSER": str(fake)}
        run = subprocess.run([sys.executable, "-m", "truepix.cli", "open"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0 and "opened the daemon's page" in run.stderr, run.stderr
        handed = noted.read_text()
        assert handed.startswith("file://") and "code=" not in handed  # no code on a command line
        assert oct(pathlib.Path(handed[len("file://"):]).stat().st_mode & 0o777) == "0o600"
        driver.get(handed)
        home = f"http://127.0.0.1:{d.port}/web/"
        assert wait_until(lambda: driver.current_url == home and shown("#pause"), 15), driver.current_url
        cookie = next(c for c in driver.get_cookies() if c["name"] == f"truepix_session_{d.port}")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert driver.execute_script("return document.cookie") == ""  # the page's script cannot read it

        run = d.cli("open", "--print")  # the link itself, for another browser: it works once
        assert run.returncode == 0, run.stderr
        url = run.stdout.strip()
        driver.get(url)
        assert wait_until(lambda: driver.current_url == home, 15)
        driver.get(url)
        assert "Sign-in link used or expired" in driver.page_source
        driver.get(home)  # the session still holds

        assert wait_until(lambda: page("#pause").is_enabled() and page("#pause").text == "Pause", 15)
        page("#pause").click()
        assert wait_until(lambda: d.request("GET", "/v1/status")[1]["paused"], 10)
        assert wait_until(lambda: page("#daemon-state").text == "paused", 10)

        photo = tmp_path / "colorchart.jpg"
        shutil.copy(REPO / "samples" / "colorchart.jpg", photo)
        small = tmp_path / "small.jpg"
        Image.fromarray(np.round(photo_like(40, 56, 5) * 255).astype(np.uint8)).save(small, quality=92)
        code, body = d.request("POST", "/v1/jobs", {"paths": [str(photo), str(small)]})
        assert code == 201, body
        first, second = (j["id"] for j in body["jobs"])
        assert wait_until(lambda: shown(f'.job[data-id="{second}"][data-state="queued"] button.cancel'), 10)
        page(f'.job[data-id="{second}"] button.cancel').click()
        assert wait_until(lambda: d.request("GET", f"/v1/jobs/{second}")[1]["state"] == "cancelled", 10)
        assert wait_until(lambda: shown(f'.job[data-id="{second}"][data-state="cancelled"] button.retry'), 10)

        page("#pause").click()  # now "Resume"
        assert wait_until(lambda: not d.request("GET", "/v1/status")[1]["paused"], 10)
        seen = set()  # what the page showed of the job on its way: the live progress too

        def finished():
            seen.update(driver.execute_script(  # in one go: the list is redrawn as the job moves on
                "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)",
                f'.job[data-id="{first}"] .state'))
            return shown(f'.job[data-id="{first}"][data-state="done"]')

        assert wait_until(finished, 60, step=0.05), (d.request("GET", f"/v1/jobs/{first}")[1], page("#jobs").text,
                                                     d.output()[-3000:])
        if d.request("GET", f"/v1/jobs/{first}")[1]["seconds"] > 3:  # the page polls every second
            assert any(text.endswith("%") for text in seen), seen
        page(f'.job[data-id="{first}"] .name').click()
        assert wait_until(lambda: "Colours:" in page("#fidelity").text, 20)
        assert "upscale" in page("#facts").text and "-truepix" in page("#facts").text

        loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
        thumb = page("#thumb")
        assert wait_until(lambda: driver.execute_script(loaded, thumb), 20)
        size = thumb.size  # click at 30% across, 40% down (offsets from the centre)
        ActionChains(driver).move_to_element_with_offset(thumb, int(size["width"] * -0.2),
                                                         int(size["height"] * -0.1)).click().perform()
        after, before = page("#after"), page("#before")

        def point():
            query = parse_qs(urlsplit(after.get_attribute("src") or "").query)
            return float(query.get("x", ["0.5"])[0]), float(query.get("y", ["0.5"])[0])

        assert wait_until(lambda: abs(point()[0] - 0.3) < 0.02 and abs(point()[1] - 0.4) < 0.02, 5), point()
        assert wait_until(lambda: driver.execute_script(loaded, after) and driver.execute_script(loaded, before), 20)
        assert driver.execute_script("return arguments[0].naturalWidth", after) == 320

        clip = after.value_of_css_property("clip-path")
        page("#slider").send_keys(*[Keys.ARROW_LEFT] * 20)  # 50% -> 30%: more of the "after" shows
        assert wait_until(lambda: after.value_of_css_property("clip-path") != clip, 5)
        assert "30%" in after.value_of_css_property("clip-path")

        page("#zoom-2").click()
        assert wait_until(lambda: "zoom=2" in after.get_attribute("src") and "zoom=2" in before.get_attribute("src"), 5)
        assert wait_until(lambda: driver.execute_script(loaded, after), 20)
        assert page("#zoom-2").get_attribute("aria-pressed") == "true"
        assert page("#preview-note").text == ""

        assert wait_until(lambda: "upscale-x2" in page("#models").text and "licence" in page("#models").text, 10)
        assert "upscale" in page("#recipes").text
    finally:
        driver.quit()
        d.stop()
    assert pathlib.Path(d.log_file).exists()


def test_models_say_their_licence_and_what_they_were_trained_on(server):
    """The page's model list: each shipped model's licence, measured quality and every training source
    with its terms (the manifest's training.data_licences)."""
    resp, body = _get(server, "GET", "/v1/models", _token())
    assert resp.status == 200
    by = {m["name"]: m for m in json.loads(body)["models"]}
    x2 = by["upscale-x2"]
    assert "MIT" in x2["licence"] and x2["quality"]
    assert [d.split(" ")[0] for d in x2["trained_on"]] == ["T91", "BSD200"]
    assert any("teachers.toml" in d for d in by["upscale-x2-adaptive"]["trained_on"])
    shipped_float = [m for m in by.values() if m["precision"] == "float32"]
    assert all(m["trained_on"] for m in shipped_float), [m["name"] for m in shipped_float if not m["trained_on"]]
