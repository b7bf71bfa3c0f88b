"""The frontend's time to first token is the model's: taken when the first chunk that the
model's first response brings goes out, for chat (whose role chunk once went out before
Triton was called, so that chat's TTFT read ~0) and for completions."""

from __future__ import annotations

import asyncio
import re

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from tests.unit.fakes.model_server import FakeTriton, Response

DELAY_S = 0.2  # the model's time to its first response


class SlowTriton(FakeTriton):
    async def generate(self, model, values, request_id=""):
        await asyncio.sleep(DELAY_S)
        async for outputs in super().generate(model, values, request_id):
            yield outputs


def ttft(metrics: str, endpoint: str) -> tuple[float, float]:
    def one(suffix: str) -> float:
        pattern = rf'^openai_time_to_first_token_seconds_{suffix}\{{endpoint="{endpoint}"\}} (\S+)$'
        return float(re.search(pattern, metrics, re.M)[1])

    return one("count"), one("sum")


@pytest.mark.parametrize(
    ("endpoint", "path", "body"),
    [
        ("chat", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
        ("completions", "/v1/completions", {"prompt": "Hi"}),
    ],
)
def test_the_time_to_first_token_includes_the_models_wait(endpoint, path, body):
    script = [Response(["Hel"], num_input_tokens=1, num_output_tokens=[1]), Response(["lo"], finish_reasons=["stop"])]
    client = TestClient(create_app(client=SlowTriton(script=lambda model, values: script)))
    with client:
        r = client.post("/openai" + path, json={"model": "gen", "stream": True, **body})
        assert r.status_code == 200 and "Hel" in r.text
        count, total = ttft(client.get("/metrics").text, endpoint)
    assert count == 1 and total >= DELAY_S


@pytest.mark.parametrize(
    ("route_path", "path", "label"),
    [
        ("/openai/v1/models/{model_id:path}", "/openai/v1/models/a/b", "/openai/v1/models/{model_id:path}"),
        # FastAPI >= 0.137 keeps included routers nested: the route knows only its own path.
        ("/v1/models/{model_id:path}", "/openai/v1/models/a/b", "/openai/v1/models/{model_id:path}"),
        ("/health/ready", "/health/ready", "/health/ready"),
        (None, "/nowhere", "unmatched"),
    ],
)
def test_route_labels_carry_the_api_prefix_on_every_fastapi(route_path, path, label):
    from types import SimpleNamespace

    from openai_frontend.metrics import route_label

    scope = {"path": path, "route": route_path and SimpleNamespace(path=route_path)}
    assert route_label(scope, "/openai") == label
