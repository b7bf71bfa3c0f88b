"""What differs between the vLLM versions we support, for the vLLM engine, in one place.

The engine is written against vLLM 0.32 (the CPU build in .venv); the oldest vLLM we claim is
0.16.0, the one NVIDIA's tritonserver 26.03 image ships (the Dockerfile's default base), and
`make vllm-compat` (tools/vllm_compat.sh) runs the vLLM engine's integration tests on it.
Each difference is looked up by feature, not by version number, so that a vLLM in between
takes whichever side it has. What an older vLLM cannot do is refused by name when the model
loads (`vllm_library.too_old`), never halfway through a request. The differences in vLLM
used as a library (its tool and reasoning parsers) are in `triton_llm.generation.vllm_library`.

Differences handled here (0.16.0 against 0.32):
- `vllm.exceptions.VLLMClientError` does not exist; its client errors are `ValueError`s
  (`VLLMValidationError` among them), which is what we catch instead.
- The renderer has no `default_chat_tok_params` / `default_cmpl_tok_params`; we build the same
  `TokenizeParams` as its own `LLM` does. `TokenizeParams.with_kwargs` takes a dict, not keywords.
- `SchedulerStats` has no `num_skipped_waiting_reqs` (it counts every waiting request as waiting).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

try:
    from vllm.exceptions import VLLMClientError
except ImportError:  # vLLM 0.16: its client errors are ValueErrors (VLLMValidationError too)
    VLLMClientError = ValueError  # type: ignore[misc,assignment]

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
