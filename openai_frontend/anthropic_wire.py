"""Anthropic's wire shapes for the Messages API routes: their errors and their SSE framing.

Every error on /v1/messages and /v1/messages/count_tokens, wherever it is raised (a body
over the limit in the middleware, a missing key, a field the schema refuses, the model's
refusal, a stream's failure), is sent as Anthropic's
`{"type": "error", "error": {"type": ..., "message": ...}}`, its type by status as in
Anthropic's API, and its message naming the field, as our OpenAI-shaped errors do.
`errors.install` and `middleware.send_error` ask `body_for` which shape a path gets.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors.py imports this module
    from openai_frontend.errors import APIError

# The routes' paths end so, whatever the route prefix (no other route does).
_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
# Anthropic's error types by HTTP status (docs.anthropic.com/en/api/errors).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def is_messages_path(path: str) -> bool:
    return path.rstrip("/").endswith(_PATHS)


def error_body(status: int, message: str) -> dict:
    kind = _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def body_for(path: str, error: APIError) -> dict:
    """The body of `error` on `path`: Anthropic's shape on the Messages routes, else OpenAI's."""
    return error_body(error.status, error.message) if is_messages_path(path) else error.body()


def event(data: dict) -> bytes:
    """One SSE event as Anthropic sends it: its type named on the `event:` line too."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {data['type']}\ndata: {payload}\n\n".encode()


def error_event(error: APIError) -> bytes:
    """A failure after the stream began (its status is sent): an `error` event, then the end."""
    return event(error_body(error.status, error.message))
