"""tools/bench_hops: reading each hop's figures from a metrics page, and the per-hop means."""

from __future__ import annotations

import pytest

from tools import bench_hops

# As our frontend serves it: its own histogram, then Triton's page (its histograms as two counters).
PAGE = """\
# TYPE openai_time_to_first_token_seconds histogram
openai_time_to_first_token_seconds_bucket{endpoint="chat",le="+Inf"} 4.0
openai_time_to_first_token_seconds_count{endpoint="chat"} 4.0
openai_time_to_first_token_seconds_sum{endpoint="chat"} 2.0
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="smollm2",version="1"} 4
nv_inference_request_success{model="minilm",version="1"} 100
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="smollm2",version="1"} 8000
nv_inference_queue_duration_us{model="minilm",version="1"} 999999
# TYPE vllm:time_to_first_token_seconds_sum counter
vllm:time_to_first_token_seconds_sum{model_name="smollm2",version="1"} 1.6
# TYPE vllm:time_to_first_token_seconds_count counter
vllm:time_to_first_token_seconds_count{model_name="smollm2",version="1"} 4
# TYPE vllm:request_queue_time_seconds_sum counter
vllm:request_queue_time_seconds_sum{model_name="smollm2",version="1"} 0.4
# TYPE vllm:request_queue_time_seconds_count counter
vllm:request_queue_time_seconds_count{model_name="smollm2",version="1"} 4
"""


def test_each_hop_is_read_for_the_model_only():
    got = bench_hops.parse(PAGE, "smollm2")
    assert got == {
        "frontend": (2.0, 4.0),
        "triton_queue": (8000.0, 0.0),
        "triton_requests": (4.0, 0.0),
        "engine_ttft": (1.6, 4.0),
        "engine_queue": (0.4, 4.0),
    }


def test_the_hops_are_the_differences_between_the_points_and_add_up_to_the_clients_ttft():
    before = {key: (0.0, 0.0) for key in bench_hops.FAMILIES}
    hops = bench_hops.breakdown(before, bench_hops.parse(PAGE, "smollm2"), client_mean_ttft_ms=510.0)
    assert hops["client"] == pytest.approx(10.0)  # 510 at the client, 500 at the frontend
    assert hops["triton"] == pytest.approx(2.0)  # 8000 us over 4 requests
    assert hops["stub"] == pytest.approx(98.0)  # 500 - 2 - 400 in the engine
    assert hops["engine_queue"] == pytest.approx(100.0)
    assert hops["engine_first_step"] == pytest.approx(300.0)
    assert sum(v for k, v in hops.items() if k != "total") == pytest.approx(hops["total"])


def test_repeated_runs_give_each_figures_median_and_keep_the_runs():
    runs = [
        {"tok": 1.0, "hops": {"client": 5.0}},
        {"tok": 3.0, "hops": {"client": 1.0}},
        {"tok": 2.0, "hops": {"client": 9.0}},
    ]
    got = bench_hops.median_runs(runs)
    assert got["tok"] == 2.0 and got["hops"] == {"client": 5.0} and got["runs"] == runs
