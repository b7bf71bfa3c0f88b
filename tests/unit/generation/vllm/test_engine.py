"""The vLLM engine leaves nothing behind in vLLM and names what went wrong, on a fake AsyncLLM.

The fake runs vLLM's own `AsyncLLM.generate` (what it catches, wraps and aborts) over a fake
`add_request` that registers the request before it fails, as vLLM's `_add_request` does when
the EngineCore transport refuses it (a seed of 2**64 once did). Its outputs go through vLLM's
own `RequestOutputCollector`, and its renderer applies vLLM's own prompt length check.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from vllm.exceptions import VLLMValidationError
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.renderers.params import TokenizeParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.output_processor import RequestOutputCollector

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.vllm.engine import VllmEngine
from triton_llm.generation.types import GenerateRequest

MAX_MODEL_LEN = 32


class FakeRenderer:
    """One token per word; vLLM's own TokenizeParams refuse a prompt over the context."""

    default_cmpl_tok_params = TokenizeParams(max_total_tokens=MAX_MODEL_LEN, add_special_tokens=True)
    default_chat_tok_params = TokenizeParams(max_total_tokens=MAX_MODEL_LEN, add_special_tokens=False)

    async def render_cmpl_async(self, prompts, tok_params):
        ids = list(range(len(prompts[0]["prompt"].split())))
        return [{"type": "token", "prompt_token_ids": tok_params._token_len_check(None, ids)}]


class FakeLLM:
    generate = AsyncLLM.generate  # vLLM's own wrapper around add_request
    log_requests = False

    def __init__(self, add_error: BaseException | None = None, hang: bool = False):
        self.add_error, self.hang = add_error, hang
        self.renderer = FakeRenderer()
        self.model_config = SimpleNamespace(is_encoder_decoder=False, max_model_len=MAX_MODEL_LEN)
        self.unfinished: set[str] = set()
        self.added: list[str] = []

    async def add_request(self, request_id, prompt, params, **_) -> RequestOutputCollector:
        self.added.append(request_id)
        self.unfinished.add(request_id)  # registered before the EngineCore gets it
        if self.add_error is not None:
            raise self.add_error
        if self.hang:
            await asyncio.Event().wait()
        queue = RequestOutputCollector(params.output_kind, request_id)
        done = CompletionOutput(index=0, text=" hi", token_ids=[7], cumulative_logprob=None, logprobs=None)
        done.finish_reason = "length"
        queue.put(RequestOutput(request_id, None, prompt["prompt_token_ids"], None, [done], finished=True))
        self.unfinished.discard(request_id)  # the output processor forgets a finished request
        return queue

    async def abort(self, request_id, internal: bool = False) -> None:
        self.unfinished.discard(request_id)

    def get_num_unfinished_requests(self) -> int:
        return len(self.unfinished)


def engine_on(llm: FakeLLM) -> VllmEngine:
    engine = VllmEngine.__new__(VllmEngine)  # no settings, no vLLM process
    engine._llm, engine._tokenizer, engine.max_model_len = llm, None, MAX_MODEL_LEN
    return engine


def run(engine: VllmEngine, sampling: dict, prompt: str = "one two three") -> list:
    async def collect():
        request = GenerateRequest(prompt=prompt, sampling=sampling)
        return [chunk async for chunk in engine.generate(request, "req-1")]

    return asyncio.run(collect())


def test_a_served_request_leaves_nothing_behind():
    llm = FakeLLM()
    [chunk] = run(engine_on(llm), {"max_tokens": 4})
    assert chunk.finished and chunk.num_input_tokens == 3 and chunk.choices[0].text == " hi"
    assert engine_on(llm).num_unfinished() == 0


def test_a_failure_after_add_request_registered_is_aborted_and_says_what_failed():
    llm = FakeLLM(add_error=OverflowError("can't serialize ints < -2**63 or > 2**64 - 1"))
    engine = engine_on(llm)
    with pytest.raises(RuntimeError) as info:
        run(engine, {"max_tokens": 4})
    assert not isinstance(info.value, InvalidInput)
    assert "OverflowError: can't serialize ints" in str(info.value)
    assert llm.added and engine.num_unfinished() == 0


def test_a_refusal_in_add_request_names_the_field_and_is_aborted():
    refusal = VLLMValidationError(
        "token_id(s) [70000] in logit_bias contain out-of-vocab token ids. Vocabulary size: 49152",
        parameter="logit_bias",
        value=[70000],
    )
    llm = FakeLLM(add_error=refusal)
    engine = engine_on(llm)
    with pytest.raises(InvalidInput) as info:
        run(engine, {"logit_bias": {"70000": 5}})
    assert info.value.field == "sampling_parameters.logit_bias" and "out-of-vocab" in info.value.problem
    assert engine.num_unfinished() == 0


def test_a_request_cancelled_inside_add_request_is_aborted():
    llm = FakeLLM(hang=True)
    engine = engine_on(llm)

    async def cancel_midway():
        async def consume():
            request = GenerateRequest(prompt="one two", sampling={"max_tokens": 4})
            async for _ in engine.generate(request, "req-1"):
                pass

        task = asyncio.create_task(consume())
        while not llm.added:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert engine.num_unfinished() == 0


@pytest.mark.parametrize(("max_tokens", "ok"), [(29, True), (30, False), (100000, False), (None, True)])
def test_max_tokens_must_fit_beside_the_prompt(max_tokens, ok):
    llm = FakeLLM()
    prompt = " ".join(["w"] * 3)
    if ok:
        run(engine_on(llm), {"max_tokens": max_tokens}, prompt)
        return
    with pytest.raises(InvalidInput) as info:
        run(engine_on(llm), {"max_tokens": max_tokens}, prompt)
    assert info.value.field == "sampling_parameters.max_tokens"
    assert info.value.problem == (
        f"This model's maximum context length is 32 tokens. However, you requested {3 + max_tokens} tokens "
        f"(3 in the prompt, {max_tokens} in the completion). Please reduce the length of the prompt or completion."
    )
    assert not llm.added, "refused before it reached vLLM"


def test_a_prompt_over_the_context_names_the_prompt():
    llm = FakeLLM()
    with pytest.raises(InvalidInput) as info:
        run(engine_on(llm), {"max_tokens": 4}, " ".join(["w"] * 40))
    assert info.value.field == "text_input" and "maximum context length is 32" in info.value.problem
    assert not llm.added


@pytest.mark.parametrize("seed", [2**64, -(2**64), 2**63])
def test_a_seed_beyond_64_bits_is_refused_before_vllm(seed):
    llm = FakeLLM()
    with pytest.raises(InvalidInput) as info:
        run(engine_on(llm), {"seed": seed})
    assert info.value.field == "sampling_parameters.seed"
    assert not llm.added
