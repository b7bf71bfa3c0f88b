"""The Responses API's process state (`app.state.responses`): its store, opened on first use
(a frontend that serves no Responses request touches no database), and the background
responses this process runs. Also the SSE of a streamed response, OpenAI's and vLLM's form
(`event: <type>` then `data: {...}`), which starts with the first event, as sse.py's."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine

from fastapi import Request
from fastapi.responses import StreamingResponse

from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import ServiceUnavailable
from openai_frontend.responses_store import ResponseStore, default_url, engine_url

logger = logging.getLogger(__name__)


class ResponsesState:
    def __init__(self, url: str | None, retention_s: float, max_bytes: int):
        self.url = url or default_url()
        engine_url(self.url)  # a URL of no database we speak fails the start, not a request
        self.retention_s, self.max_bytes = retention_s, max_bytes
        self._store: ResponseStore | None = None
        self._lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task] = {}

    async def store(self) -> ResponseStore:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    try:
                        self._store = await ResponseStore.open(self.url, self.retention_s, self.max_bytes)
                    except (OSError, ConnectionError) as exc:  # retried on the next request
                        logger.warning("responses store %s: %s", _safe(self.url), exc)
                        raise ServiceUnavailable(f"the responses store is unavailable: {exc}") from None
        return self._store

    def start(self, response_id: str, work: Coroutine) -> None:
        task = asyncio.ensure_future(work)
        self._tasks[response_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(response_id, None))

    def stop(self, response_id: str) -> None:
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._store is not None:
            await self._store.close()


def _safe(url: str) -> str:
    """The URL without its password, for the log."""
    head, at, tail = url.rpartition("@")
    return f"{head.split(':', 2)[0]}:...@{tail}" if at else url


async def stream(request: Request, events: AsyncGenerator[dict, None]) -> StreamingResponse:
    started = time.perf_counter()
    head = [await anext(events)]  # an APIError here (the model's refusal) is the response's status
    request.app.state.metrics.time_to_first_token.labels(Endpoint.RESPONSES).observe(time.perf_counter() - started)

    async def body() -> AsyncIterator[bytes]:
        try:
            for event in head:
                yield _event(event)
            async for event in events:
                yield _event(event)
        except Exception:
            logger.exception("responses: stream failed")
            error = {"type": "error", "code": "server_error", "message": "internal server error", "param": None}
            yield _event(error)
        finally:
            await events.aclose()  # a client gone: the model's stream is cancelled with it

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _event(event: dict) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
