"""The request fields clients send (vLLM's and OpenAI's, schemas/client_fields.py) through the
real stack on both engines, each shown to do what it does; vLLM's beam search against vLLM's
offline beam search; rerank's document objects; /classify and /pooling against what vLLM's
pooler computes (softmax of the logits; vLLM's CPU build cannot run these tiny BERTs: its CPU
attention has no kernel for their head size of 8) via transformers on the same folders; vLLM's own
server on BERTs with heads of 32 is test_pooling_vllm's (bench tier)."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.conftest import BEAM_SEARCH, PROMPTS

ENGINES = ["smollm2", "smollm2-hf"]
PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def base(frontend) -> str:
    return f"{frontend.url}/openai"


def post(base: str, path: str, status: int = 200, **body) -> dict:
    r = requests.post(f"{base}{path}", json=body, timeout=120)
    assert r.status_code == status, r.text
    return r.json()


def completion(base: str, model: str, status: int = 200, **fields) -> dict:
    body = {"model": model, "prompt": PROMPT, "max_tokens": 10, "temperature": 0, "return_token_ids": True}
    return post(base, "/v1/completions", status, **(body | fields))


def contains(ids: list[int], seq: list[int]) -> bool:
    return any(ids[i : i + len(seq)] == seq for i in range(len(ids) - len(seq) + 1))


@pytest.mark.parametrize("model", ENGINES)
def test_stop_token_ids_stop_at_the_token(base, model):
    ids = completion(base, model)["choices"][0]["token_ids"]
    k = next(i for i in range(2, len(ids)) if ids[i] not in ids[:i])
    choice = completion(base, model, stop_token_ids=[ids[k]])["choices"][0]
    assert choice["token_ids"] == ids[: k + 1] and choice["finish_reason"] == "stop"


@pytest.mark.parametrize("model", ENGINES)
def test_bad_words_never_appear(base, model, tokenizer):
    first = completion(base, model)["choices"][0]
    word = next(w for w in first["text"].split() if w.isalpha() and len(w) > 2)
    choice = completion(base, model, bad_words=[word])["choices"][0]
    assert choice["text"] != first["text"]
    for form in (word, " " + word):
        assert not contains(choice["token_ids"], tokenizer.encode(form, add_special_tokens=False)), form


@pytest.mark.parametrize("model", ENGINES)
def test_allowed_token_ids_restrict_the_chat(base, model, tokenizer):
    allowed = sorted({t for w in (" red", " blue", " green", ",", ".") for t in tokenizer.encode(w)})
    body = {"model": model, "messages": CHAT, "max_tokens": 6, "temperature": 0, "return_token_ids": True}
    choice = post(base, "/v1/chat/completions", **body, allowed_token_ids=allowed)["choices"][0]
    assert choice["token_ids"] and set(choice["token_ids"]) <= set(allowed)


@pytest.mark.parametrize("model, engine", [("smollm2", "vllm"), ("smollm2-hf", "huggingface")])
def test_priority_is_refused_naming_the_engine_where_not_scheduled_by_priority(base, model, engine):
    assert completion(base, model, priority=0)["choices"]
    error = completion(base, model, 400, priority=1)["error"]
    assert error["param"] == "priority" and engine in error["message"]


@pytest.mark.parametrize("model", ENGINES)
def test_openai_fields_vllm_ignores_are_accepted_and_change_nothing(base, model):
    ignored = {
        "store": True,
        "metadata": {"team": "search"},
        "service_tier": "auto",
        "prediction": {"type": "content", "content": "Paris"},
        "user": "u-1",
    }
    plain = completion(base, model)["choices"][0]["text"]
    assert completion(base, model, **ignored)["choices"][0]["text"] == plain
    chat = {"model": model, "messages": CHAT, "max_tokens": 4, "temperature": 0}
    assert post(base, "/v1/chat/completions", **chat, **ignored, reasoning_effort="low")["choices"]
    assert completion(base, model, 400, stroe=True)["error"]["param"] == "stroe"  # neither OpenAI's nor vLLM's


def test_beam_search_equals_vllm_offline_beam_search(base, vllm_reference, tokenizer):
    # Offline beams keep their EOS; the server's leave it out of the token ids (vLLM's online beam search).
    eos = tokenizer.eos_token_id
    ref = [beam[:-1] if beam[-1] == eos else beam for beam in vllm_reference[len(PROMPTS) + 1]["beams"]]
    body = {"prompt": PROMPTS[0], "n": BEAM_SEARCH["beam_width"], "max_tokens": BEAM_SEARCH["max_tokens"]}
    out = completion(base, "smollm2", **body, temperature=0, use_beam_search=True)
    assert [c["token_ids"] for c in out["choices"]] == ref
    assert completion(base, "smollm2", 400, use_beam_search=True, stream=True)["error"]["param"] == "use_beam_search"


def test_beam_search_is_refused_by_the_transformers_engine(base):
    error = completion(base, "smollm2-hf", 400, use_beam_search=True, n=2)["error"]
    assert error["param"] == "use_beam_search" and "huggingface" in error["message"]


def test_rerank_takes_document_objects(base):
    docs = ["paris is the capital of france", "the weather is nice"]
    body = {"model": "bert-cross-encoder", "query": "capital of france"}
    plain = post(base, "/v1/rerank", **body, documents=docs)["results"]
    objects = post(base, "/v1/rerank", **body, documents=[{"text": d} for d in docs])["results"]
    assert objects == plain
    error = post(base, "/v1/rerank", 400, **body, documents=[{"txt": "a"}])["error"]
    assert error["param"].startswith("documents")


TEXTS = ["the man went home", "a cat sat on the mat today"]


def _logits(folder, auto_class: str, texts: list[str]) -> list[np.ndarray]:
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = getattr(transformers, auto_class).from_pretrained(folder, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        return [model(**tokenizer(t, return_tensors="pt")).logits[0].numpy() for t in texts]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_classify_is_vllms_softmax_label_and_classes(base, bert_dirs):
    logits = _logits(bert_dirs["sequence_classification"], "AutoModelForSequenceClassification", TEXTS)
    out = post(base, "/classify", model="bert-seq-cls", input=TEXTS)
    assert out["object"] == "list" and out["id"].startswith("classify-") and out["usage"]["prompt_tokens"] > 0
    for row, ref in zip(out["data"], logits, strict=True):
        assert np.allclose(row["probs"], _softmax(ref), atol=1e-4) and row["num_classes"] == len(ref)
        assert row["label"] is not None
    raw = post(base, "/v1/classify", model="bert-seq-cls", input=TEXTS[0], use_activation=False)["data"][0]
    assert np.allclose(raw["probs"], logits[0], atol=1e-4)
    assert post(base, "/classify", 400, model="minilm", input="x")["error"]["param"] == "model"  # an embedder


def test_pooling_per_task(base, bert_dirs):
    logits = _logits(bert_dirs["token_classification"], "AutoModelForTokenClassification", TEXTS)
    out = post(base, "/pooling", model="bert-token-cls", input=TEXTS)
    assert out["id"].startswith("pooling-") and [d["object"] for d in out["data"]] == ["pooling"] * 2
    for row, ref in zip(out["data"], logits, strict=True):
        assert np.asarray(row["data"]).shape == ref.shape and np.allclose(row["data"], _softmax(ref), atol=1e-4)
    seq = post(base, "/pooling", model="bert-seq-cls", input=TEXTS[0], task="classify")["data"][0]["data"]
    assert np.allclose(seq, post(base, "/classify", model="bert-seq-cls", input=TEXTS[0])["data"][0]["probs"])
    embedded = post(base, "/v1/pooling", model="minilm", input=TEXTS)["data"]
    reference = post(base, "/v1/embeddings", model="minilm", input=TEXTS)["data"]
    assert np.allclose([d["data"] for d in embedded], [d["embedding"] for d in reference], atol=1e-5)
    assert post(base, "/pooling", 400, model="minilm", input="x", task="token_embed")["error"]["param"] == "task"
