"""The inputs that say what the prompt is, read and checked: `text_input`, `messages`, `input_ids`,
`chat_template_kwargs`, and `sampling_parameters.truncate_prompt_tokens` (docs/protocol.md).

Apart from `protocol` so that the wire module stays one screen of rules; plain Python + numpy,
every rule unit-tested without a server. The engines apply what is parsed here: the chat
template (`engines.base.render_prompt`), the token ids and the truncation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from triton_llm.errors import InvalidInput, json_object
from triton_llm.generation import images as image_inputs

Getter = Callable[[str], "np.ndarray | None"]

_ROLES = {"system", "user", "assistant", "tool", "developer"}
# apply_chat_template's own arguments, which we set: a template variable may not replace them
# (vLLM refuses `chat_template` and `tokenize`; the others would break the call or its result).
RESERVED_TEMPLATE_KWARGS = frozenset(
    {
        "conversation",
        "messages",
        "chat_template",
        "tokenize",
        "return_dict",
        "return_tensors",
        "tokenizer_kwargs",
        "tools",
    }
)
_TOOL_CHOICES = ("none", "auto", "required")


def scalar(value: np.ndarray | None) -> Any:
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise InvalidInput("input", f"expected one element, got {flat.size}")
    item = flat[0]
    return item.decode("utf-8") if isinstance(item, bytes) else item.item() if hasattr(item, "item") else item


def text(get: Getter, name: str) -> str | None:
    try:
        value = scalar(get(name))
    except InvalidInput as exc:
        raise InvalidInput(name, exc.problem) from None
    except UnicodeDecodeError:
        raise InvalidInput(name, "is not valid UTF-8") from None
    if value is not None and not isinstance(value, str):
        raise InvalidInput(name, "must be a string")
    return value


def flag(get: Getter, name: str) -> bool | None:
    value = get(name)
    if value is None:
        return None
    try:
        return bool(scalar(value))
    except InvalidInput as exc:
        raise InvalidInput(name, exc.problem) from None


@dataclass
class Prompt:
    """Exactly one of `text`, `messages` and `ids` is set."""

    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    ids: list[int] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    images: list[image_inputs.ImageInput] | None = None  # in prompt order (images.py)


def parse_prompt(get: Getter) -> Prompt:
    """The prompt of a request: one of `text_input`, `messages`, `input_ids`, and the template's extras."""
    prompt = text(get, "text_input")
    raw_messages = text(get, "messages")
    ids = token_ids(get)
    candidates = (("text_input", prompt), ("messages", raw_messages), ("input_ids", ids))
    given = [name for name, value in candidates if value is not None]
    if len(given) > 1:
        raise InvalidInput(given[-1], f"give one of text_input, messages and input_ids, not {' and '.join(given)}")
    if not given:
        raise InvalidInput("text_input", "is required (or give messages or input_ids)")
    if prompt == "":
        raise InvalidInput("text_input", "must not be empty")
    raw_kwargs = text(get, "chat_template_kwargs")
    kwargs = None
    if raw_kwargs not in (None, ""):
        if raw_messages is None:
            raise InvalidInput("chat_template_kwargs", "applies to messages only (the chat template renders them)")
        kwargs = json_object(raw_kwargs, "chat_template_kwargs")
        if reserved := sorted(RESERVED_TEMPLATE_KWARGS & kwargs.keys()):
            raise InvalidInput("chat_template_kwargs", f"may not set {', '.join(reserved)}")
    collected = image_inputs.Collected(image_inputs.from_tensor(get))
    messages = parse_messages(raw_messages, collected) if raw_messages is not None else None
    if messages is None:
        collected.images = collected.tensor  # a text or token prompt holds its placeholders itself
    else:
        collected.check_all_used()
    tools, choice = parse_tools(get)
    parallel = flag(get, "parallel_tool_calls")
    for name, value in (("tools", tools), ("tool_choice", choice), ("parallel_tool_calls", parallel)):
        if value is not None and messages is None:
            raise InvalidInput(name, "applies to messages only (the chat template renders the tools)")
    return Prompt(prompt, messages, ids, kwargs, tools, choice, parallel, collected.images or None)


