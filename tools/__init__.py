"""Dev scripts run from a checkout (benchmarks, probes, demo model preparation); not installed."""
