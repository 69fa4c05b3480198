"""The API's limits against a real server on 127.0.0.1 (issue 16, item 8): a connection cap and a deadline
for each request (slowloris), JSON for every error the HTTP layer makes, all-or-nothing submits, deeply
nested JSON, and the Host check against DNS rebinding.

The server runs in this process (``ApiServer`` on a free port, a real queue, no worker), so a test can
shorten the module's limits."""

import http.client
import json
import select
import socket
import threading
import time

import pytest

from conftest import wait_until
from truepix.recipes import BUILTIN
from truepix.service import api
from truepix.service import queue as queue_module
from truepix.service.api import ApiServer, Backend
from truepix.service.queue import JobQueue

TOKEN = "ab" * 32


@pytest.fixture
def limits(monkeypatch):
    """Short limits for these tests; set before the server is made (it reads them then and per request)."""
    monkeypatch.setattr(api, "REQUEST_TIMEOUT", 1.0)
    monkeypatch.setattr(api, "MAX_CONNECTIONS", 8)
    return api


@pytest.fixture
def server(tmp_path, limits):
    queue = JobQueue(tmp_path / "queue.db")
    backend = Backend(queue=queue, recipes=lambda: dict(BUILTIN), submitted=lambda: None, pause=lambda: None,
                      resume=lambda: None, cancel_running=lambda job_id: None,
                      status=lambda: {"paused": False, "current": None, "folders": []})
    srv = ApiServer(backend, TOKEN, 0)
    srv.start()
    srv.queue = queue
    yield srv
    srv.stop()


