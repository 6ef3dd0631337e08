"""Audiences: the view of a meeting, change or history for one audience never carries a
variant meant only for audiences above it, whatever the variants and the order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.domain.audiences import DEFAULT_AUDIENCES, LISTS, TIERED, Audiences, change_texts
from notifier.domain.errors import InvalidChange
from notifier.domain.machine import apply_change, update_details
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    MeetingStatus,
    StatusChange,
)
from notifier.domain.outbox import change_payload
from notifier.domain.views import view_entry, view_meeting

NOW = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
NAMES = ["public", "press", "participants", "internal", "staff", "board"]

orders = st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True)


@st.composite
def tiered_meetings(draw: st.DrawFn) -> tuple[Audiences, Meeting]:
    """An order, and a meeting whose tiered fields have random variants, each text a marker
    naming its field and audience so a leak is visible by name."""
    order = tuple(draw(orders))
    variants: dict[str, dict[str, object]] = {}
    for field in TIERED:
        owners = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
        if not owners and draw(st.booleans()):
            continue
        variants[field] = {
            a: (f"M-{field}-{a}-1", f"M-{field}-{a}-2") if field in LISTS else f"M-{field}-{a}"
            for a in owners
        }
    meeting = Meeting(
        id="talks",
        title="Talks",
        timezone="UTC",
        starts_at=datetime(2026, 3, 2, 16, tzinfo=UTC),
        variants=variants,  # type: ignore[arg-type]
        reason="" if "reason" in variants else "plain reason",
    )
    return Audiences(order), meeting


def _text(meeting: Meeting) -> str:
    return repr(meeting.to_dict())


@given(tiered_meetings(), st.sampled_from(NAMES))
def test_a_view_carries_nothing_meant_only_for_audiences_above_the_reader(
    drawn: tuple[Audiences, Meeting], reader: str
) -> None:
    audiences, meeting = drawn
    seen = view_meeting(meeting, reader, audiences)
    text = _text(seen) + repr(change_payload(seen, _entry(meeting), audience=reader))
    rank = audiences.rank(reader)
    for field, tiers in meeting.variants.items():
        for owner in tiers:
            marker = f"M-{field}-{owner}"
            allowed = owner in audiences.order and audiences.order.index(owner) <= rank
            if not allowed:
                assert marker not in text, f"{reader} read {owner}'s {field}"
    assert seen.variants == {}


@given(tiered_meetings(), st.sampled_from(NAMES))
def test_a_reader_gets_the_variant_of_the_highest_audience_at_or_below_their_own(
    drawn: tuple[Audiences, Meeting], reader: str
) -> None:
    audiences, meeting = drawn
    seen = view_meeting(meeting, reader, audiences)
    rank = audiences.rank(reader)
    for field, tiers in meeting.variants.items():
        eligible = [a for a in audiences.order[: rank + 1] if a in tiers]
        expected = tiers[eligible[-1]] if eligible else (() if field in LISTS else "")
        assert getattr(seen, field) == expected


def _entry(meeting: Meeting) -> HistoryEntry:
    return HistoryEntry(
        meeting_id=meeting.id,
        sequence=1,
        at=NOW,
        kind=EventKind.POSTPONED,
        from_status=MeetingStatus.SCHEDULED,
        to_status=MeetingStatus.POSTPONED,
        variants={"reason": meeting.variants["reason"]} if "reason" in meeting.variants else {},
    )


@given(orders, st.sampled_from(NAMES), st.sampled_from(NAMES))
def test_a_meeting_is_known_only_to_its_audience_and_above(
    order: list[str], reader: str, gate: str
) -> None:
    audiences = Audiences(tuple(order))
    knows = audiences.may_know(reader, gate)
    if gate not in order:
        assert not knows  # a gate nobody has heard of shuts everyone out
    elif reader in order:
        assert knows == (order.index(reader) >= order.index(gate))
    else:
        assert knows == (order.index(gate) == 0)  # an unknown reader reads as the lowest


def test_the_seed_reason_reads_three_ways() -> None:
    audiences = Audiences(DEFAULT_AUDIENCES)
    reason, conditions, variants = change_texts(
        {
            "public": "postponed",
            "press": "postponed; a new date will be announced",
            "participants": "medical reasons",
        },
        {"participants": ["health clearance"]},
    )
    before = Meeting(
        id="talks", title="Talks", timezone="UTC", starts_at=datetime(2026, 3, 2, tzinfo=UTC)
    )
    after = apply_change(
        before,
        StatusChange(
            meeting_id="talks",
            status=MeetingStatus.POSTPONED,
            reason=reason,
            conditions=conditions,
            variants=variants,
        ),
        now=NOW,
    )
    views = {
        a: (view_meeting(after.meeting, a, audiences), view_entry(after.entry, a, audiences))
        for a in DEFAULT_AUDIENCES
    }
    assert views["public"][0].reason == views["public"][1].reason == "postponed"
    assert views["public"][0].conditions == ()
    assert views["press"][1].reason == "postponed; a new date will be announced"
    assert views["press"][0].conditions == ()
    assert views["participants"][1].reason == "medical reasons"
    assert views["participants"][0].conditions == ("health clearance",)
    # Internal readers have no variant of their own: the participants' is the highest below.
    assert views["internal"][1].reason == "medical reasons"


def test_a_plain_reason_after_a_tiered_one_replaces_every_variant() -> None:
    audiences = Audiences()
    meeting = Meeting(
        id="talks",
        title="Talks",
        timezone="UTC",
        starts_at=datetime(2026, 3, 2, tzinfo=UTC),
        status=MeetingStatus.POSTPONED,
        variants={"reason": {"participants": "medical"}, "conditions": {"participants": ("x",)}},
    )
    cleared = apply_change(
        meeting,
        StatusChange(meeting_id="talks", status=MeetingStatus.CLEARED, reason="all clear"),
        now=NOW,
    ).meeting
    assert cleared.variants == {}
    assert view_meeting(cleared, "participants", audiences).reason == "all clear"


def test_details_take_variants_and_a_plain_value_drops_them() -> None:
    meeting = Meeting(
        id="talks", title="Talks", timezone="UTC", starts_at=datetime(2026, 3, 2, tzinfo=UTC)
    )
    tiered = update_details(
        meeting, {"location": {"public": "Moscow", "participants": "Kremlin, hall 3"}}, now=NOW
    )
    assert tiered is not None
    assert tiered.meeting.location == ""
    assert view_meeting(tiered.meeting, "press", Audiences()).location == "Moscow"
    assert (
        update_details(
            tiered.meeting,
            {"location": {"public": "Moscow", "participants": "Kremlin, hall 3"}},
            now=NOW,
        )
        is None
    )  # the same variants again change nothing
    plain = update_details(tiered.meeting, {"location": "Sochi"}, now=NOW)
    assert plain is not None
    assert plain.meeting.variants == {}
    assert plain.meeting.location == "Sochi"


def test_unknown_audiences_and_hostile_variants_are_refused_naming_the_field() -> None:
    audiences = Audiences()
    with pytest.raises(InvalidChange, match=r"reason\.board: unknown audience 'board'"):
        audiences.check(variants={"reason": {"board": "x"}})
    with pytest.raises(InvalidChange, match=r"audience: unknown audience"):
        audiences.check("Board")
    meeting = Meeting(
        id="talks", title="Talks", timezone="UTC", starts_at=datetime(2026, 3, 2, tzinfo=UTC)
    )
    with pytest.raises(InvalidChange, match=r"reason\.participants: "):
        apply_change(
            meeting,
            StatusChange(
                meeting_id="talks",
                status=MeetingStatus.POSTPONED,
                variants={"reason": {"participants": "x\r\nBcc: evil@example.org"}},
            ),
            now=NOW,
        )
    with pytest.raises(InvalidChange, match="location: not part of a status change"):
        apply_change(
            meeting,
            StatusChange(
                meeting_id="talks",
                status=MeetingStatus.POSTPONED,
                variants={"location": {"public": "x"}},
            ),
            now=NOW,
        )


def test_an_order_names_each_audience_once() -> None:
    with pytest.raises(ValueError, match="each name once"):
        Audiences(("public", "press", "public"))
    with pytest.raises(ValueError, match="at least one"):
        Audiences(())
