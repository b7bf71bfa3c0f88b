"""Tensor and pipeline parallel on a CPU: each rank's OpenMP threads on cores of its own.

vLLM's CPU build binds rank i's threads to the cores of NUMA node i (`VLLM_CPU_OMP_THREADS_BIND=auto`,
vllm/utils/ompmultiprocessing.py) and refuses to start when the host has fewer NUMA nodes than ranks
("Not enough allowed NUMA nodes to bind threads of 2 local CPUWorkers"): most VMs and containers have
one. There we split the cores this process may use evenly between the ranks, in the form vLLM reads
("0|1", "0-7|8-15"). An operator's own VLLM_CPU_OMP_THREADS_BIND (a list, or `nobind`) is kept.
Pipeline parallel needs one warm-up forward pass (warm_up_pipeline). The Ray executor has no CPU
path in vLLM (docs/scaling.md): refused here with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

BIND = "VLLM_CPU_OMP_THREADS_BIND"


def world_size(args: dict[str, Any]) -> int:
    return int(args.get("tensor_parallel_size") or 1) * int(args.get("pipeline_parallel_size") or 1)


def refuse_ray(args: dict[str, Any]) -> None:
    if args.get("distributed_executor_backend") == "ray":
        # vllm/v1/executor/ray_utils.py initialize_ray_cluster: CpuPlatform has no ray_device_key.
        raise ValueError(
            "distributed_executor_backend: vLLM's CPU build has no Ray executor ('current platform cpu "
            "does not support ray'); use 'mp' (the default) on a CPU, and Ray on GPU nodes (docs/scaling.md)"
        )


def warm_up_pipeline(args: dict[str, Any]) -> None:
    """A later pipeline stage allocates the buffer its activations arrive in during vLLM's warm-up forward
    pass, which vLLM 0.32's CPU worker skips in eager mode (cpu_model_runner.warming_up_model returns at
    CompilationMode.NONE): the first request then failed ("AssertionError" in
    sync_and_gather_intermediate_tensors, then EngineDeadError). Dynamo's trace with the eager backend
    (no inductor compile: seconds) runs that pass and computes as eager mode does. Called before the
    CPU's `enforce_eager` default; model.json's own enforce_eager or compilation_config stands."""
    if int(args.get("pipeline_parallel_size") or 1) > 1 and not {"enforce_eager", "compilation_config"} & set(args):
        args["enforce_eager"] = False
        args["compilation_config"] = {"mode": 2, "backend": "eager"}  # CompilationMode.DYNAMO_TRACE_ONCE


def bind_ranks(args: dict[str, Any], environ=os.environ) -> str | None:
    """Set VLLM_CPU_OMP_THREADS_BIND to an even split of our cores when vLLM's own binding would refuse;
    the value set, or None when vLLM's (or the operator's) stands."""
    ranks = world_size(args)
    if ranks < 2 or environ.get(BIND, "auto") != "auto" or len(numa_nodes()) >= ranks:
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < ranks:
        return None  # fewer cores than ranks: vLLM's refusal says so
    per = len(cpus) // ranks
    environ[BIND] = "|".join(_ranges(cpus[i * per : (i + 1) * per]) for i in range(ranks))
    return environ[BIND]


def numa_nodes() -> list[int]:
    nodes = Path("/sys/devices/system/node")
    return sorted(int(m.group(1)) for p in nodes.glob("node*") if (m := re.fullmatch(r"node(\d+)", p.name)))


def _ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    parts, start = [], cpus[0]
    for prev, cur in zip(cpus, [*cpus[1:], None], strict=True):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(parts)