def _head(method: str, path: str, extra: str = "", *, token: bool = True, host: str | None = "127.0.0.1") -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    if token:
        lines.append(f"Authorization: Bearer {TOKEN}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def _raw(srv, data: bytes, method: str = "GET", timeout: float = 10) -> tuple[http.client.HTTPResponse, bytes]:
    """Send ``data`` as it is; the answer and its body."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return resp, resp.read()
    finally:
        sock.close()


def _json_error(resp: http.client.HTTPResponse, body: bytes, status: int) -> str:
    assert resp.status == status, (resp.status, body)
    assert resp.getheader("Content-Type") == "application/json; charset=utf-8", resp.getheaders()
    error = json.loads(body)["error"]
    assert error["status"] == status
    return error["message"]


def _request(srv, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 10):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        conn.request(method, path, body=data, headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


# -- threads: slowloris, the connection cap ----------------------------------------------------------------


def test_slowloris_clients_are_dropped_at_the_deadline_and_others_are_served(server, monkeypatch):
    """Five clients send a request a header now and then (each recv well within any socket timeout):
    each is answered 408 and closed at REQUEST_TIMEOUT, while a normal request is served at once."""
    monkeypatch.setattr(api, "REQUEST_TIMEOUT", 2.0)
    slow = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        slow.append(s)
    started = time.monotonic()
    answers, closed_after = {}, {}
    served_in = None
    while len(closed_after) < len(slow) and time.monotonic() - started < 10:
        readable, _, _ = select.select([s for s in slow if s not in closed_after], [], [], 0.2)
        for s in readable:
            answers[s] = _recv_all(s)
            closed_after[s] = time.monotonic() - started
        for s in slow:
            if s not in closed_after and s not in readable:
                try:
                    s.sendall(b"X-Drip: 1\r\n")  # one more header: the request never ends
                except OSError:
                    pass
        if served_in is None and time.monotonic() - started > 0.3:
            t0 = time.monotonic()
            resp, body = _request(server, "GET", "/v1/health")
            served_in = time.monotonic() - t0
            assert resp.status == 200 and body["status"] == "ok"
    for s in slow:
        s.close()
    assert served_in is not None and served_in < 1.5  # not queued behind the slow ones
    assert len(closed_after) == 5, f"still open after 10 s: {5 - len(closed_after)} of 5"
    assert all(1.9 <= t < 5.0 for t in closed_after.values()), closed_after
    for data in answers.values():
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), data[:200]
        assert b"application/json" in head and json.loads(body)["error"]["status"] == 408


def test_a_body_that_does_not_arrive_gets_408_json(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        t0 = time.monotonic()
        sock.sendall(_head("POST", "/v1/jobs", "Content-Type: application/json\r\nContent-Length: 100\r\n")
                     + b'{"paths": [')
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        message = _json_error(resp, resp.read(), 408)
        assert "did not arrive within 1 s" in message and time.monotonic() - t0 < 4.0
        assert resp.getheader("Connection") == "close"
    finally:
        sock.close()


def test_an_idle_connection_is_closed_at_the_deadline(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        t0 = time.monotonic()
        assert _recv_all(sock) == b""  # closed without a word: nothing had been asked
        assert 0.9 <= time.monotonic() - t0 < 4.0
    finally:
        sock.close()


def test_connections_over_the_cap_get_503_json_at_once_and_no_thread(server, monkeypatch):
    monkeypatch.setattr(api, "REQUEST_TIMEOUT", 30.0)  # the holders must not time out during the test
    cap = server.max_connections
    assert cap == 8
    holders = []
    for _ in range(cap):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(b"GET /v1/health HTTP/1.1\r\n")  # half a request: each holds a connection thread
        holders.append(s)
    time.sleep(0.2)
    threads = threading.active_count()
    try:
        for _ in range(20):
            t0 = time.monotonic()
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            try:
                data = _recv_all(s)
            finally:
                s.close()
            assert time.monotonic() - t0 < 2.0  # answered by the accepting thread, not after a timeout
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), data[:200]
            assert b"Content-Type: application/json" in head and b"Retry-After: 1" in head
            error = json.loads(body)["error"]
            assert error["status"] == 503 and "too many connections (at most 8 at once)" in error["message"]
        assert threading.active_count() <= threads  # the 20 refused connections were given no thread
    finally:
        for s in holders:
            s.close()
    # Closed connections give their slots back.
    assert wait_until(lambda: _request(server, "GET", "/v1/health")[0].status == 200, timeout=5)


# -- every error is JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["garbage request line", "bad version", "HTTP/2", "HTTP/0.9", "URI too long",
                                  "too many headers", "header line too long", "unknown method",
                                  "OPTIONS without token", "OPTIONS", "two Content-Length"])
def test_http_layer_errors_are_json(server, case):
    status, fragment = {
        "garbage request line": (400, "Bad request syntax"),
        "bad version": (400, "Bad request version"),
        "HTTP/2": (505, "Invalid HTTP version"),
        "HTTP/0.9": (400, "HTTP/0.9 requests are not accepted"),
        "URI too long": (414, "request line is over 65536 bytes"),
        "too many headers": (431, "Too many headers"),
        "header line too long": (431, "Line too long"),
        "unknown method": (501, "method BREW not implemented"),
        "OPTIONS without token": (401, "missing 'Authorization: Bearer <token>'"),
        "OPTIONS": (405, "method OPTIONS not allowed here; use GET or POST"),
        "two Content-Length": (400, "bad Content-Length"),
    }[case]
    data = {
        "garbage request line": b"GARBAGE\r\n\r\n",
        "bad version": b"GET /v1/health HTTP/one\r\n\r\n",
        "HTTP/2": b"GET /v1/health HTTP/2.0\r\n\r\n",
        "HTTP/0.9": b"GET /v1/health\r\n",
        "URI too long": b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        "too many headers": _head("GET", "/v1/health", "".join(f"X-H{i}: {i}\r\n" for i in range(120))),
        "header line too long": _head("GET", "/v1/health", "X-Long: " + "a" * 70000 + "\r\n"),
        "unknown method": _head("BREW", "/v1/health"),
        "OPTIONS without token": _head("OPTIONS", "/v1/jobs", "Origin: http://evil.example\r\n"
                                       "Access-Control-Request-Method: POST\r\n", token=False),
        "OPTIONS": _head("OPTIONS", "/v1/jobs"),
        "two Content-Length": _head("POST", "/v1/pause", "Content-Length: 2\r\nContent-Length: 3\r\n") + b"{}",
    }[case]
    resp, body = _raw(server, data)
    assert fragment in _json_error(resp, body, status)
    assert resp.getheader("Access-Control-Allow-Origin") is None  # no CORS, ever (docs/protocol.md)
    if case == "OPTIONS":
        assert resp.getheader("Allow") == "GET, POST, HEAD"
    assert _request(server, "GET", "/v1/health")[0].status == 200


def test_head_is_get_without_the_body(server):
    resp, body = _raw(server, _head("HEAD", "/v1/health"), method="HEAD")
    assert resp.status == 200 and body == b"" and int(resp.getheader("Content-Length")) > 0
    assert resp.getheader("Content-Type") == "application/json; charset=utf-8"
    resp, body = _raw(server, _head("HEAD", "/v1/status", token=False), method="HEAD")
    assert resp.status == 401 and body == b"" and resp.getheader("Content-Type").startswith("application/json")
    resp, body = _raw(server, _head("HEAD", "/v1/pause"), method="HEAD")
    assert resp.status == 405 and resp.getheader("Allow") == "POST" and body == b""
    assert resp.getheader("Content-Type").startswith("application/json")
    # One connection, HEAD then GET: the HEAD answer had no body to confuse the next one.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for method in ("HEAD", "GET"):
            conn.request(method, "/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
            resp = conn.getresponse()
            raw = resp.read()
            assert resp.status == 200 and (raw == b"" if method == "HEAD" else json.loads(raw)["status"] == "ok")
    finally:
        conn.close()


# -- submits are all or nothing ---------------------------------------------------------------------------------


def test_a_multi_file_submit_that_fails_midway_queues_nothing(server, tmp_path, monkeypatch):
    photos = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"\xff\xd8\xff" + name.encode() * 100)
        photos.append(str(tmp_path / name))
    real = queue_module.file_sha256

    def unreadable_b(path, *args, **kwargs):  # b.jpg passes the checks, then cannot be read (a race, a mount...)
        if path.name == "b.jpg":
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(queue_module, "file_sha256", unreadable_b)
    resp, body = _request(server, "POST", "/v1/jobs", {"paths": photos})
    message = body["error"]["message"]
    assert resp.status == 400 and message.startswith(f"paths[1]: {photos[1]}: cannot read"), message
    assert "nothing queued" in message
    assert server.queue.counts()["queued"] == 0 and server.queue.jobs() == []
    monkeypatch.setattr(queue_module, "file_sha256", real)
    resp, body = _request(server, "POST", "/v1/jobs", {"paths": photos + [photos[0]]})
    assert resp.status == 201 and [j["source"] for j in body["jobs"]] == photos + [photos[0]]
    assert [j["duplicate"] for j in body["jobs"]] == [False, False, False, True]  # the same file twice: one job
    assert server.queue.counts()["queued"] == 3


# -- JSON bodies ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["very deep", "deeper than MAX_DEPTH", "huge integer", "not UTF-8"])
def test_bad_json_bodies_get_400_json_not_500(server, case):
    raw = {
        "very deep": b'{"paths": ' + b"[" * 200000 + b"]" * 200000 + b"}",
        "deeper than MAX_DEPTH": b'{"paths": ' + b"[" * 40 + b"]" * 40 + b"}",
        "huge integer": b'{"paths": [' + b"9" * 5000 + b"]}",
        "not UTF-8": b'{"paths": ["\xff\xfe"]}',
    }[case]
    assert len(raw) <= api.MAX_BODY
    resp, body = _request(server, "POST", "/v1/jobs", raw, {"Content-Type": "application/json"})
    want = "request body: nested too deeply (at most 32 levels)" if "deep" in case else "malformed JSON body"
    assert resp.status == 400 and body["error"]["status"] == 400 and want in body["error"]["message"], body
    assert _request(server, "GET", "/v1/health")[0].status == 200


def test_a_body_over_the_cap_gets_413_json_unread(server):
    resp, body = _raw(server, _head("POST", "/v1/jobs", f"Content-Length: {api.MAX_BODY + 1}\r\n") + b"{")
    assert "the limit is 1048576 bytes" in _json_error(resp, body, 413)


# -- Host: DNS rebinding ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "localhost.evil.example", "10.0.0.1:{port}", "[::2]:{port}", "localhost:x",
                                  "127.0.0.1:{port}@evil.example", ""])
def test_a_host_that_is_not_loopback_is_refused(server, host):
    resp, body = _raw(server, _head("GET", "/v1/status", host=host.format(port=server.port)))
    assert "Host not allowed" in _json_error(resp, body, 421)
    assert resp.getheader("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "LocalHost", "[::1]:{port}",
                                  "[::1]", None])
def test_loopback_hosts_are_served(server, host):
    if host is None:  # HTTP/1.0 without Host: no browser sends that
        data = f"GET /v1/health HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    else:
        data = _head("GET", "/v1/health", host=host.format(port=server.port))
    resp, body = _raw(server, data)
    assert resp.status == 200 and json.loads(body)["status"] == "ok"


def test_two_host_headers_are_refused(server):
    resp, body = _raw(server, _head("GET", "/v1/health", "Host: evil.example\r\n"))
    assert "more than one Host header" in _json_error(resp, body, 400)


def test_the_clients_send_an_allowed_host():
    """What the CLI client (urllib) and the plugins (http://127.0.0.1:PORT) put in Host."""
    for host in ("127.0.0.1:48620", "127.0.0.1"):
        assert api._host_allowed(host)
