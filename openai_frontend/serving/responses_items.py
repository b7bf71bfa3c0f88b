"""A Responses request as the chat request that serves it, and its output as chat messages.

Input items become chat messages (vLLM's `construct_input_messages`): a message keeps its
role (a developer's is the system's, which every template knows), a `function_call` is an
assistant's tool call, a `function_call_output` a tool message answering it. `reasoning`
items are taken and left out of the prompt: the chat templates (Qwen3's among them) drop
past turns' thinking. `instructions` come first as a system message and, as OpenAI's, are not
carried to the next turn.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from openai_frontend.errors import BadRequest
from openai_frontend.schemas.responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    ImageContent,
    MessageItem,
    NamedFunction,
    ResponsesRequest,
)

# The chat request's field -> the Responses field it came from (an error names the client's).
PARAMS = {
    "messages": "input",
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
    "chat_template_kwargs": "reasoning",
    "truncate_prompt_tokens": "truncation",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def renamed(exc: BadRequest, offset: int = 0) -> BadRequest:
    """A chat field's error as the Responses field's: `messages.i` is `input.<i - offset>`, where
    `offset` messages (the instructions, the stored conversation) came before the input."""
    if exc.param is None:
        return exc
    head, dot, rest = exc.param.partition(".")
    if head not in PARAMS:
        return exc
    param = PARAMS[head]
    if head == "messages" and rest:
        index, dot2, deeper = rest.partition(".")
        if index.isdigit() and int(index) >= offset:
            param += f".{int(index) - offset}" + dot2 + deeper
    message = exc.message.replace(exc.param, param, 1) if exc.message.startswith(exc.param) else exc.message
    return BadRequest(message, param=param, code=exc.code)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if isinstance(part, ImageContent):
            raise BadRequest(f"{where}.{j}: an image is taken in a message's content only", param=f"{where}.{j}")
        parts.append(part.text or part.refusal or "")
    return "".join(parts)


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content for chat: its text, or chat's parts when it holds images (input_image ->
    an image_url part, which chat fetches, checks and sends to the model: serving/content.py)."""
    if isinstance(content, str) or not any(isinstance(part, ImageContent) for part in content):
        return _text(content, where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if not isinstance(part, ImageContent):
            parts.append({"type": "text", "text": part.text or part.refusal or ""})
        elif part.image_url is None:  # a file_id: there is no Files API here
            raise BadRequest(f"{where}.{j}.image_url: is required (file_id is not supported)", param=f"{where}.{j}")
        else:
            image = {"url": part.image_url}
            if part.detail in ("auto", "low", "high"):
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
    return parts


def messages(items: list[BaseModel]) -> list[dict[str, Any]]:
    """The chat messages (as the template takes them) of a request's input items."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            out.append({"role": role, "content": _content(item.content, f"input.{i}.content")})
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":  # the same turn's text, or calls
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            out.append(
                {"role": "tool", "tool_call_id": item.call_id, "content": _text(item.output, f"input.{i}.output")}
            )
    return out


def stored_items(items: list[BaseModel]) -> list[dict[str, Any]]:
    """The input items as GET .../input_items lists them: each with an id."""
    out = []
    for item in items:
        data = item.model_dump(exclude_none=True, by_alias=True)
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}[
            data["type"]
        ]
        data.setdefault("id", new_id(prefix))
        if data["type"] == "message" and isinstance(data["content"], str):
            data["content"] = [{"type": "input_text", "text": data["content"]}]
        out.append(data)
    return out


def chat_request(body: ResponsesRequest, conversation: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request body that serves `body` after the `conversation` so far (streamed from the
    model: the events, and the reasoning tokens, come step by step)."""
    system = [{"role": "system", "content": body.instructions}] if body.instructions is not None else []
    chat: dict[str, Any] = {"model": body.model, "messages": system + conversation, "stream": True}
    for name in ("temperature", "top_p", "user", "top_k", "min_p", "seed", "stop", "repetition_penalty"):
        if getattr(body, name) is not None:
            chat[name] = getattr(body, name)
    if body.ignore_eos:
        chat["ignore_eos"] = True
    if body.max_output_tokens is not None:
        chat["max_completion_tokens"] = body.max_output_tokens
    if body.structured_outputs is not None:
        chat["structured_outputs"] = body.structured_outputs.to_engine()
    if body.text and body.text.format and (fmt := body.text.format.for_chat()):
        chat["response_format"] = fmt
    if body.tools:
        chat["tools"] = [tool.for_chat() for tool in body.tools]
        if isinstance(body.tool_choice, NamedFunction):
            chat["tool_choice"] = {"type": "function", "function": {"name": body.tool_choice.name}}
        elif body.tool_choice is not None:
            chat["tool_choice"] = body.tool_choice
        if body.parallel_tool_calls is not None:
            chat["parallel_tool_calls"] = body.parallel_tool_calls
    if body.reasoning is not None and body.reasoning.effort is not None:
        # Thinking on unless the effort is "none" (the test models' templates default it off).
        chat["chat_template_kwargs"] = {"enable_thinking": body.reasoning.effort != "none"}
    if body.truncation == "auto":
        chat["truncate_prompt_tokens"] = -1  # the prompt's oldest tokens go when the context is full
    return chat


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The turn the output items were, as the chat message a later turn's prompt shows."""
    text = "".join(part.get("text", "") for item in output if item["type"] == "message" for part in item["content"])
    calls = [
        {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
        for item in output
        if item["type"] == "function_call"
    ]
    if not text and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    return message
