"""Print every figure `make bench` recorded (bench/results.py) as one table: notifier's
figure, the baseline measured in the same run, their ratio, the target and whether it was
met. Markdown, so it can go into the README as it is.

    .venv/bin/python bench/summary.py var/bench/results.jsonl
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path


def number(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0%}"
    if unit in ("s", "ms") and value < 10:
        return f"{value:,.2f} {unit}"
    return f"{value:,.0f} {unit}".strip()


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "var/bench/results.jsonl")
    if not path.exists():
        raise SystemExit(f"{path}: no results (run `make bench`)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    cores = len(__import__("os").sched_getaffinity(0))
    print(
        f"notifier benchmarks, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{cores} cores, Python {platform.python_version()}\n"
    )
    print("| script | figure | notifier | baseline (same run) | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        baseline = ""
        ratio = ""
        if r["baseline"] is not None:
            baseline = f"{number(r['baseline'], r['unit'])} {r['baseline_name']}".strip()
            if r["baseline"]:
                ratio = f"{r['value'] / r['baseline']:.2f}x"
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        print(
            f"| {r['script']} | {r['figure']} | {number(r['value'], r['unit'])} | {baseline} "
            f"| {ratio} | {r['target']} | {met} |"
        )
    missed = [r for r in rows if r["met"] is False]
    met = sum(r["met"] is True for r in rows)
    print(f"\n{len(rows)} figures; {met} targets met, {len(missed)} missed")


if __name__ == "__main__":
    main()
