"""A generation engine whose behaviour each test scripts, and which records what reached it.

It implements `triton_llm.generation.engines.base.Engine`. A request's prompt picks its
`Script` (the default otherwise): how many tokens to produce and how fast, whether to end
without a final chunk, to raise, or to hang until the runner cancels it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from triton_llm.generation.stats import EngineStats, Load
from triton_llm.generation.types import ChoiceDelta, GenerateRequest, GenerationChunk


@dataclass
class Script:
    chunks: int = 3
    delay: float = 0.0  # seconds before each chunk
    finish: bool = True  # False: stop after the chunks without a finished one
    error: BaseException | None = None  # raised after the chunks
    hang: bool = False  # after the chunks, wait until cancelled


class FakeEngine:
    max_num_seqs = 256  # vLLM's default on a GPU: the runner admits 512

    def __init__(self, scripts: dict[str, Script] | None = None, default: Script | None = None):
        self.scripts = scripts or {}
        self.default = default or Script()
        self.started = False
        self.shut_down = False
        self.seen: dict[str, str] = {}  # engine request id -> prompt
        self.cancelled: set[str] = set()  # engine request ids whose generator saw the cancellation
        self.active: set[str] = set()
        self.threads: set[str] = set()  # names of the threads that ran generate
        self.hanging = threading.Semaphore(0)  # released once per request that starts to hang
        self.release_shutdown = threading.Event()
        self.release_shutdown.set()  # a test clears it to hold `shutdown`
        self.in_shutdown = threading.Event()
        self.death: str | None = None
        self.stats = EngineStats()

    async def start(self) -> None:
        self.started = True

    def num_choices(self, request: GenerateRequest) -> int:
        return 1

    def num_unfinished(self) -> int:
        return len(self.active)

    def load(self) -> Load:
        return Load(running=len(self.active))

    def dead(self) -> str | None:
        return self.death  # a test sets it: the engine's process is gone

    async def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]:
        script = self.scripts.get(request.prompt or "", self.default)
        self.seen[request_id] = request.prompt or ""
        self.threads.add(threading.current_thread().name)
        self.active.add(request_id)
        try:
            # As the real engines do: deltas when streaming, else one chunk with everything.
            text = ""
            for i in range(script.chunks):
                if script.delay:
                    await asyncio.sleep(script.delay)
                text += f"t{i} "
                last = i == script.chunks - 1 and script.finish and script.error is None and not script.hang
                if request.stream:
                    yield _chunk(request, f"t{i} ", last)
            if not request.stream and script.chunks and script.error is None and not script.hang:
                yield _chunk(request, text, script.finish)
            if script.error is not None:
                raise script.error
            if script.hang:
                self.hanging.release()
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.add(request_id)  # where a real engine aborts its request
            raise
        finally:
            self.active.discard(request_id)

    async def shutdown(self) -> None:
        self.in_shutdown.set()
        while not self.release_shutdown.is_set():
            await asyncio.sleep(0.01)
        self.shut_down = True


def _chunk(request: GenerateRequest, text: str, finished: bool) -> GenerationChunk:
    choice = ChoiceDelta(index=0, text=text, num_tokens=len(text.split()), finish_reason="stop" if finished else None)
    return GenerationChunk(prompt=request.prompt or "", num_input_tokens=2, choices=[choice], finished=finished)


class IdleEngine:
    """The engine protocol's bookkeeping with nothing running: a base for engines that script
    only `generate` (the chat layer's tests)."""

    max_num_seqs = 8

    def __init__(self):
        self.stats = EngineStats()

    async def start(self) -> None: ...

    def num_choices(self, request: GenerateRequest) -> int:
        return 1

    def num_unfinished(self) -> int:
        return 0

    def load(self) -> Load:
        return Load()

    def dead(self) -> None:
        return None

    async def shutdown(self) -> None: ...
