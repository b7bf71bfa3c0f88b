"""Our /v1/responses stream against vLLM's own server (`python -m vllm.entrypoints.openai.api_server`)
on the same model, parsers and template, for the same greedy requests: the same event types in
the same order, the same sequence numbers and the same text (deltas, done texts, call arguments).

Both stacks are started here (a Triton with the one vLLM model, our frontend, vLLM's server):
a few minutes on this CPU, so the test is `bench` (make bench-test, which CI runs), not make test.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import REASONING, TEST_ENGINE_OVERRIDES
from tests.servers import ROOT, frontend_up, make_repository, start_triton
from tools.bench import running, vllm_server_command
from triton_llm.cli.serve import free_port

pytestmark = [pytest.mark.bench, pytest.mark.slow]

# Only a plain text request so far: with `tools`, `auto` and a regex, our chat path lets the model
# write a call of its own (a structural tag) where vLLM's Responses path does not, so the generated
# text differs before any event does; a named tool and text.format are still to be compared.
REQUESTS = {
    "text": {"input": "Write a haiku about the sea.", "instructions": "Be brief.", "max_output_tokens": 32},
}  # fmt: skip


def stream(url: str, body: dict) -> list[dict]:
    r = requests.post(
        url, json={"model": "smollm2", "temperature": 0, "stream": True, **body}, stream=True, timeout=120
    )
    assert r.status_code == 200, r.text
    return [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]


def comparable(events: list[dict]) -> list[tuple]:
    """What must be equal: each event's type, number, place and text (ids and timestamps differ)."""
    out = []
    for e in events:
        item = e.get("item") or {}
        text = e.get("delta") or e.get("text") or e.get("arguments") or item.get("arguments") or item.get("name")
        out.append((e["type"], e.get("sequence_number"), e.get("output_index"), e.get("content_index"), text))
    return out


def test_our_streamed_events_equal_vllms(model_dir, tmp_path, monkeypatch):
    entry = {"model": str(model_dir), **TEST_ENGINE_OVERRIDES, **REASONING}
    repository = make_repository(tmp_path / "repo", {"smollm2": entry})
    args = {"model": str(model_dir), "served_model_name": "smollm2", "enable_prefix_caching": False,
            "chat_template": str(ROOT / "model_repository" / "smollm2" / "1" / "chat_template.jinja"),
            "tool_call_parser": "hermes", "enable_auto_tool_choice": True, "reasoning_parser": "qwen3",
            "default_chat_template_kwargs": json.dumps({"enable_thinking": False}), "dtype": "bfloat16",
            "enforce_eager": True}  # fmt: skip
    port = free_port()
    triton = start_triton(repository, tmp_path / "tritonserver.log")
    try:
        with frontend_up(triton.grpc_url, tmp_path / "frontend.log",
                         env={"TRITON_LLM_RESPONSES_STORE": f"sqlite:///{tmp_path / 'r.sqlite'}"}) as ours:  # fmt: skip
            got = {name: stream(f"{ours.url}/openai/v1/responses", body) for name, body in REQUESTS.items()}
    finally:
        triton.stop()
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")  # as our engine's (vllm/args.py): not 92% of the memory
    health = f"http://127.0.0.1:{port}/health"
    with running(vllm_server_command(args, port), health, tmp_path / "vllm.log"):
        want = {name: stream(f"http://127.0.0.1:{port}/v1/responses", body) for name, body in REQUESTS.items()}
    differ = [name for name in REQUESTS if comparable(got[name]) != comparable(want[name])]
    for name in differ:
        print(name, comparable(got[name]), comparable(want[name]), sep="\n")
    assert not differ
    for name in REQUESTS:
        ours_usage, theirs = got[name][-1]["response"]["usage"], want[name][-1]["response"]["usage"]
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            assert ours_usage[key] == theirs[key], (name, key)
        assert (
            ours_usage["output_tokens_details"]["reasoning_tokens"]
            == theirs["output_tokens_details"]["reasoning_tokens"]
        )
