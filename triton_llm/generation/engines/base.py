"""The interface every generation engine implements for the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from triton_llm.errors import InvalidInput
from triton_llm.generation.types import GenerateRequest, GenerationChunk


class Engine(Protocol):
    """A generation engine living on the runner's event loop.

    `generate` yields chunks until one has `finished=True`; the runner cancels the
    iterating task to abort a request, and the engine must free its resources then.
    Client mistakes raise `InvalidInput` before the first chunk.
    """

    async def start(self) -> None: ...

    def num_choices(self, request: GenerateRequest) -> int: ...

    def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]: ...

    def num_unfinished(self) -> int:
        """Requests the engine still holds; read from another thread for the metrics."""
        ...

    async def shutdown(self) -> None: ...


def render_prompt(tokenizer: Any, request: GenerateRequest) -> str:
    """The prompt text: `text_input` as it is, or `messages` through the model's chat template."""
    if request.messages is None:
        assert request.prompt is not None
        return request.prompt
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidInput("messages", "this model has no chat template; send text_input")
    try:
        return tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja errors from the template itself
        raise InvalidInput("messages", f"the chat template rejected them: {exc}") from None
