from tools import wake_latency


def test_summary_orders_and_counts():
    s = wake_latency.summary([0.0001, 0.02, 0.0002, 0.0003])
    assert s["max_ms"] == 20.0
    assert s["over_10ms"] == 1 and s["sleeps"] == 4


def test_overshoots_pinned_to_a_cpu_of_ours():
    import os

    late = wake_latency.overshoots(0.05, cpu=min(os.sched_getaffinity(0)))
    assert late and all(x > -0.001 for x in late)
