"""The localhost API against a real daemon on 127.0.0.1: every bad request gets the right status and a JSON
error and the daemon stays up; 20 clients at once; the CLI clients."""

import http.client
import json
import os
import socket
import stat
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import photo_like
from daemon_proc import DaemonProc

pytestmark = pytest.mark.slow  # a real `truepix run` process (and the CLI as processes)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    # No hot folders here: only the API feeds this daemon.
    d = DaemonProc(root, config="folders = []\n[engine]\ntile = 256\n").start()
    yield d
    assert d.stop() == 0, d.output()


def _jpeg(path, h=40, w=56, seed=0):
    Image.fromarray(np.round(photo_like(h, w, seed) * 255).astype(np.uint8)).save(path, quality=92)
    return path


def test_token_file_is_private(daemon):
    token_file = daemon.root / "config" / "truepix" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(daemon.token) == 64


def test_health_and_status(daemon):
    code, body = daemon.request("GET", "/v1/health")
    assert code == 200 and body["status"] == "ok" and body["api"] == 1 and body["pid"] == daemon.proc.pid
    code, body = daemon.request("GET", "/v1/status")
    assert code == 200 and body["paused"] is False and set(body["counts"]) >= {"queued", "done", "failed"}
    assert body["folders"] == []


def test_bound_to_loopback_only(daemon):
    addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for addr in addrs:
        with pytest.raises(OSError):
            socket.create_connection((addr, daemon.port), timeout=2).close()
    socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()


