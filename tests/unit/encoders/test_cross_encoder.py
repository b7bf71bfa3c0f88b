"""The cross-encoder task without Triton: a tiny random BERT with one label against
sentence-transformers' CrossEncoder on the same folder, vLLM's activation rule, the
`text_pair` protocol and the task's resolution (make-repo included)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from triton_llm.encoders.activation import cross_encoder_activation
from triton_llm.encoders.engine import Encoder
from triton_llm.encoders.protocol import EncodeRequest, parse_request
from triton_llm.errors import InvalidInput, SettingError
from triton_llm.settings import EncoderSettings, parse_settings
from triton_llm.tasks import Task, resolve_task

pytestmark = pytest.mark.slow

QUERY = "the capital of france"
DOCUMENTS = [
    "paris is the capital of france",
    "the weather is nice today",
    "he went to the store and bought some milk",
    "france",
    "capital",
]


@pytest.fixture(scope="module")
def cross_encoder_dir(model_dir, tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    from tests.tiny_models import build_tiny_bert

    source = AutoTokenizer.from_pretrained(model_dir)
    return build_tiny_bert(tmp_path_factory.mktemp("ce"), source, "cross_encoder")


@pytest.fixture(scope="module")
def encoder(cross_encoder_dir) -> Encoder:
    e = Encoder(parse_settings(EncoderSettings, {"model": str(cross_encoder_dir), "dtype": "float32"}), "cpu")
    e.load()
    return e


def one(e: Encoder, request: EncodeRequest) -> dict[str, np.ndarray]:
    result = e.encode([request])[0]
    if isinstance(result, Exception):
        raise result
    return result


def test_scores_equal_sentence_transformers_cross_encoder(encoder, cross_encoder_dir):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    reference = CrossEncoder(str(cross_encoder_dir), device="cpu").predict([(QUERY, d) for d in DOCUMENTS])
    out = one(encoder, EncodeRequest([QUERY] * len(DOCUMENTS), text_pairs=DOCUMENTS))
    scores = out["score"].reshape(-1)
    assert out["score"].shape == (len(DOCUMENTS), 1)
    np.testing.assert_allclose(scores, reference, atol=1e-5)
    assert list(np.argsort(-scores)) == list(np.argsort(-reference))
    tokenizer = AutoTokenizer.from_pretrained(cross_encoder_dir)
    assert out["num_input_tokens"].reshape(-1).tolist() == [len(tokenizer(QUERY, d)["input_ids"]) for d in DOCUMENTS]


def test_raw_logits_with_use_activation_false(encoder):
    activated = one(encoder, EncodeRequest([QUERY], text_pairs=DOCUMENTS[:1]))["score"]
    raw = one(encoder, EncodeRequest([QUERY], text_pairs=DOCUMENTS[:1], use_activation=False))["score"]
    np.testing.assert_allclose(activated, torch.sigmoid(torch.from_numpy(raw)).numpy(), atol=1e-6)


def test_a_pair_over_the_limit_is_refused_unless_truncated(encoder):
    long = " ".join(["capital"] * 80)  # the tiny model has 64 positions
    results = encoder.encode(
        [EncodeRequest([QUERY, QUERY], text_pairs=["france", long]), EncodeRequest([QUERY], text_pairs=["france"])]
    )
    assert isinstance(results[0], InvalidInput) and results[0].field == "text_input[1]"
    assert "over this model's limit of 64 tokens" in results[0].problem
    assert not isinstance(results[1], InvalidInput)  # the other request of the batch is served
    cut = one(encoder, EncodeRequest([QUERY], text_pairs=[long], truncate_prompt_tokens=-1))
    assert cut["num_input_tokens"].item() == 64


def test_other_tasks_refuse_pairs_and_use_activation(model_dir, tmp_path):
    from transformers import AutoTokenizer

    from tests.tiny_models import build_tiny_bert

    path = build_tiny_bert(tmp_path / "seq", AutoTokenizer.from_pretrained(model_dir), "sequence_classification")
    e = Encoder(parse_settings(EncoderSettings, {"model": str(path), "dtype": "float32"}), "cpu")
    e.load()
    for request, field in [
        (EncodeRequest(["a"], text_pairs=["b"]), "text_pair"),
        (EncodeRequest(["a"], use_activation=False), "use_activation"),
    ]:
        result = e.encode([request])[0]
        assert isinstance(result, InvalidInput) and result.field == field


def test_protocol_reads_text_pair_and_use_activation():
    request = parse_request(
        np.array([[b"q"], [b"q"]], dtype=np.object_),
        json.dumps({"use_activation": False, "truncate_prompt_tokens": 8}),
        np.array([[b"d1"], [b"d2"]], dtype=np.object_),
    )
    assert request.text_pairs == ["d1", "d2"] and request.use_activation is False
    assert parse_request(np.array([[b"q"]]), '{"use_activation": "true"}').use_activation is True
    with pytest.raises(InvalidInput, match="text_pair: has 1 rows; text_input has 2"):
        parse_request(np.array([[b"q"], [b"q"]]), None, np.array([[b"d"]]))
    with pytest.raises(InvalidInput, match="use_activation: must be true or false"):
        parse_request(np.array([[b"q"]]), '{"use_activation": 1}')
    with pytest.raises(InvalidInput, match="text_pair: is not valid UTF-8"):
        parse_request(np.array([[b"q"]]), None, np.array([[b"\xff"]]))


def bert_config(**fields):
    from transformers import BertConfig

    return BertConfig(architectures=["BertForSequenceClassification"], **fields)


ST_IDENTITY = {"sentence_transformers": {"activation_fn": "torch.nn.modules.linear.Identity"}}
ST_SIGMOID = {"sentence_transformers": {"activation_fn": "torch.nn.modules.activation.Sigmoid"}}
OLD_TANH = {"sbert_ce_default_activation_function": "torch.nn.modules.activation.Tanh"}


@pytest.mark.parametrize(
    "fields, logit, expected",
    [
        ({}, 2.0, torch.sigmoid(torch.tensor(2.0)).item()),
        ({"problem_type": "regression"}, 2.0, 2.0),
        (ST_IDENTITY, 2.0, 2.0),
        (OLD_TANH, 2.0, 0.9640),
        (ST_SIGMOID, 0.0, 0.5),
    ],
)
def test_activation_follows_vllm(fields, logit, expected):
    activation, _ = cross_encoder_activation(bert_config(num_labels=1, **fields))
    assert activation(torch.tensor([logit])).item() == pytest.approx(expected, abs=1e-4)


def test_activation_outside_torch_nn_is_refused():
    config = bert_config(num_labels=1, sentence_transformers={"activation_fn": "os.system"})
    with pytest.raises(SettingError, match="only torch.nn.modules"):
        cross_encoder_activation(config)


def test_one_label_classifiers_are_cross_encoders():
    settings = parse_settings(EncoderSettings, {"model": "m"})
    assert resolve_task(settings, bert_config(num_labels=1)) == Task.CROSS_ENCODER
    assert resolve_task(settings, bert_config(num_labels=3)) == Task.SEQUENCE_CLASSIFICATION
    explicit = parse_settings(EncoderSettings, {"model": "m", "task": "sequence_classification"})
    assert resolve_task(explicit, bert_config(num_labels=1)) == Task.SEQUENCE_CLASSIFICATION
    with pytest.raises(SettingError, match="needs a model with one label"):
        resolve_task(parse_settings(EncoderSettings, {"model": "m", "task": "cross_encoder"}), bert_config())


def test_make_repo_resolves_a_cross_encoder_folder(cross_encoder_dir, tmp_path):
    from triton_llm.cli import make_repo

    args = ["--model_dir", str(cross_encoder_dir), "--model_name", "ce", "--repository", str(tmp_path)]
    assert make_repo.main(args) == 0
    model_json = json.loads((tmp_path / "ce" / "1" / "model.json").read_text())
    assert model_json.get("task", "cross_encoder") == "cross_encoder"
    assert "triton_llm.encoders.runner" in (tmp_path / "ce" / "1" / "model.py").read_text()
    assert "cross_encoder" in (tmp_path / "ce" / "config.pbtxt").read_text()


def test_the_runner_hands_text_pair_to_the_encoder(monkeypatch, tmp_path):
    from tests.unit.fakes import pb_utils
    from tests.unit.fakes.harness import install, model_args

    seen: list[EncodeRequest] = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            pass

        def load(self) -> None:
            pass

        def encode(self, requests):
            seen.extend(requests)
            return [{"score": np.zeros((len(r.texts), 1), np.float32)} for r in requests]

    runner = install(monkeypatch, tmp_path, "triton_llm.encoders.runner")
    monkeypatch.setattr(runner, "Encoder", Recorder)
    model = runner.TritonPythonModel()
    model.initialize(model_args(decoupled=False, max_batch_size=8))
    column = lambda *texts: np.array([[t.encode()] for t in texts], dtype=np.object_)  # noqa: E731
    pair = {"text_input": column("q", "q"), "text_pair": column("d1", "d2")}
    responses = model.execute(
        [
            pb_utils.InferenceRequest(pair, pb_utils.Ledger(), parameters={"use_activation": False}),
            pb_utils.InferenceRequest({"text_input": column("alone")}, pb_utils.Ledger()),
            pb_utils.InferenceRequest({**pair, "text_pair": column("d1")}, pb_utils.Ledger()),
        ]
    )
    assert [r.has_error() for r in responses] == [False, False, True]
    assert '"param": "text_pair"' in responses[2].error().message()
    assert seen[0].text_pairs == ["d1", "d2"] and seen[0].use_activation is False
    assert seen[1].text_pairs is None and len(seen) == 2
