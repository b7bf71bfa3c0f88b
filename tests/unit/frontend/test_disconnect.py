"""A client that leaves before its non-streamed answer cancels the request's work, on every
endpoint (`serving/disconnect.py`), and a client that stays gets its answer as before.

httpx's ASGI transport never sends `http.disconnect` before the response is complete, so
these tests drive the app as a server would: the body, then a disconnect when the test says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from openai_frontend.app import create_app
from openai_frontend.backend import Outputs
from openai_frontend.serving.disconnect import CLIENT_CLOSED
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response

OK = Response(["x"], ["stop"], [1], 3)
BODIES = {
    "completions": {"model": "gen", "prompt": "Hi", "max_tokens": 8192},
    "completions, two prompts": {"model": "gen", "prompt": ["Hi", "Ho"]},
    "chat": {"model": "gen", "messages": [{"role": "user", "content": "Hi"}]},
    "embeddings": {"model": "emb", "input": ["a", "b", "c", "d", "e"]},  # two pieces of 4 and 1
}
PATHS = {"completions": "completions", "chat": "chat/completions", "embeddings": "embeddings"}


@dataclass
class SilentTriton(FakeTriton):
    """A Triton whose models never answer; it records the requests whose call was cancelled."""

    cancelled: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def _never(self, request_id: str) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(request_id)
            raise

    async def generate(self, model: str, values: dict[str, Any], request_id: str = "") -> AsyncIterator[Outputs]:
        self.request_ids.append(request_id)
        await self._never(request_id)
        yield {}

    async def embed(self, model: str, texts: list[str], parameters: dict[str, Any], request_id: str = "") -> Outputs:
        self.request_ids.append(request_id)
        await self._never(request_id)
        return {}


async def serve(triton: FakeTriton, path: str, body: dict, leave: asyncio.Event) -> list[dict]:
    """One request through the whole app; the client disconnects once `leave` is set."""
    app = create_app(Settings(), client=triton)
    raw = json.dumps(body).encode()
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop(0)
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": f"/openai/v1/{path}", "raw_path": f"/openai/v1/{path}".encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 9000),
    }  # fmt: skip
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return sent


@pytest.mark.parametrize("case", BODIES)
def test_a_client_that_leaves_cancels_its_non_streamed_request(case):
    async def run() -> tuple[SilentTriton, list[dict]]:
        triton, leave = SilentTriton(), asyncio.Event()
        task = asyncio.create_task(serve(triton, PATHS[case.split(",")[0]], BODIES[case], leave))
        await asyncio.wait_for(triton.started.wait(), timeout=5)
        await asyncio.sleep(0.05)  # every piece of the request is now waiting on the model
        assert not triton.cancelled
        leave.set()
        return triton, await task

    triton, sent = asyncio.run(run())
    # Every model call of the request was cancelled (one per prompt, one per piece of input).
    assert triton.cancelled and sorted(triton.cancelled) == sorted(triton.request_ids)
    assert sent[0]["status"] == CLIENT_CLOSED  # for the frontend's request metrics: no one reads it


@pytest.mark.parametrize("case", BODIES)
def test_a_client_that_stays_gets_its_answer(case):
    async def run() -> list[dict]:
        triton = FakeTriton(script=lambda m, v: [Response(["x"] * 1, ["stop"], [1], 3)])
        return await serve(triton, PATHS[case.split(",")[0]], BODIES[case], asyncio.Event())

    sent = asyncio.run(run())
    assert sent[0]["status"] == 200
    answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert answer["object"] in {"text_completion", "chat.completion", "list"}


def test_a_streamed_request_is_still_cancelled_by_its_response():
    async def run() -> tuple[SilentTriton, list[dict]]:
        triton, leave = SilentTriton(), asyncio.Event()
        body = {**BODIES["completions"], "stream": True}
        task = asyncio.create_task(serve(triton, "completions", body, leave))
        await asyncio.wait_for(triton.started.wait(), timeout=5)
        leave.set()
        return triton, await task

    triton, sent = asyncio.run(run())
    assert triton.cancelled == triton.request_ids
    assert sent[0]["status"] == CLIENT_CLOSED  # a stream begins with the model's first response (sse.py)
