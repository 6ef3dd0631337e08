"""The rule that disables a webhook endpoint after a run of failures lasting `disable_after`.

The store records runs (tests/integration/test_bounces.py runs the whole thing on both
backends); here `Ledger` keeps them the way the store does, so the rule is shown over days
of attempts in microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from notifier.domain.outbox import FailureRun, endpoints_to_disable, run_changes

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


@dataclass
class Ledger:
    """`failing_since` per endpoint, recorded as `OutboxQueries.record_failure_runs` does."""

    failing_since: dict[str, datetime] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)

    def batch(
        self, outcomes: Sequence[tuple[str, bool, datetime]], disable_after: timedelta | None
    ) -> list[str]:
        changes = run_changes(outcomes)
        for sid in changes.ended:
            self.failing_since.pop(sid, None)
        for sid, latest in changes.failed.items():
            self.failing_since.setdefault(sid, latest)
        runs = [
            FailureRun(subscriber_id=sid, since=self.failing_since[sid], latest=latest)
            for sid, latest in changes.failed.items()
            if sid not in self.disabled
        ]
        picked = [run.subscriber_id for run in endpoints_to_disable(runs, disable_after)]
        self.disabled.update(picked)
        return picked


def test_an_endpoint_failing_for_disable_after_is_disabled_once() -> None:
    ledger = Ledger()
    assert ledger.batch([("hook", False, at(0))], DAY) == []
    assert ledger.batch([("hook", False, at(12))], DAY) == []
    assert ledger.batch([("hook", False, at(24))], DAY) == ["hook"]
    assert ledger.batch([("hook", False, at(30))], DAY) == [], "disabled already"


def test_a_run_shorter_than_disable_after_keeps_the_endpoint() -> None:
    ledger = Ledger()
    ledger.batch([("hook", False, at(0))], DAY)
    assert ledger.batch([("hook", False, at(23.99))], DAY) == []
    assert ledger.disabled == set()


def test_a_success_resets_the_clock() -> None:
    ledger = Ledger()
    ledger.batch([("hook", False, at(0))], DAY)
    ledger.batch([("hook", True, at(12))], DAY)
    assert ledger.batch([("hook", False, at(18))], DAY) == []
    assert ledger.batch([("hook", False, at(36))], DAY) == [], "18 hours since the success"
    assert ledger.batch([("hook", False, at(42))], DAY) == ["hook"], "a day since it failed again"


def test_a_success_in_a_batch_ends_the_run_whatever_the_order() -> None:
    changes = run_changes(
        [("hook", False, at(1)), ("hook", True, at(2)), ("hook", False, at(3)), ("b", True, at(0))]
    )
    assert changes.ended == ("b", "hook")
    assert changes.failed == {}


def test_an_endpoint_that_only_failed_is_reported_at_its_latest_failure() -> None:
    changes = run_changes([("hook", False, at(5)), ("hook", False, at(2)), ("other", False, at(1))])
    assert changes.ended == ()
    assert changes.failed == {"hook": at(5), "other": at(1)}


@pytest.mark.parametrize("disable_after", [None, timedelta(0), -DAY])
def test_without_a_positive_disable_after_nothing_is_ever_disabled(
    disable_after: timedelta | None,
) -> None:
    run = FailureRun(subscriber_id="hook", since=at(0), latest=at(24 * 365))
    assert endpoints_to_disable([run], disable_after) == []


def test_runs_are_judged_by_their_latest_failure_and_kept_in_order() -> None:
    runs = [
        FailureRun(subscriber_id="c", since=at(0), latest=at(24)),
        FailureRun(subscriber_id="a", since=at(0), latest=at(23)),
        FailureRun(subscriber_id="b", since=at(1), latest=at(26)),
    ]
    assert [r.subscriber_id for r in endpoints_to_disable(runs, DAY)] == ["c", "b"]
