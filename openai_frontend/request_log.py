"""The request log: one JSON line per request on the logger `openai_frontend.requests`, an
access log that knows the model and the tokens. Off by default (vLLM logs nothing per request
by default either), and then not in the middleware chain at all.

A line holds: `id` (x-request-id), `method`, `route` (the matched route's template, as the
metrics label it), `status`, `model`, `prompt_tokens` and `completion_tokens` where the request
had them (the models' own counts, as in `usage`, streamed or not, asked for or not),
`stream_error` (the status of an error event that ended a stream, whose status is 200), `total_ms`
(to the last byte), `ttfb_ms` for a stream (its first byte, sent after the model's first token)
and `client` (its address). With `log_prompts`, `prompt`: the request's prompt fields
(`messages`, `prompt`, `input`, ...) as JSON, cut at `max_log_len` characters. No header but the
id is read: never the API key, never Authorization.

The serving code has no `Request` (routers hand it the id only), so the record of the request
being served is in a context variable, which the tasks a request starts inherit: the model
is noted where it is resolved (`backend.require_model`), the tokens where the model's answers
are decoded (`tensors.steps`, `pieces.in_pieces`). With the log off the variable is unset, and
`current()` is all those places pay.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openai_frontend.metrics import route_label

logger = logging.getLogger("openai_frontend.requests")

# The body fields that hold a prompt, over every endpoint (completions, chat, embeddings,
# rerank and score with vLLM's other names, tokenize, detokenize).
PROMPT_FIELDS = (
    "messages", "prompt", "input", "query", "documents", "text_1", "text_2", "queries", "items", "data_1", "data_2",
    "tokens",
)  # fmt: skip


@dataclass
class Record:
    """What the serving code adds to the request's line."""

    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stream_error: int | None = None  # the status of an error sent inside a stream (its status is 200)

    def add_tokens(self, prompt: int, completion: int | None) -> None:
        self.prompt_tokens = (self.prompt_tokens or 0) + prompt
        if completion is not None:
            self.completion_tokens = (self.completion_tokens or 0) + completion


class Counter:
    """One model request's tokens: its prompt counted once (every answer repeats it), its
    output tokens added answer by answer."""

    def __init__(self, record: Record):
        self.record, self._prompt_seen = record, False

    def add(self, prompt: int, completion: int) -> None:
        if self._prompt_seen or not prompt:
            prompt = 0
        self._prompt_seen = self._prompt_seen or prompt > 0
        self.record.add_tokens(prompt, completion)


_current: ContextVar[Record | None] = ContextVar("openai_frontend_request_log", default=None)


def current() -> Record | None:
    """The record of the request being served, None when the log is off."""
    return _current.get()


def note_model(name: str) -> None:
    record = _current.get()
    if record is not None and record.model is None:
        record.model = name


def note_stream_error(status: int) -> None:
    if (record := _current.get()) is not None:
        record.stream_error = status


def counter() -> Counter | None:
    """A token counter for one model request, None when the log is off."""
    record = _current.get()
    return Counter(record) if record is not None else None


class RequestLog:
    """The middleware writing the lines (app.py places it inside RequestId, outside CORS, the
    drain and the body limit, so that a preflight, a 503 and a 413 have their lines too)."""

    def __init__(self, app: ASGIApp, route_prefix: str = "", log_prompts: bool = False, max_log_len: int = 2048):
        self.app, self.route_prefix = app, route_prefix
        self.log_prompts, self.max_log_len = log_prompts, max_log_len
        logger.setLevel(logging.INFO)  # on whatever the server's level (serve runs the frontend at warning)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        record, status, streamed, first_byte = Record(), 500, False, None
        body: list[bytes] = []

        async def receive_copy() -> Message:  # what BodyLimit reads, so at most its limit
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        async def send_timed(message: Message) -> None:
            nonlocal status, streamed, first_byte
            if message["type"] == "http.response.start":
                status = message["status"]
                streamed = any(
                    k == b"content-type" and v.startswith(b"text/event-stream") for k, v in message["headers"]
                )
            elif message["type"] == "http.response.body" and first_byte is None and message.get("body"):
                first_byte = time.perf_counter()
            await send(message)

        token = _current.set(record)
        try:
            await self.app(scope, receive_copy if self.log_prompts else receive, send_timed)
        finally:
            _current.reset(token)
            ended = time.perf_counter()
            line = {
                "id": scope.get("state", {}).get("request_id", ""),
                "method": scope["method"],
                "route": route_label(scope, self.route_prefix),
                "status": status,
                "model": record.model,
                "prompt_tokens": record.prompt_tokens,
                "completion_tokens": record.completion_tokens,
                "stream_error": record.stream_error,
                "total_ms": round((ended - started) * 1000, 1),
                "ttfb_ms": round((first_byte - started) * 1000, 1) if streamed and first_byte is not None else None,
                "client": (scope.get("client") or (None,))[0],
            }
            if self.log_prompts:
                line["prompt"], cut = prompt_text(b"".join(body), self.max_log_len)
                line["prompt_cut"] = cut or None
            logger.info(json.dumps({k: v for k, v in line.items() if v is not None}, ensure_ascii=False))


def prompt_text(body: bytes, max_len: int) -> tuple[str | None, bool]:
    """The prompt fields of a JSON body as JSON cut at `max_len` characters, and whether it was
    cut (None: the body has none)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, False
    fields = {name: data[name] for name in PROMPT_FIELDS if name in data} if isinstance(data, dict) else {}
    if not fields:
        return None, False
    # A lone surrogate (refused with a 400, but logged all the same) would fail the log's write.
    text = json.dumps(fields, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:max_len], len(text) > max_len
