"""The database schema, SQLAlchemy Core, shared by SQLite and PostgreSQL.

Migrations in `notifier/store/migrations` create exactly this; a test compares them.
Every timestamp is stored in UTC (`UTCDateTime`); a meeting's own zone is a column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive input is a bug and refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store in UTC; SQLite keeps no offset, so it gets the naive UTC wall time."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read back as an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meetings = Table(
    "meetings",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("location", Text, nullable=False, server_default=""),
    Column("participants", JSON, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime),
    Column("status", String(20), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("conditions", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("sequence", Integer, nullable=False),
    #: Coalescing window in seconds: changes within it go out as one message. NULL = off.
    #: 64-bit: the schema lets a window run to 999,999 weeks (6e11 s). (SQLite's INTEGER
    #: is 64-bit already.)
    Column("coalesce_seconds", BigInteger().with_variant(Integer(), "sqlite")),
    #: file | api | cli | feed: who owns the record (the config file may only touch its own).
    Column("source", String(10), nullable=False),
    #: For file meetings: the status part of the file as last read, to notice edits.
    Column("file_state", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    #: Set when the config file stops naming a file meeting; its history stays.
    Column("retired_at", UTCDateTime),
    #: The lowest audience that may know of the meeting.
    Column("audience", String(40), nullable=False, server_default="public"),
    #: Variants by audience of the tiered text fields: {field: {audience: value}}, or NULL.
    Column("variants", JSON),
    #: wall | instant: what the time is fixed to when the zone's rules change. For "wall"
    #: the local start below is the truth and `starts_at` the instant it was last read as
    #: (what readers were told and reminders planned for); for "instant", the reverse.
    Column("anchor", String(10), nullable=False, server_default="wall"),
    #: The local start and end on the zone's clocks (ISO, no offset), the fold (1: the
    #: second reading of a time passed twice), the UTC offset it resolved to (seconds) and
    #: the tzdata version it was resolved with. NULL local start: not yet recorded.
    Column("local_starts_at", String(32)),
    Column("local_ends_at", String(32)),
    Column("fold", Integer, nullable=False, server_default="0"),
    Column("utc_offset", Integer),
    Column("tzdata", String(32)),
    #: Its text in other languages: {language: {field: value or {audience: value}}}, or NULL.
    Column("texts", JSON),
    #: Languages every change must give its text in (a JSON list), or NULL.
    Column("require_languages", JSON),
)

meeting_history = Table(
    "meeting_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meeting_id", String(100), ForeignKey("meetings.id"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("previous_starts_at", UTCDateTime),
    Column("starts_at", UTCDateTime),
    Column("event_id", String(200)),
    Column("source", String(10), nullable=False),
    Column("forced", Boolean, nullable=False, server_default=text("false")),
    #: Variants by audience of the reason and of what was cleared, or NULL.
    Column("variants", JSON),
    #: The conditions a clearance lifted (a JSON list), or NULL.
    Column("cleared", JSON),
    #: What a change of the zone's clock rules did (`ClockChange.to_dict`), or NULL.
    Column("clock", JSON),
    #: The reason (and what was cleared) in other languages, or NULL.
    Column("texts", JSON),
    UniqueConstraint("meeting_id", "sequence"),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("timezone", String(64), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("meetings", JSON, nullable=False),
    #: The same list as ",id1,id2," for a search in SQL; NULL when it follows every meeting.
    Column("meeting_filter", Text),
    Column("tags", JSON, nullable=False),
    Column("events", JSON, nullable=False),
    #: Reminder offsets in whole seconds.
    Column("reminders", JSON, nullable=False),
    #: "22:00-07:00" in the subscriber's zone, or NULL.
    Column("quiet_hours", String(11)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("source", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime),
    #: Which variants of meeting text this reader gets, and which meetings they may know.
    Column("audience", String(40), nullable=False, server_default="public"),
    #: Self-service: when the emailed link was followed (NULL: waiting for it).
    Column("confirmed_at", UTCDateTime),
    #: Self-service: SHA-256 of the pending confirmation token, and until when it works.
    Column("confirm_hash", String(64)),
    Column("confirm_until", UTCDateTime),
    #: Part of what signs the subscriber's manage and calendar links: a new one (rotate)
    #: makes every earlier link stop working.
    Column("link_salt", String(32), nullable=False, server_default=""),
    Index(None, "confirm_hash", unique=True),
)

#: Confirmation emails sent, per address digest: at most `public.per_address_per_day`.
confirmations = Table(
    "confirmations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address_hash", String(64), nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Index(None, "address_hash"),
)

subscriber_endpoints = Table(
    "subscriber_endpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", String(100), ForeignKey("subscribers.id"), nullable=False),
    #: email | webhook | notify
    Column("channel", String(10), nullable=False),
    #: The email address or the webhook URL ("" for notify).
    Column("address", Text, nullable=False),
    #: Webhook signing secrets (whsec_...), newest first; for notify, the Apprise URLs
    #: (they hold the services' tokens); empty for email.
    Column("secrets", JSON, nullable=False),
    #: Set when the endpoint must not be used again (unsubscribed, 410 Gone).
    Column("disabled_at", UTCDateTime),
    Column("disabled_reason", Text),
    #: When its current run of failed attempts began (cleared by any success).
    Column("failing_since", UTCDateTime),
    UniqueConstraint("subscriber_id", "channel"),
)

#: What a change or reminder says, stored once and shared by all of its deliveries: the
#: webhook body of the contract.
notices = Table(
    "notices",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

#: The outbox: one row per notification to one endpoint, written in the same transaction as
#: the change that caused it. `id` is the idempotency key (webhook-id, Message-ID).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("meeting_id", String(100), ForeignKey("meetings.id"), nullable=False),
    Column("subscriber_id", String(100), ForeignKey("subscribers.id"), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("sequence", Integer, nullable=False),
    #: What to say: the notice shared by every delivery of the same change or reminder.
    Column("notice_id", String(200), ForeignKey("notices.id"), nullable=False),
    #: pending | sending | retrying | sent | dead
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(100)),
    Column("claimed_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("last_error", Text),
    #: For chat deliveries: which of the subscriber's URLs (a digest, never the URL).
    Column("target", String(32)),
    Index(None, "status", "next_attempt_at"),
    Index(None, "meeting_id"),
    # The claim's ordering and one-in-flight checks read only unfinished rows (0015).
    Index(
        "ix_deliveries_lane",
        "subscriber_id",
        "channel",
        "meeting_id",
        sqlite_where=text("status IN ('pending', 'sending', 'retrying')"),
        postgresql_where=text("status IN ('pending', 'sending', 'retrying')"),
    ),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(200), ForeignKey("deliveries.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    #: sent | temporary | permanent
    Column("outcome", String(10), nullable=False),
    #: HTTP status or SMTP reply code, when there was one.
    Column("code", Integer),
    Column("error", Text),
    #: An email attempt: the message exactly as it went on the wire (signed), zlib then
    #: base64 (`notifier deliveries show ID --render`).
    Column("message", Text),
    Index(None, "delivery_id"),
)

fanouts = Table(
    # A change whose readers are planned in chunks: where planning stands (after `after`),
    # with the meeting as the change left it, so every chunk is planned alike.
    "fanouts",
    metadata,
    Column("meeting_id", String(100), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("meeting", JSON, nullable=False),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("after", String(100), nullable=False),
    Column("claimed_by", String(100)),
    Column("claimed_until", UTCDateTime),
)

reminders = Table(
    "reminders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meeting_id", String(100), ForeignKey("meetings.id"), nullable=False),
    Column("subscriber_id", String(100), ForeignKey("subscribers.id"), nullable=False),
    Column("offset_seconds", Integer, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    #: The meeting sequence the reminder was planned for; a later change supersedes it.
    Column("sequence", Integer, nullable=False),
    #: pending | fired | withdrawn | missed
    Column("state", String(10), nullable=False),
    Column("fired_at", UTCDateTime),
    #: Fired after its instant (the daemon was down), within the grace period.
    Column("late", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("meeting_id", "subscriber_id", "offset_seconds", "sequence"),
    Index(None, "state", "due_at"),
)

#: Event ids already applied, so a repeated push or feed read is a no-op.
#: Addresses the mail server refused for good (5xx to RCPT): nothing is sent to them until
#: an operator clears them (`notifier suppressions clear`).
suppressions = Table(
    "suppressions",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

#: Delivery status notifications that came back for a sent delivery (0016): one row per
#: DSN and failed address, so the same DSN delivered twice counts once.
bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(200), nullable=False),
    Column("dsn_id", String(64), nullable=False),
    Column("address", String(320), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    #: A hard bounce (the address suppressed); otherwise soft (counted only).
    Column("permanent", Boolean, nullable=False),
    Column("status", String(20), nullable=False, server_default=""),
    Column("reporting_mta", Text, nullable=False, server_default=""),
    UniqueConstraint("delivery_id", "dsn_id", "address"),
    Index(None, "delivery_id"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("meeting_id", String(100), ForeignKey("meetings.id"), nullable=False),
    #: The history entry the event produced.
    Column("sequence", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    #: The meeting as the event left it, returned as-is when the event is repeated.
    Column("result", JSON, nullable=False),
)

#: Small values the whole installation shares, such as the key that signs unsubscribe links.
meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

#: Watched feeds: what was last read, for conditional GET, backoff and health.
sources = Table(
    "sources",
    metadata,
    Column("url", String(2000), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_polled_at", UTCDateTime),
    Column("last_ok_at", UTCDateTime),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("next_poll_at", UTCDateTime),
    #: The last read: events followed, skipped, refused, changes applied, progress.
    Column("counts", JSON),
    #: Each skipped or refused event's reason (by event key), to log a reason only once.
    Column("problems", JSON),
)

#: What each event of a watched source looked like when last read (`snapshot`), to tell
#: what the feed changed since; one row per event, keyed by a digest of (url, event key).
source_items = Table(
    "source_items",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source_url", String(2000), nullable=False, index=True),
    Column("key", Text, nullable=False),
    Column("said", JSON, nullable=False),
)

#: Leases that let one replica of many do a job alone (the scheduler: reminder timers and
#: feed polls). `term` grows by one at every change of holder and is the fencing token:
#: the leader's writes check it in their own transaction.
leases = Table(
    "leases",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("term", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
