"""A client that goes away cancels its request's work, streamed or not, as vLLM's
`with_cancellation` (vllm/entrypoints/utils.py) does.

A streamed response already stops when its client leaves: Starlette's StreamingResponse
watches for `http.disconnect` and cancels the SSE generator, which cancels the gRPC stream.
A non-streamed handler has no such watcher: it would await the model's whole answer for
nobody, and an SDK that retries a timed-out request would leave several full generations
running. `cancel_on_disconnect` runs the handler beside a task that waits for the client's
`http.disconnect`; the first to finish cancels the other. Cancelling the handler cancels
what it awaits: `triton_client.generate`'s `finally` cancels its gRPC streams, and an
embeddings `infer` in flight is cancelled with its call.

This listens on `request.receive()` after the handler's body was read: FastAPI has parsed it
into the pydantic body before the handler runs, and `middleware.BodyLimit` replays it once and
then hands on the server's own messages, so the only message left to come is the disconnect.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from fastapi import Request, Response

P = ParamSpec("P")

# nginx's "client closed request": no one reads it, but the request metrics count it apart.
CLIENT_CLOSED = 499


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def cancel_on_disconnect(handler: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
    """Wrap a route handler that takes `request: Request` (by keyword, as FastAPI calls it)."""

    @functools.wraps(handler)  # FastAPI reads the handler's own signature through __wrapped__
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        request = kwargs["request"]
        if not isinstance(request, Request):
            raise TypeError(f"{handler.__name__} must take `request: Request`")
        work = asyncio.ensure_future(handler(*args, **kwargs))
        listener = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({work, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # whichever finished first, and when this task is itself cancelled
            listener.cancel()
            if not work.done():
                work.cancel()
                # Let its `finally` blocks (the gRPC streams' cancel) run before we answer.
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            return Response(status_code=CLIENT_CLOSED)
        # The handler's answer or error, as without this wrapper; a streamed handler returns
        # its StreamingResponse at once, which watches for the disconnect from then on.
        return work.result()

    return wrapper
