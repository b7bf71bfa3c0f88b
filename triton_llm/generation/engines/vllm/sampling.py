"""`sampling_parameters` JSON -> vLLM `SamplingParams`, with errors that name the field.

vLLM's own constructor does the range checks (`errors` names the field of each); we
add what it leaves to Python: unknown fields, wrong JSON types (of list items too, and of
objects such as `repetition_detection`), the string-typed numbers that vllm_backend clients
send ("0.7" for temperature), integers beyond 64 bits (vLLM's server takes a `seed` in
int64; its engine's transport fails on larger ones after the request is registered), and
`logit_bias`' keys, which JSON can only send as strings. What slips through fails inside
vLLM, where a wrong type is no client error but a server one.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

import pydantic
from vllm import SamplingParams
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

from triton_llm.errors import InvalidInput, json_object
from triton_llm.generation.engines.vllm.compat import VLLMClientError
from triton_llm.generation.engines.vllm.errors import field_of
from triton_llm.generation.vllm_library import message

_HINTS = typing.get_type_hints(SamplingParams)
# Fields that are vLLM's internals or set by us, not by clients.
_PRIVATE = {"output_kind", "skip_clone", "output_text_buffer_length", "detokenize", "flat_logprobs"}
ACCEPTED = sorted(name for name in _HINTS if not name.startswith("_") and name not in _PRIVATE)

_SCALARS = (bool, int, float, str)
# vLLM's server takes `seed` in int64 (its protocol's Field(ge=..., le=...)); so do we, for every integer.
_INT64 = (-(2**63), 2**63 - 1)


def _members(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _allowed_types(hint: Any) -> tuple[type, ...] | None:
    """The JSON-level types a hint accepts, or None when we leave checking to vLLM."""
    out: list[type] = []
    for arg in _members(hint):
        if arg is type(None) or arg in _SCALARS:
            out.append(arg)
        elif typing.get_origin(arg) in (list, dict):
            out.append(typing.get_origin(arg))
        else:
            return None
    return tuple(out)


def _element_type(hint: Any) -> type | None:
    """X of a `list[X]` hint (X a scalar): vLLM checks few lists' items before they reach its engine."""
    for arg in _members(hint):
        if typing.get_origin(arg) is list and typing.get_args(arg)[0] in _SCALARS:
            return typing.get_args(arg)[0]
    return None


def _struct_type(hint: Any) -> type | None:
    """The dataclass a hint takes (RepetitionDetectionParams): built from a JSON object here."""
    return next((arg for arg in _members(hint) if dataclasses.is_dataclass(arg)), None)


def _from_string(value: str, allowed: tuple[type, ...]) -> Any:
    # vllm_backend accepts numbers and booleans sent as strings; so do we.
    for kind in (int, float, bool):
        if kind not in allowed:
            continue
        if kind is bool:
            if value.lower() in ("true", "false"):
                return value.lower() == "true"
            continue
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _is(kind: type, value: Any) -> bool:
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


def _check_int64(field: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise InvalidInput(field, f"must be a signed 64-bit integer, got {value}")


def _coerce(name: str, value: Any) -> Any:
    field = f"sampling_parameters.{name}"
    hint = _HINTS[name]
    if (struct := _struct_type(hint)) is not None:
        return _struct(field, struct, value)
    allowed = _allowed_types(hint)
    if allowed is None:
        return value
    if isinstance(value, str) and str not in allowed:
        value = _from_string(value, allowed)
    ok = any(_is(kind, value) for kind in allowed)
    if _is(int, value) and float in allowed:
        ok, value = True, float(value) if int not in allowed else value
    if not ok:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise InvalidInput(field, f"must be {names}, got {json.dumps(value)}")
    _check_int64(field, value)
    if isinstance(value, list) and (item_type := _element_type(hint)) is not None:
        for item in value:
            if not _is(item_type, item):
                raise InvalidInput(field, f"items must be {item_type.__name__}, got {json.dumps(item)}")
            _check_int64(field, item)
    return value


def _struct(field: str, cls: type, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(field, f"must be an object, got {json.dumps(value)}")
    # vLLM's pydantic dataclasses drop unknown keys; a misspelt one is named instead.
    if unknown := sorted(set(value) - {f.name for f in dataclasses.fields(cls)}):
        raise InvalidInput(f"{field}.{unknown[0]}", "unknown field")
    try:
        return cls(**value)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(".".join([field, *map(str, first["loc"])]), first["msg"]) from None
    except (TypeError, ValueError, VLLMClientError) as exc:
        raise InvalidInput(field, message(exc)) from None


def _logit_bias(value: Any) -> dict[int, float] | None:
    """{token id: bias}; JSON object keys are strings, SamplingParams wants ints.

    A bias outside [-100, 100] (OpenAI's documented range) is refused: vLLM's server clamps it,
    which would change the request without telling the client.
    """
    field = "sampling_parameters.logit_bias"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(field, f"must be an object of token ids to biases, got {json.dumps(value)}")
    out: dict[int, float] = {}
    for key, bias in value.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise InvalidInput(field, f"keys must be token ids (integers), got {json.dumps(key)}") from None
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
            raise InvalidInput(
                field, f"the bias of token {key} must be a number in [-100, 100], got {json.dumps(bias)}"
            )
        out[token] = float(bias)
    return out


def to_sampling_params(params: dict[str, Any], stream: bool) -> SamplingParams:
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name == "lora_name":
            # Not a SamplingParams field: VllmEngine takes it out first (lora.py).
            raise InvalidInput("sampling_parameters.lora_name", "LoRA adapters are chosen by the engine, not here")
        if name not in _HINTS or name.startswith("_") or name in _PRIVATE:
            raise InvalidInput(f"sampling_parameters.{name}", "unknown field")
        if name == "structured_outputs":
            kwargs[name] = _structured_outputs(value)
        elif name == "logit_bias":
            kwargs[name] = _logit_bias(value)
        else:
            kwargs[name] = _coerce(name, value)
    # Streaming sends deltas, as vLLM's own server does; otherwise one final output.
    kwargs["output_kind"] = RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY
    try:
        return SamplingParams(**kwargs)
    except (ValueError, TypeError, VLLMClientError) as exc:
        raise InvalidInput(field_of(exc, None), message(exc)) from None


def _structured_outputs(value: Any) -> StructuredOutputsParams:
    # vllm_backend takes it as a JSON string; an object is accepted too.
    value = json_object(value, "sampling_parameters.structured_outputs")
    try:
        return StructuredOutputsParams(**value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("sampling_parameters.structured_outputs", str(exc)) from None
