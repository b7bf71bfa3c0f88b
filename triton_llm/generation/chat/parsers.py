"""vLLM's output parsers, chosen in model.json, and the vLLM request object they read.

The parsers are vLLM's own (`vllm.parser`, `vllm.tool_parsers`, `vllm.reasoning`): the same
classes vLLM's server composes for `--tool-call-parser` / `--reasoning-parser`, so a model
parses here as it does there. They run inside the model, which holds the tokenizer; the
frontend stays free of tokenizers. vLLM is imported lazily: without it a model serves chat
but no tools or reasoning.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from triton_llm.errors import InvalidInput, SettingError
from triton_llm.settings import GenerationSettings


def parser_class(settings: GenerationSettings, tokenizer: Any) -> type:
    """The Parser class for this model: its reasoning parser and tool-call parser, the latter
    falling back to one that finds no calls in free text (`required` and a named tool need no
    parser: structured output shapes their calls as JSON, which vLLM's Parser reads)."""
    from vllm.parser import ParserManager
    from vllm.parser.abstract_parser import DelegatingParser

    if settings.enable_auto_tool_choice and not settings.tool_call_parser:
        raise SettingError("enable_auto_tool_choice", "enable_auto_tool_choice needs a tool_call_parser")
    for key, name, find in (
        ("tool_call_parser", settings.tool_call_parser, lambda n: ParserManager.get_tool_parser(n, True)),
        ("reasoning_parser", settings.reasoning_parser, ParserManager.get_reasoning_parser),
    ):
        try:
            find(name)
        except TypeError:
            raise SettingError(key, f"{key} {name!r} is not one of vLLM's") from None
    try:
        composed = ParserManager.get_parser(
            tool_parser_name=settings.tool_call_parser,
            reasoning_parser_name=settings.reasoning_parser,
            enable_auto_tools=True,
            tool_strict_level=settings.tool_strict_level,
            tokenizer=tokenizer,
        )
    except TypeError as exc:  # the parsers need tokens this tokenizer lacks
        key = "reasoning_parser" if settings.reasoning_parser and "reasoning" in str(exc) else "tool_call_parser"
        raise SettingError(key, str(exc)) from None
    base = composed or DelegatingParser
    if base.tool_parser_cls is not None:
        return base
    return type("Parser", (base,), {"tool_parser_cls": _no_free_text_calls()})


def _no_free_text_calls() -> type:
    from vllm.tool_parsers.abstract_tool_parser import ToolParser

    from triton_llm.generation.vllm_library import tool_call_protocol

    DeltaMessage, ExtractedToolCallInformation = tool_call_protocol()

    class NoFreeTextCalls(ToolParser):
        """No format of calls in free text: only `required` / named calls (JSON) are read."""

        def extract_tool_calls(self, model_output, request):
            return ExtractedToolCallInformation(tools_called=False, tool_calls=[], content=model_output)

        def extract_tool_calls_streaming(self, previous_text, current_text, delta_text, *args, **kwargs):
            return DeltaMessage(content=delta_text) if delta_text else None

    return NoFreeTextCalls


def vllm_request(
    tools: list[dict[str, Any]] | None,
    tool_choice: Any,
    parallel_tool_calls: bool | None,
    chat_template_kwargs: dict[str, Any] | None,
    structured_outputs: dict[str, Any] | None,
) -> Any:
    """vLLM's ChatCompletionRequest with what its parsers read; its validation is vLLM's, its
    errors name our fields."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.exceptions import VLLMValidationError

    fields = {
        "model": "",
        # The parsers do not read the conversation (kimi_k2's call ids aside, which restart at 0).
        "messages": [{"role": "user", "content": ""}],
        "tools": tools,
        "tool_choice": tool_choice,
        "parallel_tool_calls": parallel_tool_calls,
        "chat_template_kwargs": chat_template_kwargs,
        "structured_outputs": structured_outputs,
    }
    try:
        return ChatCompletionRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except VLLMValidationError as exc:
        raise InvalidInput(exc.parameter or "tools", str(exc)) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(_field(error["loc"]), error["msg"]) from None


def _field(loc: tuple) -> str:
    if not loc:
        return "tools"
    name = "sampling_parameters.structured_outputs" if loc[0] == "structured_outputs" else str(loc[0])
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def structured_outputs_dict(params: Any) -> dict[str, Any] | None:
    """vLLM's StructuredOutputsParams as our `sampling_parameters.structured_outputs` JSON."""
    if params is None:
        return None
    out = {}
    for key in ("json", "regex", "choice", "grammar", "json_object", "structural_tag"):
        value = getattr(params, key, None)
        if value is not None:
            out[key] = json.loads(value) if key == "json" and isinstance(value, str) else value
    return out
