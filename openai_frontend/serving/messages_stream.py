"""A streamed chat as Anthropic's Messages events, in vLLM's order (its message_stream_converter):
message_start (on the model's first response, with the prompt's tokens), then each content
block as content_block_start, its deltas (text_delta, thinking_delta then signature_delta,
input_json_delta) and content_block_stop, one block open at a time; then message_delta with
the stop reason and the usage, and message_stop.

With `stop_sequences`, the engine keeps the stop string in the text (`messages_chat`), and
the last characters, as many as the longest stop sequence, are held back until the answer
ends: the one that matched is then cut and named in `stop_sequence`, never sent as text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing

from openai_frontend.schemas.messages import MessagesRequest, message_id
from openai_frontend.serving.messages_chat import matched_stop, stop_reason


class _Blocks:
    """The content blocks sent so far, the last of them perhaps still open."""

    def __init__(self) -> None:
        self.index, self.kind = -1, None

    def open(self, block: dict) -> Iterator[dict]:
        yield from self.close()
        self.index, self.kind = self.index + 1, block["type"]
        yield {"type": "content_block_start", "index": self.index, "content_block": block}

    def delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def close(self) -> Iterator[dict]:
        if self.kind is None:
            return
        if self.kind == "thinking":  # a thinking block ends with its signature (ours, as vLLM's)
            yield self.delta({"type": "signature_delta", "signature": uuid.uuid4().hex})
        yield {"type": "content_block_stop", "index": self.index}
        self.kind = None


class _Text:
    """The answer's text, its last `keep` characters held back while a stop sequence may end it."""

    def __init__(self, stop: list[str] | None) -> None:
        self.stop, self.held = stop or [], ""
        self.keep = max(map(len, self.stop), default=0)

    def add(self, piece: str) -> str:
        self.held += piece
        cut = max(0, len(self.held) - self.keep)
        out, self.held = self.held[:cut], self.held[cut:]
        return out

    def flush(self, stopped: bool) -> tuple[str, str | None]:
        """What is held, and the stop sequence cut from its end when the answer `stopped`."""
        held, self.held = self.held, ""
        stop = matched_stop(held, self.stop) if stopped else None
        return (held[: -len(stop)] if stop else held), stop


async def events(body: MessagesRequest, chunks: AsyncGenerator[dict, None]) -> AsyncGenerator[dict, None]:
    """Anthropic's events from the chat chunks of `body`'s chat request (usage in every chunk)."""
    blocks, text = _Blocks(), _Text(body.stop_sequences)
    finish, stop, started = None, None, False
    calls: dict[int, str] = {}  # a call's index -> its arguments so far

    def send_text(piece: str) -> Iterator[dict]:
        if piece:
            if blocks.kind != "text":
                yield from blocks.open({"type": "text", "text": ""})
            yield blocks.delta({"type": "text_delta", "text": piece})

    def flush_text(stopped: bool = False) -> Iterator[dict]:
        nonlocal stop
        piece, found = text.flush(stopped)
        stop = stop or found
        yield from send_text(piece)

    async with aclosing(chunks):  # the model's stream closes with the events
        async for chunk in chunks:
            usage = chunk.get("usage") or {}
            if not started:
                started = True
                yield _message_start(body.model, usage.get("prompt_tokens", 0))
            if not chunk["choices"]:  # the last chunk: the usage of the whole answer
                for event in flush_text(finish == "stop"):
                    yield event
                for event in blocks.close():
                    yield event
                complete = bool(calls) and _is_json(calls[max(calls)])
                yield {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(finish or "stop", stop, complete), "stop_sequence": stop},
                    "usage": {
                        "input_tokens": usage.get("prompt_tokens", 0),
                        "output_tokens": usage.get("completion_tokens", 0),
                    },  # fmt: skip
                }
                continue
            choice = chunk["choices"][0]
            delta = choice["delta"]
            if delta.get("reasoning"):
                for event in flush_text():
                    yield event
                if blocks.kind != "thinking":
                    for event in blocks.open({"type": "thinking", "thinking": ""}):
                        yield event
                yield blocks.delta({"type": "thinking_delta", "thinking": delta["reasoning"]})
            if delta.get("content"):
                for event in send_text(text.add(delta["content"])):
                    yield event
            for call in delta.get("tool_calls") or []:
                for event in _tool_call(call, calls, blocks, flush_text):
                    yield event
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
                for event in flush_text(finish == "stop"):
                    yield event
    yield {"type": "message_stop"}


def _tool_call(call: dict, calls: dict[int, str], blocks: _Blocks, flush_text) -> Iterator[dict]:
    """One tool-call delta: its first (id and name) opens a tool_use block, its arguments are
    input_json_delta pieces."""
    function = call.get("function") or {}
    if call.get("id") is not None and call["index"] not in calls:
        yield from flush_text()
        calls[call["index"]] = ""
        yield from blocks.open({"type": "tool_use", "id": call["id"], "name": function.get("name") or "", "input": {}})
    arguments = function.get("arguments")
    if arguments and call["index"] in calls:
        calls[call["index"]] += arguments
        yield blocks.delta({"type": "input_json_delta", "partial_json": arguments})


def _message_start(model: str, input_tokens: int) -> dict:
    message = {
        "id": message_id(), "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }  # fmt: skip
    return {"type": "message_start", "message": message}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
