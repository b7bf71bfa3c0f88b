"""Engine metrics with vLLM's names on Triton's metrics port, for both engines, agree with
what the clients were told; the frontend's chat time to first token is the model's; the
metrics that llm-d's endpoint picker reads are there with vLLM's names and labels."""

from __future__ import annotations

import re
import time

import openai
import pytest
import requests

from tests.conftest import CHAT
from tests.lora_adapter import ADAPTER, LORA_BASE, LORA_SETTINGS
from triton_llm.generation import stats

MAX_TOKENS = 4
SERIES = re.compile(r"^(?P<name>[^{\s]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
# The Gateway API Inference Extension's model-server protocol (v1.6.0,
# docs/proposals/003-model-server-protocol): the names vLLM gives them, and the labels it reads.
GIE_GAUGES = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"}
GIE_LORA = ("vllm:lora_requests_info", {"max_lora", "running_lora_adapters", "waiting_lora_adapters"})
GIE_CACHE_CONFIG = ("vllm:cache_config_info", {"block_size", "num_gpu_blocks"})  # optional in the protocol


def scrape(url: str, model: str | None = None) -> dict[tuple[str, str], float]:
    """{(name, its labels but model_name, version and engine): value} of one model's series (or all)."""
    out = {}
    for line in requests.get(url, timeout=5).text.splitlines():
        if (m := SERIES.match(line)) is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        if model is not None and labels.pop("model_name", None) != model:
            continue
        labels.pop("version", None), labels.pop("engine", None)
        out[(m["name"], ",".join(f"{k}={v}" for k, v in sorted(labels.items())))] = float(m["value"])
    return out


def grew(before: dict, after: dict, name: str, labels: str = "") -> float:
    return after[(name, labels)] - before.get((name, labels), 0.0)


def settled(url: str, model: str, check, timeout: float = 10.0) -> dict:
    """The page once `check(page)` holds (counters are published every 0.1 s, histograms every second)."""
    deadline = time.monotonic() + timeout
    while True:
        page = scrape(url, model)
        if check(page) or time.monotonic() > deadline:
            return page
        time.sleep(0.2)


@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
def test_engine_metrics_count_what_the_clients_were_told(triton, frontend, model):
    client = openai.OpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)
    frontend_ttft = ("openai_time_to_first_token_seconds_sum", "endpoint=chat")
    ttft_sum = (stats.TTFT + "_sum", "")
    page0, own0 = scrape(triton.metrics_url, model), scrape(f"{frontend.url}/metrics")
    assert {name for name, _ in page0} >= stats.series_names() | GIE_GAUGES
    # No LoRA on either: no lora_requests_info (as vLLM without enable_lora). The block pool is vLLM's only.
    assert GIE_LORA[0] not in {name for name, _ in page0}

    # Both ask for more than MAX_TOKENS (ignore_eos): each ends with finish_reason "length".
    sampling = {"max_tokens": MAX_TOKENS, "temperature": 0, "extra_body": {"ignore_eos": True}}
    completion = client.completions.create(model=model, prompt="The capital of France is", **sampling)
    page1 = settled(triton.metrics_url, model, lambda p: grew(page0, p, stats.TTFT + "_count") >= 1)
    stream = client.chat.completions.create(
        model=model, messages=CHAT, stream=True, stream_options={"include_usage": True}, **sampling
    )
    chat_usage = [chunk.usage for chunk in stream if chunk.usage][-1]
    tokens = completion.usage.completion_tokens + chat_usage.completion_tokens
    assert tokens == 2 * MAX_TOKENS

    def done(page) -> bool:
        return grew(page0, page, stats.E2E + "_count") >= 2 and grew(page0, page, stats.QUEUE + "_count") >= 2

    page2 = settled(triton.metrics_url, model, done)
    assert grew(page0, page2, stats.GENERATION_TOKENS) == tokens
    assert grew(page0, page2, stats.PROMPT_TOKENS) == completion.usage.prompt_tokens + chat_usage.prompt_tokens
    assert grew(page0, page2, stats.SUCCESS, "finished_reason=length") == 2
    assert grew(page0, page2, stats.SUCCESS, "finished_reason=stop") == 0
    for histogram in (stats.TTFT, stats.E2E, stats.QUEUE):
        assert grew(page0, page2, histogram + "_count") == 2, histogram
        assert grew(page0, page2, histogram + "_bucket", "le=+Inf") == 2, histogram
    # One latency between each two tokens of a request.
    assert grew(page0, page2, stats.ITL + "_count") == tokens - 2
    assert page2[(stats.RUNNING, "")] == page2[(stats.WAITING, "")] == 0
    # Info gauges appear once the model has served (runner.py: none is made while Triton loads it).
    [config] = [labels for name, labels in page2 if name == GIE_CACHE_CONFIG[0]] or [None]
    if model == "smollm2":
        assert {kv.split("=")[0] for kv in config.split(",")} == GIE_CACHE_CONFIG[1], config
    else:
        assert config is None
    assert 0 <= page2[(stats.KV_CACHE_USAGE, "")] <= 1
    queries, hits = grew(page0, page2, stats.PREFIX_QUERIES), grew(page0, page2, stats.PREFIX_HITS)
    if model == "smollm2":  # vLLM's prefix cache is off for parity: nothing looked up, as vLLM reports it
        assert queries == hits == 0
    else:  # the transformers engine's is on: every prompt token looked up; hits in whole blocks of 16
        assert queries == completion.usage.prompt_tokens + chat_usage.prompt_tokens
        assert hits % 16 == 0 and hits < queries

    # The frontend's time to first token of the streamed chat is the model's, at least; it was
    # ~0 when the role chunk went out before Triton was called.
    own = scrape(f"{frontend.url}/metrics")
    engine_ttft = grew(page1, page2, *ttft_sum)
    assert engine_ttft > 0
    assert grew(own0, own, *frontend_ttft) >= engine_ttft


@pytest.mark.lora  # on test_lora's stack: `make lora-test`
def test_lora_requests_info_names_the_adapters_as_vllm_does(lora_triton, lora_frontend):
    """llm-d's LoRA affinity reads the series with the latest value (a Unix time) of
    vllm:lora_requests_info: its max_lora and the adapters running and waiting."""
    started = time.time()
    client = openai.OpenAI(base_url=f"{lora_frontend.url}/openai/v1", api_key="unused", max_retries=0)
    client.completions.create(
        model=ADAPTER, prompt="Hello", max_tokens=16, temperature=0, extra_body={"ignore_eos": True}
    )

    def seen(page) -> bool:
        return any(name == GIE_LORA[0] and f"running_lora_adapters={ADAPTER}" in labels for name, labels in page)

    page = settled(lora_triton.metrics_url, LORA_BASE, seen)
    series = {labels: v for (name, labels), v in page.items() if name == GIE_LORA[0]}
    assert seen(page), series
    for labels in series:
        assert {kv.split("=")[0] for kv in labels.split(",")} == GIE_LORA[1], labels
        assert f"max_lora={LORA_SETTINGS['max_loras']}" in labels
    # Set at the engine's steps (vLLM's set_to_current_time), and written in full: the EPP takes the largest.
    assert started - 1 <= max(series.values()) <= time.time() + 1, series
