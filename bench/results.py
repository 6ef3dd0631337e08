"""One table for every benchmark: each script adds its figures here, `bench/summary.py`
prints them with their baselines and targets.

A script calls `add(...)` for each figure; when ``NOTIFIER_BENCH_RESULTS`` names a file
(``make bench`` sets it) the figure is appended to it as one JSON line, otherwise nothing
is written and the script's own printout is all there is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def add(
    script: str,
    figure: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str = "",
    target: str = "",
    met: bool | None = None,
) -> None:
    """Record one figure: what notifier measured, the baseline of the same run (if any),
    the issue's target in words and whether it was met (None: no target)."""
    path = os.environ.get("NOTIFIER_BENCH_RESULTS")
    if not path:
        return
    row = {
        "script": script,
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "target": target,
        "met": met,
    }
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
