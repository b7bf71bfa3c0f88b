"""Keys of `sampling_parameters` that vLLM 0.32 takes as request options, not `SamplingParams`
fields: `priority` (the scheduler's) and `use_beam_search` with `length_penalty` (vLLM's server
runs beam search itself, around the engine). Taken out of the sampling parameters here, as
`truncate_prompt_tokens` is (prompt_inputs), and refused by an engine that cannot honour them.
"""

from __future__ import annotations

import json
from typing import Any

from triton_llm.errors import InvalidInput
from triton_llm.generation.types import GenerateRequest

_INT64 = (-(2**63), 2**63 - 1)


def _scalar(sampling: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = sampling.pop(name, None)
    if value is None:
        return default
    if isinstance(value, str):  # vllm_backend clients send numbers and booleans as strings
        lowered = value.lower()
        if kind is bool and lowered in ("true", "false"):
            value = lowered == "true"
        else:
            try:
                value = kind(value)
            except ValueError:
                pass
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise InvalidInput(f"sampling_parameters.{name}", f"must be {kind.__name__}, got {json.dumps(value)}")
    if kind is int and not _INT64[0] <= value <= _INT64[1]:
        raise InvalidInput(f"sampling_parameters.{name}", f"must be a signed 64-bit integer, got {value}")
    return value


def take(sampling: dict[str, Any]) -> dict[str, Any]:
    """`GenerateRequest` keyword arguments of the options in `sampling`, which loses them."""
    priority = _scalar(sampling, "priority", int, 0)
    beam = _scalar(sampling, "use_beam_search", bool, False)
    length_penalty = _scalar(sampling, "length_penalty", float, 1.0)
    return {"priority": priority, "beam_length_penalty": length_penalty if beam else None}


def refuse_unsupported(request: GenerateRequest, engine: str, *, priority_scheduling: bool, beam_search: bool) -> None:
    """A 400 naming the option and the engine where `engine` cannot honour what `request` asks."""
    if request.priority != 0 and not priority_scheduling:
        raise InvalidInput(
            "sampling_parameters.priority",
            f"the {engine} engine of this model does not schedule by priority (vLLM's `scheduling_policy: "
            f"priority` in model.json does); only 0 is accepted, got {request.priority}",
        )
    if request.beam_length_penalty is not None and not beam_search:
        raise InvalidInput(
            "sampling_parameters.use_beam_search",
            f"beam search is not supported by the {engine} engine; serve the model with vLLM for it",
        )
