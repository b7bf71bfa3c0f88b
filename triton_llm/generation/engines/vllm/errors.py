"""vLLM's errors before the first output -> `InvalidInput` naming the field, or a server error that says what failed.

vLLM refuses a request in several places: `SamplingParams`' own checks, its input processor
(`SamplingParams.verify`, the prompt's length and token ids) and its renderer. Some of its
errors carry the field as `parameter`; many of the range checks do not (`top_k`, `n`,
`min_p`, `presence_penalty`, `min_tokens`), but their message starts with the field's name.
The prompt is blamed only when the prompt is the problem. Anything else is the server's
fault: `AsyncLLM.generate` wraps it in an `EngineGenerateError` whose message is empty, so
we name the cause instead.
"""

from __future__ import annotations

import re
import typing

from vllm import SamplingParams
from vllm.v1.engine.exceptions import EngineGenerateError

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.vllm.compat import VLLMClientError
from triton_llm.generation.vllm_library import message

SAMPLING_FIELDS = frozenset(name for name in typing.get_type_hints(SamplingParams) if not name.startswith("_"))
# vLLM's `parameter` names that mean the prompt (renderers/params.py, input_processor.py).
_PROMPT_PARAMETERS = {"input_tokens", "input_text", "prompt", "prompt_token_ids", "prompt_embeds"}
# "The decoder prompt (length 9000) is longer than ...", "Token id 70000 is out of vocabulary".
_PROMPT_MESSAGE = re.compile(r"\bprompt\b|^Token id -?\d+ is out of vocabulary", re.IGNORECASE)
_LEADING_NAME = re.compile(r"[A-Za-z_]+")


def field_of(exc: BaseException, prompt_field: str | None) -> str:
    """The request field a vLLM client error is about, as our protocol names it.

    `prompt_field` is the input holding the prompt (`text_input` or `messages`), or None
    where no prompt is involved (building `SamplingParams`).
    """
    parameter = getattr(exc, "parameter", None)
    text = message(exc)
    if parameter in SAMPLING_FIELDS:
        return f"sampling_parameters.{parameter}"
    if prompt_field is not None and parameter in _PROMPT_PARAMETERS:
        return prompt_field
    leading = _LEADING_NAME.match(text)
    if leading and leading.group() in SAMPLING_FIELDS:
        return f"sampling_parameters.{leading.group()}"
    if prompt_field is not None and _PROMPT_MESSAGE.search(text):
        return prompt_field
    if _structured_output_check(exc):  # a regex, grammar or schema vLLM cannot compile
        return "sampling_parameters.structured_outputs"
    return "sampling_parameters"


def _structured_output_check(exc: BaseException) -> bool:
    """Raised by vLLM's structured-output code (`vllm.v1.structured_output`, or
    `SamplingParams._validate_structured_outputs`), whose messages name no field."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if "structured_output" in frame.f_globals.get("__name__", "") or "structured_output" in frame.f_code.co_name:
            return True
        tb = tb.tb_next
    return False


def client_error(exc: BaseException, prompt_field: str | None) -> InvalidInput | None:
    """`exc` as the client's mistake naming its field, or None when it is not the client's.

    A `ValueError` is vLLM's way of refusing input where it has no typed error
    (`input_processor`'s own checks), so it counts as the client's, as in vLLM's server.
    """
    if isinstance(exc, EngineGenerateError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, InvalidInput):
        return exc
    if not isinstance(exc, (VLLMClientError, ValueError)):
        return None
    return InvalidInput(field_of(exc, prompt_field), message(exc))


def describe(exc: BaseException) -> str:
    """A non-empty account of an unexpected error: vLLM's wrappers carry none themselves."""
    seen: list[str] = []
    while exc is not None and len(seen) < 4:
        text = str(exc)
        seen.append(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        if text:
            break
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(seen)
