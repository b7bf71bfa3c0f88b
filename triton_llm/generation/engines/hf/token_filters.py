"""vLLM's `allowed_token_ids` and `bad_words` on the transformers engine, by vLLM 0.32's rules.

The checks and their wording are `SamplingParams._validate_allowed_token_ids` and
`update_from_tokenizer`; the masking is `v1/sample/ops/bad_words.py`: each bad word is
tokenized as it is and with a leading space (a word both at the start and in the middle of
text), and its last token is banned wherever the generated tokens end with the ones before it
(the prompt does not count, as in vLLM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from triton_llm.errors import InvalidInput

MAX_BAD_WORD_SEQUENCES = 128  # vLLM's VLLM_MAX_NUM_BAD_WORDS default


@dataclass(frozen=True)
class TokenFilter:
    """What one request bans: every id outside `allowed` (None: none), and the bad words' sequences."""

    allowed: tuple[int, ...] | None
    bad_words: tuple[tuple[int, ...], ...]


def build(allowed: list[int] | None, bad_words: list[str], tokenizer: Any, vocab_size: int) -> TokenFilter | None:
    """The request's filter, or None when it bans nothing; an error names the field at fault."""
    if allowed is not None:
        if not allowed:
            raise InvalidInput("sampling_parameters.allowed_token_ids", "allowed_token_ids is not None and empty!")
        if any(not 0 <= t < vocab_size for t in allowed):
            raise InvalidInput(
                "sampling_parameters.allowed_token_ids", "allowed_token_ids contains out-of-vocab token id!"
            )
    sequences: list[tuple[int, ...]] = []
    for word in dict.fromkeys(bad_words):
        for prefix in ("", " "):
            ids = tuple(tokenizer.encode(prefix + word.lstrip(), add_special_tokens=False))
            if not ids:
                if not prefix:
                    raise InvalidInput(
                        "sampling_parameters.bad_words", "bad_words entries must tokenize to at least one token."
                    )
                continue
            # The spaced form counts only where it is another word of as many tokens (vLLM's rule).
            if not prefix or (ids[0] != sequences[-1][0] and len(ids) == len(sequences[-1])):
                sequences.append(ids)
    if len(sequences) > MAX_BAD_WORD_SEQUENCES:
        raise InvalidInput(
            "sampling_parameters.bad_words",
            f"Too many bad words after tokenization: {len(sequences)}. The max number is {MAX_BAD_WORD_SEQUENCES}.",
        )
    if allowed is None and not sequences:
        return None
    return TokenFilter(tuple(dict.fromkeys(allowed)) if allowed is not None else None, tuple(sequences))


def apply(logits: torch.Tensor, rows: list[tuple[TokenFilter | None, list[int]]]) -> torch.Tensor:
    """`logits` ([rows, vocab]) with each row's banned tokens at -inf; `rows`: (filter, generated ids)."""
    if all(f is None for f, _ in rows):
        return logits
    logits = logits.clone()
    for i, (f, generated) in enumerate(rows):
        if f is None:
            continue
        width = logits.shape[-1]  # the tokenizer may know ids the model's head cannot produce
        if f.allowed is not None:
            keep = torch.full_like(logits[i], float("-inf"))
            index = torch.tensor([t for t in f.allowed if t < width], dtype=torch.long, device=logits.device)
            keep[index] = logits[i, index]
            logits[i] = keep
        for ids in f.bad_words:
            prefix = len(ids) - 1
            if ids[-1] < width and prefix <= len(generated) and (prefix == 0 or list(ids[:-1]) == generated[-prefix:]):
                logits[i, ids[-1]] = float("-inf")
    return logits
