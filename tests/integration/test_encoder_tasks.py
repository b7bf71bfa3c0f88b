"""KServe's encoder tasks over Triton's KServe v2 HTTP API, on tiny BERTs with random
weights, compared with transformers' own pipelines on the same folders."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import requests

FILL = ["the man went to the [MASK] today", "she said that [MASK] was [MASK]", "[MASK]"]
TEXTS = ["the man went to the city today", "she said that it was good", "in the beginning", "house"]


def infer(triton, model: str, texts: list[str], parameters: dict | None = None) -> dict[str, dict]:
    body = {"inputs": [{"name": "text_input", "shape": [len(texts), 1], "datatype": "BYTES", "data": texts}]}
    if parameters:
        body["parameters"] = parameters
    response = requests.post(f"{triton.http_url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def array(output: dict) -> np.ndarray:
    return np.array(output["data"]).reshape(output["shape"])


@pytest.fixture(scope="module")
def pipelines(bert_dirs):
    from transformers import pipeline

    @cache
    def get(task: str):
        name = {"fill_mask": "fill-mask", "token_classification": "token-classification"}.get(
            task, "text-classification"
        )
        return pipeline(name, model=str(bert_dirs[task]), device="cpu")

    return get


def test_fill_mask_matches_the_pipeline(triton, pipelines):
    out = infer(triton, "bert-fill-mask", FILL)
    predicted = out["output-0"]["data"]
    probabilities = array(out["probabilities"])  # [texts, masks, vocabulary]
    pipe = pipelines("fill_mask")
    vocab = len(pipe.tokenizer)
    for i, text in enumerate(FILL):
        per_mask = pipe(text, top_k=vocab)
        per_mask = per_mask if isinstance(per_mask[0], list) else [per_mask]
        # KServe's runtime: the decoded argmax of every mask, as one string.
        assert predicted[i] == pipe.tokenizer.decode([m[0]["token"] for m in per_mask])
        for j, candidates in enumerate(per_mask):
            scores = np.zeros(vocab)
            for c in candidates:
                scores[c["token"]] = c["score"]
            assert np.allclose(probabilities[i, j], scores, atol=1e-5)
        assert not probabilities[i, len(per_mask) :].any()  # padding past this text's masks


def test_token_classification_matches_the_pipeline(triton, pipelines):
    out = infer(triton, "bert-token-cls", TEXTS)
    ids, labels, probabilities = array(out["output-0"]), array(out["label"]), array(out["probabilities"])
    counts = array(out["num_input_tokens"]).ravel()
    pipe = pipelines("token_classification")
    for i, text in enumerate(TEXTS):
        # Per token of the text, special tokens included (as KServe); -1 past its end.
        assert (ids[i, counts[i] :] == -1).all() and (ids[i, : counts[i]] >= 0).all()
        entities = pipe(text, ignore_labels=[])
        assert len(entities) == counts[i] - 2  # the pipeline leaves out [CLS] and [SEP]
        for e in entities:
            assert labels[i, e["index"]] == e["entity"]
            assert pipe.model.config.id2label[int(ids[i, e["index"]])] == e["entity"]
            assert probabilities[i, e["index"]].max() == pytest.approx(e["score"], abs=1e-5)


def test_sequence_classification_matches_the_pipeline(triton, pipelines):
    out = infer(triton, "bert-seq-cls", TEXTS)
    assert "probabilities" not in out  # return_probabilities is off for this entry
    pipe = pipelines("sequence_classification")
    for i, text in enumerate(TEXTS):
        best = pipe(text, top_k=1)[0]
        assert out["label"]["data"][i] == best["label"]
        assert pipe.model.config.id2label[out["output-0"]["data"][i]] == best["label"]


def test_encoder_errors_are_per_request(triton):
    body = {"inputs": [{"name": "text_input", "shape": [1, 1], "datatype": "BYTES", "data": ["no mask here"]}]}
    response = requests.post(f"{triton.http_url}/v2/models/bert-fill-mask/infer", json=body, timeout=60)
    error = json.loads(response.json()["error"])  # the models' structured error (docs/protocol.md#errors)
    assert response.status_code == 400 and error["param"] == "text_input[0]" and "no [MASK] token" in error["message"]
    long = " ".join(["house"] * 100)  # over the tiny model's 64 positions
    body["inputs"][0]["data"] = [long]
    response = requests.post(f"{triton.http_url}/v2/models/bert-seq-cls/infer", json=body, timeout=60)
    assert response.status_code == 400 and "limit of 64 tokens" in response.json()["error"]
    out = infer(triton, "bert-seq-cls", [long], {"truncate_prompt_tokens": -1})
    assert out["num_input_tokens"]["data"] == [64]
