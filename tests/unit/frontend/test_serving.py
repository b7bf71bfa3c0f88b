"""The serving layer without a server: the accumulator's choices and exact usage (sparse
outputs included), and the SSE framing of streamed answers, through `create_app(client=fake)`."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.endpoints import Endpoint
from openai_frontend.serving.accumulate import Accumulator
from openai_frontend.serving.tensors import Step
from tests.unit.fakes.model_server import FakeTriton, Response, TritonError, generation_model, model_error

CHAT = [{"role": "user", "content": "Hi"}]


def step(texts, reasons=None, counts=None, prompt=0, logprobs=None) -> Step:
    return Step(
        texts=texts,
        finish_reasons=reasons or [None] * len(texts),
        num_output_tokens=counts or [1 if t else 0 for t in texts],
        num_input_tokens=prompt,
        logprobs=logprobs or [None] * len(texts),
    )


def sparse_stream(prompt_tokens: int) -> list[Response]:
    """Two choices as a sparse-outputs model streams them: the prompt's count in the first
    response only, finish reasons only where a choice finishes."""
    return [
        Response(["He", ""], num_output_tokens=[1, 0], num_input_tokens=prompt_tokens),
        Response(["llo", "Yo"], num_output_tokens=[1, 1]),
        Response(["", "u"], finish_reasons=["length", "None"], num_output_tokens=[0, 1]),
        Response(["", ""], finish_reasons=["None", "stop"], num_output_tokens=[0, 0]),
    ]


def events(text: str) -> list[str]:
    """The SSE events of a body, checking OpenAI's framing on the way."""
    assert text.endswith("data: [DONE]\n\n"), text
    parts = text.split("\n\n")
    assert parts[-1] == "" and all(p.startswith("data: ") and "\n" not in p for p in parts[:-1]), text
    return [p.removeprefix("data: ") for p in parts[:-1]]


def test_the_accumulator_keeps_choices_and_counts_each_prompt_once():
    acc = Accumulator(n=2, prompts=2)
    acc.add(1, step(["x", "y"], prompt=5))
    deltas = acc.add(0, step(["a", ""], prompt=3))
    assert [(d.index, d.text, d.finish_reason) for d in deltas] == [(0, "a", None), (1, "", None)]
    acc.add(0, step(["b", "c"], reasons=["length", "abort"], prompt=3))  # every response repeats the count
    acc.add(1, step(["", ""], reasons=["stop", "stop"]))  # sparse: no count after the first
    assert [(c.index, c.text, c.finish_reason) for c in acc.choices] == [
        (0, "ab", "length"),
        (1, "c", "stop"),  # vLLM's "abort" is OpenAI's "stop"
        (2, "x", "stop"),
        (3, "y", "stop"),
    ]
    assert acc.usage().model_dump() == {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13}


def test_the_accumulator_gathers_logprobs_per_choice():
    acc = Accumulator(n=1)
    first = [{"7": {"logprob": -0.1, "rank": 1, "decoded_token": "a"}}]
    second = [{"8": {"logprob": -0.2, "rank": 1, "decoded_token": "b"}}]
    assert acc.add(0, step(["a"], logprobs=[first]))[0].logprobs == first
    acc.add(0, step(["b"], logprobs=[second]))
    acc.add(0, step([""], reasons=["stop"]))
    assert acc.choices[0].logprobs == first + second


