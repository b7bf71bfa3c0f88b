"""Server-Sent Events exactly as OpenAI sends them: `data: {...}\\n\\n`, then `data: [DONE]\\n\\n`.

An error after the stream has begun cannot change the status code any more: it goes out
as an error event in OpenAI's shape, and the stream ends cleanly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from openai_frontend.errors import APIError, ServerError

logger = logging.getLogger(__name__)


def stream_response(request: Request, endpoint: str, chunks: AsyncIterator[dict]) -> StreamingResponse:
    metrics = request.app.state.metrics
    started = time.perf_counter()

    async def events() -> AsyncIterator[bytes]:
        first = True
        try:
            async for chunk in chunks:
                if first:
                    metrics.time_to_first_token.labels(endpoint).observe(time.perf_counter() - started)
                    first = False
                yield b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
        except APIError as exc:
            metrics.errors.labels(endpoint, str(exc.status)).inc()
            yield b"data: " + json.dumps(exc.body()).encode() + b"\n\n"
        except Exception:
            logger.exception("%s: stream failed", endpoint)
            metrics.errors.labels(endpoint, "500").inc()
            yield b"data: " + json.dumps(ServerError("internal server error").body()).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
