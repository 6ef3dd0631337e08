"""The event loop's lag, as the benchmarks report it: a p99 from the daemon's
`notifier_event_loop_lag_seconds` histogram (an upper bound: the bucket it falls in), or
exact from the samples of an in-process `LoopLag`."""

from __future__ import annotations

import re


def p99_from_metrics(text: str) -> tuple[float, int]:
    """(the bucket bound under which 99% of lag samples fall, the number of samples)."""
    buckets: list[tuple[float, float]] = []
    for bound, count in re.findall(
        r'^notifier_event_loop_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', text, re.M
    ):
        buckets.append((float("inf") if bound == "+Inf" else float(bound), float(count)))
    if not buckets or buckets[-1][1] == 0:
        return 0.0, 0
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= 0.99 * total:
            return bound, int(total)
    return float("inf"), int(total)


def p99(samples: list[float]) -> float:
    """The 99th percentile of `samples` (0 when there are none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
