"""vLLM's AsyncLLM behind the Engine interface: continuous batching is vLLM's own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.base import render_prompt
from triton_llm.generation.engines.vllm_args import engine_args
from triton_llm.generation.types import ChoiceDelta, GenerateRequest, GenerationChunk
from triton_llm.settings import VllmSettings

logger = logging.getLogger(__name__)


class VllmEngine:
    def __init__(self, settings: VllmSettings):
        self.engine_args = engine_args(settings)
        self._llm = None
        self._tokenizer = None
        self.max_model_len: int | None = None

    async def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**self.engine_args)
        self._llm = AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)
        self._tokenizer = self._llm.get_tokenizer()
        self.max_model_len = self._llm.model_config.max_model_len
        logger.info("vLLM engine ready: %s", self.engine_args)

    def num_choices(self, request: GenerateRequest) -> int:
        return int(request.sampling.get("n", 1) or 1)

    async def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]:
        from vllm.exceptions import VLLMClientError

        from triton_llm.generation.engines.vllm_sampling import to_sampling_params

        params = to_sampling_params(request.sampling, request.stream)
        prompt = render_prompt(self._tokenizer, request)
        # A rendered chat template already holds its special tokens (as in vLLM's server).
        tokenization = {"add_special_tokens": False} if request.messages is not None else None
        num_input = None
        try:
            async for output in self._llm.generate(prompt, params, request_id, tokenization_kwargs=tokenization):
                if num_input is None:
                    num_input = len(output.prompt_token_ids or [])
                yield GenerationChunk(
                    prompt=prompt,
                    num_input_tokens=num_input,
                    choices=[_choice(c) for c in output.outputs],
                    finished=output.finished,
                )
        except (ValueError, VLLMClientError) as exc:
            # vLLM checks the prompt (length, token ids) before scheduling it.
            if num_input is not None:
                raise
            field = "messages" if request.messages is not None else "text_input"
            raise InvalidInput(field, str(exc).split(" (parameter=")[0]) from None

    def num_unfinished(self) -> int:
        return self._llm.get_num_unfinished_requests() if self._llm is not None else 0

    async def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None


def _choice(c: Any) -> ChoiceDelta:
    logprobs = None
    if c.logprobs is not None:
        logprobs = [
            {
                token_id: {"logprob": lp.logprob, "rank": lp.rank, "decoded_token": lp.decoded_token}
                for token_id, lp in step.items()
            }
            for step in c.logprobs
        ]
    return ChoiceDelta(
        index=c.index,
        text=c.text,
        num_tokens=len(c.token_ids),
        finish_reason=c.finish_reason,
        cumulative_logprob=c.cumulative_logprob,
        logprobs=logprobs,
    )