def _raw(daemon, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are (for what urllib will not send) and parse the JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    conn.connect()
    try:
        conn.sock.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before reading everything: that is the point
    resp = http.client.HTTPResponse(conn.sock)
    resp.begin()
    return resp.status, json.loads(resp.read())


@pytest.mark.parametrize("case", ["no token", "wrong token", "10 MB body", "malformed JSON", "not an object",
                                  "relative path", "dotdot path", "not a photo", "directory", "missing file",
                                  "unknown recipe", "bad inline recipe", "inline recipe unknown model",
                                  "unknown field", "wrong type", "empty paths", "unknown job", "wrong method",
                                  "unknown endpoint", "chunked body", "retry a queued job"])
def test_bad_requests_get_a_json_error_and_the_daemon_stays_up(daemon, tmp_path, case):
    photo = _jpeg(tmp_path / "p.jpg")
    ok = {"paths": [str(photo)]}
    req = daemon.request
    if case == "no token":
        code, body = req("POST", "/v1/jobs", ok, token=None)
        expect = (401, "Authorization: Bearer")
    elif case == "wrong token":
        code, body = req("GET", "/v1/status", token="0" * 64)
        expect = (401, "wrong token")
    elif case == "10 MB body":
        head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {daemon.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {10 << 20}\r\n\r\n").encode()
        code, body = _raw(daemon, head + b"[" * (10 << 20))
        expect = (413, "limit is 1048576 bytes")
    elif case == "malformed JSON":
        code, body = req("POST", "/v1/jobs", raw=b'{"paths": [', headers={"Content-Type": "application/json"})
        expect = (400, "malformed JSON")
    elif case == "not an object":
        code, body = req("POST", "/v1/jobs", [str(photo)])
        expect = (400, "must be a JSON object")
    elif case == "relative path":
        code, body = req("POST", "/v1/jobs", {"paths": ["../../etc/passwd"]})
        expect = (400, "must be an absolute path")
    elif case == "dotdot path":
        code, body = req("POST", "/v1/jobs", {"paths": [f"{tmp_path}/../../../etc/passwd"]})
        expect = (400, "'..' is not allowed")
    elif case == "not a photo":
        code, body = req("POST", "/v1/jobs", {"paths": ["/etc/passwd"]})
        expect = (400, "not a photo truepix reads")
    elif case == "directory":
        code, body = req("POST", "/v1/jobs", {"paths": [str(tmp_path)]})
        expect = (400, "not a regular file")
    elif case == "missing file":
        code, body = req("POST", "/v1/jobs", {"paths": [str(photo), str(tmp_path / "gone.jpg")]})
        expect = (400, "paths[1]: " + str(tmp_path / "gone.jpg") + ": no such file")
    elif case == "unknown recipe":
        code, body = req("POST", "/v1/jobs", {**ok, "recipe": "nonexistent"})
        expect = (400, "unknown recipe 'nonexistent'")
    elif case == "bad inline recipe":
        code, body = req("POST", "/v1/jobs", {**ok, "recipe": {"steps": [{"model": "upscale-x2"}], "format": "gif"}})
        expect = (400, "format must be one of")
    elif case == "inline recipe unknown model":
        code, body = req("POST", "/v1/jobs", {**ok, "recipe": {"steps": [{"model": "upscale-x9"}]}})
        expect = (400, "unknown model(s) upscale-x9")
    elif case == "unknown field":
        code, body = req("POST", "/v1/jobs", {**ok, "priority": 5})
        expect = (400, "unknown field(s) priority")
    elif case == "wrong type":
        code, body = req("POST", "/v1/jobs", {"paths": str(photo)})
        expect = (400, "field 'paths' must be array")
    elif case == "empty paths":
        code, body = req("POST", "/v1/jobs", {"paths": []})
        expect = (400, "at least one file")
    elif case == "unknown job":
        code, body = req("GET", "/v1/jobs/987654")
        expect = (404, "job 987654: no such job")
    elif case == "wrong method":
        code, body = req("DELETE", "/v1/jobs")
        expect = (405, "use GET or POST")
    elif case == "unknown endpoint":
        code, body = req("GET", "/v2/jobs")
        expect = (404, "no endpoint /v2/jobs")
    elif case == "chunked body":
        head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {daemon.token}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").encode()
        code, body = _raw(daemon, head)
        expect = (411, "Content-Length")
    elif case == "retry a queued job":
        daemon.request("POST", "/v1/pause")
        try:
            _, sub = req("POST", "/v1/jobs", {**ok, "force": True})
            code, body = req("POST", f"/v1/jobs/{sub['jobs'][0]['id']}/retry")
            req("POST", f"/v1/jobs/{sub['jobs'][0]['id']}/cancel")
        finally:
            daemon.request("POST", "/v1/resume")
        expect = (409, "only failed or cancelled jobs can be retried")
    assert (code, expect[1] in body["error"]["message"]) == (expect[0], True), body
    assert body["error"]["status"] == code
    assert daemon.alive() and daemon.request("GET", "/v1/health")[0] == 200


def test_a_refused_submit_queues_nothing(daemon, tmp_path):
    before = daemon.request("GET", "/v1/status")[1]["counts"]
    good = _jpeg(tmp_path / "good.jpg", seed=7)
    code, _ = daemon.request("POST", "/v1/jobs", {"paths": [str(good), "/etc/passwd"]})
    assert code == 400 and daemon.request("GET", "/v1/status")[1]["counts"] == before


def test_recipes_endpoint(daemon):
    code, body = daemon.request("GET", "/v1/recipes")
    assert code == 200 and body["default"] == "upscale"
    up = next(r for r in body["recipes"] if r["name"] == "upscale")
    assert up["steps"] == [{"model": "upscale-x2-adaptive"}] and up["format"] == "tiff" and up["input"] == "rgb"


def test_submit_inline_recipe_and_output_dir(daemon, tmp_path):
    photo = _jpeg(tmp_path / "in.jpg", seed=3)
    out = tmp_path / "outputs"
    recipe = {"name": "web", "steps": [{"model": "upscale-x2"}], "format": "jpeg", "suffix": "-web"}
    code, body = daemon.request("POST", "/v1/jobs", {"paths": [str(photo)], "recipe": recipe,
                                                     "output_dir": str(out)})
    assert code == 201 and body["jobs"][0]["state"] == "queued" and body["jobs"][0]["recipe"] == "web"
    (job,) = daemon.wait_jobs([body["jobs"][0]["id"]])
    assert job["state"] == "done" and job["outputs"] == [str(out / "in-web.jpg")] and job["progress"] == 1.0
    assert Image.open(out / "in-web.jpg").size == (112, 80)
    # The same content and recipe again: the earlier job, not a new one.
    code, again = daemon.request("POST", "/v1/jobs", {"paths": [str(photo)], "recipe": recipe,
                                                      "output_dir": str(out)})
    assert code == 201 and again["jobs"][0]["duplicate"] and again["jobs"][0]["id"] == job["id"]


def test_twenty_clients_submitting_and_polling_at_once(daemon, tmp_path):
    photos = [_jpeg(tmp_path / f"c{i:02d}.jpg", seed=100 + i) for i in range(20)]
    results, errors = {}, []

    def client(i):
        try:
            code, body = daemon.request("POST", "/v1/jobs", {"paths": [str(photos[i])]})
            assert code == 201, body
            job_id = body["jobs"][0]["id"]
            results[i] = daemon.wait_jobs([job_id], timeout=240)[0]
            daemon.request("GET", "/v1/status")
            daemon.request("GET", "/v1/jobs?limit=50")
        except Exception as e:  # noqa: BLE001 -- collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r["id"] for r in results.values()}) == 20
    assert all(r["state"] == "done" and r["source"] == str(photos[i]) for i, r in results.items())
    outputs = sorted(p.name for p in tmp_path.glob("*-truepix-x2.tif"))
    assert outputs == sorted(f"c{i:02d}-truepix-x2.tif" for i in range(20))


def test_list_filter_and_paging(daemon, tmp_path):
    code, body = daemon.request("GET", "/v1/jobs?state=done&limit=2")
    assert code == 200 and len(body["jobs"]) == 2 and all(j["state"] == "done" for j in body["jobs"])
    older = daemon.request("GET", f"/v1/jobs?before={body['jobs'][1]['id']}&limit=1")[1]["jobs"]
    assert older and older[0]["id"] < body["jobs"][1]["id"]
    assert daemon.request("GET", "/v1/jobs?state=lost")[0] == 400
    assert daemon.request("GET", "/v1/jobs?colour=red")[0] == 400


def test_cli_clients(daemon, tmp_path):
    photo = _jpeg(tmp_path / "cli.jpg", seed=42)
    r = daemon.cli("pause")
    assert r.returncode == 0 and "paused" in r.stdout
    r = daemon.cli("submit", str(photo), "--json")
    job_id = json.loads(r.stdout)["jobs"][0]["id"]
    r = daemon.cli("status")
    assert r.returncode == 0 and "PAUSED" in r.stdout and "1 queued" in r.stdout and "cli.jpg" in r.stdout
    r = daemon.cli("cancel", str(job_id))
    assert r.returncode == 0 and "cancelled" in r.stdout
    r = daemon.cli("resume")
    assert r.returncode == 0 and "resumed" in r.stdout
    r = daemon.cli("retry", str(job_id))
    assert r.returncode == 0 and "queued" in r.stdout
    r = daemon.cli("submit", str(photo), "--wait")  # the retried job is found as a duplicate and awaited
    assert r.returncode == 0 and "done" in r.stdout and "cli-truepix-x2.tif" in r.stdout, r.stdout + r.stderr
    r = daemon.cli("retry", str(job_id))
    assert r.returncode == 2 and "only failed or cancelled" in r.stderr
    r = daemon.cli("submit", str(tmp_path / "nope.jpg"))
    assert r.returncode == 2 and "nope.jpg: no such file" in r.stderr


def test_cli_says_when_the_daemon_is_not_running(tmp_path):
    d = DaemonProc(tmp_path)
    r = d.cli("status")
    assert r.returncode == 2 and "never run" in r.stderr  # no token yet
    token = tmp_path / "config" / "truepix" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("x" * 64)
    os.chmod(token, 0o600)
    (tmp_path / "config.toml").write_text("[server]\nport = 1\n")
    r = d.cli("status")
    assert r.returncode == 2 and "not answering on http://127.0.0.1:1" in r.stderr and "truepix run" in r.stderr
