"""Prometheus series the gateway exports at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
ERRORS = Counter(
    "citygate_errors_total",
    "Failures, by part: handler (a message answered with the apology), poller (a mailbox "
    "pass or one mail), outbox (a send that failed), http (an unexpected 500)",
    ["part"],
)
GROUPS = Counter(
    "citygate_message_groups_total",
    "Message groups run in one transaction (gateway.group_commit), by whether the group "
    "first waited for the last round's crowd of callers (gathered)",
    ["gathered"],
)
GROUPED = Counter(
    "citygate_grouped_messages_total",
    "Messages run in groups; over citygate_message_groups_total, the mean group size",
)
POLLER_HOLDS = Gauge(
    "citygate_poller_holds_lock",
    "1 while this process holds the mailbox's lock and polls it, 0 while it stands by",
)
POLLER_LAST_SUCCESS = Gauge(
    "citygate_poller_last_success_timestamp_seconds",
    "Unix time at which this process last finished a pass over the mailbox",
)
POLLER_MAIL = Counter(
    "citygate_poller_mail_total",
    "Mail the poller took from the mailbox, by outcome (handled, repeat, failed)",
    ["outcome"],
)
OUTBOX_SENDS = Counter(
    "citygate_outbox_sends_total",
    "Outbox send attempts, by channel and result (sent, retry, dead)",
    ["channel", "result"],
)
# Read from the database at each scrape (the same in every process):
OUTBOX_WAITING = Gauge(
    "citygate_outbox_waiting",
    "Outbound messages waiting to be sent (pending, or being sent), by channel",
    ["channel"],
)
OUTBOX_OLDEST = Gauge(
    "citygate_outbox_oldest_waiting_seconds",
    "Age of the oldest outbound message still waiting to be sent, by channel (0: none)",
    ["channel"],
)
OUTBOX_DEAD = Gauge(
    "citygate_outbox_dead",
    "Dead letters (sending gave up) waiting for an operator, by channel",
    ["channel"],
)
