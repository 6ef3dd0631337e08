from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.domain.errors import InvalidChange, TransitionError
from notifier.domain.machine import TRANSITIONS, apply_change, update_details
from notifier.domain.models import EventKind, Meeting, MeetingStatus, StatusChange

S = MeetingStatus
NOW = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def change(meeting: Meeting, status: MeetingStatus, **kw: object) -> StatusChange:
    if status is S.RESCHEDULED and "starts_at" not in kw:
        kw["starts_at"] = meeting.starts_at + timedelta(hours=3)
    return StatusChange(meeting_id=meeting.id, status=status, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_pair_follows_the_transition_table(
    meeting_factory: Callable[..., Meeting], source: MeetingStatus, target: MeetingStatus
) -> None:
    meeting = meeting_factory(status=source, starts_at=LATER)
    request = change(meeting, target)
    if target in TRANSITIONS[source]:
        assert apply_change(meeting, request, now=NOW).meeting.status is target
    else:
        with pytest.raises(TransitionError) as raised:
            apply_change(meeting, request, now=NOW)
        assert f"from {source.value} to {target.value}" in str(raised.value)


def test_a_concluded_meeting_cannot_be_postponed_unless_forced(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(status=S.CONCLUDED)
    with pytest.raises(TransitionError, match="it is final"):
        apply_change(meeting, change(meeting, S.POSTPONED), now=NOW)
    forced = apply_change(meeting, change(meeting, S.POSTPONED, force=True), now=NOW)
    assert forced.meeting.status is S.POSTPONED
    assert forced.entry.forced


def test_force_on_an_allowed_transition_is_not_recorded_as_forced(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(status=S.SCHEDULED)
    result = apply_change(meeting, change(meeting, S.CONFIRMED, force=True), now=NOW)
    assert not result.entry.forced


def test_an_accepted_change_raises_the_sequence_and_records_history(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(status=S.POSTPONED, sequence=4, conditions=("health clearance",))
    result = apply_change(
        meeting, change(meeting, S.CLEARED, reason="assessment negative", event_id="e1"), now=NOW
    )
    assert result.meeting.sequence == 5
    assert result.meeting.conditions == ()  # clearance empties the pending conditions
    assert result.meeting.reason == "assessment negative"
    entry = result.entry
    assert (entry.sequence, entry.kind, entry.from_status, entry.to_status) == (
        5,
        EventKind.CLEARED,
        S.POSTPONED,
        S.CLEARED,
    )
    assert entry.at == NOW
    assert entry.event_id == "e1"
    assert entry.previous_starts_at is None


def test_a_clearance_records_what_it_lifted_for_each_audience(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(
        status=S.POSTPONED,
        conditions=("security review",),
        variants={"conditions": {"participants": ("health clearance", "rest")}},
    )
    whole = apply_change(meeting, change(meeting, S.CLEARED), now=NOW).entry
    assert whole.cleared == ("security review",)
    assert whole.variants == {"cleared": {"participants": ("health clearance", "rest")}}
    # A partial clearance lifts only what no longer pends; each audience its own.
    partial = apply_change(
        meeting,
        change(meeting, S.CLEARED, variants={"conditions": {"participants": ("rest",)}}),
        now=NOW,
    ).entry
    assert partial.variants["cleared"] == {"participants": ("health clearance",)}
    # Any other change lifts nothing, even when it empties the conditions.
    moved = apply_change(meeting, change(meeting, S.CANCELLED, conditions=()), now=NOW).entry
    assert moved.cleared == ()
    assert "cleared" not in moved.variants


def test_rescheduling_moves_the_start_and_the_end_and_keeps_the_meeting_zone(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(status=S.CLEARED, starts_at=LATER, ends_at=LATER + timedelta(hours=2))
    new_start = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    result = apply_change(meeting, change(meeting, S.RESCHEDULED, starts_at=new_start), now=NOW)
    assert result.meeting.starts_at == new_start
    assert result.meeting.starts_at.tzinfo == ZoneInfo("Europe/Moscow")
    assert result.meeting.ends_at == new_start + timedelta(hours=2)
    assert result.entry.previous_starts_at == LATER
    assert result.entry.starts_at == new_start


@pytest.mark.parametrize(
    ("starts_at", "complaint"),
    [
        (None, "needs the new starts_at"),
        (LATER, "other than the current"),
        (NOW - timedelta(hours=1), "in the past"),
        (datetime(2026, 3, 3, 19, 0), "must include a UTC offset"),  # noqa: DTZ001 -- the point
    ],
)
def test_a_reschedule_needs_a_new_future_aware_start(
    meeting_factory: Callable[..., Meeting], starts_at: datetime | None, complaint: str
) -> None:
    meeting = meeting_factory(status=S.CLEARED, starts_at=LATER)
    request = StatusChange(meeting_id=meeting.id, status=S.RESCHEDULED, starts_at=starts_at)
    with pytest.raises(InvalidChange, match=complaint):
        apply_change(meeting, request, now=NOW)


def test_force_allows_a_reschedule_into_the_past_but_never_a_naive_time(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(status=S.CLEARED, starts_at=LATER)
    past = NOW - timedelta(days=1)
    assert (
        apply_change(
            meeting, change(meeting, S.RESCHEDULED, starts_at=past, force=True), now=NOW
        ).meeting.starts_at
        == past
    )
    naive = datetime(2026, 3, 3, 19, 0)  # noqa: DTZ001 -- the point of the test
    with pytest.raises(InvalidChange):
        apply_change(meeting, change(meeting, S.RESCHEDULED, starts_at=naive, force=True), now=NOW)


def test_update_details_is_a_meeting_updated_entry_and_none_when_nothing_differs(
    meeting_factory: Callable[..., Meeting],
) -> None:
    meeting = meeting_factory(status=S.POSTPONED, location="Moscow")
    assert update_details(meeting, {"location": "Moscow"}, now=NOW) is None
    result = update_details(meeting, {"location": "Kremlin, Moscow"}, now=NOW)
    assert result is not None
    assert result.meeting.location == "Kremlin, Moscow"
    assert result.meeting.status is S.POSTPONED
    assert result.entry.kind is EventKind.UPDATED
    assert result.entry.sequence == meeting.sequence + 1
    with pytest.raises(InvalidChange, match="status"):
        update_details(meeting, {"status": S.CANCELLED}, now=NOW)


# -- properties -------------------------------------------------------------------------------

steps = st.lists(
    st.tuples(st.sampled_from(list(S)), st.booleans(), st.integers(min_value=1, max_value=72)),
    max_size=30,
)


@settings(max_examples=300)
@given(steps)
def test_any_sequence_of_requests_keeps_the_machine_consistent(
    requests: list[tuple[MeetingStatus, bool, int]],
) -> None:
    meeting = Meeting(
        id="m", title="t", timezone="Europe/Berlin", starts_at=LATER, status=S.SCHEDULED
    )
    history = []
    for status, force, hours in requests:
        request = StatusChange(
            meeting_id="m",
            status=status,
            force=force,
            starts_at=meeting.starts_at + timedelta(hours=hours)
            if status is S.RESCHEDULED
            else None,
        )
        try:
            result = apply_change(meeting, request, now=NOW)
        except TransitionError:
            # Refused only without force and only when the table does not allow it.
            assert not force
            assert status not in TRANSITIONS[meeting.status]
            continue
        assert force or status in TRANSITIONS[meeting.status]
        assert result.meeting.sequence == meeting.sequence + 1
        assert result.entry.from_status is meeting.status
        assert result.entry.to_status is status is result.meeting.status
        assert result.entry.forced == (status not in TRANSITIONS[meeting.status])
        assert result.meeting.starts_at.utcoffset() is not None
        history.append(result.entry)
        meeting = result.meeting
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    assert meeting.sequence == len(history)


@given(st.sampled_from([S.CONCLUDED, S.CANCELLED]), st.sampled_from(list(S)))
def test_final_statuses_are_never_left_without_force(
    final: MeetingStatus, target: MeetingStatus
) -> None:
    meeting = Meeting(id="m", title="t", timezone="UTC", starts_at=LATER, status=final)
    with pytest.raises(TransitionError):
        apply_change(meeting, change(meeting, target), now=NOW)
