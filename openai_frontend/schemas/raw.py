"""Checks on a request's raw JSON, before pydantic reads a field of it.

JSON may escape a lone UTF-16 surrogate (`"\\ud800"`): Python decodes it into a `str` that
cannot be encoded as UTF-8 again, so it would fail deep inside (the gRPC tensor, a log
line, the error message itself) as a 500. Deep nesting under the JSON decoder's own limit
would reach pydantic, the engine's JSON-schema compiler and our `json.dumps`. One walk,
without recursion, names the first offending place as OpenAI names a field
(`messages.0.content`).
"""

from __future__ import annotations

import re
from typing import Any

from openai_frontend.errors import FieldValueError, printable

# Deeper than any JSON schema or message list a client means to send.
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


def check(data: Any) -> None:
    """Raise `FieldValueError` naming the first lone surrogate or too-deep value in `data`."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise FieldValueError(_name(path), "contains a lone UTF-16 surrogate, which is not valid Unicode text")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if len(path) >= MAX_DEPTH:
            raise FieldValueError(_name(path[:1]), f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, list):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(value))
            continue
        for key, item in value.items():
            if not key.isascii() and _SURROGATE.search(key):
                where = _name((*path, printable(key)))
                raise FieldValueError(where, "is a key with a lone UTF-16 surrogate, which is not valid Unicode text")
            stack.append((item, (*path, key)))


def _name(path: tuple[str, ...]) -> str | None:
    return ".".join(path) or None
