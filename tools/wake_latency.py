"""How late this machine wakes a sleeping thread, per CPU, while a load runs beside it.

A streamed token crosses three sleeping processes (the stub, tritonserver, the frontend); each
wakes on a futex or a socket. If the machine wakes a sleeper late, the token is late, whatever
our code does. Run this during a benchmark (or a `tools.itl_probe` run): one process per CPU,
each pinned, sleeping 1 ms in a loop and recording how much later than asked it woke.

    python -m tools.wake_latency --seconds 10

On the 2-vCPU Firecracker VM of docs/benchmarks.md ("Where the first image token waits"), with a
c=1 image chat load: pinned to the vCPU where vLLM's worker spins, at most 3.5 ms late; pinned to
the other, 93 ms late at the moments our Triton -> frontend hop held its tokens.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def overshoots(seconds: float, cpu: int | None = None, nap: float = 0.001) -> list[float]:
    """Seconds by which each `nap`-long sleep overran, for `seconds`, pinned to `cpu` if given."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    late, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        time.sleep(nap)
        late.append(time.perf_counter() - start - nap)
    return late


def summary(late: list[float]) -> dict[str, float]:
    """max / p99 / p50 in ms, and how many sleeps overran by more than 10 ms."""
    ordered = sorted(late)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"max_ms": ordered[-1] * 1000, "p99_ms": pick(0.99), "p50_ms": pick(0.5),
            "over_10ms": sum(x > 0.010 for x in late), "sleeps": len(late)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    opts = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    with multiprocessing.Pool(len(cpus)) as pool:
        results = pool.starmap(overshoots, [(opts.seconds, cpu) for cpu in cpus])
    for cpu, late in zip(cpus, results, strict=True):
        s = summary(late)
        print(f"cpu {cpu}: late by max {s['max_ms']:.1f} ms, p99 {s['p99_ms']:.2f} ms, p50 {s['p50_ms']:.3f} ms; "
              f"{s['over_10ms']} of {s['sleeps']} sleeps over 10 ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
