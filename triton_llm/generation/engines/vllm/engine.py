"""vLLM's AsyncLLM behind the Engine interface: continuous batching is vLLM's own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from triton_llm import hf_loading
from triton_llm.generation.engines.base import check_token_ids, prompt_field, render_prompt, truncation_length
from triton_llm.generation.engines.limits import check_max_tokens
from triton_llm.generation.engines.vllm import multimodal
from triton_llm.generation.engines.vllm.args import engine_args
from triton_llm.generation.engines.vllm.errors import client_error, describe
from triton_llm.generation.engines.vllm.lora import Adapters
from triton_llm.generation.engines.vllm.lora_control import LoraControl
from triton_llm.generation.images import DEFAULT_MAX_PIXELS
from triton_llm.generation.request_options import refuse_unsupported
from triton_llm.generation.stats import EngineStats, Load
from triton_llm.generation.types import ChoiceDelta, EngineTimings, GenerateRequest, GenerationChunk
from triton_llm.settings import VllmSettings

logger = logging.getLogger(__name__)


class VllmEngine:
    max_image_pixels = DEFAULT_MAX_PIXELS  # model.json's, set in __init__
    adapters = Adapters()  # none until __init__ reads model.json's
    lora_control = LoraControl(VllmSettings.model_construct(), adapters, None)  # off until then too
    priority_scheduling = False  # model.json's `scheduling_policy: priority`: requests' `priority` is honoured

    def __init__(self, settings: VllmSettings):
        self.engine_args = engine_args(settings)
        self.priority_scheduling = self.engine_args.get("scheduling_policy") == "priority"
        self.adapters = Adapters(settings.lora_modules or (), self.engine_args.get("enable_lora"))
        self.lora_control = LoraControl(settings, self.adapters, self.engine_args.get("enable_lora"))
        self._llm = None
        self._tokenizer = None
        self.max_model_len: int | None = None
        self.stats = EngineStats()
        self._stat_loggers = None
        self.max_num_seqs = 0
        self.max_image_pixels = settings.max_image_pixels

    async def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        from triton_llm.generation.engines.vllm.stats import StatLoggers

        args = AsyncEngineArgs(**self.engine_args)
        self._stat_loggers = StatLoggers(self.stats)
        self._llm = AsyncLLM.from_engine_args(
            args, usage_context=UsageContext.OPENAI_API_SERVER, stat_loggers=[self._stat_loggers]
        )
        self._tokenizer = self._llm.get_tokenizer()
        self.max_model_len = self._llm.model_config.max_model_len
        self.max_num_seqs = self._llm.vllm_config.scheduler_config.max_num_seqs  # vLLM's default when not given
        for adapter in self.adapters.requests():
            # Loaded now, as vLLM's server does: a bad adapter stops the load, not a request.
            await self._llm.add_lora(adapter)
        # A CPU's last LoRA slot stays empty (lora.keep_a_cpu_slot_empty), so at most max_loras - 1 adapters.
        capacity = None if hf_loading.has_gpu() else self.engine_args.get("max_loras", 1) - 1
        self.lora_control.started(self._llm, self.engine_args["model"], capacity)
        logger.info("vLLM engine ready: %s", self.engine_args)

    def num_choices(self, request: GenerateRequest) -> int:
        # A control request (lora_control) has no choices: the runner counts no tokens for it.
        return 0 if request.lora_control is not None else int(request.sampling.get("n", 1) or 1)

    async def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]:
        if request.lora_control is not None:  # answered with no generation, as tokenize_only
            yield GenerationChunk(await self.lora_control.answer(request.lora_control), 0, [], True)
            return
        lora = await self.lora_control.lookup(request.sampling.get("lora_name"))
        self.adapters.hold(lora)  # an unload meanwhile lets this request finish with its adapter
        try:
            async with aclosing(self._generate(request, request_id, lora)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            if (lora_id := self.adapters.release(lora)) is not None:
                self.lora_control.forget(lora_id)

    async def _generate(self, request: GenerateRequest, request_id: str, lora: Any) -> AsyncIterator[GenerationChunk]:
        from triton_llm.generation.engines.vllm.sampling import to_sampling_params

        sampling = dict(request.sampling)
        sampling.pop("lora_name", None)
        beams = 0
        if request.beam_length_penalty is not None:
            # `n` is the beam width, not SamplingParams' (which refuses n > 1 when greedy): checked apart.
            beams = to_sampling_params({"n": sampling.pop("n", 1), "temperature": 1.0}, False).n
        params = to_sampling_params(sampling, request.stream)
        refuse_unsupported(request, "vllm", priority_scheduling=self.priority_scheduling, beam_search=True)
        if request.prompt_ids is not None:
            check_token_ids(request.prompt_ids, self._vocab_limit())
        multimodal.refuse_if_text_only(request, self._llm.model_config)
        prompt = render_prompt(self._tokenizer, request)
        chat = request.messages is not None
        field = prompt_field(request)
        engine_input = await self._tokenize(request, prompt, field)
        prompt_ids = engine_input["prompt_token_ids"]
        num_input = len(prompt_ids)
        if request.truncate_prompt_tokens is not None:
            prompt = self._tokenizer.decode(prompt_ids)  # what the model saw, for echo
        prompt_logprobs = None
        check_max_tokens(params.max_tokens, num_input, self.max_model_len, "messages" if chat else "prompt")
        started = finished = False
        if request.beam_length_penalty is None:
            outputs = self._llm.generate(engine_input, params, request_id, lora_request=lora, priority=request.priority)
        else:  # imported here: its vLLM module is newer than the oldest vLLM we support (vllm-compat)
            from triton_llm.generation.engines.vllm.beam_search import search

            room, penalty = self.max_model_len - num_input, request.beam_length_penalty
            outputs = search(self._llm, engine_input, params, beams, penalty, request_id, lora, room)
        try:
            async for output in outputs:
                started, finished = True, output.finished
                if prompt_logprobs is None and output.prompt_logprobs:
                    prompt_logprobs = self._prompt_logprobs(prompt_ids, output.prompt_logprobs)
                yield GenerationChunk(
                    prompt=prompt,
                    num_input_tokens=num_input,
                    choices=[_choice(c) for c in output.outputs],
                    finished=output.finished,
                    prompt_token_ids=prompt_ids,
                    prompt_logprobs=prompt_logprobs,
                    timings=_timings(output) if output.finished else None,
                )
        except Exception as exc:
            # vLLM checks the sampling parameters against the model before scheduling.
            error = multimodal.client_error(exc, request, field) or client_error(exc, field)
            if not started and error is not None:
                raise error from None
            raise RuntimeError(describe(exc)) from exc
        finally:
            if not finished:
                # A failure in add_request (or a client gone) must leave nothing in the engine.
                await self._abort(request_id)

    async def _tokenize(self, request: GenerateRequest, prompt: str, field: str) -> dict[str, Any]:
        """The prompt as vLLM's own server hands it to the engine: rendered (tokenized off the
        event loop, truncated, length-checked) by vLLM's renderer, so we know its length first.
        Token ids go in as they are (a `TokensPrompt`)."""
        from vllm.renderers.inputs.preprocess import parse_model_prompt

        from triton_llm.generation.engines.vllm import compat

        renderer = self._llm.renderer
        # A rendered chat template already holds its special tokens (as in vLLM's server).
        chat = request.messages is not None
        tok_params = compat.tok_params(renderer, self._llm.model_config, chat)
        keep = truncation_length(request, self.max_model_len, room_for_output=True)
        if keep is not None:
            # vLLM's tokenizer truncates on the left for generation: the last `keep` tokens stay.
            tok_params = compat.with_truncation(tok_params, keep)
        source = {"prompt_token_ids": request.prompt_ids} if request.prompt_ids is not None else prompt
        source = await multimodal.with_images(source, request, self._llm.model_config, self.max_image_pixels)
        try:
            (engine_input,) = await renderer.render_cmpl_async(
                [parse_model_prompt(self._llm.model_config, source)], tok_params
            )
        except Exception as exc:
            error = multimodal.client_error(exc, request, field) or client_error(exc, field)
            if error is not None:
                raise error from None
            raise
        return engine_input

    def _vocab_limit(self) -> int:
        # vLLM's own bound (Renderer.validate_token_ids): the larger of the tokenizer's and the model's.
        return max(self._tokenizer.max_token_id, self._llm.model_config.get_vocab_size() - 1)

    def _prompt_logprobs(self, prompt_ids: list[int], positions: list) -> list[dict[int, dict[str, Any]]]:
        """vLLM's prompt logprobs (None for the first token, which nothing predicts), the first
        given its token and text so that an echo can show it (as vLLM's server decodes it)."""
        first = {"logprob": None, "rank": None, "decoded_token": self._tokenizer.decode([prompt_ids[0]])}
        return [{prompt_ids[0]: first}, *(_positions(positions[1:]))]

    async def _abort(self, request_id: str) -> None:
        try:
            await self._llm.abort(request_id)
        except Exception:  # the engine may be dead; the request's own error says more
            logger.exception("aborting request %s failed", request_id)

    def num_unfinished(self) -> int:
        return self._llm.get_num_unfinished_requests() if self._llm is not None else 0

    def load(self) -> Load:
        return self._stat_loggers.load() if self._stat_loggers is not None else Load()

    def dead(self) -> str | None:
        # vLLM's output handler marks the client errored once the engine process is gone.
        if self._llm is not None and self._llm.errored:
            return describe(self._llm.dead_error)
        return None

    async def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None


def _timings(output: Any) -> EngineTimings | None:
    """vLLM's own timestamps of a finished request (`output.metrics`, a `RequestStateStats` kept because
    our stat logger turns its stats on; its engine core's time.monotonic), None where it measured not all."""
    metrics = getattr(output, "metrics", None)  # older vLLMs' outputs may carry none
    stamps = [getattr(metrics, f, 0.0) for f in ("queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts")]
    return EngineTimings(*stamps) if all(stamps) else None


def _positions(steps: list) -> list[dict[int, dict[str, Any]]]:
    # -inf (a token the sampler ruled out) is not JSON; vLLM's server sends -9999.0 for it.
    return [
        {
            token_id: {"logprob": max(lp.logprob, -9999.0), "rank": lp.rank, "decoded_token": lp.decoded_token}
            for token_id, lp in step.items()
        }
        for step in steps
    ]


def _choice(c: Any) -> ChoiceDelta:
    return ChoiceDelta(
        index=c.index,
        text=c.text,
        num_tokens=len(c.token_ids),
        finish_reason=c.finish_reason,
        cumulative_logprob=c.cumulative_logprob,
        logprobs=None if c.logprobs is None else _positions(c.logprobs),
        token_ids=list(c.token_ids),
    )
