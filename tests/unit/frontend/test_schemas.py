import numpy as np
import pytest
from pydantic import ValidationError
from tritonclient.utils import InferenceServerException

from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.common import finish_reason
from openai_frontend.schemas.completions import CompletionRequest
from openai_frontend.serving import tensors as generation
from openai_frontend.triton_client import _map_error


def test_completion_sampling_carries_only_what_was_asked():
    req = CompletionRequest(model="m", prompt="hi", stop="\n", top_k=5, logprobs=2)
    assert req.sampling() == {"n": 1, "max_tokens": 16, "stop": ["\n"], "top_k": 5, "logprobs": 2}


def test_chat_max_completion_tokens_wins_and_response_format_maps_to_structured_outputs():
    req = ChatCompletionRequest(
        model="m",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
        max_tokens=5,
        max_completion_tokens=7,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    )
    params = req.sampling()
    assert params["max_tokens"] == 7 and params["structured_outputs"] == {"json": {"type": "object"}}
    assert req.messages[0].for_template() == {"role": "user", "content": "ab"}
    assert (
        ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}]).sampling()["max_tokens"] is None
    )


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "prompt": "x", "temprature": 1},
        {"model": "m", "prompt": []},
        {"model": "m", "prompt": "x", "best_of": 0},  # >1 is taken and ignored, as in vLLM 0.32
        {"model": "m", "prompt": "x", "n": 0},
    ],
)
def test_bad_completion_requests_are_refused(body):
    with pytest.raises(ValidationError):
        CompletionRequest(**body)


def test_model_inputs_always_ask_for_counts_and_reasons():
    values = generation.model_inputs(prompt="p", sampling={"logprobs": 1}, stream=True)
    assert values["exclude_input_in_output"] is True and values["return_logprobs"] is True
    assert values["return_num_input_tokens"] and values["return_num_output_tokens"] and values["return_finish_reason"]
    assert generation.model_inputs(prompt="p", sampling={}, stream=False, echo=True)["exclude_input_in_output"] is False


def test_decode_a_response():
    step = generation.decode(
        {
            "text_output": np.array([b"a", b"b"], dtype=object),
            "finish_reason": np.array([b"None", b"length"], dtype=object),
            "num_output_tokens": np.array([1, 2], dtype=np.uint32),
            "num_input_tokens": np.array([5], dtype=np.uint32),
        }
    )
    assert step.texts == ["a", "b"] and step.finish_reasons == [None, "length"]
    assert step.num_output_tokens == [1, 2] and step.num_input_tokens == 5


def test_finish_reasons_map_to_openai():
    assert [finish_reason(r) for r in (None, "None", "stop", "length", "abort")] == [
        None,
        None,
        "stop",
        "length",
        "stop",
    ]


def test_model_errors_map_to_statuses():
    # The models' structured errors (docs/protocol.md#errors); the routers rename the field.
    assert _map_error(InferenceServerException('{"message": "bad", "param": "sampling_parameters.n"}')).status == 400
    assert _map_error(InferenceServerException('{"message": "too long", "param": "text_input"}')).param == "text_input"
    assert _map_error(InferenceServerException("x", status="StatusCode.UNAVAILABLE")).status == 503
    assert _map_error(InferenceServerException("engine died")).status == 500


def test_load_shedding_refusals_are_429_with_retry_after():
    from triton_llm.errors import Unavailable

    overloaded = Unavailable("m is serving its limit of 8 requests", kind="overloaded", retry_after=2).to_wire()
    error = _map_error(InferenceServerException(overloaded, status="StatusCode.UNAVAILABLE"))
    assert (error.status, error.headers(), error.type) == (429, {"Retry-After": "2"}, "rate_limit_error")
    assert error.message == "m is serving its limit of 8 requests"
    # An encoder's full queue: Triton's own words (dynamic_batching's max_queue_size).
    full = "[request id: 7] Exceeds maximum queue size"
    error = _map_error(InferenceServerException(full, status="StatusCode.UNAVAILABLE"))
    assert (error.status, error.headers()) == (429, {"Retry-After": "1"}) and "queue is full" in error.message


def test_validation_errors_name_the_field_not_the_union_member():
    from fastapi.testclient import TestClient

    from openai_frontend.app import create_app

    client = TestClient(create_app())
    audio = {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}
    r = client.post("/openai/v1/chat/completions", json={"model": "m", "messages": [audio]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content.0"
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "max"}}]}
    r = client.post("/openai/v1/chat/completions", json={"model": "m", "messages": [image]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content.0.image_url.detail"
    r = client.post("/openai/v1/completions", json={"model": "m", "prompt": [1, "a"]})
    assert r.json()["error"]["param"] == "prompt.1"  # token ids, one of which is not


def test_a_request_runs_at_most_max_prompts_in_flight_of_its_prompts_and_serves_all():
    import asyncio

    from openai_frontend.schemas.limits import MAX_PROMPTS, MAX_PROMPTS_IN_FLIGHT

    running, most = 0, 0

    async def prompt(i: int):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        yield i
        running -= 1

    async def run() -> list[tuple[int, int]]:
        return [item async for item in generation.merge([prompt(i) for i in range(MAX_PROMPTS)])]

    served = asyncio.run(run())
    assert sorted(served) == [(i, i) for i in range(MAX_PROMPTS)]
    assert most == MAX_PROMPTS_IN_FLIGHT  # each holds one of the model's admitted places
