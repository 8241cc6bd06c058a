"""Prometheus series the gateway exports at /metrics."""

from __future__ import annotations

from prometheus_client import Counter

INBOUND = Counter(
    "citygate_inbound_messages_total",
    "Inbound messages accepted, by channel and whether they were a repeat delivery",
    ["channel", "duplicate"],
)
REPLIES = Counter(
    "citygate_replies_total",
    "Replies given, by channel and reply text key",
    ["channel", "key"],
)
WEBHOOK_REJECTED = Counter(
    "citygate_webhook_rejected_total",
    "Webhook requests refused, by reason",
    ["reason"],
)
