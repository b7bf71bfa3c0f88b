"""The interface every generation engine implements for the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from triton_llm.protocol import GenerateRequest, GenerationChunk


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
