"""/v1/responses served on chat's path: the request becomes a chat request (responses_items),
chat's steps (templates, tool and reasoning parsers, structured output: serving/chat.py) are
built into output items and events (responses_events), and the response, its input items and
its conversation are stored (responses_store) when `store` is true, which OpenAI defaults to.

Streamed or not, the model is asked for a stream: the events and the reasoning-token count
come step by step, and a non-streamed response is the same run with its events dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from openai_frontend.backend import ModelInfo, ModelServer
from openai_frontend.errors import APIError, BadRequest, NotFound, PayloadTooLarge, validation_error
from openai_frontend.media import MediaSettings
from openai_frontend.responses_store import UNFINISHED, Record, StoreFull
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.responses import ResponsesRequest
from openai_frontend.serving import chat, responses_items
from openai_frontend.serving.accumulate import Accumulator
from openai_frontend.serving.responses_events import OutputBuilder
from openai_frontend.serving.responses_state import ResponsesState

logger = logging.getLogger(__name__)


@dataclass
class Turn:
    """One request, ready to run: its id, its input items and the conversation it continues."""

    body: ResponsesRequest
    id: str
    created_at: int
    items: list[dict[str, Any]]  # as stored, with ids
    conversation: list[dict[str, Any]]  # the chat messages so far, this input's included
    chat: ChatCompletionRequest
    media: MediaSettings | None = None  # what input_image URLs may reach (media.py)
    offset: int = 0  # chat messages before the input's (an error's `messages.i` is `input.<i - offset>`)


async def prepare(state: ResponsesState, body: ResponsesRequest, media: MediaSettings | None = None) -> Turn:
    """The turn of `body`, or its 4xx (an unknown previous_response_id: 404) before any model work."""
    history: list[dict[str, Any]] = []
    if body.previous_response_id is not None:
        previous = await (await state.store()).get(body.previous_response_id)
        if previous is None:
            raise NotFound(
                f"previous_response_id: no stored response '{body.previous_response_id}'",
                param="previous_response_id", code="previous_response_not_found",
            )  # fmt: skip
        if previous.status in UNFINISHED:
            raise BadRequest(
                f"previous_response_id: response '{previous.id}' is still {previous.status}",
                param="previous_response_id",
            )
        history = previous.messages
    items = body.items()
    conversation = history + responses_items.messages(items)
    try:
        chat_body = ChatCompletionRequest.model_validate(responses_items.chat_request(body, conversation))
    except ValidationError as exc:
        raise responses_items.renamed(validation_error(exc.errors()), _offset(body, history)) from None
    turn = Turn(body, responses_items.new_id("resp"), int(time.time()), responses_items.stored_items(items),
                conversation, chat_body, media, _offset(body, history))  # fmt: skip
    if body.store:  # the cap, checked before the model works: the conversation and this input as stored
        try:
            (await state.store()).encode(Record(turn.id, "queued", {}, turn.items, conversation))
        except StoreFull as exc:
            raise PayloadTooLarge(f"input: {exc}", param="input") from None
    return turn


def response_object(turn: Turn, status: str, output: list[dict[str, Any]], usage: dict | None, **extra: Any) -> dict:
    body = turn.body
    fmt = body.text.format.model_dump(by_alias=True, exclude_none=True) if body.text and body.text.format else None
    tool_choice = body.tool_choice if body.tool_choice is not None else "auto"
    return {
        "id": turn.id, "object": "response", "created_at": turn.created_at, "status": status,
        "background": body.background, "error": None, "incomplete_details": None,
        "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {}, "model": body.model, "output": output,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": body.reasoning.model_dump() if body.reasoning else {"effort": None, "summary": None},
        "store": body.store, "temperature": body.temperature if body.temperature is not None else 1.0,
        "text": {"format": fmt or {"type": "text"}},
        "tool_choice": tool_choice if isinstance(tool_choice, str) else tool_choice.model_dump(),
        "tools": [t.model_dump(exclude_none=True) for t in body.tools or []],
        "top_p": body.top_p if body.top_p is not None else 1.0,
        "truncation": body.truncation or "disabled", "usage": usage, "user": body.user, **extra,
    }  # fmt: skip


async def events(
    state: ResponsesState, triton: ModelServer, info: ModelInfo, turn: Turn, rid: str
) -> AsyncGenerator[dict[str, Any], None]:
    """The run's events, response.created to response.completed (without sequence numbers). The
    model's first step is awaited first: its refusal is an APIError before any event."""
    sampling = info.with_adapter(turn.chat.sampling())
    # chat's own request to the model (images fetched and checked as chat's: `media`)
    steps = _renamed(chat._steps(triton, info, turn.chat, sampling, rid, media=turn.media), turn.offset)
    acc, builder = Accumulator(1), OutputBuilder()
    try:
        first = await anext(steps, None)
        yield {"type": "response.created", "response": response_object(turn, "in_progress", [], None)}
        yield {"type": "response.in_progress", "response": response_object(turn, "in_progress", [], None)}
        step = first
        while step is not None:
            delta = acc.add(0, step[1])[0]
            for event in builder.add(delta, step[1].num_output_tokens[0]):
                yield event
            step = await anext(steps, None)
    finally:
        await steps.aclose()
    for event in builder.close():
        yield event
    usage = {
        "input_tokens": acc.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": acc.completion_tokens, "output_tokens_details": {"reasoning_tokens": builder.reasoning_tokens},
        "total_tokens": acc.prompt_tokens + acc.completion_tokens,
    }  # fmt: skip
    if acc.choices[0].finish_reason == "length":  # as vLLM: incomplete, the budget of output tokens spent
        final = response_object(turn, "incomplete", builder.output, usage,
                                incomplete_details={"reason": "max_output_tokens"})  # fmt: skip
    else:
        final = response_object(turn, "completed", builder.output, usage)
    if turn.body.store:  # stored before the client hears of it: its next turn may name it at once
        await _store(state, turn, final)
    yield {"type": "response.completed", "response": final}