def test_streamed_completion_framing_and_usage_with_sparse_outputs():
    triton = FakeTriton(models_=[generation_model("gen", sparse=True)], script=lambda m, v: sparse_stream(4))
    client = TestClient(create_app(client=triton))
    body = {"model": "gen", "prompt": ["a", "b"], "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    r = client.post("/openai/v1/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = [json.loads(e) for e in events(r.text)[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 8,  # 4 per prompt, each counted once
        "completion_tokens": 8,
        "total_tokens": 16,
    }
    texts = {i: "" for i in range(4)}
    reasons = {}
    for chunk in chunks[:-1]:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["text"]
            if choice["finish_reason"]:
                reasons[choice["index"]] = choice["finish_reason"]
    assert texts == {0: "Hello", 1: "You", 2: "Hello", 3: "You"}
    assert reasons == {0: "length", 1: "stop", 2: "length", 3: "stop"}
    assert all(values["sparse_outputs"] is True for values in triton.requests)


def test_streamed_chat_usage_with_sparse_outputs_and_the_role_first():
    triton = FakeTriton(models_=[generation_model("gen", sparse=True)], script=lambda m, v: sparse_stream(9))
    client = TestClient(create_app(client=triton))
    body = {"model": "gen", "messages": CHAT, "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [json.loads(e) for e in events(client.post("/openai/v1/chat/completions", json=body).text)[:-1]]
    assert [c["delta"] for c in chunks[0]["choices"]] == [{"role": "assistant", "content": ""}] * 2
    assert chunks[1]["choices"] == [{"index": 0, "delta": {"content": "He"}, "logprobs": None, "finish_reason": None}]
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    assert triton.requests[0]["messages"] == CHAT and "text_input" not in triton.requests[0]


def test_non_streamed_answers_are_one_response_with_exact_usage():
    def script(model, values):
        n = values["sampling_parameters"]["n"]
        prompt = len(values.get("text_input", "chat"))
        return [Response([f"t{c}" for c in range(n)], ["stop"] * n, [c + 1 for c in range(n)], prompt)]

    client = TestClient(create_app(client=FakeTriton(script=script)))
    out = client.post("/openai/v1/completions", json={"model": "gen", "prompt": ["a", "bcd"], "n": 2}).json()
    assert [(c["index"], c["text"]) for c in out["choices"]] == [(0, "t0"), (1, "t1"), (2, "t0"), (3, "t1")]
    assert out["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    out = client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": CHAT}).json()
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "t0"}
    assert out["usage"] == {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}


def test_an_error_mid_stream_is_an_error_event_then_done():
    script = [Response(["Hel"], ["None"], [1], 3), model_error("sampling_parameters.stop", "bad stop")]
    client = TestClient(create_app(client=FakeTriton(script=lambda m, v: script)))
    r = client.post("/openai/v1/completions", json={"model": "gen", "prompt": "x", "stream": True})
    assert r.status_code == 200  # the status went out with the first chunk
    sent = events(r.text)
    assert json.loads(sent[0])["choices"][0]["text"] == "Hel"
    assert json.loads(sent[1]) == {
        "error": {"message": "stop: bad stop", "type": "invalid_request_error", "param": "stop", "code": None}
    }
    assert sent[2:] == ["[DONE]"]


def test_an_unavailable_triton_mid_stream_is_a_503_event():
    script = [Response(["A"], ["None"], [1], 2), TritonError("Socket closed", "StatusCode.UNAVAILABLE")]
    client = TestClient(create_app(client=FakeTriton(script=lambda m, v: script)))
    r = client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": CHAT, "stream": True})
    sent = events(r.text)
    assert json.loads(sent[0])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(sent[1])["choices"][0]["delta"] == {"content": "A"}
    assert json.loads(sent[2])["error"]["type"] == "service_unavailable" and sent[3:] == ["[DONE]"]
    assert 'openai_stream_errors_total{endpoint="chat",status="503"} 1.0' in client.get("/metrics").text


def test_echo_puts_the_prompt_once_before_the_streamed_text():
    script = [Response(["A", "B"], ["None", "None"], [1, 1], 2), Response(["!", ""], ["stop", "length"], [1, 0], 2)]
    client = TestClient(create_app(client=FakeTriton(script=lambda m, v: script)))
    body = {"model": "gen", "prompt": "Q:", "n": 2, "echo": True, "stream": True}
    chunks = [json.loads(e) for e in events(client.post("/openai/v1/completions", json=body).text)[:-1]]
    assert [[c["text"] for c in chunk["choices"]] for chunk in chunks] == [["Q:A", "Q:B"], ["!", ""]]


def test_every_endpoint_says_which_models_serve_it_and_reads_as_its_string():
    info = generation_model("gen")
    for endpoint in Endpoint:  # a new member without its rule in Endpoint.served_by is a KeyError
        assert isinstance(info.serves(endpoint), bool)
        assert endpoint == endpoint.value and f"{endpoint}" == str(endpoint) == endpoint.value  # metrics' labels
