"""The probes on the fake Triton: liveness never asks Triton; readiness asks it, within a bound."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from openai_frontend.errors import ServiceUnavailable
from openai_frontend.routers import health
from tests.unit.fake_triton import FakeTriton


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


def client_for(triton: FakeTriton) -> TestClient:
    return TestClient(create_app(client=triton))


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
