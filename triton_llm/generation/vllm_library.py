"""vLLM used as a library, not as an engine: what the chat layer and the transformers engine take from it.

Whichever engine serves a model, tool calling and reasoning output are parsed by vLLM's own
parsers (`triton_llm.generation.chat`), with vLLM's protocol classes, and the transformers
engine checks structured outputs with vLLM's checks and words their errors as vLLM does
(`engines/hf/structured.py`). Those uses import this module, never the vLLM engine's package
(`engines/vllm/`), so that what they need from vLLM is listed here and nothing ties them to
AsyncLLM. Importing it raises ImportError without vLLM: its users then serve without tools.

Differences between vLLM versions in what is used here (0.16.0, the oldest we claim, against
0.32; the engine's own are in `engines/vllm/compat.py`), looked up by feature, not version:
- `vllm.parser`'s `Parser` has no `parse` / `parse_delta`, on which tool calling and reasoning
  output are built: `tool_call_parser` and `reasoning_parser` are refused when the model loads
  (`parsers_missing`), and a request with tools gets a 400 that says why.
- `DeltaMessage`, `ExtractedToolCallInformation` and `make_tool_call_id` moved modules.
"""

from __future__ import annotations

import vllm

VERSION: str = vllm.__version__


def too_old(feature: str, key: str | None = None) -> str:
    """The message that refuses `feature` on this vLLM, naming model.json's `key` where one asks for it."""
    asked = f"{key} needs " if key else f"{feature} needs "
    return f"{asked}a newer vLLM than {VERSION} (the one installed here): {feature} is not in its API"


def message(exc: BaseException) -> str:
    """The prose of a vLLM error, without what its str() appends."""
    # VLLMValidationError's str() appends " (parameter=..., value=...)"; its first arg is the prose.
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


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
