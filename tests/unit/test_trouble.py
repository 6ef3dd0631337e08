"""Trouble: said once when it starts, once when it ends with how long it lasted."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from notifier.trouble import Trouble

log = logging.getLogger("tests.trouble")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, str | None]]:
    return [(r.levelno, r.getMessage(), getattr(r, "action", None)) for r in caplog.records]


def _fail(trouble: Trouble[datetime], clock: FakeClock) -> bool:
    return trouble.failed(
        "%s failing (%s)", "sync", "OperationalError", now=clock(), extra={"action": "trouble"}
    )


def _recover(trouble: Trouble[datetime], clock: FakeClock) -> float | None:
    return trouble.recovered(
        "%s working again after %.0fs", "sync", now=clock(), extra={"action": "back"}
    )


def test_an_episode_is_one_line_when_it_starts_and_one_with_its_duration_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    clock, trouble = FakeClock(), Trouble[datetime](log)

    assert _fail(trouble, clock) is True
    assert _lines(caplog) == [(logging.WARNING, "sync failing (OperationalError)", "trouble")]
    assert trouble.failing
    assert trouble.since == START

    for _ in range(5):  # every later poll fails too: nothing more is said
        clock.advance(10)
        assert _fail(trouble, clock) is False
    assert len(caplog.records) == 1
    assert trouble.since == START

    clock.advance(12)
    assert _recover(trouble, clock) == 62.0
    assert _lines(caplog)[1:] == [(logging.WARNING, "sync working again after 62s", "back")]
    assert not trouble.failing

    clock.advance(5)  # working on: nothing to say
    assert _recover(trouble, clock) is None
    assert len(caplog.records) == 2


def test_a_second_episode_is_said_again_with_its_own_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    clock, trouble = FakeClock(), Trouble[datetime](log)
    _fail(trouble, clock)
    clock.advance(30)
    _recover(trouble, clock)
    clock.advance(100)

    assert _fail(trouble, clock) is True
    clock.advance(7)
    _fail(trouble, clock)
    clock.advance(2)
    assert _recover(trouble, clock) == 9.0

    assert [m for _, m, _ in _lines(caplog)] == [
        "sync failing (OperationalError)",
        "sync working again after 30s",
        "sync failing (OperationalError)",
        "sync working again after 9s",
    ]


def test_without_a_message_recovery_ends_the_trouble_silently_and_tells_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    trouble = Trouble[float](log)
    trouble.failed("cannot plan fan-outs (%s)", "OSError", now=100.0)
    assert trouble.recovered(now=101.5) == 1.5
    assert [r.getMessage() for r in caplog.records] == ["cannot plan fan-outs (OSError)"]
    assert trouble.failed("cannot plan fan-outs (%s)", "OSError", now=200.0) is True


def test_with_parts_it_ends_only_when_the_last_failing_part_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    trouble = Trouble[float](log)
    assert trouble.failed("cannot work", now=0.0, part=0) is True
    assert trouble.failed("cannot work", now=0.5, part=1) is False
    assert trouble.recovered("working again after %.1fs", now=1.0, part=0) is None
    assert trouble.failed("cannot work", now=1.5, part=0) is False  # still the same episode
    assert trouble.recovered("working again after %.1fs", now=2.0, part=1) is None
    assert trouble.recovered("working again after %.1fs", now=2.5, part=0) == 2.5
    assert [r.getMessage() for r in caplog.records] == ["cannot work", "working again after 2.5s"]


def test_the_traceback_is_kept_when_asked_and_the_record_names_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    trouble = Trouble[float](log)
    try:
        raise ValueError("a bug, not an outage")
    except ValueError:
        trouble.failed("job failing", now=0.0, exc_info=True)
    (record,) = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError
    assert (
        record.funcName == "test_the_traceback_is_kept_when_asked_and_the_record_names_the_caller"
    )
