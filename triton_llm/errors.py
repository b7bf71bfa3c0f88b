"""Errors a client or an operator can fix: a request field (the runners answer INVALID_ARG) or a model.json setting."""

from __future__ import annotations

import json
from typing import Any


class InvalidInput(ValueError):
    """A request field is wrong; the message names the field and the problem."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")

    def to_wire(self) -> str:
        """The Triton error message the runners send: `{"message": problem, "param": field}`.

        The field travels as data, so a client (our frontend) names it without parsing prose;
        docs/protocol.md#errors.
        """
        return json.dumps({"message": self.problem, "param": self.field}, ensure_ascii=False)


def json_object(raw: str | dict, field: str) -> dict[str, Any]:
    """A JSON object given as text (or already decoded), or an error naming `field`."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInput(field, f"is not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(field, "must be a JSON object")
    return raw


class Unavailable(RuntimeError):
    """The model cannot take this request now, and a retry may succeed: `overloaded` (its bound
    of admitted requests is reached; clients get 429) or `unavailable` (its engine is down or
    restarting, or it is shutting down; 503). The runners answer Triton's UNAVAILABLE with
    `to_wire()` as the message; `retry_after` (seconds) becomes the HTTP Retry-After header."""

    def __init__(self, message: str, kind: str = "unavailable", retry_after: int = 1):
        super().__init__(message)
        self.message, self.kind, self.retry_after = message, kind, retry_after

    def to_wire(self) -> str:
        return json.dumps({"message": self.message, "type": self.kind, "retry_after": self.retry_after})


class SettingError(ValueError):
    """A model.json setting this model cannot honour; `key` names it (the make_repo CLI maps it to its argument)."""

    def __init__(self, key: str, message: str, where: str = "model.json"):
        super().__init__(f"{where}: {message}")
        self.key = key
        self.message = message
