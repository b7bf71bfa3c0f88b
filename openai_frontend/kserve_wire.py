"""KServe's error shape on the KServe routes (routers/kserve.py): `{"error": "<message>"}`, as
KServe's model server and Triton's HTTP API answer, the message naming the field as our
OpenAI-shaped errors do (`inputs.0.data: ...`, `instances.2: ...`).

The routes use `KServeRoute`, which renders every error raised while serving them, the key's
401, a body the schema refuses and a body that is not JSON included. A body over the size
limit and a drain's 503 are answered by the middleware before any route, in OpenAI's shape
(`{"error": {"message": ...}}`: still an object under "error", with the same status).
When KSERVE_OPENAI_ROUTE_PREFIX is empty, GET /v1/models/{m} is OpenAI's model card and
KServe's model readiness at once, so its errors keep OpenAI's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from openai_frontend.errors import APIError, validation_error

_UNREADABLE = {RecursionError: "The request body is nested too deeply to parse",
               UnicodeDecodeError: "The request body is not valid UTF-8"}  # fmt: skip


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class KServeRoute(APIRoute):
    """A route whose errors are KServe's `{"error": "..."}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except APIError as exc:
                if _openai_shared(request):
                    raise
                return error(exc.status, exc.message, exc.headers())
            except RequestValidationError as exc:
                if _openai_shared(request):
                    raise
                return error(400, validation_error(exc.errors()).message)
            except HTTPException as exc:  # FastAPI's: a body it could not read
                if _openai_shared(request):
                    raise
                return error(exc.status_code, _UNREADABLE.get(type(exc.__cause__)) or str(exc.detail))

        return route


def _openai_shared(request: Request) -> bool:
    """GET /v1/models/{m} with no OpenAI prefix: OpenAI's route too, so OpenAI's error shape."""
    path = request.url.path
    return request.app.state.settings.route_prefix == "" and path.startswith("/v1/") and not path.endswith(":predict")
