"""Prometheus metrics, in a registry of notifier's own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ATTEMPTS = Counter(
    "notifier_delivery_attempts",
    "Delivery attempts by channel and outcome (sent, temporary, permanent).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "notifier_deliveries",
    "Deliveries by channel and where they ended up (sent, retrying, dead).",
    ["channel", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "notifier_delivery_seconds",
    "Time one delivery attempt took, by channel.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "notifier_outbox_depth",
    "Deliveries waiting in the outbox, by status.",
    ["status"],
    registry=REGISTRY,
)
OLDEST_PENDING = Gauge(
    "notifier_outbox_oldest_pending_seconds",
    "Age of the oldest delivery not yet sent.",
    registry=REGISTRY,
)
REMINDER_LATENESS = Histogram(
    "notifier_reminder_lateness_seconds",
    "How long after its instant a reminder was fired (or found missed).",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 600, 3600),
    registry=REGISTRY,
)
SOURCE_POLL_ERRORS = Counter(
    "notifier_source_poll_errors",
    "Failed polls of watched sources, by source URL.",
    ["source"],
    registry=REGISTRY,
)
SOURCE_EVENTS = Gauge(
    "notifier_source_events",
    "Events in the last read of each watched source: followed, skipped or refused.",
    ["source", "state"],
    registry=REGISTRY,
)
SOURCE_CHANGES = Counter(
    "notifier_source_changes",
    "Changes applied from watched sources (meetings created, moved, updated, cancelled).",
    ["source"],
    registry=REGISTRY,
)
ENDPOINTS_DISABLED = Counter(
    "notifier_endpoints_disabled",
    "Webhook endpoints disabled after failing every attempt for webhooks.disable_after",
    registry=REGISTRY,
)
LEADER = Gauge(
    "notifier_scheduler_leader",
    "1 while this replica holds the scheduler lease (runs reminders and feed polls), else 0.",
    registry=REGISTRY,
)
LEADER_TERM = Gauge(
    "notifier_scheduler_term",
    "The scheduler lease term this replica holds (0 when it holds none).",
    registry=REGISTRY,
)
SUBSCRIPTIONS = Counter(
    "notifier_subscriptions",
    "Self-service subscription requests and confirmations by outcome (sent, "
    "already_subscribed, confirmed, refused_address_limit, refused_client_limit, "
    "refused_csrf, confirm_refused, mail_failed).",
    ["outcome"],
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "notifier_event_loop_lag_seconds",
    "How late the event loop woke a task that asked to sleep (what every request, timer "
    "and delivery waits behind).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CLOCK_MOVES = Counter(
    "notifier_clock_rule_moves",
    "Meetings a change of their zone's clock rules moved (wall: the instant moved; "
    "instant: the local time moved).",
    ["anchor"],
    registry=REGISTRY,
)
