"""The one integer rule (schemas/integers.py), on every POST route without a server: each
integer field, found in the app's own /openapi.json so that a route added later is covered,
takes 2^63 and 2^80 as a 400 naming the field, never a 5xx, and int64's own edges still pass.

The fake Triton here fails as tritonclient does on an integer beyond int64 (a request
parameter is int64): whatever reaches it unchecked is a 500, as it was on the real stack.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo, Outputs
from openai_frontend.schemas.integers import INT64_MAX, INT64_MIN
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response, embedding_model, generation_model

HUGE = {"2^63": 2**63, "2^80": 2**80, "-2^63-1": -(2**63) - 1}
CHAT = [{"role": "user", "content": "Hi"}]
RERANK = {"model": "ce", "query": "q", "documents": ["a", "b"]}
SCORE = {"model": "ce", "text_1": "a", "text_2": "b"}
THINKING = {"type": "enabled", "budget_tokens": 1024}
# A valid body for each POST route (paths after the route prefix). A new route needs one here:
# the test below fails until it has one, and then covers every integer field it takes.
BODIES: dict[str, dict[str, Any]] = {
    "/v1/completions": {"model": "gen", "prompt": "Hi"},
    "/v1/chat/completions": {"model": "gen", "messages": CHAT},
    "/v1/embeddings": {"model": "emb", "input": "Hi"},
    "/v1/rerank": RERANK,
    "/rerank": RERANK,
    "/v2/rerank": RERANK,
    "/v1/score": SCORE,
    "/score": SCORE,
    "/tokenize": {"model": "gen", "prompt": "Hi"},
    "/detokenize": {"model": "gen", "tokens": [1, 2]},
    "/v1/load_lora_adapter": {"lora_name": "new", "lora_path": "/adapters/new"},
    "/v1/unload_lora_adapter": {"lora_name": "sql"},
    # Anthropic's Messages API: a thinking budget below max_tokens, so that each is placed alone.
    "/v1/messages": {"model": "gen", "max_tokens": 2048, "messages": CHAT, "thinking": THINKING},
    "/v1/messages/count_tokens": {"model": "gen", "messages": CHAT, "thinking": THINKING},
    "/v1/responses": {"model": "gen", "input": "Hi", "store": False},  # stored: a database of its own
    # vLLM's /classify and /pooling: a sequence classifier `cls`, and the embedding model.
    "/classify": {"model": "cls", "input": "Hi"},
    "/v1/classify": {"model": "cls", "input": "Hi"},
    "/pooling": {"model": "emb", "input": "Hi"},
    "/v1/pooling": {"model": "emb", "input": "Hi"},
    # KServe's protocols, at the root whatever the prefix (routers/kserve.py), on the model `emb`.
    "/v2/models/{model_name}/infer": {
        "inputs": [{"name": "text_input", "shape": [1, 1], "datatype": "BYTES", "data": ["Hi"]}],
        "parameters": {"n": 1},
    },
    "/v1/models/{model_name}:predict": {"instances": ["Hi"]},
}
Path = tuple[str | int, ...]


def _as_triton_would(value: Any) -> None:
    """Raise as tritonclient's int64 request parameter does (protobuf's range check) on any
    integer beyond int64 in what the frontend sends."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            _as_triton_would(item)
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"Value out of range: {value}")


