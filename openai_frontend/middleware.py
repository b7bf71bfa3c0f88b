"""Pure ASGI middleware that must see a request before FastAPI parses it.

- `RequestId`: every response carries `x-request-id`, the client's own when it sent a sane
  one, and the routers give Triton the same id (`request_id(request)`), so one request can
  be followed through the frontend's, Triton's and the engine's logs.
- `BodyLimit`: a body over the limit is a 413 in OpenAI's shape, decided from
  `Content-Length` before a byte is read, or while a chunked body streams in, and never
  parsed. FastAPI would otherwise read any size into memory and hand it to `json.loads`.
- `DrainGate`: counts the requests in flight (to a stream's last byte) for the drain on SIGTERM
  (`server.py`), and once it has begun refuses new ones with a 503 and `Retry-After`, so that
  the client retries elsewhere. The probes and /metrics pass uncounted: they must keep telling
  the truth, and must not hold the drain open.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openai_frontend.anthropic_wire import body_for
from openai_frontend.errors import APIError, PayloadTooLarge, ServiceUnavailable

HEADER = "x-request-id"
# What we echo: printable ASCII without spaces, at most 128 characters. Anything else (a
# newline that would forge a log line, a megabyte of id) gets a fresh id instead.
_SANE_ID = re.compile(r"[\x21-\x7e]{1,128}")
UNGATED = frozenset(
    {"/", "/health", "/health/live", "/health/ready", "/metrics", "/v2/health/live", "/v2/health/ready"}
)
# Long enough for a load balancer to stop sending us new connections (Kubernetes removes a
# terminating pod from its Service within seconds), so the client's retry lands elsewhere.
DRAIN_RETRY_AFTER_S = 5


def request_id(request: Request) -> str:
    """The id of this request, as `RequestId` chose it ("" outside the app)."""
    return getattr(request.state, "request_id", "")


class RequestId:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, HEADER.encode())
        rid = given if given is not None and _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, send)
        # Read the whole body here (FastAPI would buffer it anyway), counting as it comes.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(scope, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # from then on: http.disconnect, which streaming responses watch

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(
            f"The request body is over this server's limit of {self.max_bytes} bytes", code="request_too_large"
        )
        # No `connection: close`: the server reads and drops the rest of the body, so that a
        # client still sending it gets this answer rather than a reset connection.
        await send_error(send, error, path=scope["path"])


class Drain:
    """The requests in flight, and since when the server drains (None: it serves)."""

    def __init__(self) -> None:
        self.inflight = 0
        self.since: float | None = None

    @property
    def draining(self) -> bool:
        return self.since is not None

    def start(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def elapsed(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since


class DrainGate:
    def __init__(self, app: ASGIApp, drain: Drain):
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNGATED:
            return await self.app(scope, receive, send)
        if self.drain.draining:
            error = ServiceUnavailable(
                "The server is shutting down: retry, another replica will answer",
                retry_after=DRAIN_RETRY_AFTER_S, code="server_shutting_down",
            )  # fmt: skip
            # `connection: close`: a client's next request then opens a new connection, which a
            # load balancer can send to another replica.
            return await send_error(send, error, [(b"connection", b"close")], scope["path"])
        self.drain.inflight += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)  # returns after a stream's last byte
        finally:
            self.drain.inflight -= 1


async def send_error(send: Send, error: APIError, extra: list[tuple[bytes, bytes]] = (), path: str = "") -> None:
    """An error in the shape of the route at `path` (OpenAI's, or Anthropic's: anthropic_wire),
    sent from a middleware (before FastAPI's handlers)."""
    body = json.dumps(body_for(path, error)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers() or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
