"""vLLM's allowed_token_ids and bad_words rules on the transformers engine (hf/token_filters.py)."""

from __future__ import annotations

import pytest
import torch

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.hf import token_filters


class Words:
    """A tokenizer of fixed words: 'new york' is two tokens, ' new york' two others."""

    ids = {"cat": [1], " cat": [2], "new york": [3, 4], " new york": [5, 6]}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.ids.get(text, [])


def test_allowed_token_ids_leave_only_those():
    f = token_filters.build([2, 5], [], Words(), vocab_size=8)
    out = token_filters.apply(torch.zeros(1, 8), [(f, [])])
    assert torch.isfinite(out[0]).nonzero().view(-1).tolist() == [2, 5]


def test_bad_words_ban_the_last_token_after_the_others():
    f = token_filters.build(None, ["cat", "new york"], Words(), vocab_size=8)
    assert f.bad_words == ((1,), (2,), (3, 4), (5, 6))
    fresh, after_new = token_filters.apply(torch.zeros(2, 8), [(f, []), (f, [7, 3])])
    assert torch.isinf(fresh).nonzero().view(-1).tolist() == [1, 2]  # one-token words, always
    assert torch.isinf(after_new).nonzero().view(-1).tolist() == [1, 2, 4]


def test_refusals_name_the_field():
    with pytest.raises(InvalidInput) as e:
        token_filters.build([], [], Words(), vocab_size=8)
    assert e.value.field == "sampling_parameters.allowed_token_ids"
    with pytest.raises(InvalidInput):
        token_filters.build([9], [], Words(), vocab_size=8)
    with pytest.raises(InvalidInput) as e:
        token_filters.build(None, ["zzz"], Words(), vocab_size=8)
    assert e.value.field == "sampling_parameters.bad_words"
    assert token_filters.build(None, [], Words(), vocab_size=8) is None
