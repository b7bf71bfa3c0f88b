"""Streamed answers carry what non-streamed ones do: completions' `logprobs.text_offset` counts
from the start of each choice's whole text, across chunks, as OpenAI and vLLM give it."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from tests.unit.fakes.model_server import FakeTriton, Response


def position(token_id: int, token: str, logprob: float) -> dict:
    return {str(token_id): {"logprob": logprob, "rank": 1, "decoded_token": token}}


# Two choices, three steps: "Hello world" and "Hi!".
STEPS = [
    Response(["Hel", "Hi"], ["None", "None"], [2, 1], 3,
             logprobs=[[position(1, "He", -0.1), position(2, "l", -0.2)], [position(3, "Hi", -0.3)]]),
    Response(["lo", "!"], ["None", "stop"], [1, 1], 3, logprobs=[[position(4, "lo", -0.4)], [position(5, "!", -0.5)]]),
    Response([" world", ""], ["length", "None"], [1, 0], 3, logprobs=[[position(6, " world", -0.6)], None]),
]  # fmt: skip


def _offsets(chunks: list[dict]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["logprobs"]:
                offsets.setdefault(choice["index"], []).extend(choice["logprobs"]["text_offset"])
    return offsets


def test_streamed_text_offset_is_cumulative_per_choice_and_equals_the_non_streamed():
    client = TestClient(create_app(client=FakeTriton(script=lambda m, v: STEPS)))
    body = {"model": "gen", "prompt": "Say", "n": 2, "logprobs": 1, "max_tokens": 3}
    whole = client.post("/openai/v1/completions", json=body).json()["choices"]
    assert [c["logprobs"]["text_offset"] for c in whole] == [[0, 2, 3, 5], [0, 2]]
    r = client.post("/openai/v1/completions", json={**body, "stream": True})
    chunks = [json.loads(e.removeprefix("data: ")) for e in r.text.split("\n\n") if e and e != "data: [DONE]"]
    assert _offsets(chunks) == {0: [0, 2, 3, 5], 1: [0, 2]}


def test_streamed_text_offset_with_echo_starts_after_the_prompt_as_non_streamed():
    client = TestClient(create_app(client=FakeTriton(script=lambda m, v: STEPS)))
    body = {"model": "gen", "prompt": "Say", "n": 2, "logprobs": 1, "echo": True, "max_tokens": 3}
    whole = client.post("/openai/v1/completions", json=body).json()["choices"]
    r = client.post("/openai/v1/completions", json={**body, "stream": True})
    chunks = [json.loads(e.removeprefix("data: ")) for e in r.text.split("\n\n") if e and e != "data: [DONE]"]
    streamed = _offsets(chunks)
    assert [streamed[c["index"]] for c in whole] == [c["logprobs"]["text_offset"] for c in whole]
