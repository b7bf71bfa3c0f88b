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

Getter = Callable[[str], "np.ndarray | None"]

_ROLES = {"system", "user", "assistant", "tool", "developer"}
# apply_chat_template's own arguments, which we set: a template variable may not replace them
# (vLLM refuses `chat_template` and `tokenize`; the others would break the call or its result).
RESERVED_TEMPLATE_KWARGS = frozenset(
    {"conversation", "messages", "chat_template", "tokenize", "return_dict", "return_tensors", "tokenizer_kwargs"}
)


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
    messages = parse_messages(raw_messages) if raw_messages is not None else None
    return Prompt(text=prompt, messages=messages, ids=ids, chat_template_kwargs=kwargs)


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


def parse_messages(raw: str) -> list[dict[str, Any]]:
    """Validate an OpenAI-style message list; text parts are joined into one string."""
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
            parts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidInput(f"{where}.content[{j}]", "only text parts are supported")
                parts.append(part["text"])
            content = "".join(parts)
        elif content is None and role == "assistant":
            content = ""
        if not isinstance(content, str):
            raise InvalidInput(f"{where}.content", "must be a string or a list of text parts")
        out.append({**message, "content": content})
    return out


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
