"""/v1/rerank and /v1/score through the real stack (plain HTTP -> frontend -> Triton -> the
encoder models): a tiny random cross-encoder against sentence-transformers' CrossEncoder on
the same folder, MiniLM against sentence-transformers' cosine similarity, usage counted with
the models' tokenizers, and the refusals naming their fields."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

QUERY = "what is the capital of france"
DOCUMENTS = [
    "paris is the capital and largest city of france",
    "the weather is nice today",
    "he went to the store and bought some milk",
    "france is a country in europe",
    "the capital of germany is berlin",
    "python is a programming language",
]
CE = "bert-cross-encoder"


@pytest.fixture(scope="module")
def base(frontend) -> str:
    return f"{frontend.url}/openai"


@pytest.fixture(scope="module")
def cross_encoder(bert_dirs):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(bert_dirs["cross_encoder"]), device="cpu")


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


def post(base: str, path: str, status: int = 200, **body) -> dict:
    r = requests.post(f"{base}{path}", json=body, timeout=120)
    assert r.status_code == status, r.text
    return r.json()


def test_cross_encoder_rerank_equals_sentence_transformers(base, cross_encoder):
    out = post(base, "/v1/rerank", model=CE, query=QUERY, documents=DOCUMENTS)
    reference = cross_encoder.predict([(QUERY, d) for d in DOCUMENTS])
    assert [r["index"] for r in out["results"]] == list(np.argsort(-reference, kind="stable"))
    for r in out["results"]:
        assert r["relevance_score"] == pytest.approx(float(reference[r["index"]]), abs=1e-3)
        assert r["document"] == {"text": DOCUMENTS[r["index"]], "multi_modal": None}
    tokens = sum(len(cross_encoder.tokenizer(QUERY, d)["input_ids"]) for d in DOCUMENTS)
    assert out["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert out["model"] == CE and out["id"].startswith("score-")


def test_minilm_rerank_is_sentence_transformers_cosine_ranking(base, st_model):
    out = post(base, "/v2/rerank", model="minilm", query=QUERY, documents=DOCUMENTS, top_n=3, return_documents=False)
    cosines = cosine_to_first(st_model.encode([QUERY, *DOCUMENTS]))
    assert [r["index"] for r in out["results"]] == list(np.argsort(-cosines)[:3])
    # The model's own embeddings give the score exactly; sentence-transformers' float32 ones
    # to within what the served dtype (bfloat16 on a CPU with bf16 instructions) moves them.
    served = requests.post(f"{base}/v1/embeddings", json={"model": "minilm", "input": [QUERY, *DOCUMENTS]}, timeout=120)
    exact = cosine_to_first(np.array([e["embedding"] for e in served.json()["data"]]))
    for r in out["results"]:
        assert set(r) == {"index", "relevance_score"}
        assert r["relevance_score"] == pytest.approx(float(exact[r["index"]]), abs=1e-6)
        assert r["relevance_score"] == pytest.approx(float(cosines[r["index"]]), abs=2e-3)
    tokens = sum(len(ids) for ids in st_model.tokenizer([QUERY, *DOCUMENTS])["input_ids"])  # the query once
    assert out["usage"]["prompt_tokens"] == tokens


def cosine_to_first(vectors: np.ndarray) -> np.ndarray:
    v = vectors.astype(np.float64)
    return v[1:] @ v[0] / np.linalg.norm(v[1:], axis=1) / np.linalg.norm(v[0])


@pytest.mark.parametrize("model", [CE, "minilm"])
def test_score_one_to_n_and_n_to_n(base, model):
    # The same texts in another batch: float32 agrees to rounding, bfloat16 (MiniLM here) less.
    near = 2e-3 if model == "minilm" else 1e-5
    ranked = post(base, "/rerank", model=model, query=QUERY, documents=DOCUMENTS)
    by_index = {r["index"]: r["relevance_score"] for r in ranked["results"]}
    one_to_n = post(base, "/v1/score", model=model, text_1=QUERY, text_2=DOCUMENTS)
    assert one_to_n["object"] == "list" and set(one_to_n) == {"id", "object", "created", "model", "data", "usage"}
    assert [d["index"] for d in one_to_n["data"]] == list(range(len(DOCUMENTS)))
    expected = [by_index[i] for i in range(len(DOCUMENTS))]
    assert [d["score"] for d in one_to_n["data"]] == pytest.approx(expected, abs=1e-6)
    assert one_to_n["usage"]["prompt_tokens"] == ranked["usage"]["prompt_tokens"]
    n_to_n = post(base, "/score", model=model, text_1=[QUERY, DOCUMENTS[1]], text_2=DOCUMENTS[:2])
    assert [d["score"] for d in n_to_n["data"]][0] == pytest.approx(by_index[0], abs=near)
    assert len(n_to_n["data"]) == 2 and n_to_n["data"][1]["object"] == "score"


def test_concurrent_requests_batched_by_triton_give_the_same_scores(base):
    alone = post(base, "/v1/score", model=CE, text_1=QUERY, text_2=DOCUMENTS)["data"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(base, "/v1/score", model=CE, text_1=QUERY, text_2=DOCUMENTS), range(8)))
    for answer in answers:
        assert [d["score"] for d in answer["data"]] == pytest.approx([d["score"] for d in alone], abs=1e-6)


def test_over_long_pairs_are_refused_unless_truncated(base, cross_encoder):
    long = " ".join(["capital"] * 80)  # the tiny model has 64 positions
    error = post(base, "/v1/rerank", 400, model=CE, query=QUERY, documents=["paris", long])["error"]
    assert error["param"] == "documents[1]" and "limit of 64 tokens" in error["message"]
    out = post(base, "/v1/rerank", model=CE, query=QUERY, documents=["paris", long], truncate_prompt_tokens=-1)
    assert out["usage"]["prompt_tokens"] == len(cross_encoder.tokenizer(QUERY, "paris")["input_ids"]) + 64
    error = post(base, "/v1/score", 400, model="minilm", text_1=QUERY, text_2=["a", " ".join(["word"] * 300)])["error"]
    assert error["param"] == "text_2[1]"


@pytest.mark.parametrize(
    "path, body, status, param",
    [
        ("/v1/rerank", {"model": CE, "query": QUERY, "documents": []}, 400, "documents"),
        ("/v1/rerank", {"model": CE, "documents": ["a"]}, 400, "query"),
        ("/v1/rerank", {"model": CE, "query": QUERY, "documents": ["a"] * 1001}, 400, "documents"),
        ("/v1/rerank", {"model": "smollm2", "query": QUERY, "documents": ["a"]}, 400, "model"),
        ("/v1/rerank", {"model": "bert-seq-cls", "query": QUERY, "documents": ["a"]}, 400, "model"),
        ("/v1/rerank", {"model": "nope", "query": QUERY, "documents": ["a"]}, 404, "model"),
        ("/v1/score", {"model": CE, "text_1": ["a", "b"], "text_2": ["c", "d", "e"]}, 400, "text_1"),
        ("/v1/score", {"model": CE, "text_1": "a", "text_2": "b", "truncate_prompt_tokens": 0}, 400,
         "truncate_prompt_tokens"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(base, path, body, status, param):
    error = post(base, path, status, **body)["error"]
    assert error["param"] == param, error


def test_triton_clients_send_text_pair_directly(triton, cross_encoder):
    """Without the frontend: KServe v2 / tritonclient with `text_pair` beside `text_input`."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    config = client.get_model_config(CE, as_json=True)["config"]
    assert {"text_input", "text_pair"} <= {i["name"] for i in config["input"]}
    tensors = []
    for name, texts in [("text_input", [QUERY, QUERY]), ("text_pair", DOCUMENTS[:2])]:
        tensor = grpcclient.InferInput(name, [2, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
        tensors.append(tensor)
    result = client.infer(CE, tensors, parameters={"use_activation": False})
    raw = result.as_numpy("score").reshape(-1)
    logits = cross_encoder.predict([(QUERY, d) for d in DOCUMENTS[:2]], activation_fn=lambda x: x)
    np.testing.assert_allclose(raw, logits, atol=1e-4)
    client.close()
