"""The encoder engine without Triton, on tiny models: KServe's options, limits, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triton_llm.encoders.engine import Encoder
from triton_llm.encoders.protocol import EncodeRequest
from triton_llm.errors import InvalidInput
from triton_llm.settings import EncoderSettings, parse_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bert(model_dir, tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    from tests.tiny_models import build_tiny_bert

    source = AutoTokenizer.from_pretrained(model_dir)
    return build_tiny_bert(tmp_path_factory.mktemp("seq-cls"), source, "sequence_classification")


def encoder(path: Path, **settings) -> Encoder:
    e = Encoder(parse_settings(EncoderSettings, {"model": str(path), "dtype": "float32", **settings}), "cpu")
    e.load()
    return e


def one(e: Encoder, texts: list[str], **params) -> dict[str, np.ndarray]:
    result = e.encode([EncodeRequest(texts, **params)])[0]
    if isinstance(result, Exception):
        raise result
    return result


def test_special_tokens_and_case_options(bert):
    plain = encoder(bert)
    assert one(plain, ["the house"])["num_input_tokens"].tolist() == [[4]]  # [CLS] the house [SEP]
    assert one(encoder(bert, disable_special_tokens=True), ["the house"])["num_input_tokens"].tolist() == [[2]]
    # The vocabulary is lowercase: a cased tokenizer sees THE as unknown.
    uncased = plain.tokenizer("THE house")["input_ids"]
    cased = encoder(bert, disable_lower_case=True).tokenizer("THE house")["input_ids"]
    assert uncased == plain.tokenizer("the house")["input_ids"] and cased != uncased


def test_token_type_ids_and_tensor_input_names(bert):
    base = one(encoder(bert, return_probabilities=True), ["the man went home"])["probabilities"]
    # BERT takes missing token_type_ids as zeros: both ways give the same logits.
    for settings in ({"return_token_type_ids": False}, {"tensor_input_names": "input_ids,attention_mask"}):
        same = one(encoder(bert, return_probabilities=True, **settings), ["the man went home"])["probabilities"]
        assert np.allclose(same, base, atol=1e-6)


def test_max_length_is_a_limit_unless_truncation_is_asked(bert):
    e = encoder(bert, max_length=6)
    with pytest.raises(InvalidInput, match=r"text_input\[1\]: 7 tokens, over this model's limit of 6"):
        one(e, ["the man", "the man went to the"])
    assert one(e, ["the man went to the"], truncate_prompt_tokens=-1)["num_input_tokens"].tolist() == [[6]]
    assert one(e, ["the man went to the"], truncate_prompt_tokens=4)["num_input_tokens"].tolist() == [[4]]


def test_one_bad_request_does_not_fail_its_batch(bert):
    e = encoder(bert, max_length=6)
    results = e.encode([EncodeRequest(["the man"]), EncodeRequest(["the man went to the"]), EncodeRequest([])])
    assert results[0]["label"].shape == (1, 1)
    assert isinstance(results[1], InvalidInput)
    assert results[2]["num_input_tokens"].shape == (0, 1)


def test_forward_passes_are_split_by_padded_tokens_without_changing_results(bert):
    texts = ["the man", "the man went to the house in the city", "in", "she went to the city"]
    whole = one(encoder(bert, return_probabilities=True), texts)["probabilities"]
    small = encoder(bert, return_probabilities=True, max_batch_tokens=12)
    # lengths 3, 4, 7 and 11 tokens: 2 x 4 fit in 12 padded tokens, 2 x 7 do not
    assert [len(c) for c in small._chunks(small._tokenize(texts, None))] == [2, 1, 1]
    assert np.allclose(one(small, texts)["probabilities"], whole, atol=1e-5)


def test_dimensions_need_an_embedding_model_that_allows_them(bert, minilm_dir):
    with pytest.raises(InvalidInput, match="only embedding models"):
        one(encoder(bert), ["hi"], dimensions=2)
    minilm = encoder(minilm_dir)
    with pytest.raises(InvalidInput, match="does not support matryoshka truncation to 64"):
        one(minilm, ["hi"], dimensions=64)
    assert one(minilm, ["hi"], dimensions=384)["embedding"].shape == (1, 384)
    listed = encoder(minilm_dir, matryoshka_dimensions=[128, 256])
    assert one(listed, ["hi"], dimensions=128)["embedding"].shape == (1, 128)
    with pytest.raises(InvalidInput, match=r"only \[128, 256\]"):
        one(listed, ["hi"], dimensions=64)
    with pytest.raises(InvalidInput, match="more than this model's 384"):
        one(listed, ["hi"], dimensions=500)


def test_num_threads_sets_the_forward_passes_thread_count(bert):
    import torch

    before = torch.get_num_threads()
    try:
        e = encoder(bert, num_threads=1)
        assert not isinstance(e.encode([EncodeRequest(["a text"])])[0], Exception)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
