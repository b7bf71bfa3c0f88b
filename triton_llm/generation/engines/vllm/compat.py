"""What differs between the vLLM versions we support, in one place.

The engine is written against vLLM 0.32 (the CPU build in .venv); the oldest vLLM we claim is
0.16.0, the one NVIDIA's tritonserver 26.03 image ships (the Dockerfile's default base), and
`make vllm-compat` (tools/vllm_compat.sh) runs the vLLM engine's integration tests on it.
Each difference is looked up by feature, not by version number, so that a vLLM in between
takes whichever side it has. What an older vLLM cannot do is refused by name when the model
loads (`too_old`), never halfway through a request.

Differences handled here (0.16.0 against 0.32):
- `vllm.exceptions.VLLMClientError` does not exist; its client errors are `ValueError`s
  (`VLLMValidationError` among them), which is what we catch instead.
- The renderer has no `default_chat_tok_params` / `default_cmpl_tok_params`; we build the same
  `TokenizeParams` as its own `LLM` does. `TokenizeParams.with_kwargs` takes a dict, not keywords.
- `SchedulerStats` has no `num_skipped_waiting_reqs` (it counts every waiting request as waiting).
- `vllm.parser`'s `Parser` has no `parse` / `parse_delta`, on which tool calling and reasoning
  output are built: `tool_call_parser` and `reasoning_parser` are refused, and a request with
  tools gets a 400 that says why.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import vllm

try:
    from vllm.exceptions import VLLMClientError
except ImportError:  # vLLM 0.16: its client errors are ValueErrors (VLLMValidationError too)
    VLLMClientError = ValueError  # type: ignore[misc,assignment]

VERSION: str = vllm.__version__


def too_old(feature: str, key: str | None = None) -> str:
    """The message that refuses `feature` on this vLLM, naming model.json's `key` where one asks for it."""
    asked = f"{key} needs " if key else f"{feature} needs "
    return f"{asked}a newer vLLM than {VERSION} (the one installed here): {feature} is not in its API"


# -- the prompt ------------------------------------------------------------------------


def tok_params(renderer: Any, model_config: Any, chat: bool) -> Any:
    """The renderer's default tokenization for a chat (template already holds its special
    tokens) or a completion prompt."""
    name = "default_chat_tok_params" if chat else "default_cmpl_tok_params"
    if hasattr(type(renderer), name):
        return getattr(renderer, name)
    from vllm.renderers.params import TokenizeParams

    # As vLLM 0.16's own LLM builds them (LLM._get_cmpl_tok_params / _get_chat_tok_params).
    encoder_config = model_config.encoder_config or {}
    return TokenizeParams(
        max_total_tokens=model_config.max_model_len,
        do_lower_case=encoder_config.get("do_lower_case", False),
        add_special_tokens=False if chat else not model_config.is_encoder_decoder,
    )


def with_truncation(params: Any, keep: int) -> Any:
    """`params` keeping the last `keep` prompt tokens."""
    if _takes_keywords(type(params).with_kwargs):
        return params.with_kwargs(truncate_prompt_tokens=keep)
    return params.with_kwargs({"truncate_prompt_tokens": keep})  # vLLM 0.16: one dict


@functools.cache  # one answer per vLLM: not an inspect.signature per truncated request
def _takes_keywords(fn: Any) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


# -- metrics ---------------------------------------------------------------------------


def waiting_requests(scheduler_stats: Any) -> int:
    """The scheduler's waiting requests as vLLM's own gauge counts them (deferred ones included)."""
    return scheduler_stats.num_waiting_reqs + getattr(scheduler_stats, "num_skipped_waiting_reqs", 0)


# -- tool calling and reasoning output ----------------------------------------------------


def parsers_missing(key: str | None = None) -> str | None:
    """Why this vLLM's parsers cannot serve tool calling and reasoning output (`key`: the
    model.json key that asks for them), or None when they can."""
    try:
        from vllm.parser.abstract_parser import DelegatingParser
    except ImportError:
        return too_old("vllm.parser (tool calling and reasoning output)", key)
    if not all(hasattr(DelegatingParser, name) for name in ("parse", "parse_delta")):
        return too_old("Parser.parse (tool calling and reasoning output)", key)
    return None


def tool_call_protocol() -> tuple[type, type]:
    """vLLM's `DeltaMessage` and `ExtractedToolCallInformation` (moved from `openai.engine` to `generate.base`)."""
    try:
        from vllm.entrypoints.generate.base.protocol import DeltaMessage, ExtractedToolCallInformation
    except ImportError:
        from vllm.entrypoints.openai.engine.protocol import DeltaMessage, ExtractedToolCallInformation
    return DeltaMessage, ExtractedToolCallInformation


def make_tool_call_id() -> str:
    try:
        from vllm.renderers.chat_utils import make_tool_call_id
    except ImportError:
        from vllm.entrypoints.chat_utils import make_tool_call_id
    return make_tool_call_id()
