"""`sampling_parameters` JSON -> vLLM `SamplingParams`, with errors that name the field.

vLLM's own constructor does the range checks (`vllm_errors` names the field of each); we
add what it leaves to Python: unknown fields, wrong JSON types, the string-typed numbers
that vllm_backend clients send ("0.7" for temperature), integers beyond 64 bits (vLLM's
server takes a `seed` in int64; its engine's transport fails on larger ones after the
request is registered), and `logit_bias`' keys, which JSON can only send as strings.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any

from vllm import SamplingParams
from vllm.exceptions import VLLMClientError
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

from triton_llm.errors import InvalidInput, json_object
from triton_llm.generation.engines.vllm_errors import field_of

_HINTS = typing.get_type_hints(SamplingParams)
# Fields that are vLLM's internals or set by us, not by clients.
_PRIVATE = {"output_kind", "skip_clone", "output_text_buffer_length", "detokenize", "flat_logprobs"}
ACCEPTED = sorted(name for name in _HINTS if not name.startswith("_") and name not in _PRIVATE)

_SCALARS = (bool, int, float, str)
# vLLM's server takes `seed` in int64 (its protocol's Field(ge=..., le=...)); so do we, for every integer.
_INT64 = (-(2**63), 2**63 - 1)


def _allowed_types(hint: Any) -> tuple[type, ...] | None:
    """The JSON-level types a hint accepts, or None when we leave checking to vLLM."""
    if hint in _SCALARS:
        return (hint,)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        out: list[type] = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                out.append(type(None))
            elif arg in _SCALARS:
                out.append(arg)
            elif typing.get_origin(arg) is list:
                out.append(list)
            else:
                return None
        return tuple(out)
    if typing.get_origin(hint) is list:
        return (list,)
    return None


def _coerce(name: str, value: Any) -> Any:
    allowed = _allowed_types(_HINTS[name])
    if allowed is None:
        return value
    if isinstance(value, str) and str not in allowed:
        # vllm_backend accepts numbers and booleans sent as strings; so do we.
        for kind in (int, float, bool):
            if kind in allowed:
                try:
                    if kind is bool:
                        if value.lower() not in ("true", "false"):
                            raise ValueError
                        return value.lower() == "true"
                    return kind(value)
                except ValueError:
                    continue
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if isinstance(value, int) and not isinstance(value, bool) and float in allowed:
        ok, value = True, float(value) if int not in allowed else value
    if not ok:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise InvalidInput(f"sampling_parameters.{name}", f"must be {names}, got {json.dumps(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise InvalidInput(f"sampling_parameters.{name}", f"must be a signed 64-bit integer, got {value}")
    return value


def _logit_bias(value: Any) -> dict[int, float] | None:
    """{token id: bias}; JSON object keys are strings, SamplingParams wants ints (clamped as vLLM's server does)."""
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
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise InvalidInput(field, f"the bias of token {key} must be a number, got {json.dumps(bias)}")
        out[token] = min(100.0, max(-100.0, float(bias)))
    return out


def to_sampling_params(params: dict[str, Any], stream: bool) -> SamplingParams:
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name == "lora_name":
            raise InvalidInput("sampling_parameters.lora_name", "LoRA adapters are not enabled for this model")
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
        raise InvalidInput(field_of(exc, None), str(exc.args[0]) if exc.args else str(exc)) from None


def _structured_outputs(value: Any) -> StructuredOutputsParams:
    # vllm_backend takes it as a JSON string; an object is accepted too.
    value = json_object(value, "sampling_parameters.structured_outputs")
    try:
        return StructuredOutputsParams(**value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("sampling_parameters.structured_outputs", str(exc)) from None
