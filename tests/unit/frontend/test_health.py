"""The probes on the fake Triton: liveness never asks Triton; readiness asks it, within a bound,
and is a 503 once the drain has begun. GET /metrics: the frontend's own, then Triton's page."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from openai_frontend.errors import ServiceUnavailable
from openai_frontend.serving import health
from openai_frontend.settings import Settings
from tests.servers import free_port
from tests.unit.fakes.model_server import FakeTriton


@dataclass
class SlowTriton(FakeTriton):
    """A Triton that takes `delay` seconds to answer, or raises `error` (as unreachable)."""

    delay: float = 0.0
    error: Exception | None = None
    calls: int = 0

    async def server_ready(self) -> bool:
        self.calls += 1
        if self.error is not None:
            raise self.error
        await asyncio.sleep(self.delay)
        return self.ready

    async def models(self, refresh: bool = False) -> dict[str, ModelInfo]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return await super().models(refresh)


def client_for(triton: FakeTriton, **settings) -> TestClient:
    return TestClient(create_app(Settings(**settings), client=triton))


@pytest.mark.parametrize("path", ["/health/ready", "/health"])
def test_ready_when_triton_and_every_model_are(path):
    triton = SlowTriton()
    client = client_for(triton)
    assert client.get(path).json() == {"status": "ok", "models": ["emb", "gen"]}
    triton.models_[1].ready = False
    r = client.get(path)
    assert r.status_code == 503 and "emb" in r.json()["error"]["message"]
    triton.ready = False
    assert client.get(path).status_code == 503


def test_live_answers_without_asking_triton():
    triton = SlowTriton(ready=False, delay=30.0)
    client = client_for(triton)
    started = time.monotonic()
    r = client.get("/health/live")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert time.monotonic() - started < 1 and triton.calls == 0


def test_a_slow_triton_makes_readiness_a_503_within_the_bound(monkeypatch):
    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.2)
    client = client_for(SlowTriton(delay=30.0))
    started = time.monotonic()
    r = client.get("/health/ready")
    assert time.monotonic() - started < 2
    assert r.status_code == 503 and "did not answer within 0.2 s" in r.json()["error"]["message"]
    assert client.get("/health/live").status_code == 200


def test_an_unreachable_triton_makes_readiness_a_503():
    client = client_for(SlowTriton(error=ServiceUnavailable("Triton at fake:8001 is unreachable: refused")))
    r = client.get("/health/ready")
    assert r.status_code == 503 and "unreachable" in r.json()["error"]["message"]
    assert client.get("/health/live").status_code == 200


def test_readiness_is_a_503_from_the_drains_start_and_liveness_stays():
    triton = SlowTriton()
    client = client_for(triton)
    client.app.state.drain.start()
    r = client.get("/health/ready")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "shutting down" in r.json()["error"]["message"] and triton.calls == 0
    assert client.get("/health").status_code == 503
    assert client.get("/health/live").status_code == 200


class MetricsPage(http.server.BaseHTTPRequestHandler):
    body = b'# TYPE nv_inference_count counter\nnv_inference_count{model="gen",version="1"} 7\n'
    delay = 0.0

    def do_GET(self):
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def triton_metrics():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MetricsPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_metrics_carry_tritons_page_after_the_frontends_own(triton_metrics):
    client = client_for(SlowTriton(), triton_metrics_url=triton_metrics)
    client.get("/health/live")
    text = client.get("/metrics").text
    assert text.index("openai_requests_total{") < text.index('nv_inference_count{model="gen",version="1"} 7')
    assert text.endswith("\n")


def test_metrics_without_triton_are_the_frontends_own(monkeypatch, triton_metrics):
    client = client_for(SlowTriton(), triton_metrics_url=f"http://127.0.0.1:{free_port()}/metrics")
    r = client.get("/metrics")
    assert r.status_code == 200 and "openai_requests" in r.text and "nv_" not in r.text
    assert "# Triton's metrics at" in r.text and "are unavailable" in r.text
    # A Triton that does not answer in time: the same, within the bound.
    monkeypatch.setattr(health, "METRICS_TIMEOUT_S", 0.2)
    monkeypatch.setattr(MetricsPage, "delay", 3.0)
    client = client_for(SlowTriton(), triton_metrics_url=triton_metrics)
    started = time.monotonic()
    r = client.get("/metrics")
    assert r.status_code == 200 and "are unavailable" in r.text and time.monotonic() - started < 2
    assert client_for(SlowTriton()).get("/metrics").text.count("# Triton") == 0  # no URL: nothing asked
