"""`sampling_parameters` JSON -> what the transformers engine can honour, or an error naming the field.

The fields and defaults are vLLM's `SamplingParams` (one protocol for both engines). What
transformers' continuous batching can do per request is temperature, top-k, top-p, the
token budget and the stop tokens; stop strings are ours (text level), and so are structured
outputs (xgrammar, `structured`, which checks them off the event loop) and vLLM's
`allowed_token_ids` and `bad_words` (`token_filters`). A field that would
change the output but that we cannot honour per request is refused, never ignored; its
neutral value (e.g. `presence_penalty: 0`) is accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from triton_llm.errors import InvalidInput

_UNSUPPORTED_WHY = "is not supported by the huggingface backend; serve the model with vLLM for it"

# field -> neutral value: accepted only with that value (or null).
_NEUTRAL: dict[str, Any] = {
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "min_p": 0.0,
    "min_tokens": 0,
    "logprobs": None,
    "prompt_logprobs": None,
    "seed": None,
    "logit_bias": None,
    "lora_name": None,
}
# Accepted and without effect here, as in vLLM for a plain text model.
_IGNORED = {"spaces_between_special_tokens", "detokenize"}


@dataclass
class HfSampling:
    n: int = 1
    max_tokens: int | None = 16  # None: up to the model's context length (vLLM's rule)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    structured_outputs: Any = None  # as sent; `structured.Grammars.compile` checks it
    # vLLM's token bans (`token_filters`, which checks them against the tokenizer)
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] = field(default_factory=list)
    token_filter: Any = None  # token_filters.TokenFilter of the two, set by the engine (it has the tokenizer)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1


def _number(name: str, value: Any, kind: type) -> Any:
    # vllm_backend clients send numbers as strings ("0.7"); accepted as there.
    if isinstance(value, str):
        try:
            value = kind(value)
        except ValueError:
            pass
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and not float(value).is_integer())
    ):
        raise InvalidInput(f"sampling_parameters.{name}", f"must be {kind.__name__}, got {json.dumps(value)}")
    return kind(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidInput(f"sampling_parameters.{name}", f"must be bool, got {json.dumps(value)}")
    return value


def _check(name: str, ok: bool, problem: str) -> None:
    if not ok:
        raise InvalidInput(f"sampling_parameters.{name}", problem)


def to_hf_sampling(params: dict[str, Any]) -> HfSampling:
    s = HfSampling()
    for name, value in params.items():
        if name in _NEUTRAL:
            neutral = _NEUTRAL[name]
            if value is not None and not (neutral is not None and _number(name, value, float) == neutral):
                raise InvalidInput(f"sampling_parameters.{name}", _UNSUPPORTED_WHY)
        elif name in _IGNORED:
            _bool(name, value)
        elif name in ("n", "top_k"):
            setattr(s, name, _number(name, value, int))
        elif name == "max_tokens":
            s.max_tokens = None if value is None else _number(name, value, int)
        elif name in ("temperature", "top_p"):
            setattr(s, name, _number(name, value, float))
        elif name in ("ignore_eos", "skip_special_tokens", "include_stop_str_in_output"):
            setattr(s, name, _bool(name, value))
        elif name == "stop":
            stops = [value] if isinstance(value, str) else value
            _check(
                name,
                isinstance(stops, list) and all(isinstance(x, str) for x in stops),
                "must be a string or a list of strings",
            )
            s.stop = [x for x in stops if x]
        elif name == "structured_outputs":
            s.structured_outputs = value
        elif name == "stop_token_ids":
            _check(name, isinstance(value, list), "must be a list of token ids")
            s.stop_token_ids = [_number(name, x, int) for x in value]
        elif name == "allowed_token_ids":
            _check(name, value is None or isinstance(value, list), "must be a list of token ids")
            s.allowed_token_ids = None if value is None else [_number(name, x, int) for x in value]
        elif name == "bad_words":
            words = value or []
            _check(
                name,
                isinstance(words, list) and all(isinstance(x, str) for x in words),
                "must be a list of strings",
            )
            _check(name, all(words), f"bad_words cannot contain an empty string. Got bad_words={words}")
            s.bad_words = words
        else:
            raise InvalidInput(f"sampling_parameters.{name}", "unknown field")
    # The ranges vLLM's SamplingParams enforces, with its wording.
    _check("n", s.n >= 1, f"n must be at least 1, got {s.n}.")
    _check(
        "max_tokens", s.max_tokens is None or s.max_tokens >= 1, f"max_tokens must be at least 1, got {s.max_tokens}."
    )
    _check("temperature", s.temperature >= 0.0, f"temperature must be non-negative, got {s.temperature}.")
    _check("top_p", 0.0 < s.top_p <= 1.0, f"top_p must be in (0, 1], got {s.top_p}.")
    _check("top_k", s.top_k >= -1, f"top_k must be 0 (disable), or at least 1, got {s.top_k}.")
    if s.top_k == -1:
        s.top_k = 0
    return s


def sample(probs: torch.Tensor) -> list[int]:
    """One draw per row, by inverting the cumulative distribution.

    The same distribution as `torch.multinomial(probs, 1)`, which on a CPU costs 16 ms for
    16 rows of a 49k vocabulary (its exponential draws) against 0.5 ms here: a quarter of a
    16-row decode step of SmolLM2.
    """
    cdf = probs.cumsum(dim=-1)
    draw = torch.rand((probs.shape[0], 1), device=probs.device) * cdf[:, -1:]
    # right=True: the first token whose cumulative mass exceeds the draw has mass of its own.
    return torch.searchsorted(cdf, draw, right=True).clamp(max=probs.shape[-1] - 1).view(-1).tolist()
