"""Schemathesis against the running frontend: every operation of its own /openapi.json, with
bodies that fit the schema and bodies that do not, must never be answered with a 5xx.

A fixed seed and a bounded number of cases keep the run reproducible and about a minute
long. Bodies go to the served models (a random name is only ever a 404), and generation is
capped (`max_tokens` 2, `n` 2), so the engines' share of the work stays tiny. Every 5xx is
collected with the body that caused it, and the test lists them all (Hypothesis
alone would stop at the first and shrink it).
"""

from __future__ import annotations

import json
from itertools import cycle, product

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

SEED = 20_241_116
# Cases per operation: a POST's body is where the fields are, so it gets the most. 100, not the 150 of
# the first routes: the fuzz covers 20 routes now, and tests/unit/frontend's integer walk sends the
# huge values to every integer field of every schema besides.
EXAMPLES = {"POST": 100, "GET": 12}
# Fewer for routes whose schema another route's cases already cover much of (by the end of the path).
# KServe's (routers/kserve.py): a tensor list or a few texts, and generate's bodies are not in the schema.
FEWER = {"/messages": 60, "/messages/count_tokens": 30, "/classify": 40, "/pooling": 40,
         "/infer": 40, ":predict": 40, "/generate": 20, "/generate_stream": 20}  # fmt: skip
SMALL = 2  # max_tokens, max_completion_tokens, n, min_tokens at most this
# The models each endpoint is fuzzed on (by the end of its path): both engines for generation.
# An endpoint with none only ever meets a random model name, a 404.
MODELS = {
    "/completions": ["smollm2", "smollm2-hf"],
    "/chat/completions": ["smollm2", "smollm2-hf", "idefics3-tiny"],  # the schema's image parts: a VLM too
    "/embeddings": ["minilm"],
    "/rerank": ["bert-cross-encoder"],
    "/score": ["bert-cross-encoder", "minilm"],
    "/tokenize": ["smollm2"],
    "/detokenize": ["smollm2"],
    "/responses": ["smollm2", "smollm2-hf"],
    "/messages": ["smollm2", "smollm2-hf"],  # Anthropic's Messages API
    "/messages/count_tokens": ["smollm2"],
    # KServe's routes name the model in the path (routers/kserve.py).
    "/infer": ["minilm", "bert-fill-mask"],
    ":predict": ["minilm", "bert-seq-cls"],
    # vLLM's /classify and /pooling (each also under /v1): a classifier, and a model per pooling task.
    "/classify": ["bert-seq-cls"],
    "/pooling": ["bert-token-cls", "minilm"],
}
# Integers beyond int64, put into one integer field of every 4th body: generated values
# seldom pass int64's range (which the schema states), and these were 500s (a request parameter
# tritonclient refused); the one integer rule (schemas/integers.py) makes them 400s.
HUGE = [2**63, 2**80, -(2**63) - 1]


def prepared(case: schemathesis.Case, model: str | None, huge: tuple[str, int] | None = None) -> schemathesis.Case:
    """The case on `model` (None: the generated name), with generation kept tiny: a fuzzer's
    chat without `max_tokens` runs to the end of the context, which tests the engine's
    speed, not the frontend; `huge`: an integer field and the value it gets."""
    body = case.body
    if model is not None and "model_name" in (case.path_parameters or {}):
        case.path_parameters["model_name"] = model  # KServe's: the model is in the path
        return case
    if not isinstance(body, dict):
        return case
    if model is not None:
        body["model"] = model
    if "prompt" in body or "messages" in body:
        for name in ("max_tokens", "max_completion_tokens", "n", "min_tokens"):
            if isinstance(body.get(name), int) and not isinstance(body[name], bool) and body[name] > SMALL:
                body[name] = SMALL
        if not isinstance(body.get("max_tokens"), int) and not isinstance(body.get("max_completion_tokens"), int):
            body["max_tokens"] = SMALL
    if case.operation.path.endswith("/responses"):  # the Responses API's name for it
        tokens = body.get("max_output_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens > SMALL:
            body["max_output_tokens"] = SMALL
    if huge is not None:  # after the caps: a huge max_tokens is refused before any engine
        body[huge[0]] = huge[1]
    return case


def integer_fields(doc: dict, operation: dict) -> list[str]:
    """The top-level fields of `operation`'s JSON body that take an integer (in `doc`, its OpenAPI)."""
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return sorted(
        name
        for name, field in schema.get("properties", {}).items()
        if any(member.get("type") == "integer" for member in [field, *field.get("anyOf", [])])
    )


def server_errors(
    base_url: str, models: dict[str, list[str]] = MODELS, examples: dict[str, int] = EXAMPLES
) -> tuple[int, list[str]]:
    """(cases sent, one report per 5xx) of a bounded run over every operation at `base_url`."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    doc = requests.get(f"{base_url}/openapi.json", timeout=30).json()
    session = requests.Session()
    sent = 0
    found: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        generated = st.one_of(*(operation.as_strategy(generation_mode=m) for m in GenerationMode))
        names = next((v for k, v in models.items() if operation.path.endswith(k)), [])
        # Every 4th case, in turn, one integer field and one of HUGE (Hypothesis, left to choose,
        # favours the first of a list).
        integers = integer_fields(doc, doc["paths"][operation.path].get(operation.method.lower(), {}))
        plan = cycle([None] if not integers else [x for c in product(integers, HUGE) for x in (None, None, None, c)])
        cases = st.tuples(generated, st.sampled_from([*names, None])).map(
            lambda pair, plan=plan: prepared(*pair, next(plan))
        )

        @hypothesis.seed(SEED)
        @settings(
            max_examples=min(
                examples.get(operation.method.upper(), 10),
                next((n for k, n in FEWER.items() if operation.path.endswith(k)), 1_000_000),
            ),
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: each failure is reported as sent
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @hypothesis.given(case=cases)
        def run(case: schemathesis.Case) -> None:
            nonlocal sent
            sent += 1
            response = case.call(base_url=base_url, session=session, timeout=120)
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except FailureGroup as exc:
                # The body as sent (schemathesis' curl line masks fields named like *_tokens).
                sent_body = json.dumps(case.body)[:2000] if isinstance(case.body, (dict, list)) else repr(case.body)
                found.append(f"{response.status_code} {response.text[:300]}\n  {case.method} {case.formatted_path} "
                             f"{sent_body}\n  {exc}")  # fmt: skip

        run()
    return sent, found


def test_no_operation_answers_a_5xx(frontend):
    sent, found = server_errors(frontend.url)
    assert sent >= 300, sent
    assert not found, f"{len(found)} of {sent} cases got a 5xx:\n" + "\n".join(found)
    ok = {"model": "smollm2", "prompt": "Hi", "max_tokens": 1}
    assert requests.post(f"{frontend.url}/openai/v1/completions", json=ok, timeout=60).status_code == 200
