"""Typed errors, mapped to OpenAI's error shape in one place; Triton's errors decoded in one place.

{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class APIError(Exception):
    status = 500
    type = "server_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(APIError):
    status, type = 400, "invalid_request_error"


class Unauthorized(APIError):
    status, type = 401, "authentication_error"


class NotFound(APIError):
    status, type = 404, "not_found_error"


class ServiceUnavailable(APIError):
    status, type = 503, "service_unavailable"


class ServerError(APIError):
    status, type = 500, "server_error"


class InvalidField(BadRequest):
    """A model refused one of its inputs: `field` is the model's name for it (`text_input`,
    `sampling_parameters.max_tokens`), which the serving layer renames to the endpoint's
    OpenAI parameter (`serving.fields`)."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem, param=field)
        self.field, self.problem = field, problem


def from_triton(message: str, status: str = "") -> APIError:
    """An error from Triton as ours: the model's structured error, `{"message", "param"}`
    (docs/protocol.md#errors), or one of Triton's own plain messages, by its status."""
    structured = _structured(message)
    if structured is not None:
        return structured
    if "UNAVAILABLE" in status or "failed to connect" in message:
        return ServiceUnavailable(f"Triton is unavailable: {message}")
    if "NOT_FOUND" in status or "unknown model" in message or "is not found" in message:
        return NotFound(message, param="model", code="model_not_found")
    if "INVALID_ARG" in status:
        return BadRequest(message)
    return ServerError(message)


def _structured(message: str) -> InvalidField | None:
    # Only the models' client mistakes are JSON: a stream error carries no status, so the
    # shape itself says "400".
    if not message.startswith("{"):
        return None
    try:
        data = json.loads(message)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return None
    param = data.get("param")
    return InvalidField(param if isinstance(param, str) else None, data["message"])


def _param(loc: tuple) -> str | None:
    # pydantic names the union member it tried ("str", "list[TextPart]"); clients know fields.
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and (p in _TYPES or "[" in p))]
    return ".".join(parts) or None


_TYPES = {"str", "int", "float", "bool", "dict", "list", "none"}


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        # Of a union's failed members, the deepest error says most (an image part in
        # `content` is "content.0.type: Input should be 'text'", not "not a string").
        first = max(exc.errors(), key=lambda e: len(e.get("loc", ())))
        param = _param(tuple(first.get("loc", ())))
        message = first.get("msg", "invalid request").removeprefix("Value error, ")
        if param:
            message = f"{param}: {message}"
        return JSONResponse(BadRequest(message, param=param).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        cls = {404: NotFound, 401: Unauthorized}.get(
            exc.status_code, BadRequest if exc.status_code < 500 else ServerError
        )
        err = cls(str(exc.detail))
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        logger.exception("unexpected error")
        return JSONResponse(ServerError("internal server error").body(), status_code=500)