class Int64Triton(FakeTriton):
    """FakeTriton with a cross-encoder `ce`, refusing out-of-range integers with a plain error (a 500)."""

    async def generate(self, model: str, values: dict[str, Any], request_id: str = ""):
        _as_triton_would(values)
        async for outputs in super().generate(model, values, request_id):
            yield outputs

    async def embed(self, model, texts, parameters, request_id="", *, pairs=None) -> Outputs:
        _as_triton_would(parameters)
        if model == "cls":
            n = len(texts)
            labels = np.full((n, 1), b"A")
            return {"logits": np.zeros((n, 2), np.float32), "label": labels, "num_input_tokens": np.ones(n)}
        if pairs is None:
            return await super().embed(model, texts, parameters, request_id)
        return {"score": np.full((len(texts), 1), 0.5, np.float32), "num_input_tokens": np.full(len(texts), 3)}

    async def infer(self, model: str, inputs: list, **options: Any) -> tuple[Outputs, str]:
        _as_triton_would(options)
        return await self.embed(model, ["Hi"], {}), "1"

    async def metadata(self, model: str = "", version: str = "") -> dict[str, Any]:
        return {"name": model, "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, -1]}]}


def _cross_encoder() -> ModelInfo:
    return ModelInfo(
        "ce", ready=True, generate=False, chat=False, embed=False, created=0, cross_encoder=True, max_batch_size=4,
        inputs=frozenset({"text_input", "text_pair"}), outputs=frozenset({"score", "num_input_tokens"}),
    )  # fmt: skip


def _classifier() -> ModelInfo:
    return ModelInfo(
        "cls", ready=True, generate=False, chat=False, embed=False, created=0, max_batch_size=4,
        inputs=frozenset({"text_input"}), outputs=frozenset({"logits", "label", "num_input_tokens"}),
    )  # fmt: skip


def _script(model: str, values: dict[str, Any]) -> list[Response]:
    return [Response(["x"], ["stop"], [1], 3, token_ids=[[1]], prompt_token_ids=[1, 2])]


LORA = replace(generation_model("lora"), lora_control=True, adapters=("sql",))  # runtime LoRA's routes
APP = create_app(
    Settings(admin_key="admin"),  # the control routes are served with one
    client=Int64Triton(
        models_=[generation_model("gen"), embedding_model("emb"), _cross_encoder(), _classifier(), LORA], script=_script
    ),  # fmt: skip
)
PREFIX = APP.state.settings.route_prefix
DOC = APP.openapi()


def url(route: str) -> str:
    """Where `route` is served: under the prefix, or KServe's at the root, on the model `emb`."""
    return route.replace("{model_name}", "emb") if "{model_name}" in route else PREFIX + route


def message(error: dict | str) -> str:
    return error if isinstance(error, str) else error["message"]


def post_routes() -> list[str]:
    """Every POST route of the app with a body, as its path after the route prefix (one without,
    /v1/responses/{id}/cancel, has no field to bound)."""
    return sorted(
        p.removeprefix(PREFIX) for p, ops in DOC["paths"].items() if "post" in ops and "requestBody" in ops["post"]
    )


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def integer_fields(schema: dict, seen: frozenset[str] = frozenset()) -> dict[Path, dict]:
    """Where an integer may stand in a value of `schema` (field names, and 0 for a list's item;
    top level, nested, in any member of a union), each with its integer schema."""
    ref = schema.get("$ref")
    if ref in seen:
        return {}
    seen, schema = (seen | {ref} if ref else seen), _resolve(schema)
    found: dict[Path, dict] = {(): schema} if schema.get("type") == "integer" else {}
    for name, sub in schema.get("properties", {}).items():
        found |= {(name, *p): s for p, s in integer_fields(sub, seen).items()}
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found |= integer_fields(sub, seen)
    if isinstance(schema.get("items"), dict):
        found |= {(0, *p): s for p, s in integer_fields(schema["items"], seen).items()}
    if isinstance(schema.get("additionalProperties"), dict):
        found |= {("1", *p): s for p, s in integer_fields(schema["additionalProperties"], seen).items()}
    return found


def body_schema(route: str) -> dict:
    operation = DOC["paths"][route if "{model_name}" in route else PREFIX + route]["post"]
    return operation["requestBody"]["content"]["application/json"]["schema"]


def placed(base: Any, path: Path, value: Any) -> Any:
    """`base` with `value` at `path`, building the lists and objects on the way (a list's
    first item, an object already there, is kept, so that its required fields stay)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        first = base[0] if isinstance(base, list) and base and isinstance(base[0], dict) else {}
        return [placed(copy.deepcopy(first), rest, value)]
    out = dict(base) if isinstance(base, dict) else {}
    out[head] = placed(out.get(head), rest, value)
    return out


SCHEMAS = {
    (route, path): s
    for route in post_routes()
    if route in BODIES
    for path, s in integer_fields(body_schema(route)).items()
}
FIELDS = list(SCHEMAS)


def param(path: Path) -> str:
    return ".".join(map(str, path))


def error_param(error: dict) -> str | None:
    """The field an error names: OpenAI's `param`; Anthropic's shape (the Messages routes) and
    KServe's (`{"error": "..."}`) have none, and name it at the head of the message."""
    if isinstance(error, str):
        return error.partition(": ")[0]
    return error["param"] if "param" in error else error["message"].partition(": ")[0]


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(APP, raise_server_exceptions=False, headers={"Authorization": "Bearer admin"})


def test_every_post_route_has_a_valid_body_here_and_it_is_served(client):
    routes = post_routes()
    assert not set(routes) - set(BODIES), "a new POST route: give BODIES a valid body for it"
    for route in routes:
        r = client.post(url(route), json=BODIES[route])
        assert r.status_code == 200, (route, r.text)


def test_the_integer_fields_are_found():
    found = {(route, param(path)) for route, path in FIELDS}
    assert len(FIELDS) >= 30, FIELDS
    for expected in [
        ("/v1/embeddings", "dimensions"), ("/v1/embeddings", "truncate_prompt_tokens"), ("/v1/completions", "seed"),
        ("/v1/completions", "prompt.0"), ("/v1/completions", "prompt.0.0"), ("/v1/chat/completions", "top_k"),
        ("/v2/rerank", "truncate_prompt_tokens"), ("/score", "truncate_prompt_tokens"), ("/detokenize", "tokens.0"),
    ]:  # fmt: skip
        assert expected in found


@pytest.mark.parametrize("value", HUGE.values(), ids=HUGE.keys())
@pytest.mark.parametrize(("route", "path"), FIELDS, ids=[f"{r}:{param(p)}" for r, p in FIELDS])
def test_an_integer_beyond_int64_is_a_400_naming_the_field(client, route, path, value):
    r = client.post(url(route), json=placed(BODIES[route], path, value))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (isinstance(error, str) or error["type"] == "invalid_request_error") and error_param(error) == param(path)
    assert client.post(url(route), json=BODIES[route]).status_code == 200


@pytest.mark.parametrize("value", [INT64_MAX, INT64_MIN], ids=["max", "min"])
@pytest.mark.parametrize(("route", "path"), FIELDS, ids=[f"{r}:{param(p)}" for r, p in FIELDS])
def test_int64s_own_edges_are_never_refused_as_too_large(client, route, path, value):
    # Served, or refused by a tighter limit of the field: never a 5xx, never the 64-bit rule.
    r = client.post(url(route), json=placed(BODIES[route], path, value))
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or "64 bits" not in message(r.json()["error"]), r.text


@pytest.mark.parametrize("route", ["/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize("seed", [-1, 0, INT64_MAX, INT64_MIN])
def test_seeds_that_pass_today_still_pass(client, route, seed):
    assert client.post(PREFIX + route, json={**BODIES[route], "seed": seed}).status_code == 200


@pytest.mark.parametrize(
    ("route", "fields", "where"),
    [
        # Lax parsing makes an int of a string: the rule holds on what pydantic made.
        ("/v1/embeddings", {"dimensions": str(2**63)}, "dimensions"),
        ("/v1/completions", {"seed": str(2**80)}, "seed"),
        ("/v1/completions", {"prompt": [[1, 2], [3, 2**63]]}, "prompt.1.1"),
        # logit_bias: keys spell token ids, values are biases (OpenAI's range).
        ("/v1/completions", {"logit_bias": {str(2**63): 1}}, "logit_bias"),
        ("/v1/chat/completions", {"logit_bias": {"17": 2**80}}, "logit_bias.17"),
        # Free-form JSON reaches the engine too: xgrammar refuses a schema bound beyond int64.
        ("/v1/chat/completions", {"chat_template_kwargs": {"a": [2**64]}}, "chat_template_kwargs.a.0"),
        (
            "/v1/chat/completions",
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"maximum": 2**64}}}},
            "response_format.json_schema.schema.maximum",
        ),
        ("/v1/completions", {"structured_outputs": {"json": {"maximum": -(2**70)}}}, "structured_outputs.json.maximum"),
    ],
)
def test_integers_in_strings_maps_and_free_form_json_are_bounded_too(client, route, fields, where):
    r = client.post(PREFIX + route, json={**BODIES[route], **fields})
    assert r.status_code == 400 and r.json()["error"]["param"] == where, r.text


def test_the_openapi_document_states_int64s_range_for_every_integer():
    # FastAPI's OpenAPI model holds bounds as floats: int64's maximum reads as 2.0**63 there.
    for (route, path), schema in SCHEMAS.items():
        low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
        assert low is not None and high is not None, (route, path, schema)
        assert float(INT64_MIN) <= low and high <= float(INT64_MAX), (route, path, schema)
