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

from openai_frontend.anthropic_wire import body_for

logger = logging.getLogger(__name__)


class APIError(Exception):
    status = 500
    type = "server_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        # A client's text quoted back (a model name, a key) may hold a lone surrogate, which
        # no JSON encoder can write as UTF-8: show it escaped rather than fail with a 500.
        message, param = printable(message), printable(param)
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str] | None:
        return None


class BadRequest(APIError):
    status, type = 400, "invalid_request_error"


class Unauthorized(APIError):
    status, type = 401, "authentication_error"


class NotFound(APIError):
    status, type = 404, "not_found_error"


class PayloadTooLarge(APIError):
    status, type = 413, "invalid_request_error"


class RetryLater(APIError):
    """A refusal that a retry may get past: the response says when, in `Retry-After` (seconds)."""

    def __init__(self, message: str, retry_after: int | None = 1, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return None if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(RetryLater):
    status, type = 503, "service_unavailable"


class TooManyRequests(RetryLater):
    """A model's bound of admitted requests is reached (TGI's and OpenAI's 429)."""

    status, type = 429, "rate_limit_error"


class ServerError(APIError):
    status, type = 500, "server_error"


class InvalidField(BadRequest):
    """A model refused one of its inputs: `field` is the model's name for it (`text_input`,
    `sampling_parameters.max_tokens`), which the serving layer renames to the endpoint's
    OpenAI parameter (`serving.fields`)."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem, param=field)
        self.field, self.problem = field, problem


class FieldValueError(ValueError):
    """A validator's refusal that names its own place in the request (`param`), where
    pydantic's location would name only the model it ran on (a check of the whole raw body)."""

    def __init__(self, param: str | None, problem: str):
        super().__init__(f"{param}: {problem}" if param else problem)
        self.param, self.problem = param, problem


def from_triton(message: str, status: str = "") -> APIError:
    """An error from Triton as ours: the model's structured error, `{"message", "param"}`
    (docs/protocol.md#errors), or one of Triton's own plain messages, by its status."""
    structured = _structured(message)
    if structured is not None:
        return structured
    if _QUEUE_FULL in message:
        return TooManyRequests(f"{message}: the model's queue is full; retry later")
    if "UNAVAILABLE" in status or "failed to connect" in message or _STUB_DEAD in message or _NOT_LOADED in message:
        return ServiceUnavailable(f"Triton is unavailable: {message}")
    if "NOT_FOUND" in status or "unknown model" in message or "is not found" in message:
        return NotFound(message, param="model", code="model_not_found")
    if "INVALID_ARG" in status:
        return BadRequest(message)
    return ServerError(message)


# Triton's words for a model whose Python-backend process died (it never restarts it), and
# for a known model that is not loaded (serve is reloading it): both pass, so 503.
_STUB_DEAD = "is not healthy"
_NOT_LOADED = "has no available versions"
# Triton's words (UNAVAILABLE) for a request refused by a dynamic batcher's bound,
# `default_queue_policy { max_queue_size }` (the encoder models' load shedding).
_QUEUE_FULL = "Exceeds maximum queue size"
_RETRY_LATER = {"overloaded": TooManyRequests, "unavailable": ServiceUnavailable}


def _structured(message: str) -> APIError | None:
    # The models' structured errors are JSON, and a stream error carries no status, so the
    # shape itself says which: `type` overloaded/unavailable (429/503), else a client's
    # mistake naming its field (400).
    if not message.startswith("{"):
        return None
    try:
        data = json.loads(message)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return None
    if data.get("type") in _RETRY_LATER:
        retry_after = data.get("retry_after")
        return _RETRY_LATER[data["type"]](data["message"], retry_after if isinstance(retry_after, int) else 1)
    param = data.get("param")
    return InvalidField(param if isinstance(param, str) else None, data["message"])


def _param(loc: tuple) -> str | None:
    # pydantic names the union member it tried ("str", "list[TextPart]"); clients know fields.
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and _is_type(p))]
    return ".".join(parts) or None


_TYPES = {"str", "int", "float", "bool", "dict", "list", "none"}


def _is_type(part: str) -> bool:
    return part in _TYPES or "[" in part or part.startswith("constrained-")


def printable(text: str | None) -> str | None:
    """`text` with anything UTF-8 cannot encode (a lone surrogate) written as a backslash escape."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_error(errors: list[dict]) -> BadRequest:
    """pydantic's errors about a request body as one 400 naming the field."""
    # Of a union's failed members, the deepest error says most (an image part in
    # `content` is "content.0.type: Input should be 'text'", not "not a string").
    # Between equally deep ones, a broken constraint says more than a wrong type ("at most 16
    # items" of a list, not "not a string" of `str | list[str]`).
    first = max(errors, key=lambda e: (len(e.get("loc", ())), not e.get("type", "").endswith("_type")))
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldValueError):
        return BadRequest(str(cause), param=cause.param)
    if first.get("type") == "json_invalid":  # FastAPI's loc is the character offset, not a field
        reason = cause.removesuffix(" at") if isinstance(cause, str) else "JSON decode error"
        return BadRequest(f"The request body is not valid JSON: {reason} (character {first['loc'][-1]})")
    param = _param(tuple(first.get("loc", ())))
    if param is None and first.get("type") in _NOT_AN_OBJECT:
        return BadRequest("The request body must be a JSON object, sent with 'Content-Type: application/json'")
    message = first.get("msg", "invalid request").removeprefix("Value error, ")
    return BadRequest(f"{param}: {message}" if param else message, param=param)


# pydantic's words for a body that is no object (a form, an array, a string, nothing).
_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type", "missing"}
# Why FastAPI could not read a body at all (its own message says only "error parsing the body").
_UNREADABLE = {
    UnicodeDecodeError: "The request body is not valid UTF-8",
    RecursionError: "The request body is nested too deeply to parse",
}


def install(app: FastAPI) -> None:
    # Each body in its route's shape: OpenAI's, or Anthropic's on the Messages routes (anthropic_wire).
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(body_for(request.url.path, exc), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return JSONResponse(body_for(request.url.path, validation_error(exc.errors())), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        cls = {404: NotFound, 401: Unauthorized}.get(
            exc.status_code, BadRequest if exc.status_code < 500 else ServerError
        )
        err = cls(_UNREADABLE.get(type(exc.__cause__)) or str(exc.detail))
        err.status = exc.status_code
        return JSONResponse(body_for(request.url.path, err), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Answered outside every middleware (Starlette's outermost layer): add the id here.
        rid = getattr(request.state, "request_id", "")
        logger.exception("unexpected error (request %s)", rid)
        headers = {"x-request-id": rid} if rid else None
        body = body_for(request.url.path, ServerError("internal server error"))
        return JSONResponse(body, status_code=500, headers=headers)
