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
