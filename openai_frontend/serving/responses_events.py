"""The output items of a response, built step by step from chat's parsed deltas, with the
streamed events that announce them: vLLM's simple (non-Harmony) state machine
(`SimpleStreamingEventProcessor`, entrypoints/openai/responses/streaming_events.py), so that
the event types, their order and the text equal vLLM's server's.

A step's delta is taken apart as vLLM's `split_delta` does (reasoning, then content, then the
tool calls by index); each part belongs to a state (reasoning, content, a tool call), and a
new state closes the open one (its `.done` events and `output_item.done`) and opens its own
(`output_item.added`, and a content part). A non-streamed response runs the same builder and
keeps only the items. Events carry no sequence number here: the stream numbers them.
"""

from __future__ import annotations

from typing import Any

from openai_frontend.serving.accumulate import Delta
from openai_frontend.serving.responses_items import new_id

NONE, CONTENT, REASONING, TOOL_CALL = "none", "content", "reasoning", "tool_call"


class OutputBuilder:
    def __init__(self) -> None:
        self.output: list[dict[str, Any]] = []  # the finished items
        self.reasoning_tokens = 0
        self._state = NONE
        self._index = 0  # the open item's output_index
        self._id = ""
        self._text = ""
        self._call: dict[str, Any] = {}
        self._call_index: int | None = None

    def add(self, delta: Delta, num_tokens: int) -> list[dict[str, Any]]:
        """The events of one step's delta; `num_tokens`: the tokens it brought."""
        # vLLM counts the tokens inside the thinking markers: a step that brought only reasoning.
        if delta.reasoning and not delta.text and not delta.tool_calls:
            self.reasoning_tokens += num_tokens
        events: list[dict[str, Any]] = []
        parts: list[tuple[str, Any]] = []
        if delta.reasoning:
            parts.append((REASONING, delta.reasoning))
        if delta.text:
            parts.append((CONTENT, delta.text))
        groups: dict[int, list[dict]] = {}
        for call in delta.tool_calls or []:
            groups.setdefault(call.get("index", 0), []).append(call)
        parts += [(TOOL_CALL, calls) for calls in groups.values()]
        for state, value in parts:
            first = value[0] if state == TOOL_CALL else None
            if state == TOOL_CALL and not (first.get("function") or {}).get("name") and self._state != TOOL_CALL:
                continue  # arguments of no call begun
            if self._state != state or (state == TOOL_CALL and first.get("index", 0) != self._call_index):
                events += self.close()
                events += self._open(state, first)
            events += self._delta(state, value)
        return events

    def _open(self, state: str, call: dict | None) -> list[dict[str, Any]]:
        self._state, self._text = state, ""
        if state == CONTENT:
            self._id = new_id("msg")
            item = {"id": self._id, "type": "message", "role": "assistant", "content": [], "status": "in_progress"}
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            return [self._added(item), self._part("response.content_part.added", part)]
        if state == REASONING:
            self._id = new_id("rs")
            item = {"id": self._id, "type": "reasoning", "summary": [], "status": "in_progress"}
            return [
                self._added(item),
                self._part("response.content_part.added", {"type": "reasoning_text", "text": ""}),
            ]
        self._id = new_id("fc")
        self._call_index = call.get("index", 0)
        self._call = {
            "id": self._id, "type": "function_call", "call_id": call.get("id") or new_id("call"),
            "name": call["function"]["name"], "arguments": "", "status": "in_progress",
        }  # fmt: skip
        return [self._added(dict(self._call))]

    def _delta(self, state: str, value: Any) -> list[dict[str, Any]]:
        if state == TOOL_CALL:
            args = "".join((c.get("function") or {}).get("arguments") or "" for c in value)
            if not args:
                return []
            self._text += args
            return [self._event("response.function_call_arguments.delta", delta=args)]
        self._text += value
        kind = "response.output_text.delta" if state == CONTENT else "response.reasoning_text.delta"
        extra = {"logprobs": []} if state == CONTENT else {}
        return [self._event(kind, content_index=0, delta=value, **extra)]

    def close(self) -> list[dict[str, Any]]:
        """Close the open item: its done events; the item joins the output."""
        state, text = self._state, self._text
        if state == NONE:
            return []
        if state == CONTENT:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item = {"id": self._id, "type": "message", "role": "assistant", "status": "completed",
                    "content": [part] if text else []}  # fmt: skip
            events = [self._event("response.output_text.done", content_index=0, text=text, logprobs=[]),
                      self._part("response.content_part.done", part)]  # fmt: skip
        elif state == REASONING:
            part = {"type": "reasoning_text", "text": text}
            item = {"id": self._id, "type": "reasoning", "summary": [], "content": [part], "status": "completed"}
            events = [self._event("response.reasoning_text.done", content_index=0, text=text),
                      self._part("response.content_part.done", part)]  # fmt: skip
        else:
            item = {**self._call, "arguments": text, "status": "completed"}
            events = [self._event("response.function_call_arguments.done", arguments=text, name=item["name"])]
        events.append({"type": "response.output_item.done", "output_index": self._index, "item": item})
        self.output.append(item)
        self._index += 1
        self._state = NONE
        return events

    def _added(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"type": "response.output_item.added", "output_index": self._index, "item": item}

    def _part(self, kind: str, part: dict[str, Any]) -> dict[str, Any]:
        return self._event(kind, content_index=0, part=part)

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "item_id": self._id, "output_index": self._index, **fields}
