"""Embeddings through the real stack (OpenAI SDK and plain HTTP -> frontend -> Triton ->
the encoder model), compared with sentence-transformers on the same weights."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from openai import BadRequestError, NotFoundError, OpenAI

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé façade: naïve café, 日本語のテキスト, emoji 🚀🔥, Ελληνικά.",
    " ".join(["Retrieval pipelines embed documents in bulk, so the server must batch them."] * 12),  # ~200 tokens
    "x",
]
BATCH = [f"Sentence number {i} is about {topic}." for i, topic in enumerate(["cats", "the sea", "Triton"] * 22)][:64]
LIMIT = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json)


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.fixture(scope="module")
def url(frontend) -> str:
    return f"{frontend.url}/openai/v1"


@pytest.fixture(scope="module")
def sdk(url) -> OpenAI:
    return OpenAI(base_url=url, api_key="unused", max_retries=0)


def post(url: str, body: dict) -> requests.Response:
    return requests.post(f"{url}/embeddings", json=body, timeout=120)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def token_count(st_model, texts: list[str]) -> int:
    return sum(len(ids) for ids in st_model.tokenizer(texts)["input_ids"])


def test_the_model_is_listed(url):
    ids = [m["id"] for m in requests.get(f"{url}/models", timeout=30).json()["data"]]
    assert "minilm" in ids and "smollm2" in ids
    assert "bert-seq-cls" not in ids  # encoder tasks speak KServe v2, not OpenAI


@pytest.mark.parametrize("texts", [TEXTS, BATCH], ids=["mixed", "batch-of-64"])
def test_vectors_match_sentence_transformers(sdk, st_model, texts):
    # The SDK asks for base64 and decodes it itself.
    response = sdk.embeddings.create(model="minilm", input=texts)
    ours = np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)])
    reference = st_model.encode(texts, convert_to_numpy=True)
    assert ours.shape == reference.shape == (len(texts), 384)
    assert cosines(ours, reference).min() >= 0.999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)  # the model's Normalize module
    assert response.usage.prompt_tokens == response.usage.total_tokens == token_count(st_model, texts)


def test_float_and_base64_give_the_same_vectors(url, st_model):
    floats = post(url, {"model": "minilm", "input": TEXTS}).json()
    encoded = post(url, {"model": "minilm", "input": TEXTS, "encoding_format": "base64"}).json()
    assert floats["object"] == "list" and floats["model"] == "minilm"
    assert [d["index"] for d in floats["data"]] == list(range(len(TEXTS)))
    for f, b in zip(floats["data"], encoded["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.array(f["embedding"], dtype=np.float32))
    assert (
        floats["usage"]
        == encoded["usage"]
        == {"prompt_tokens": token_count(st_model, TEXTS)} | {"total_tokens": token_count(st_model, TEXTS)}
    )


def test_a_single_string_and_more_texts_than_one_triton_batch(url, st_model):
    one = post(url, {"model": "minilm", "input": "Hello, world!"}).json()
    assert len(one["data"]) == 1 and len(one["data"][0]["embedding"]) == 384
    many = [f"text {i}" for i in range(150)]  # split over 3 Triton requests (max_batch_size 64)
    body = post(url, {"model": "minilm", "input": many}).json()
    ours = np.array([d["embedding"] for d in body["data"]])
    assert cosines(ours, st_model.encode(many)).min() >= 0.999
    assert body["usage"]["prompt_tokens"] == token_count(st_model, many)


def test_over_long_input_is_refused_naming_the_limit_unless_truncation_is_asked(url, st_model):
    long = "word " * 400
    response = post(url, {"model": "minilm", "input": ["short", long]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "input[1]" and f"limit of {LIMIT} tokens" in error["message"]
    assert error["type"] == "invalid_request_error"
    # The model numbers the texts of the piece it got (64 at most): text 36 of the second piece.
    many = ["short"] * 150
    many[100] = long
    error = post(url, {"model": "minilm", "input": many}).json()["error"]
    assert error["param"] == "input[100]" and error["message"].startswith("input[100]: "), error

    body = post(url, {"model": "minilm", "input": ["short", long], "truncate_prompt_tokens": -1}).json()
    ours = np.array([d["embedding"] for d in body["data"]])
    # sentence-transformers cuts at max_seq_length too.
    assert cosines(ours, st_model.encode(["short", long])).min() >= 0.999
    assert body["usage"]["prompt_tokens"] == 3 + LIMIT
    cut = post(url, {"model": "minilm", "input": long, "truncate_prompt_tokens": 10}).json()
    assert cut["usage"]["prompt_tokens"] == 10


def test_dimensions_on_a_model_that_allows_truncation(url, sdk, st_model):
    response = sdk.embeddings.create(model="minilm-matryoshka", input=TEXTS, dimensions=128)
    ours = np.array([d.embedding for d in response.data])
    assert ours.shape == (len(TEXTS), 128)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)  # normalised after the cut
    assert cosines(ours, st_model.encode(TEXTS, truncate_dim=128)).min() >= 0.999
    refused = post(url, {"model": "minilm", "input": "hi", "dimensions": 128})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "dimensions"
    assert "matryoshka" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "minilm", "input": []}, "input"),
        ({"model": "minilm", "input": ["ok", ""]}, "input.1"),  # the empty text, by place
        ({"model": "minilm", "input": 5}, "input"),
        ({"model": "minilm", "input": [[1, 2, 3]]}, "input"),
        ({"model": "minilm", "input": [{"text": "hi"}]}, "input.0"),
        ({"model": "minilm", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "minilm", "input": "hi", "dimensions": 0}, "dimensions"),
        ({"model": "minilm", "input": "hi", "truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
        ({"model": "minilm", "input": "hi", "dimension": 3}, "dimension"),
        ({"model": "minilm"}, "input"),
        ({"model": "smollm2", "input": "hi"}, "model"),  # a generation model
    ],
)
def test_bad_requests_get_openai_shaped_400s(url, body, param):
    response = post(url, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error


def test_unknown_model_is_404_and_other_endpoints_refuse_the_embedding_model(sdk, url):
    with pytest.raises(NotFoundError):
        sdk.embeddings.create(model="nope", input="hi")
    with pytest.raises(BadRequestError):
        sdk.completions.create(model="minilm", prompt="hi")
    # ... and the server still serves.
    assert post(url, {"model": "minilm", "input": "still here"}).status_code == 200


def test_triton_batches_concurrent_requests(triton, st_model):
    """32 clients at once over gRPC: Triton's dynamic batcher runs them in fewer executions
    than requests, and every client gets its own text's vector."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)

    def stats() -> tuple[int, int]:
        s = client.get_inference_statistics("minilm", as_json=True)["model_stats"][0]
        return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))

    def one(text: str) -> np.ndarray:
        tensor = grpcclient.InferInput("text_input", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
        return client.infer("minilm", [tensor]).as_numpy("embedding")[0]

    texts = [f"concurrent request {i} about {t}" for i, t in enumerate(["cats", "dogs", "boats", "trains"] * 16)]
    inferences, executions = stats()
    with ThreadPoolExecutor(32) as pool:
        vectors = np.array(list(pool.map(one, texts)))
    inferences2, executions2 = stats()
    assert inferences2 - inferences == len(texts)
    assert executions2 - executions < len(texts), "no two requests shared a forward pass"
    assert cosines(vectors, st_model.encode(texts)).min() >= 0.999


def test_kserve_v2_http_with_several_texts(triton):
    body = {"inputs": [{"name": "text_input", "shape": [2, 1], "datatype": "BYTES", "data": ["hello", "world"]}]}
    response = requests.post(f"{triton.http_url}/v2/models/minilm/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["embedding"]["shape"] == [2, 384]
    assert outputs["num_input_tokens"]["data"] == [3, 3]
    bad = {**body, "parameters": {"dimensionz": 3}}
    response = requests.post(f"{triton.http_url}/v2/models/minilm/infer", json=bad, timeout=60)
    assert response.status_code == 400 and "dimensionz" in response.json()["error"]
