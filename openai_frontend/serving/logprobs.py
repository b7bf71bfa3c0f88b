"""The model's logprobs (docs/protocol.md: per position, {token_id: {"logprob", "rank",
"decoded_token"}}, the sampled token first) in each endpoint's shape: chat's content list,
completions' four parallel lists, and vLLM's prompt logprobs."""

from __future__ import annotations

from typing import Any

from openai_frontend.schemas.chat import ChoiceLogprobs, TokenLogprob, TopLogprob
from openai_frontend.schemas.completions import CompletionLogprobs

Positions = list[dict[str, dict[str, Any]]]  # the model's logprobs: one entry per token


def top_logprobs(step_logprobs: dict[str, dict[str, Any]]) -> tuple[str, float, dict[str, float]]:
    """(sampled token, its logprob, {token: logprob} of the candidates) for one position.

    The model sends {token_id: {"logprob", "rank", "decoded_token"}}, the sampled token
    first (vLLM's order).
    """
    entries = list(step_logprobs.values())
    sampled = entries[0]
    candidates = {e["decoded_token"]: e["logprob"] for e in entries}
    return sampled["decoded_token"], sampled["logprob"], candidates


def prompt_logprobs(positions: Positions | None) -> list[dict[str, Any] | None] | None:
    """The model's prompt logprobs as vLLM's responses carry them: `null` for the first token
    (nothing predicts it; the model sends it with a null logprob), then {token_id: Logprob}."""
    if positions is None:
        return None
    return [None if i == 0 else position for i, position in enumerate(positions)]


def for_chat(positions: Positions | None, top: int) -> ChoiceLogprobs:
    """Chat's `logprobs`: each token with its bytes and its `top` best candidates."""
    content = []
    for position in positions or []:
        token, logprob, candidates = top_logprobs(position)
        ranked = sorted(candidates.items(), key=lambda kv: -kv[1])[:top]
        content.append(
            TokenLogprob(
                token=token,
                logprob=logprob,
                bytes=list(token.encode()),
                top_logprobs=[TopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in ranked],
            )
        )
    return ChoiceLogprobs(content=content)


def for_completion(positions: Positions | None, offset: int = 0) -> CompletionLogprobs:
    """Completions' `logprobs`, its `text_offset` counting on from `offset`."""
    out = CompletionLogprobs()
    for position in positions or []:
        token, logprob, candidates = top_logprobs(position)
        out.tokens.append(token)
        out.token_logprobs.append(logprob)
        # A prompt's first token has no logprob, and no candidates (null, as in OpenAI).
        out.top_logprobs.append(candidates if logprob is not None else None)
        out.text_offset.append(offset)
        offset += len(token)
    return out
