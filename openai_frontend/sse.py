"""Server-Sent Events exactly as OpenAI sends them: `data: {...}\\n\\n`, then `data: [DONE]\\n\\n`.

The response starts with the first chunk, not before: an error before it (the model's
refusal of a field, or of the request itself when it is full: 400, 429) is the response's
status, as it would be without `stream`, and as vLLM's server answers. An error after the
stream has begun cannot change the status code any more: it goes out as an error event in
OpenAI's shape, and the stream ends cleanly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import StreamingResponse

from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import APIError, ServerError
from openai_frontend.request_log import note_stream_error

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Framing:
    """How a stream's events are written: OpenAI's (`data:` lines, then `[DONE]`) by default,
    Anthropic's for /v1/messages (anthropic_wire: `event:` lines, no end marker)."""

    event: Callable[[dict], bytes]
    error: Callable[[APIError], bytes]
    end: bytes


async def stream_response(
    request: Request, endpoint: Endpoint, chunks: AsyncGenerator[dict, None], framing: Framing | None = None
) -> StreamingResponse:
    """The response of a streamed request; `endpoint` labels its metrics."""
    framing = framing or OPENAI
    metrics = request.app.state.metrics
    started = time.perf_counter()
    try:
        head = [await anext(chunks)]  # an APIError here is the response's status
    except StopAsyncIteration:
        head = []
    metrics.time_to_first_token.labels(endpoint).observe(time.perf_counter() - started)

    async def events() -> AsyncIterator[bytes]:
        try:
            for chunk in head:
                yield framing.event(chunk)
            async for chunk in chunks:
                yield framing.event(chunk)
        except APIError as exc:
            metrics.errors.labels(endpoint, str(exc.status)).inc()
            note_stream_error(exc.status)
            yield framing.error(exc)
        except Exception:
            logger.exception("%s: stream failed", endpoint)
            metrics.errors.labels(endpoint, "500").inc()
            note_stream_error(500)
            yield framing.error(ServerError("internal server error"))
        finally:
            await chunks.aclose()  # a client gone before the first `async for` step: Triton's stream too
        if framing.end:
            yield framing.end

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _event(chunk: dict) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _error(error: APIError) -> bytes:
    return b"data: " + json.dumps(error.body()).encode() + b"\n\n"


OPENAI = Framing(_event, _error, b"data: [DONE]\n\n")
