"""`sampling_parameters` JSON -> vLLM `SamplingParams`, with errors that name the field.

vLLM's own constructor does the range checks (its messages name the field); we add what
it leaves to Python: unknown fields, wrong JSON types, and the string-typed numbers that
vllm_backend clients send ("0.7" for temperature).
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from vllm import SamplingParams
from vllm.exceptions import VLLMClientError
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

from triton_llm.errors import InvalidInput, json_object

_HINTS = typing.get_type_hints(SamplingParams)
# Fields that are vLLM's internals or set by us, not by clients.
_PRIVATE = {"output_kind", "skip_clone", "output_text_buffer_length", "detokenize", "flat_logprobs"}
ACCEPTED = sorted(name for name in _HINTS if not name.startswith("_") and name not in _PRIVATE)

_SCALARS = (bool, int, float, str)


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
    return value


def to_sampling_params(params: dict[str, Any], stream: bool) -> SamplingParams:
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name == "lora_name":
            raise InvalidInput("sampling_parameters.lora_name", "LoRA adapters are not enabled for this model")
        if name not in _HINTS or name.startswith("_") or name in _PRIVATE:
            raise InvalidInput(f"sampling_parameters.{name}", "unknown field")
        if name == "structured_outputs":
            kwargs[name] = _structured_outputs(value)
        else:
            kwargs[name] = _coerce(name, value)
    # Streaming sends deltas, as vLLM's own server does; otherwise one final output.
    kwargs["output_kind"] = RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY
    try:
        return SamplingParams(**kwargs)
    except (ValueError, TypeError, VLLMClientError) as exc:
        field = getattr(exc, "parameter", None)
        where = f"sampling_parameters.{field}" if field else "sampling_parameters"
        raise InvalidInput(where, str(exc).split(" (parameter=")[0]) from None


def _structured_outputs(value: Any) -> StructuredOutputsParams:
    # vllm_backend takes it as a JSON string; an object is accepted too.
    value = json_object(value, "sampling_parameters.structured_outputs")
    try:
        return StructuredOutputsParams(**value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("sampling_parameters.structured_outputs", str(exc)) from None
