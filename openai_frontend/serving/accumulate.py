"""One accumulator of a request's steps into choices and usage, for chat and completions,
streamed or not: the routers only turn what it holds into their response types.

A request with several prompts (completions' list) is one model request per prompt, each
with `n` choices; choice `i` of prompt `p` is OpenAI's choice `p * n + i`. Usage is exact:
the models count the tokens (docs/protocol.md), and nothing here estimates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from openai_frontend.schemas.common import FinishReason, Usage, finish_reason
from openai_frontend.serving.tensors import Step

Positions = list[dict[str, dict[str, Any]]]  # the model's logprobs: one entry per token


@dataclass
class Delta:
    """What one step added to one choice."""

    index: int
    text: str
    finish_reason: FinishReason
    logprobs: Positions | None


@dataclass
class Choice:
    """One choice so far."""

    index: int
    text: str = ""
    finish_reason: FinishReason = None
    logprobs: Positions = field(default_factory=list)


class Accumulator:
    def __init__(self, n: int, prompts: int = 1):
        self.n = n
        self.choices = [Choice(i) for i in range(n * prompts)]
        self.completion_tokens = 0
        self._prompt_tokens = [0] * prompts

    def add(self, prompt: int, step: Step) -> list[Delta]:
        """Take one step of prompt `prompt`'s model request; what it added, choice by choice."""
        # Every response repeats its prompt's count, except with sparse outputs, where only
        # the first carries it (the others decode as 0): the first count is the count.
        if not self._prompt_tokens[prompt]:
            self._prompt_tokens[prompt] = step.num_input_tokens
        deltas = []
        for c, text in enumerate(step.texts):
            choice = self.choices[prompt * self.n + c]
            reason = finish_reason(step.finish_reasons[c])
            choice.text += text
            choice.finish_reason = reason or choice.finish_reason
            choice.logprobs.extend(step.logprobs[c] or [])
            self.completion_tokens += step.num_output_tokens[c]
            deltas.append(Delta(choice.index, text, reason, step.logprobs[c]))
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
