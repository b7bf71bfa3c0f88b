"""/v1/rerank and /v1/score without a server: vLLM's shapes, the broadcast rules, sorting and
top_n, usage, the pieces sent to the model, and the refusals, each naming its field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo, Outputs
from openai_frontend.errors import from_triton
from openai_frontend.schemas.limits import MAX_SCORE_TEXTS
from tests.unit.fakes.model_server import FakeTriton, embedding_model, model_error

DOCS = ["a b", "a b c d", "a", "a b c"]


def cross_encoder(name: str = "ce", max_batch_size: int = 4) -> ModelInfo:
    return ModelInfo(
        name, ready=True, generate=False, chat=False, embed=False, created=0, cross_encoder=True,
        max_batch_size=max_batch_size, inputs=frozenset({"text_input", "text_pair"}),
        outputs=frozenset({"score", "num_input_tokens"}),
    )  # fmt: skip


@dataclass
class FakeScorer(FakeTriton):
    """Cross-encoder rows score their pair's word count / 10 and count its words plus 3; an
    embedding is [words, 1]. `refuse` maps a text to the model error it gets."""

    refuse: dict[str, Any] = field(default_factory=dict)
    pieces: list[dict[str, Any]] = field(default_factory=list)

    async def embed(self, model, texts, parameters, request_id="", *, pairs=None) -> Outputs:
        self.pieces.append({"texts": texts, "pairs": pairs, "parameters": parameters, "id": request_id})
        for row, text in enumerate(pairs or texts):
            if text in self.refuse:
                error = self.refuse[text]
                raise from_triton(error(row).message if callable(error) else error.message)
        if pairs is None:
            vectors = [[float(len(t.split())), 1.0] for t in texts]
            return {"embedding": np.array(vectors, np.float32), "num_input_tokens": _tokens(texts)}
        scores = [len(f"{q} {d}".split()) / 10 for q, d in zip(texts, pairs, strict=True)]
        counts = [len(f"{q} {d}".split()) + 3 for q, d in zip(texts, pairs, strict=True)]
        return {"score": np.array(scores, np.float32).reshape(-1, 1), "num_input_tokens": np.array(counts)}


def _tokens(texts: list[str]) -> np.ndarray:
    return np.array([len(t.split()) + 2 for t in texts], dtype=np.int32).reshape(-1, 1)


@pytest.fixture
def fake() -> FakeScorer:
    return FakeScorer(models_=[cross_encoder(), embedding_model("emb", max_batch_size=3), *FakeTriton().models_[:1]])


@pytest.fixture
def client(fake) -> TestClient:
    return TestClient(create_app(client=fake), raise_server_exceptions=False)


def post(client: TestClient, path: str, status: int = 200, **body) -> dict:
    r = client.post(f"/openai{path}", json=body)
    assert r.status_code == status, r.text
    return r.json()


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v2/rerank"])
def test_rerank_of_a_cross_encoder_sorts_by_score_with_vllms_fields(client, fake, path):
    out = post(client, path, model="ce", query="q", documents=DOCS)
    assert list(out) == ["id", "model", "usage", "results"] and out["model"] == "ce"
    assert out["id"].startswith("score-")
    assert [r["index"] for r in out["results"]] == [1, 3, 0, 2]
    first = out["results"][0]
    assert first == {"index": 1, "document": {"text": "a b c d", "multi_modal": None}, "relevance_score": 0.5}
    pair_tokens = sum(len(f"q {d}".split()) + 3 for d in DOCS)
    assert out["usage"] == {"prompt_tokens": pair_tokens, "total_tokens": pair_tokens}
    assert fake.pieces == [{"texts": ["q"] * 4, "pairs": DOCS, "parameters": {}, "id": fake.pieces[0]["id"]}]


def test_top_n_return_documents_and_ties_keep_the_documents_order(client):
    out = post(
        client, "/v1/rerank", model="ce", query="q", documents=["x", "y z", "w"], top_n=2, return_documents=False
    )
    expected = [{"index": 1, "relevance_score": 0.3}, {"index": 0, "relevance_score": 0.2}]
    assert out["results"] == [{**r, "relevance_score": pytest.approx(r["relevance_score"])} for r in expected]
    assert len(post(client, "/v1/rerank", model="ce", query="q", documents=DOCS, top_n=10)["results"]) == 4
    assert post(client, "/v1/rerank", model="ce", query="q", documents="one")["results"][0]["index"] == 0


def test_rerank_of_an_embedding_model_is_cosine_similarity_with_the_query_embedded_once(client, fake):
    out = post(client, "/v1/rerank", model="emb", query="a", documents=DOCS)
    q = np.array([1.0, 1.0])
    expected = {
        i: float(q @ [len(d.split()), 1] / np.linalg.norm(q) / np.hypot(len(d.split()), 1)) for i, d in enumerate(DOCS)
    }
    assert [r["index"] for r in out["results"]] == [2, 0, 3, 1]  # "a" is the query's direction
    for r in out["results"]:
        assert r["relevance_score"] == pytest.approx(expected[r["index"]], abs=1e-9)
    # One embeddings request for query + documents, in pieces of max_batch_size (3).
    assert [p["texts"] for p in fake.pieces] == [["a", *DOCS[:2]], DOCS[2:]]
    assert len({p["id"] for p in fake.pieces}) == 2
    tokens = int(_tokens(["a", *DOCS]).sum())
    assert out["usage"]["prompt_tokens"] == tokens


def test_score_one_to_n_and_n_to_n(client):
    out = post(client, "/v1/score", model="ce", text_1="q", text_2=DOCS)
    assert list(out) == ["id", "object", "created", "model", "data", "usage"] and out["object"] == "list"
    assert [d["index"] for d in out["data"]] == [0, 1, 2, 3]  # in order, not sorted
    assert out["data"][0] == {"index": 0, "object": "score", "score": pytest.approx(0.3)}
    tokens = sum(len(f"q {d}".split()) + 3 for d in DOCS)
    assert out["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0,
                            "prompt_tokens_details": None}  # fmt: skip
    pairs = post(client, "/score", model="ce", text_1=["a", "a b"], text_2=["c", "d"])
    assert [d["score"] for d in pairs["data"]] == pytest.approx([0.2, 0.3])
    one = post(client, "/v1/score", model="emb", queries="a b", documents="a b")
    assert one["data"][0]["score"] == pytest.approx(1.0)
    for names in [("queries", "items"), ("data_1", "data_2")]:
        out = post(client, "/v1/score", model="ce", **dict(zip(names, ["q", DOCS], strict=True)))
        assert len(out["data"]) == 4


def test_parameters_reach_the_model(client, fake):
    post(client, "/v1/score", model="ce", text_1="q", text_2="d", truncate_prompt_tokens=-1, use_activation=False)
    assert fake.pieces[-1]["parameters"] == {"truncate_prompt_tokens": -1, "use_activation": False}
    post(client, "/v1/rerank", model="emb", query="q", documents=["d"], truncate_prompt_tokens=8, use_activation=True)
    assert fake.pieces[-1]["parameters"] == {"truncate_prompt_tokens": 8}  # cosine: activation changes nothing


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/rerank", {"model": "ce", "documents": ["d"]}, "query"),
        ("/v1/rerank", {"model": "ce", "query": "q"}, "documents"),
        ("/v1/rerank", {"model": "ce", "query": "q", "documents": []}, "documents"),
        ("/v1/rerank", {"model": "ce", "query": "q", "documents": ["d", 3]}, "documents.1"),
        ("/v1/rerank", {"model": "ce", "query": "q", "documents": ["d"], "top_n": -1}, "top_n"),
        (
            "/v1/rerank",
            {"model": "ce", "query": "q", "documents": ["d"], "truncate_prompt_tokens": 0},
            "truncate_prompt_tokens",
        ),
        ("/v1/rerank", {"model": "ce", "query": "q", "documents": ["d"], "priority": 1}, "priority"),
        ("/v1/rerank", {"model": "ce", "query": "q", "documents": ["d"] * (MAX_SCORE_TEXTS + 1)}, "documents"),
        ("/v1/rerank", {"query": "q", "documents": ["d"]}, "model"),
        ("/v1/score", {"model": "ce", "text_1": "q"}, "text_1"),
        ("/v1/score", {"model": "ce", "text_1": [], "text_2": ["d"]}, "text_1"),
        ("/v1/score", {"model": "ce", "text_1": "q", "text_2": []}, "text_2"),
        ("/v1/score", {"model": "ce", "text_1": ["a", "b"], "text_2": ["c", "d", "e"]}, "text_1"),
        ("/v1/score", {"model": "ce", "queries": ["a", "b"], "documents": ["c"]}, "queries"),
        ("/v1/rerank", {"model": "gen", "query": "q", "documents": ["d"]}, "model"),
        ("/v1/score", {"model": "gen", "text_1": "q", "text_2": "d"}, "model"),
    ],
)
def test_refusals_are_400s_naming_the_field(client, path, body, param):
    error = post(client, path, 400, **body)["error"]
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_an_unknown_model_is_404(client):
    assert post(client, "/v1/rerank", 404, model="nope", query="q", documents=["d"])["error"]["param"] == "model"


def test_empty_strings_are_scored_as_vllm_scores_them(client):
    assert len(post(client, "/v1/rerank", model="ce", query="", documents=["", "d"])["results"]) == 2


def test_model_errors_name_the_requests_field(fake, client):
    over = model_error("text_input[{}]", "80 tokens, over this model's limit of 64 tokens")
    fake.refuse = {"long": lambda row: model_error(f"text_input[{row}]", over.message)}
    docs = ["d"] * 5 + ["long"]  # row 1 of the second piece of 4
    error = post(client, "/v1/rerank", 400, model="ce", query="q", documents=docs)["error"]
    assert error["param"] == "documents[5]" and "over this model's limit" in error["message"]
    error = post(client, "/v1/score", 400, model="ce", text_1="q", text_2=docs)["error"]
    assert error["param"] == "text_2[5]"
    # Embedding model: the query and the documents are one list of texts.
    error = post(client, "/v1/rerank", 400, model="emb", query="long", documents=["d"])["error"]
    assert error["param"] == "query"
    error = post(client, "/v1/rerank", 400, model="emb", query="q", documents=["d", "d", "d", "long"])["error"]
    assert error["param"] == "documents[3]"
    error = post(client, "/v1/score", 400, model="emb", text_1=["a", "long"], text_2=["b", "c"])["error"]
    assert error["param"] == "text_1[1]"
    fake.refuse = {"d": model_error("truncate_prompt_tokens", "must be an integer >= -1")}
    error = post(client, "/v1/score", 400, model="ce", text_1="q", text_2="d")["error"]
    assert error["param"] == "truncate_prompt_tokens"


def test_a_full_queue_is_a_429(fake, client):
    from tests.unit.fakes.model_server import TritonError

    fake.refuse = {"d": TritonError("Exceeds maximum queue size", "UNAVAILABLE")}
    assert client.post("/openai/v1/rerank", json={"model": "ce", "query": "q", "documents": ["d"]}).status_code == 429


def test_openapi_lists_the_routes(client):
    paths = json.loads(client.get("/openapi.json").text)["paths"]
    assert {"/openai/v1/rerank", "/openai/rerank", "/openai/v2/rerank", "/openai/v1/score", "/openai/score"} <= set(
        paths
    )
