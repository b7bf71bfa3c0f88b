"""The engine-neutral types of generation: what the runner hands an engine, and what engines yield.

The wire format (`protocol`) depends on these; engines import them from here, never from
the wire module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RETURN_FLAGS = (
    "return_finish_reason",
    "return_cumulative_logprob",
    "return_logprobs",
    "return_num_input_tokens",
    "return_num_output_tokens",
)


@dataclass
class GenerateRequest:
    """One generation request, validated, independent of Triton and of the engine."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    stream: bool = False
    # vllm_backend semantics: the prompt is prepended to a non-streamed output unless
    # `exclude_input_in_output` is true; streaming never prepends.
    prepend_input: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)
    returns: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(RETURN_FLAGS, False))
    sparse_outputs: bool = False


@dataclass
class ChoiceDelta:
    """What one choice (of `n`) produced since the previous chunk."""

    index: int
    text: str = ""
    num_tokens: int = 0
    finish_reason: str | None = None
    cumulative_logprob: float | None = None
    # One dict per new token: {token_id: {"logprob", "rank", "decoded_token"}}.
    logprobs: list[dict[int, dict[str, Any]]] | None = None


@dataclass
class GenerationChunk:
    """One step of output for a request: engines yield these, the runner sends them."""

    prompt: str
    num_input_tokens: int
    choices: list[ChoiceDelta]
    finished: bool
