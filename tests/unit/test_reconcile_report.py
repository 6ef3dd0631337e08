"""The reconciliation's log line stays one short line for a file of 10,000 readers."""

from __future__ import annotations

from notifier.service import ReconcileReport


def test_a_large_reconciliation_names_the_first_ten_and_counts_the_rest() -> None:
    report = ReconcileReport(
        created=["meeting talks", *(f"subscriber r{n:05d}" for n in range(10_000))],
        retired=["subscriber old"],
    )
    line = report.summary()
    assert len(line) < 400
    assert line.startswith("created meeting talks, subscriber r00000, ")
    assert "and 9,991 more (10,001 in all)" in line
    assert line.endswith("; retired subscriber old")


def test_a_small_reconciliation_names_everything() -> None:
    assert ReconcileReport(updated=["subscriber a", "subscriber b"]).summary() == (
        "updated subscriber a, subscriber b"
    )
    assert ReconcileReport().summary() == "nothing to do"
