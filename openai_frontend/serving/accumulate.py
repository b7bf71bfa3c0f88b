"""One accumulator of a request's steps into choices and usage, for chat and completions,
streamed or not: `serving.chat` and `serving.completions` turn what it holds into their
response types.

A request with several prompts (completions' list) is one model request per prompt, each
with `n` choices; choice `i` of prompt `p` is OpenAI's choice `p * n + i`. Usage is exact:
the models count the tokens (docs/protocol.md), and nothing here estimates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from openai_frontend.schemas.common import FinishReason, Usage, finish_reason
from openai_frontend.serving.logprobs import Positions
from openai_frontend.serving.tensors import Step


@dataclass
class Delta:
    """What one step added to one choice."""

    index: int
    text: str
    finish_reason: FinishReason
    logprobs: Positions | None
    token_ids: list[int] | None = None  # when the request asked for them
    # With the model's parsers at work (docs/protocol.md), else None: this step's tool-call
    # deltas (streamed) or calls (not), and its reasoning text.
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str | None = None

    @property
    def parsed(self) -> bool:
        """The text is what the parsers left of the output, and may be "" with news elsewhere."""
        return self.tool_calls is not None or self.reasoning is not None


@dataclass
class Choice:
    """One choice so far."""

    index: int
    text: str = ""
    finish_reason: FinishReason = None
    logprobs: Positions = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    num_tokens: int = 0
    # Not streamed, the whole calls (one response brings them); streamed, the deltas as sent.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str = ""


class Accumulator:
    def __init__(self, n: int, prompts: int = 1):
        self.n = n
        self.choices = [Choice(i) for i in range(n * prompts)]
        self.completion_tokens = 0
        self._prompt_tokens = [0] * prompts
        # Per prompt, from its first response (the model sends them once).
        self.prompt_token_ids: list[list[int] | None] = [None] * prompts
        self.prompt_logprobs: list[Positions | None] = [None] * prompts

    def add(self, prompt: int, step: Step) -> list[Delta]:
        """Take one step of prompt `prompt`'s model request; what it added, choice by choice."""
        # Every response repeats its prompt's count, except with sparse outputs, where only
        # the first carries it (the others decode as 0): the first count is the count.
        if not self._prompt_tokens[prompt]:
            self._prompt_tokens[prompt] = step.num_input_tokens
        if step.prompt_token_ids is not None and self.prompt_token_ids[prompt] is None:
            self.prompt_token_ids[prompt] = step.prompt_token_ids
        if step.prompt_logprobs is not None and self.prompt_logprobs[prompt] is None:
            self.prompt_logprobs[prompt] = step.prompt_logprobs
        deltas = []
        for c, text in enumerate(step.texts):
            choice = self.choices[prompt * self.n + c]
            reason = finish_reason(step.finish_reasons[c])
            choice.text += text
            choice.finish_reason = reason or choice.finish_reason
            choice.logprobs.extend(step.logprobs[c] or [])
            ids = step.token_ids[c] if c < len(step.token_ids) else None
            choice.token_ids.extend(ids or [])
            choice.num_tokens += step.num_output_tokens[c]
            self.completion_tokens += step.num_output_tokens[c]
            calls = step.tool_calls[c] if c < len(step.tool_calls) else None
            reasoning = step.reasoning[c] if c < len(step.reasoning) else None
            choice.tool_calls.extend(calls or [])
            choice.reasoning += reasoning or ""
            deltas.append(Delta(choice.index, text, reason, step.logprobs[c], ids, calls, reasoning))
        return deltas

    async def add_all(self, steps: AsyncIterator[tuple[int, Step]]) -> None:
        """Take every step of a non-streamed request."""
        async for prompt, step in steps:
            self.add(prompt, step)

    @property
    def prompt_tokens(self) -> int:
        return sum(self._prompt_tokens)

    def usage(self) -> Usage:
        return Usage.of(self.prompt_tokens, self.completion_tokens)

    def choice_usage(self, index: int) -> Usage:
        """One choice's usage so far (vLLM's `continuous_usage_stats`): its prompt, its tokens."""
        return Usage.of(self._prompt_tokens[index // self.n], self.choices[index].num_tokens)
