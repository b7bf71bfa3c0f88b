"""The chat layer around any generation engine: model.json's chat template and template
defaults, tool calling and reasoning output (docs/tool-calling.md).

`ChatEngine` wraps an `Engine` and is one itself: before a `messages` request reaches the
engine it gets the template, the default template variables and, for `tool_choice:
required` or a named tool, the structured output that makes the model answer with calls;
the chunks coming back are parsed by vLLM's parsers (`outputs`). Requests without
`messages` pass through untouched. `tokenize_only` requests are answered here (`tokenize`),
with the same template and defaults, and never reach the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from triton_llm import hf_loading
from triton_llm.errors import InvalidInput, SettingError
from triton_llm.generation.chat import tokenize
from triton_llm.generation.chat.outputs import ParsedOutputs
from triton_llm.generation.chat.parsers import parser_class, structured_outputs_dict, vllm_request
from triton_llm.generation.engines.base import Engine
from triton_llm.generation.stats import EngineStats, Load
from triton_llm.generation.types import GenerateRequest, GenerationChunk
from triton_llm.settings import GenerationSettings

logger = logging.getLogger(__name__)


class ChatEngine:
    def __init__(self, engine: Engine, settings: GenerationSettings):
        self.engine = engine
        self.settings = settings
        self.chat_template = read_chat_template(settings.chat_template)
        self._parser_cls: type | None = None
        self._tokenizer: Any = None
        self._vocab_limit = 0  # the largest token id (tokenize_only's check of input_ids)
        self._missing_vllm: str | None = None  # why tools cannot be served here

    # -- the Engine interface, delegated ----------------------------------------------

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    @property
    def max_num_seqs(self) -> int:
        return self.engine.max_num_seqs

    def num_choices(self, request: GenerateRequest) -> int:
        # A tokenize_only answer has no choices: the runner counts no prompt or generated tokens.
        return 0 if request.tokenize_only else self.engine.num_choices(request)

    def num_unfinished(self) -> int:
        return self.engine.num_unfinished()

    def load(self) -> Load:
        return self.engine.load()

    def dead(self) -> str | None:
        return self.engine.dead()

    async def shutdown(self) -> None:
        await self.engine.shutdown()

    async def start(self) -> None:
        await self.engine.start()
        # The parsers and tokenize_only requests read the model's own tokenizer (special
        # tokens such as <tool_call>).
        self._tokenizer = await asyncio.to_thread(hf_loading.load_tokenizer, self.settings)
        self._vocab_limit = await asyncio.to_thread(tokenize.vocab_limit, self._tokenizer, self.settings)
        key = "tool_call_parser" if self.settings.tool_call_parser else "reasoning_parser"
        asked = bool(self.settings.tool_call_parser or self.settings.reasoning_parser)
        try:
            from triton_llm.generation.vllm_library import parsers_missing
        except ImportError as exc:
            if asked:
                raise SettingError(key, f"{key} needs vLLM's parsers, and vLLM is not installed") from None
            self._missing_vllm = f"tool calling needs vLLM's parsers, which are not installed ({exc})"
            return
        if (reason := parsers_missing(key if asked else None)) is not None:  # an older vLLM (vllm_library)
            if asked:
                raise SettingError(key, reason)
            self._missing_vllm = reason
            return
        self._parser_cls = parser_class(self.settings, self._tokenizer)
        logger.info(
            "chat: template %s, tool_call_parser %s (auto tool choice %s), reasoning_parser %s",
            "from model.json" if self.chat_template else "the tokenizer's",
            self.settings.tool_call_parser, self.settings.enable_auto_tool_choice, self.settings.reasoning_parser,
        )  # fmt: skip

    # -- requests ---------------------------------------------------------------------

    async def generate(self, request: GenerateRequest, request_id: str) -> AsyncIterator[GenerationChunk]:
        if request.tokenize_only:
            self.apply_template_settings(request)
            max_model_len = getattr(self.engine, "max_model_len", None)  # both engines know it once started
            yield await tokenize.answer(self._tokenizer, request, max_model_len, self._vocab_limit)
            return
        parsed = self.prepare(request)
        async with aclosing(self.engine.generate(request, request_id)) as chunks:
            async for chunk in chunks:
                if parsed is not None:
                    parsed.apply(chunk, request.stream)
                yield chunk

    def prepare(self, request: GenerateRequest) -> ParsedOutputs | None:
        """Give a `messages` request the model's template and defaults and, when its output is to
        be parsed, what the parsers need (the structured output of forced calls); else None."""
        if request.messages is None:
            return None
        self.apply_template_settings(request)
        tools = bool(request.tools) and request.tool_choice != "none"
        reasoning = self.settings.reasoning_parser is not None
        if not (tools or reasoning):
            return None
        if self._parser_cls is None:
            raise InvalidInput("tools", self._missing_vllm or "tool calling is not available")
        auto = self.settings.enable_auto_tool_choice
        if tools and request.tool_choice == "auto" and not auto:
            raise InvalidInput(
                "tool_choice",
                '"auto" tool choice requires enable_auto_tool_choice and tool_call_parser in the model\'s model.json',
            )
        vreq = vllm_request(
            request.tools, request.tool_choice, request.parallel_tool_calls,
            request.chat_template_kwargs, request.sampling.get("structured_outputs"),
        )  # fmt: skip
        parsed = ParsedOutputs(
            self._parser_cls, self._tokenizer, vreq, self.num_choices(request), auto_tools=auto, tools=tools
        )
        # vLLM's Parser turns `required` / a named tool into a JSON schema, and may keep special tokens.
        vreq = parsed.parsers[0].adjust_request(vreq)
        parsed.request = vreq
        if (constraint := structured_outputs_dict(vreq.structured_outputs)) is not None:
            request.sampling["structured_outputs"] = constraint
        if vreq.skip_special_tokens is False:
            request.sampling["skip_special_tokens"] = False
        request.returns_tool_calls, request.returns_reasoning = tools, reasoning
        return parsed

    def apply_template_settings(self, request: GenerateRequest) -> None:
        """model.json's chat template and default template variables, under the request's own."""
        if request.messages is None:
            return
        request.chat_template = self.chat_template
        if defaults := self.settings.default_chat_template_kwargs:
            request.chat_template_kwargs = {**defaults, **(request.chat_template_kwargs or {})}


def read_chat_template(value: str | None) -> str | None:
    """model.json's `chat_template`: the template itself, or a file (load_model_json made a
    relative path absolute)."""
    if value is None or "{{" in value or "{%" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise SettingError("chat_template", f"chat_template: {value} is neither a file nor a Jinja template")
    return path.read_text()
