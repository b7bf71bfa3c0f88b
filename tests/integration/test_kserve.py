"""KServe's protocols on the frontend's port (routers/kserve.py), against the session's Triton:
`tritonclient.http` pointed at the frontend gets the tensors Triton's own port gives (JSON and
binary data), generate/generate_stream equal Triton's own, v1 predict's shapes per task, and
every refusal is a 4xx in KServe's `{"error": "..."}` naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

FILL = ["the man went to the [MASK] today", "she said that [MASK] was [MASK]"]
TEXTS = ["the man went to the city today", "she said that it was good", "house"]
TENSOR = {"name": "text_input", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}
ENCODERS = {"bert-fill-mask": FILL, "bert-seq-cls": TEXTS, "bert-token-cls": TEXTS, "minilm": TEXTS}


def client(url: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url.removeprefix("http://"), network_timeout=60)


def infer(c: httpclient.InferenceServerClient, model: str, texts: list[str], binary: bool) -> dict[str, np.ndarray]:
    tensor = httpclient.InferInput("text_input", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_), binary_data=binary)
    outputs = None if binary else [httpclient.InferRequestedOutput(n, binary_data=False)
                                   for n in ("output-0", "label", "probabilities", "embedding", "num_input_tokens")
                                   if n in {o["name"] for o in c.get_model_metadata(model)["outputs"]}]  # fmt: skip
    result = c.infer(model, [tensor], outputs=outputs)
    return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_http_gets_tritons_own_tensors(triton, frontend, binary):
    ours, theirs = client(frontend.url), client(triton.http_url)
    assert ours.is_server_live() and ours.is_server_ready()
    for model, texts in ENCODERS.items():
        assert ours.is_model_ready(model)
        assert ours.get_model_metadata(model) == theirs.get_model_metadata(model)
        got, want = infer(ours, model, texts, binary), infer(theirs, model, texts, binary)
        assert got.keys() == want.keys() and len(got) >= 2, (model, got.keys())
        for name in want:
            assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), (model, name)


def test_generate_and_generate_stream_equal_tritons(triton, frontend):
    body = {"text_input": "The capital of France is", "parameters": {"temperature": 0, "max_tokens": 4}}
    for url in (frontend.url, triton.http_url):
        r = requests.post(f"{url}/v2/models/smollm2/generate", json=body, timeout=60)
        assert r.status_code == 200, r.text
    ours = requests.post(f"{frontend.url}/v2/models/smollm2/generate", json=body, timeout=60).json()
    theirs = requests.post(f"{triton.http_url}/v2/models/smollm2/generate", json=body, timeout=60).json()
    assert ours["text_output"] == theirs["text_output"] and ours["model_name"] == "smollm2"
    stream = {**body, "parameters": {**body["parameters"], "stream": True}}
    pieces = []
    with requests.post(f"{frontend.url}/v2/models/smollm2/generate_stream", json=stream, stream=True, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        pieces = [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert "".join(p.get("text_output", "") for p in pieces) == theirs["text_output"], pieces


def test_v1_predict_shapes(frontend):
    def predict(model: str, texts: list[str]) -> list:
        r = requests.post(f"{frontend.url}/v1/models/{model}:predict", json={"instances": texts}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["predictions"]

    seq = predict("bert-seq-cls", TEXTS)  # no return_probabilities: class ids
    assert len(seq) == 3 and all(isinstance(p, int) for p in seq)
    tokens = predict("bert-token-cls", TEXTS)  # return_probabilities: {class: p} per token
    assert [len(p) for p in tokens][2] == 3 and abs(sum(tokens[0][0].values()) - 1) < 1e-3
    fill = predict("bert-fill-mask", FILL)  # return_probabilities: per mask, {token id: "p"}
    assert [len(p) for p in fill] == [1, 2] and isinstance(next(iter(fill[0][0][0].values())), str)
    vectors = predict("minilm", TEXTS)
    assert len(vectors) == 3 and abs(np.linalg.norm(vectors[0]) - 1) < 1e-5
    card = requests.get(f"{frontend.url}/v1/models/bert-seq-cls", timeout=10).json()
    assert card == {"name": "bert-seq-cls", "ready": True}
    # The OpenAI routes keep their own /v1/models under the prefix.
    assert requests.get(f"{frontend.url}/openai/v1/models", timeout=10).json()["object"] == "list"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "names"),
    [
        ("post", "/v1/models/bert-fill-mask:predict", {"instances": ["a [MASK]", "no mask"]}, 400, "instances.1"),
        ("post", "/v1/models/bert-fill-mask:predict", {"instances": [1]}, 400, "instances.0"),
        ("post", "/v1/models/nope:predict", {"instances": ["a"]}, 404, "nope"),
        ("post", "/v1/models/smollm2:predict", {"instances": ["a"]}, 400, "model"),
        ("post", "/v2/models/minilm/infer", {"inputs": [{**TENSOR, "datatype": "BYTE"}]}, 400, "inputs.0.datatype"),
        ("post", "/v2/models/minilm/infer", {"inputs": [{**TENSOR, "shape": [2, 1]}]}, 400, "inputs.0.data"),
        ("post", "/v2/models/minilm/infer", {"inputs": []}, 400, "inputs"),
        ("post", "/v2/models/minilm/infer", {"inputs": [TENSOR], "parameters": {"priority": -1}}, 400,
         "parameters.priority"),
        ("post", "/v2/models/smollm2/generate", {"text_inputs": "hi"}, 400, "text_inputs"),
        ("post", "/v2/models/smollm2/generate_stream", {"text_input": "hi", "parameters": {"max_tokens": -5}}, 400,
         "max_tokens"),
        ("get", "/v2/models/nope", None, 404, "nope"),
    ],
)  # fmt: skip
def test_refusals_name_the_field_in_kserves_shape(frontend, method, path, body, status, names):
    r = getattr(requests, method)(f"{frontend.url}{path}", json=body, timeout=60)
    assert r.status_code == status and isinstance(r.json()["error"], str) and names in r.json()["error"], r.text


def test_deep_json_on_every_new_route_is_a_4xx_and_triton_stays_ready(triton, frontend):
    deep = b"[" * 300_000 + b"]" * 300_000  # 600 KB
    for path in ("/v2/models/minilm/infer", "/v2/models/smollm2/generate", "/v2/models/smollm2/generate_stream",
                 "/v1/models/minilm:predict"):  # fmt: skip
        r = requests.post(frontend.url + path, data=deep, headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 400 and "nested" in r.json()["error"], (path, r.status_code, r.text[:200])
    assert requests.get(f"{triton.http_url}/v2/health/ready", timeout=10).status_code == 200
