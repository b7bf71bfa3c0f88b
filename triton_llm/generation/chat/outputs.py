"""One request's output, parsed as vLLM's chat server parses it: reasoning, content, tool calls.

Streamed, each choice's deltas go through its own vLLM Parser (`parse_delta`); not streamed,
the whole text goes through `parse`, unless max_tokens cut a tool-calling answer: that one is
parsed as its stream is (`_cut`), so that both give the same answer. The finish reason becomes
`tool_calls` where OpenAI gives it, and `parallel_tool_calls: false` keeps the first call, both
as in vLLM's serving code (vllm/entrypoints/openai/chat_completion/serving.py).
"""

from __future__ import annotations

from typing import Any

from triton_llm.generation.types import ChoiceDelta, GenerationChunk


class ParsedOutputs:
    def __init__(self, parser_cls: type, tokenizer: Any, request: Any, n: int, *, auto_tools: bool, tools: bool):
        self.request = request  # vLLM's ChatCompletionRequest
        kwargs = request.chat_template_kwargs or {}
        self.parsers = [parser_cls(tokenizer, request.tools, chat_template_kwargs=kwargs) for _ in range(n)]
        self.auto_tools = auto_tools
        self.tools = tools  # tool calls are looked for (tools given, tool_choice not "none")
        choice = request.tool_choice
        self.named = tools and not isinstance(choice, str) and choice is not None
        self.required = tools and choice == "required"
        self.called = [False] * n  # a choice has streamed a call

    def apply(self, chunk: GenerationChunk, stream: bool) -> None:
        for delta in chunk.choices:
            if stream:
                self._delta(delta, chunk.prompt_token_ids)
            elif self.tools and delta.finish_reason == "length":
                self._cut(delta, chunk.prompt_token_ids)
            else:
                self._whole(delta)

    def _whole(self, choice: ChoiceDelta) -> None:
        parser = self.parsers[choice.index]
        reasoning, content, calls = parser.parse(
            choice.text, self.request, enable_auto_tools=self.auto_tools, model_output_token_ids=choice.token_ids or ()
        )
        choice.text, choice.reasoning = content or "", reasoning
        if not self.tools:
            return
        self._set_calls(choice, [(c.id, c.name, c.arguments) for c in calls or []])

    def _cut(self, choice: ChoiceDelta, prompt_token_ids: list[int] | None) -> None:
        """A whole answer cut by max_tokens is parsed as its stream is (as one delta), the deltas
        assembled. vLLM's whole parse wants complete calls: hermes' gives a call cut inside
        `</tool_call>` back as markup in `content` and logs a traceback, `required`'s JSON finds
        no call; its stream gives the call as far as it got. vLLM's server answers the two
        differently (0.32); here both give the stream's answer, finish_reason `length`."""
        self._delta(choice, prompt_token_ids)
        calls: dict[int, dict[str, str]] = {}
        for delta in choice.tool_calls or []:
            call = calls.setdefault(delta["index"], {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or delta.get("id", "")
            call["name"] += delta.get("function", {}).get("name", "")
            call["arguments"] += delta.get("function", {}).get("arguments", "")
        self._set_calls(choice, [(c["id"] or None, c["name"], c["arguments"]) for _, c in sorted(calls.items())])

    def _set_calls(self, choice: ChoiceDelta, calls: list[tuple[str | None, str, str]]) -> None:
        """The choice's whole calls from (id or None, name, arguments), and its finish reason."""
        from triton_llm.generation.vllm_library import make_tool_call_id

        whole = [
            {"id": id_ or make_tool_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
            for id_, name, arguments in calls
        ]
        choice.tool_calls = whole[:1] if self.request.parallel_tool_calls is False else whole
        if choice.finish_reason == "stop" and calls and not self.named:
            choice.finish_reason = "tool_calls"

    def _delta(self, choice: ChoiceDelta, prompt_token_ids: list[int] | None) -> None:
        parser = self.parsers[choice.index]
        message = parser.parse_delta(
            choice.text,
            list(choice.token_ids or []),
            self.request,
            prompt_token_ids=prompt_token_ids,
            finished=choice.finish_reason is not None,
        )
        choice.text = (message.content if message else None) or ""
        choice.reasoning = (message.reasoning if message else None) or ""
        if not self.tools:
            return
        calls = [c.model_dump(exclude_none=True) for c in (message.tool_calls if message else [])]
        if self.request.parallel_tool_calls is False:
            calls = [c for c in calls if c["index"] == 0]
        choice.tool_calls = calls
        self.called[choice.index] |= bool(calls)
        if choice.finish_reason == "stop" and self.called[choice.index] and not self.named:
            choice.finish_reason = "tool_calls"
