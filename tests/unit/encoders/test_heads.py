"""The encoder tasks' classes alone, on hand-made forward-pass outputs: no model, no server.

Each task's checks, per-text results and output arrays, so that a task's rules are pinned
without loading anything; tests/unit/encoders/test_engine.py runs them on tiny models.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers

from triton_llm.encoders.heads import (
    TASKS,
    Embedding,
    FillMask,
    Parts,
    SequenceClassification,
    TokenClassification,
)
from triton_llm.encoders.pooling import SentencePooling
from triton_llm.encoders.protocol import NUM_INPUT_TOKENS, EncodeRequest
from triton_llm.errors import InvalidInput
from triton_llm.settings import EncoderSettings, parse_settings
from triton_llm.tasks import ENCODER_TASKS

LABELS = SimpleNamespace(id2label={0: "neg", 1: "neu", 2: "pos"})
MASK = 4


def parts(config=LABELS, tokenizer=None, pooling=None, **settings) -> Parts:
    return Parts(parse_settings(EncoderSettings, {"model": "unused", **settings}), config, tokenizer, pooling)


def features(*lengths: int) -> list[dict[str, list[int]]]:
    return [{"input_ids": list(range(10, 10 + n)), "attention_mask": [1] * n} for n in lengths]


def test_one_class_per_encoder_task():
    assert set(TASKS) == set(ENCODER_TASKS)
    for task, cls in TASKS.items():
        assert cls.task == task
        assert hasattr(transformers, cls.auto_class)
        names = [spec["name"] for spec in cls.outputs]
        assert len(set(names)) == len(names) and cls.outputs[-1] == NUM_INPUT_TOKENS


@pytest.mark.parametrize("cls", [SequenceClassification, TokenClassification, FillMask])
def test_only_embeddings_take_dimensions(cls):
    with pytest.raises(
        InvalidInput, match=f"dimensions: only embedding models take it; this one does {cls.task.value}"
    ):
        cls(parts()).check(EncodeRequest(["hi"], dimensions=2))
    cls(parts()).check(EncodeRequest(["hi"]))


def test_sequence_classification():
    logits = torch.tensor([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    head = SequenceClassification(parts(return_probabilities=True))
    results = head.run(SimpleNamespace(logits=logits.half()), torch.ones(3, 1), features(1, 1, 1))
    out = head.assemble(EncodeRequest(["a", "b", "c"]), results)
    assert out["output-0"].tolist() == [[1], [0], [2]]
    assert out["label"].tolist() == [[b"neu"], [b"neg"], [b"pos"]]
    assert np.allclose(out["probabilities"], torch.softmax(logits, dim=-1).numpy(), atol=1e-3)
    unnamed = SequenceClassification(parts(config=SimpleNamespace()))
    out = unnamed.assemble(EncodeRequest(["a"]), [logits[2]])
    assert out["label"].tolist() == [[b"2"]] and "probabilities" not in out


def test_token_classification_pads_past_each_text():
    logits = torch.zeros(2, 3, 3)
    logits[0, :, 2] = 1  # three tokens of class 2
    logits[1, 0, 1] = 1  # one token of class 1, then padding that must not show
    logits[1, 1:, 0] = 9
    head = TokenClassification(parts(return_probabilities=True))
    results = head.run(SimpleNamespace(logits=logits), torch.ones(2, 3), features(3, 1))
    out = head.assemble(EncodeRequest(["a b c", "d"]), results)
    assert out["output-0"].tolist() == [[2, 2, 2], [1, -1, -1]]
    assert out["label"].tolist() == [[b"pos"] * 3, [b"neu", b"", b""]]
    assert out["probabilities"].shape == (2, 3, 3)
    assert not out["probabilities"][1, 1:].any()


class MaskTokenizer:
    mask_token_id = MASK
    mask_token = "[MASK]"

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)


def test_fill_mask_needs_a_mask_and_reads_its_rows():
    head = FillMask(parts(tokenizer=MaskTokenizer(), return_probabilities=True))
    with pytest.raises(InvalidInput, match=r"text_input\[1\]: no \[MASK\] token to fill"):
        head.check_text("text_input[1]", {"input_ids": [2, 7, 3]})
    batch = [{"input_ids": [2, MASK, 7, MASK]}, {"input_ids": [2, MASK, 3, 0]}]
    logits = torch.zeros(2, 4, 6)
    logits[0, 1, 5] = logits[0, 3, 1] = logits[1, 1, 3] = 1
    logits[0, 2, 0] = 9  # not a mask position
    results = head.run(SimpleNamespace(logits=logits), torch.ones(2, 4), batch)
    assert [r.shape[0] for r in results] == [2, 1]
    out = head.assemble(EncodeRequest(["a", "b"]), results)
    assert out["output-0"].tolist() == [[b"w5 w1"], [b"w3"]]  # every mask of a text in one string
    assert out["probabilities"].shape == (2, 2, 6) and not out["probabilities"][1, 1].any()


def embedding(config=None, **settings) -> Embedding:
    head = Embedding(parts(config=config or SimpleNamespace(), pooling=SentencePooling(normalize=True), **settings))
    head.start(lambda texts: [torch.zeros(8) for _ in texts])
    return head


def test_embedding_dimensions_follow_settings_then_the_model_config():
    plain = embedding()
    assert plain.dimension == 8 and plain.describe() == ", dimension 8"
    plain.check(EncodeRequest(["hi"], dimensions=8))
    with pytest.raises(InvalidInput, match=r"matryoshka truncation to 4 \(only its full 8\)"):
        plain.check(EncodeRequest(["hi"], dimensions=4))
    with pytest.raises(InvalidInput, match="dimensions: 9 is more than this model's 8"):
        plain.check(EncodeRequest(["hi"], dimensions=9))
    embedding(SimpleNamespace(is_matryoshka=True)).check(EncodeRequest(["hi"], dimensions=3))
    listed = embedding(SimpleNamespace(matryoshka_dimensions=[2, 4]), matryoshka_dimensions=[6])
    listed.check(EncodeRequest(["hi"], dimensions=6))  # model.json's list wins over the config's
    with pytest.raises(InvalidInput, match=r"\(only \[6\]\)"):
        listed.check(EncodeRequest(["hi"], dimensions=4))
    with pytest.raises(InvalidInput, match="only its full 8"):
        embedding(SimpleNamespace(is_matryoshka=True), is_matryoshka=False).check(EncodeRequest(["hi"], dimensions=3))


def test_embedding_pools_then_truncates_then_normalises():
    head = embedding(is_matryoshka=True)
    hidden = torch.tensor([[[3.0, 4.0, 12.0], [0.0, 0.0, 0.0]], [[1.0, 0.0, 5.0], [1.0, 0.0, 5.0]]])
    mask = torch.tensor([[1, 0], [1, 1]])
    results = head.run(SimpleNamespace(last_hidden_state=hidden), mask, features(1, 2))
    out = head.assemble(EncodeRequest(["a", "b"], dimensions=2), results)
    assert out["embedding"].dtype == np.float32
    assert np.allclose(out["embedding"], [[0.6, 0.8], [1.0, 0.0]])
