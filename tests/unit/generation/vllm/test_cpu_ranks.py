"""Each tensor/pipeline-parallel rank's cores on a CPU (cpu_ranks.py): the pure logic, no engine."""

from __future__ import annotations

import pytest

from triton_llm.generation.engines.vllm import cpu_ranks
from triton_llm.generation.engines.vllm.cpu_ranks import BIND, bind_ranks, refuse_ray


@pytest.fixture
def host(monkeypatch):
    """A host with `cpus` allowed cores and `nodes` NUMA nodes."""

    def make(cpus, nodes=1):
        monkeypatch.setattr(cpu_ranks.os, "sched_getaffinity", lambda pid: set(cpus))
        monkeypatch.setattr(cpu_ranks, "numa_nodes", lambda: list(range(nodes)))

    return make


@pytest.mark.parametrize(
    ("cpus", "args", "want"),
    [
        ([0, 1], {"tensor_parallel_size": 2}, "0|1"),
        ([0, 1], {"pipeline_parallel_size": 2}, "0|1"),
        (range(16), {"tensor_parallel_size": 2}, "0-7|8-15"),
        (range(8), {"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, "0-1|2-3|4-5|6-7"),
        ([0, 2, 4, 5, 6], {"tensor_parallel_size": 2}, "0,2|4-5"),  # a cpuset with holes; the odd core spare
    ],
)
def test_one_numa_node_splits_the_allowed_cores_between_the_ranks(host, cpus, args, want):
    host(cpus)
    env = {}
    assert bind_ranks(args, env) == want and env == {BIND: want}


@pytest.mark.parametrize(
    ("env", "args", "nodes", "cpus"),
    [
        ({}, {}, 1, [0, 1]),  # one rank: vLLM binds it
        ({}, {"tensor_parallel_size": 2}, 2, range(8)),  # a node per rank: vLLM's own binding
        ({BIND: "0|1"}, {"tensor_parallel_size": 2}, 1, [0, 1]),  # the operator's list
        ({BIND: "nobind"}, {"tensor_parallel_size": 2}, 1, [0, 1]),
        ({}, {"tensor_parallel_size": 4}, 1, [0, 1]),  # fewer cores than ranks: vLLM's refusal stands
    ],
)
def test_vllms_or_the_operators_binding_stands(host, env, args, nodes, cpus):
    host(cpus, nodes)
    before = dict(env)
    assert bind_ranks(args, env) is None and env == before


def test_ray_is_refused_on_a_cpu_naming_the_field():
    refuse_ray({"distributed_executor_backend": "mp"})
    with pytest.raises(ValueError, match="distributed_executor_backend.*does not support ray"):
        refuse_ray({"distributed_executor_backend": "ray"})


TRACED = {"mode": 2, "backend": "eager"}  # dynamo's trace, no inductor


@pytest.mark.parametrize(
    ("args", "want"),
    [
        ({"pipeline_parallel_size": 2}, {"enforce_eager": False, "compilation_config": TRACED}),
        ({"tensor_parallel_size": 2}, {}),  # no later stage: eager as before
        ({"pipeline_parallel_size": 2, "enforce_eager": True}, {"enforce_eager": True}),  # model.json's own
        ({"pipeline_parallel_size": 2, "compilation_config": {"mode": 3}}, {"compilation_config": {"mode": 3}}),
    ],
)
def test_pipeline_parallel_gets_a_warm_up_pass_unless_model_json_says(args, want):
    from triton_llm.generation.engines.vllm.cpu_ranks import warm_up_pipeline

    parallel = {k: v for k, v in args.items() if k.endswith("_parallel_size")}
    warm_up_pipeline(args)
    assert args == {**parallel, **want}
