"""The interface every generation engine implements for the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from triton_llm.errors import InvalidInput
from triton_llm.generation.stats import EngineStats, Load
from triton_llm.generation.types import GenerateRequest, GenerationChunk


class Engine(Protocol):
    """A generation engine living on the runner's event loop.

    `generate` yields chunks until one has `finished=True`; the runner cancels the
    iterating task to abort a request, and the engine must free its resources then.
    Client mistakes raise `InvalidInput` before the first chunk.
    `stats` holds what only the engine measures (time to first token, inter-token latency,
    queue time: `triton_llm.generation.stats`); the runner adds what it counts in chunks.
    """

    stats: EngineStats

    max_num_seqs: int
    """Sequences decoded together (known once started): the runner admits twice as many requests (admission)."""

    async def start(self) -> None: ...

    def num_choices(self, request: GenerateRequest) -> int: ...

    def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]: ...

    def num_unfinished(self) -> int:
        """Requests the engine still holds; read from another thread."""
        ...

    def load(self) -> Load:
        """Running and waiting requests and KV-cache usage, read from the response thread for the metrics."""
        ...

    def dead(self) -> str | None:
        """Why the engine can serve no more requests (its process or thread is gone), else None;
        polled from another thread."""
        ...

    async def shutdown(self) -> None: ...


def prompt_field(request: GenerateRequest) -> str:
    """The input that holds the prompt, for an error about the prompt."""
    if request.messages is not None:
        return "messages"
    return "input_ids" if request.prompt_ids is not None else "text_input"


def render_prompt(tokenizer: Any, request: GenerateRequest) -> str:
    """The prompt text: `text_input` as it is, `input_ids` decoded (what `echo` shows, as in
    vLLM), or `messages` through the model's chat template with `chat_template_kwargs`."""
    if request.prompt_ids is not None:
        return tokenizer.decode(request.prompt_ids)
    if request.messages is None:
        assert request.prompt is not None
        return request.prompt
    if request.chat_template is None and getattr(tokenizer, "chat_template", None) is None:
        raise InvalidInput("messages", "this model has no chat template; send text_input")
    # The request's variables may replace add_generation_prompt (as in vLLM), not `tokenize`.
    kwargs = {"add_generation_prompt": True, **(request.chat_template_kwargs or {}), "tokenize": False}
    if kwargs["add_generation_prompt"] and kwargs.get("continue_final_message"):
        raise InvalidInput(
            "chat_template_kwargs", "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
        )
    if kwargs.get("continue_final_message") and request.messages[-1]["role"] != "assistant":
        raise InvalidInput("messages", "continue_final_message needs a final assistant message to continue")
    try:
        return tokenizer.apply_chat_template(
            request.messages, tools=request.tools, chat_template=request.chat_template, **kwargs
        )
    except Exception as exc:  # jinja errors from the template itself
        field = "chat_template_kwargs" if request.chat_template_kwargs else "messages"
        raise InvalidInput(field, f"the chat template rejected them: {exc}") from None


def check_token_ids(ids: list[int], vocab_limit: int) -> None:
    """`input_ids` must be in the vocabulary (vLLM's check and wording), before anything decodes them."""
    if (largest := max(ids)) > vocab_limit:
        raise InvalidInput("input_ids", f"Token id {largest} is out of vocabulary")


def truncation_length(request: GenerateRequest, max_model_len: int, room_for_output: bool) -> int | None:
    """How many prompt tokens `truncate_prompt_tokens` keeps, as vLLM's server counts them: N,
    or with -1 what the context holds, less one token of room for a decoder-only model's output."""
    n = request.truncate_prompt_tokens
    if n is None:
        return None
    if n > max_model_len:
        raise InvalidInput(
            "sampling_parameters.truncate_prompt_tokens",
            f"truncate_prompt_tokens={n} cannot be greater than max_model_len={max_model_len}. "
            "Please request a smaller truncation size.",
        )
    return n if n > 0 else max_model_len - (1 if room_for_output else 0)


def truncate_prompt(ids: list[int], request: GenerateRequest, max_model_len: int, room_for_output: bool) -> list[int]:
    """`truncate_prompt_tokens` applied: the last tokens are kept (vLLM truncates on the left)."""
    keep = truncation_length(request, max_model_len, room_for_output)
    return ids[-keep:] if keep is not None and len(ids) > keep else ids
