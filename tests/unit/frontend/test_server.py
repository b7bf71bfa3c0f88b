"""The frontend's uvicorn server (openai_frontend/server.py), for real on a free port, over a fake
Triton whose answers take their time: the drain on the first SIGTERM (readiness 503, new requests
503 with Retry-After, requests in flight finish whole, then the server stops), its timeout, the
second signal; and the limits on request headers: their time (slowloris) and their size."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass

import pytest
import requests

from openai_frontend import server
from openai_frontend.app import create_app
from openai_frontend.settings import Settings
from tests.servers import free_port
from tests.unit.fakes.model_server import FakeTriton, Response

pytestmark = pytest.mark.slow

CHUNKS = 5


@dataclass
class SlowTriton(FakeTriton):
    """Each generation sends CHUNKS responses, `step` seconds apart."""

    step: float = 0.2

    async def generate(self, model, values, request_id=""):
        self.requests.append(values)
        for i in range(CHUNKS):
            await asyncio.sleep(self.step)
            last = i == CHUNKS - 1
            yield Response([f"w{i} "], ["length" if last else ""], [1], 3).outputs()


class Running:
    """A DrainingServer in a thread (no signal handlers there: the test calls handle_exit)."""

    def __init__(self, step: float = 0.2, **settings):
        self.settings = Settings(port=free_port(), **settings)
        self.app = create_app(self.settings, client=SlowTriton(step=step))
        self.server = server.build(self.app, self.settings, log_level="warning")
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def signal(self) -> None:
        self.server.handle_exit(signal.SIGTERM, None)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def running(request):
    servers: list[Running] = []

    def start(**kwargs) -> Running:
        servers.append(Running(**kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def completion(url: str, stream: bool, results: list, **kwargs) -> threading.Thread:
    def go():
        body = {"model": "gen", "prompt": "Hi", "stream": stream}
        text, done, status = "", False, None
        try:
            r = requests.post(f"{url}/openai/v1/completions", json=body, stream=stream, timeout=30, **kwargs)
            status = r.status_code
            if not stream:
                results.append(("whole", status, r.json()["choices"][0]["text"]))
                return
            for line in r.iter_lines():
                if line == b"data: [DONE]":
                    done = True
                elif line.startswith(b"data: "):
                    text += json.loads(line[6:])["choices"][0]["text"]
        except requests.RequestException:  # the server closed the connection
            pass
        results.append(("stream" if done else "cut", status, text))

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def wait_inflight(app, n: int) -> None:
    deadline = time.monotonic() + 5
    while app.state.drain.inflight < n:
        assert time.monotonic() < deadline, f"{app.state.drain.inflight} in flight, waited for {n}"
        time.sleep(0.01)


def test_sigterm_drains_in_flight_requests_then_stops(running):
    s = running(step=0.3)
    results: list = []
    threads = [completion(s.url, stream, results) for stream in (True, False, True)]
    wait_inflight(s.app, 3)
    s.signal()
    ready = requests.get(f"{s.url}/health/ready", timeout=5)
    assert ready.status_code == 503 and "shutting down" in ready.json()["error"]["message"]
    assert requests.get(f"{s.url}/health/live", timeout=5).status_code == 200
    assert requests.get(f"{s.url}/metrics", timeout=5).status_code == 200
    refused = requests.post(f"{s.url}/openai/v1/completions", json={"model": "gen", "prompt": "x"}, timeout=5)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
    assert refused.headers["connection"] == "close" and refused.headers["x-request-id"]
    assert refused.json()["error"]["type"] == "service_unavailable"
    assert refused.json()["error"]["code"] == "server_shutting_down"
    for t in threads:
        t.join(timeout=30)
    whole = "".join(f"w{i} " for i in range(CHUNKS))
    assert sorted(results) == [("stream", 200, whole), ("stream", 200, whole), ("whole", 200, whole)]
    s.thread.join(timeout=5)
    assert not s.thread.is_alive(), "the server did not stop once drained"
    assert s.app.state.drain.inflight == 0


def test_an_idle_server_stops_at_once():
    s = Running()
    started = time.monotonic()
    s.signal()
    s.thread.join(timeout=10)
    assert not s.thread.is_alive() and time.monotonic() - started < 3


def test_the_drain_timeout_cancels_what_is_left(running):
    s = running(step=1.0, drain_timeout_s=0.5)  # a stream of 5 s
    results: list = []
    thread = completion(s.url, True, results)
    wait_inflight(s.app, 1)
    started = time.monotonic()
    s.signal()
    s.thread.join(timeout=20)
    elapsed = time.monotonic() - started
    thread.join(timeout=10)
    assert not s.thread.is_alive() and elapsed < 0.5 + server.CLOSE_GRACE_S + 2, elapsed
    assert results and results[0][0] == "cut", results


def test_a_second_signal_stops_at_once(running):
    s = running(step=1.0)
    results: list = []
    thread = completion(s.url, True, results)
    wait_inflight(s.app, 1)
    s.signal()
    time.sleep(0.3)
    assert s.thread.is_alive()  # draining
    started = time.monotonic()
    s.signal()
    s.thread.join(timeout=10)
    thread.join(timeout=10)
    assert not s.thread.is_alive() and time.monotonic() - started < 3
    assert results and results[0][0] == "cut", results


# -- request headers that never end (slowloris) -------------------------------------------


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (recv gives b"" or a reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /health/live HTT", b"POST /openai/v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app"],
    ids=["nothing", "part-of-the-request-line", "part-of-the-headers"],
)
def test_a_connection_without_complete_headers_is_closed_and_others_are_served(running, sent):
    s = running(header_timeout_s=1.0)
    with socket.create_connection(("127.0.0.1", s.settings.port)) as slow:
        slow.sendall(sent)
        started = time.monotonic()
        # Meanwhile the server answers others.
        assert requests.get(f"{s.url}/health/live", timeout=5).status_code == 200
        assert closed_within(slow, 5)
        assert 0.8 < time.monotonic() - started < 3


def test_the_timeout_covers_a_kept_alive_connections_next_request(running):
    s = running(header_timeout_s=1.0)
    with socket.create_connection(("127.0.0.1", s.settings.port)) as conn:
        time.sleep(0.6)  # most of the first timeout: the next request's headers get a fresh one
        conn.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(5)
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        conn.sendall(b"GET /health/live HTTP/1.1\r\nHo")
        started = time.monotonic()
        assert closed_within(conn, 5)
        assert 0.8 < time.monotonic() - started < 3


def test_a_slow_request_with_complete_headers_is_not_cut(running):
    s = running(header_timeout_s=0.5, step=0.3)  # a stream of 1.5 s, three header timeouts long
    results: list = []
    completion(s.url, True, results).join(timeout=10)
    assert results == [("stream", 200, "".join(f"w{i} " for i in range(CHUNKS)))]


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection; the first line of the answer (b"" if closed without one)."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(10)
        try:
            conn.sendall(data)
            return conn.recv(4096).split(b"\r\n")[0]
        except ConnectionResetError:  # closed while we still sent: what a client of a huge header sees
            return b""


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"X-Big: " + b"a" * 50_000 + b"\r\n", b"200"),
        (b"X-Big: " + b"a" * 100_000 + b"\r\n", b"431"),
        (b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)), b"431"),
    ],
    ids=["50-kb", "100-kb", "10k-headers"],
)
def test_request_headers_over_64_kib_are_a_431(running, headers, status):
    s = running()
    answer = exchange(s.settings.port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.split(b" ")[1] == status, answer
    assert requests.get(f"{s.url}/health/live", timeout=5).status_code == 200


def test_a_header_that_never_ends_is_cut_at_the_limit_not_at_the_timeout(running):
    s = running(header_timeout_s=30.0)
    with socket.create_connection(("127.0.0.1", s.settings.port)) as conn:
        conn.sendall(b"GET /health/live HTTP/1.1\r\nX-Big: ")
        started = time.monotonic()
        try:
            for _ in range(100):  # 1.6 MB at most, in 16 KB pieces
                conn.sendall(b"a" * 16_384)
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass
        conn.settimeout(5)
        answer = b""
        try:
            while chunk := conn.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 5
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer


def test_the_timeouts_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRITON_LLM_DRAIN_TIMEOUT", "7.5")
    monkeypatch.setenv("TRITON_LLM_HEADER_TIMEOUT", "3")
    assert (Settings().drain_timeout_s, Settings().header_timeout_s) == (7.5, 3.0)
    monkeypatch.setenv("TRITON_LLM_DRAIN_TIMEOUT", "soon")
    with pytest.raises(SystemExit, match="TRITON_LLM_DRAIN_TIMEOUT='soon': expected a number of seconds"):
        Settings()
    monkeypatch.delenv("TRITON_LLM_DRAIN_TIMEOUT")
    monkeypatch.delenv("TRITON_LLM_HEADER_TIMEOUT")
    assert (Settings().drain_timeout_s, Settings().header_timeout_s) == (30.0, 10.0)


def test_startup_objects_are_frozen_out_of_the_garbage_collector():
    """A full collection over FastAPI's, pydantic's and grpc's startup objects stalls every stream."""
    import gc

    from fastapi.testclient import TestClient

    gc.unfreeze()
    with TestClient(create_app(Settings(triton_url="127.0.0.1:1"))):  # the app opens its own client
        assert gc.get_freeze_count() > 10_000
