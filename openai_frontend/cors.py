"""CORS for browser clients, off unless origins are given: Starlette's CORSMiddleware with
vLLM's settings (`--allowed-origins`, `--allowed-methods`, `--allowed-headers`,
`--allow-credentials`), exposing `x-request-id` and `Retry-After` to scripts, and refusing a
preflight in OpenAI's error shape.

app.py places it outside the routes, hence before the API key check: a browser's preflight
(`OPTIONS` with `Access-Control-Request-Method`) never carries `Authorization`, and is answered
here; the request that follows carries the key. Without origins it is not in the chain at
all: no CORS header on any answer, as before.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from openai_frontend.errors import BadRequest
from openai_frontend.middleware import HEADER
from openai_frontend.settings import Settings


class CORS(CORSMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings):
        super().__init__(
            app,
            allow_origins=settings.allowed_origins,
            allow_methods=settings.allowed_methods,
            allow_headers=settings.allowed_headers,
            allow_credentials=settings.allow_credentials,
            expose_headers=[HEADER, "retry-after"],
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        # Starlette's plain "Disallowed CORS origin, method" as OpenAI's error shape.
        error = BadRequest(bytes(response.body).decode(), code="cors_not_allowed")
        kept = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return JSONResponse(error.body(), status_code=error.status, headers=kept)