def _offset(body: ResponsesRequest, history: list) -> int:
    """The chat messages before the input's: the instructions', the stored conversation's."""
    return len(history) + (body.instructions is not None)


async def _renamed(steps: AsyncIterator, offset: int) -> AsyncGenerator:
    """The steps; a refused chat field named as the Responses field it came from."""
    try:
        async for step in steps:
            yield step
    except BadRequest as exc:
        raise responses_items.renamed(exc, offset) from None
    finally:
        await steps.aclose()


async def _store(state: ResponsesState, turn: Turn, final: dict[str, Any]) -> None:
    reply = responses_items.assistant_message(final["output"])
    record = Record(turn.id, final["status"], final, turn.items, turn.conversation + ([reply] if reply else []))
    store = await state.store()
    try:
        if turn.body.background:
            await store.finish(record)  # unless cancelled meanwhile
        else:
            await store.put(record)
    except StoreFull as exc:
        raise PayloadTooLarge(f"input: {exc}; send it with `store` false", param="input") from None


async def response(state: ResponsesState, triton: ModelServer, info: ModelInfo, turn: Turn, rid: str) -> dict:
    """The whole response of a request without `stream`."""
    final: dict[str, Any] = {}
    async for event in events(state, triton, info, turn, rid):
        final = event.get("response", final)
    return final


def numbered(chunks: AsyncGenerator[dict[str, Any], None]) -> AsyncGenerator[dict[str, Any], None]:
    """The events with their sequence numbers; an error once streaming is an `error` event."""

    async def run() -> AsyncGenerator[dict[str, Any], None]:
        number = 0
        try:
            async for event in chunks:
                yield {"type": event["type"], "sequence_number": number, **event}
                number += 1
        except APIError as exc:
            if number == 0:
                raise  # before any event: the response's status (responses_sse)
            error = exc.body()["error"]
            yield {"type": "error", "sequence_number": number, "code": error["code"] or error["type"],
                   "message": error["message"], "param": error["param"]}  # fmt: skip
        finally:
            await chunks.aclose()

    return run()


async def background(state: ResponsesState, triton: ModelServer, info: ModelInfo, turn: Turn, rid: str) -> dict:
    """Store the response queued and run it in a task of this process; any replica cancels it
    (the runner watches its row's status)."""
    queued = response_object(turn, "queued", [], None)
    store = await state.store()
    await store.put(Record(turn.id, "queued", queued, turn.items, turn.conversation))
    state.start(turn.id, _run_background(state, triton, info, turn, rid))
    return queued


async def _run_background(state: ResponsesState, triton: ModelServer, info: ModelInfo, turn: Turn, rid: str) -> None:
    store = await state.store()
    running = response_object(turn, "in_progress", [], None)
    await store.finish(Record(turn.id, "in_progress", running, turn.items, turn.conversation))
    work = asyncio.ensure_future(response(state, triton, info, turn, rid))
    try:
        while not work.done():
            await asyncio.wait({work}, timeout=0.5)
            if not work.done() and await store.status(turn.id) not in UNFINISHED:
                work.cancel()  # cancelled or deleted, maybe through another replica
        work.result()
    except asyncio.CancelledError:
        work.cancel()
    except APIError as exc:
        error = exc.body()["error"]
        failed = response_object(turn, "failed", [], None, error={"code": error["code"] or error["type"],
                                                                  "message": error["message"]})  # fmt: skip
        await store.finish(Record(turn.id, "failed", failed, turn.items, turn.conversation))
    except Exception:
        logger.exception("background response %s failed", turn.id)
        failed = response_object(turn, "failed", [], None, error={"code": "server_error", "message": "internal error"})
        await store.finish(Record(turn.id, "failed", failed, turn.items, turn.conversation))


async def stored(state: ResponsesState, response_id: str) -> Record:
    record = await (await state.store()).get(response_id)
    if record is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return record


async def delete(state: ResponsesState, response_id: str) -> dict:
    if not await (await state.store()).delete(response_id):
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    state.stop(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


async def cancel(state: ResponsesState, response_id: str) -> dict:
    record = await stored(state, response_id)
    if not record.response.get("background"):
        raise BadRequest("Cannot cancel a synchronous response.", param="response_id")
    if record.status == "cancelled":
        return record.response
    if record.status not in UNFINISHED:
        raise BadRequest(f"Cannot cancel a response that is {record.status}.", param="response_id")
    record.response = {**record.response, "status": "cancelled"}
    await (await state.store()).cancel(record)
    state.stop(response_id)
    return record.response


async def input_items(state: ResponsesState, response_id: str, limit: int, order: str, after: str | None) -> dict:
    items = (await stored(state, response_id)).input_items
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise BadRequest(f"after: no input item '{after}' in this response", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list", "data": page, "has_more": len(items) > limit,
        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
    }  # fmt: skip
