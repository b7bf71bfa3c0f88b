"""An Anthropic Messages request as a chat completion request, as vLLM's
`AnthropicServingMessages.to_chat_completion_request` maps it, so that /v1/messages runs on
the model's chat layer (its template, tool and reasoning parsers, exact usage) and on no
second generation path:

- `system` (a string or text blocks) -> one leading system message; a system message in
  `messages` stays where it is;
- image blocks -> chat's image_url parts (base64 as a data: URL), fetched and checked there;
- a user's `tool_result` blocks -> one tool message each (before the user's own text), an
  assistant's `tool_use` blocks -> its `tool_calls` (input as JSON arguments), thinking
  blocks passed back are dropped (the templates drop past reasoning);
- `tools` -> function tools, `tool_choice` auto/any/tool/none -> auto/required/named/none,
  `disable_parallel_tool_use` -> `parallel_tool_calls: false`;
- `stop_sequences` -> `stop`, with the stop string kept in the output so that the one that
  matched can be told (`matched_stop`) and cut, as Anthropic reports it in `stop_sequence`;
- `thinking` -> the template's `enable_thinking` (off for "disabled");
- `output_config.format` (a JSON schema) -> `response_format` json_schema (structured output).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from openai_frontend.errors import BadRequest, validation_error
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.messages import ContentBlock, CountTokensRequest, MessagesRequest, StopReason
from openai_frontend.schemas.tokenize import TokenizeRequest

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}


def chat_request(body: MessagesRequest) -> ChatCompletionRequest:
    """The chat request that serves `body` (streamed: with usage in every chunk, which the
    message_start and message_delta events carry)."""
    fields: dict[str, Any] = {"model": body.model, "max_tokens": body.max_tokens, **_prompt(body)}
    for name in ("temperature", "top_p"):
        if getattr(body, name) is not None:
            fields[name] = getattr(body, name)
    if body.top_k:  # 0 is Anthropic's "every token", as no top_k
        fields["top_k"] = body.top_k
    if body.stop_sequences:
        fields.update(stop=body.stop_sequences, include_stop_str_in_output=True)
    if body.output_config is not None and body.output_config.format is not None:
        schema = {"name": "output", "schema": body.output_config.format.schema_}
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    if body.metadata is not None and body.metadata.user_id is not None:
        fields["user"] = body.metadata.user_id
    if body.stream:
        fields.update(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True})
    return _validated(ChatCompletionRequest, fields)


def tokenize_request(body: CountTokensRequest) -> TokenizeRequest:
    """The /tokenize request that counts `body`'s prompt as /v1/messages renders it."""
    prompt = _prompt(body)
    prompt.pop("tool_choice", None)
    prompt.pop("parallel_tool_calls", None)
    return _validated(TokenizeRequest, {"model": body.model, **prompt})


def matched_stop(text: str, stop: list[str] | None) -> str | None:
    """The stop sequence `text` ends with (the engine kept it: `include_stop_str_in_output`)."""
    return max((s for s in stop or [] if text.endswith(s)), key=len, default=None)


def stop_reason(finish: str | None, stop: str | None, tool_complete: bool) -> StopReason:
    """vLLM's mapping: a length cut wins, then whole tool calls, then a stop sequence."""
    if finish == "length":
        return "max_tokens"
    if finish is None:
        return None
    if tool_complete:
        return "tool_use"
    return "stop_sequence" if stop else "end_turn"


def _prompt(body: MessagesRequest | CountTokensRequest) -> dict[str, Any]:
    """The chat fields that make the prompt: messages, tools, tool choice, template variables."""
    fields: dict[str, Any] = {"messages": _messages(body)}
    if body.tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }  # fmt: skip
            for t in body.tools
        ]
        choice = body.tool_choice
        if choice is not None:
            fields["tool_choice"] = _TOOL_CHOICE.get(choice.type) or {
                "type": "function",
                "function": {"name": choice.name},
            }
            if choice.disable_parallel_tool_use:
                fields["parallel_tool_calls"] = False
    kwargs = dict(body.chat_template_kwargs or {})
    if body.thinking is not None:
        kwargs.setdefault("enable_thinking", body.thinking.type != "disabled")
    if kwargs or body.chat_template_kwargs is not None:
        fields["chat_template_kwargs"] = kwargs
    return fields


def _messages(body: MessagesRequest | CountTokensRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.system if isinstance(body.system, str) else "".join(b.text for b in body.system or [])
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(body.messages):
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        parts, calls = [], []  # the message's own text and image parts; an assistant's calls
        for j, block in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            if block.type == "text":
                parts.append({"type": "text", "text": block.text})
            elif block.type == "image":
                parts.append(_image(block.source, f"{where}.source"))
            elif block.type == "tool_use":
                function = {"name": block.name, "arguments": json.dumps(block.input, ensure_ascii=False)}
                calls.append({"id": block.id, "type": "function", "function": function})
            elif block.type == "tool_result":
                out.extend(_tool_result(block, where))
        if message.role == "assistant" and (parts or calls):
            answer = {"role": "assistant", "content": _content(parts) or None}
            out.append({**answer, "tool_calls": calls} if calls else answer)
        elif message.role != "assistant" and parts:
            out.append({"role": message.role, "content": _content(parts)})
    return out


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text parts as one string (as before images); with an image, the parts in their order."""
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _tool_result(block: ContentBlock, where: str) -> list[dict[str, Any]]:
    """A tool message with the result's text; its images, as vLLM does, in a user message after it."""
    if not isinstance(block.content, list):
        return [{"role": "tool", "tool_call_id": block.tool_use_id, "content": block.content or ""}]
    text = "\n".join(part.text or "" for part in block.content if part.type == "text")
    out = [{"role": "tool", "tool_call_id": block.tool_use_id, "content": text}]
    images = [_image(p.source, f"{where}.content.{k}.source") for k, p in enumerate(block.content) if p.type == "image"]
    return [*out, {"role": "user", "content": images}] if images else out


def _image(source: dict[str, Any], where: str) -> dict[str, Any]:
    """An image block's source as chat's image_url part (vLLM's: base64 data as a data: URL); the
    chat path fetches and checks it (serving/content.py), as a chat request's."""
    kind = source.get("type")
    if kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    elif kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        url = f"data:{source['media_type']};base64,{source['data']}"
    else:
        raise BadRequest(f"{where}: give {{type: 'base64', media_type, data}} or {{type: 'url', url}}", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _validated(model: type, fields: dict[str, Any]):
    # Chat's own rules hold too; a refusal names chat's field, the nearest there is.
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