def parse_tools(get: Getter) -> tuple[list[dict[str, Any]] | None, str | dict[str, Any] | None]:
    """`tools` and `tool_choice` as OpenAI defines them, with vLLM's rules: `tool_choice`
    needs `tools` (unless "none"), and defaults to "auto" when they are given."""
    raw = text(get, "tools")
    tools = None if raw in (None, "") else _json(raw, "tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidInput("tools", "must be a JSON list of tools")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(tool, dict)
                or tool.get("type", "function") != "function"
                or not isinstance(function, dict)
            ):
                raise InvalidInput(f"tools[{i}]", 'must be {"type": "function", "function": {...}}')
            if not isinstance(function.get("name"), str) or not function["name"]:
                raise InvalidInput(f"tools[{i}].function.name", "must be a non-empty string")
            if not isinstance(function.get("parameters", {}), (dict, type(None))):
                raise InvalidInput(f"tools[{i}].function.parameters", "must be a JSON Schema object")
    raw = text(get, "tool_choice")
    # A JSON value; the bare words are taken too (what a generate-endpoint client writes).
    choice = raw if raw in _TOOL_CHOICES else None if raw in (None, "") else _json(raw, "tool_choice")
    if choice is None:
        return tools, ("auto" if tools else None)
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise InvalidInput("tool_choice", f"must be one of {list(_TOOL_CHOICES)} or a named tool, got {choice!r}")
    else:
        name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        if not isinstance(choice.get("function") if isinstance(choice, dict) else None, dict) or not isinstance(
            name, str
        ):
            raise InvalidInput("tool_choice", 'a named tool choice is {"type": "function", "function": {"name": ...}}')
        if name not in {t["function"]["name"] for t in tools or []}:
            raise InvalidInput("tool_choice", f"the tool {name!r} is not in tools")
    if choice != "none" and not tools:
        raise InvalidInput("tool_choice", "When using `tool_choice`, `tools` must be set.")
    return tools, choice


def _json(raw: str, field: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(field, f"is not valid JSON: {exc.msg}") from None


def token_ids(get: Getter) -> list[int] | None:
    """`input_ids`: a prompt already tokenized (INT64, dims [-1])."""
    value = get("input_ids")
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise InvalidInput("input_ids", f"must be integer token ids, got {array.dtype}")
    ids = [int(i) for i in array.reshape(-1)]
    if not ids:
        raise InvalidInput("input_ids", "must not be empty")
    if min(ids) < 0:
        raise InvalidInput("input_ids", f"token id {min(ids)} is out of vocabulary")
    return ids


def parse_messages(raw: str, images: image_inputs.Collected | None = None) -> list[dict[str, Any]]:
    """Validate an OpenAI-style message list; text parts are joined into one string, unless the
    content has image parts: it then stays a list of text and {"type": "image"} parts (images.py)."""
    try:
        messages = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput("messages", f"is not valid JSON: {exc.msg}") from None
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages", "must be a non-empty JSON list of messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidInput(where, "must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidInput(f"{where}.role", f"must be one of {sorted(_ROLES)}, got {role!r}")
        content = message.get("content")
        if isinstance(content, list):
            parts: list[dict[str, Any]] = []
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in image_inputs.PART_TYPES and images is not None:
                    parts.append(images.part(part, f"{where}.content[{j}]"))
                elif kind != "text" or not isinstance(part.get("text"), str):
                    raise InvalidInput(f"{where}.content[{j}]", "must be a text part or an image part")
                else:
                    parts.append({"type": "text", "text": part["text"]})
            media = any(p["type"] != "text" for p in parts)
            content = parts if media else "".join(p["text"] for p in parts)
        elif content is None and role == "assistant":
            content = ""
        if not isinstance(content, (str, list)):
            raise InvalidInput(f"{where}.content", "must be a string or a list of content parts")
        message = {**message, "content": content}
        if role == "assistant" and message.get("tool_calls") is not None:
            message["tool_calls"] = _tool_calls_for_template(message["tool_calls"], f"{where}.tool_calls")
        if role == "tool" and not isinstance(message.get("tool_call_id", ""), str):
            raise InvalidInput(f"{where}.tool_call_id", "must be a string")
        out.append(message)
    return out


def _tool_calls_for_template(calls: Any, where: str) -> list[dict[str, Any]] | None:
    """An assistant's earlier calls as chat templates take them: `arguments` decoded from
    OpenAI's JSON string into an object (transformers' convention, as vLLM renders them)."""
    if not isinstance(calls, list):
        raise InvalidInput(where, "must be a list of tool calls")
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidInput(f"{where}[{j}]", 'must be {"id", "type": "function", "function": {"name", "arguments"}}')
        arguments = function.get("arguments") or "{}"
        if isinstance(arguments, str):
            arguments = _json(arguments, f"{where}[{j}].function.arguments")
        out.append({**call, "function": {**function, "arguments": arguments}})
    return out or None


def truncate_prompt_tokens(sampling: dict[str, Any]) -> int | None:
    """Take `truncate_prompt_tokens` out of the sampling parameters (vLLM 0.32 applies it when
    tokenizing, not in `SamplingParams`): N keeps the last N prompt tokens, -1 as many as the
    context leaves room for."""
    field = "sampling_parameters.truncate_prompt_tokens"
    value = sampling.pop("truncate_prompt_tokens", None)
    if value is None:
        return None
    if isinstance(value, str):  # vllm_backend clients send numbers as strings
        try:
            value = int(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be int, got {json.dumps(value)}")
    if value == 0 or value < -1:
        raise InvalidInput(field, f"must be -1 (the model's limit) or at least 1, got {value}")
    return value
