"""The notifier's own metrics."""

from __future__ import annotations

from prometheus_client import Counter

EMAILS_SENT = Counter(
    "gatehouse_emails_sent_total", "Emails accepted by the mail server.", ["kind"]
)
EMAILS_FAILED = Counter(
    "gatehouse_emails_failed_total",
    "Email sends that failed, by kind and whether they will be retried.",
    ["kind", "reason"],
)

# Labelled series exist from the start, so dashboards see zeros rather than gaps.
EMAILS_SENT.labels("welcome")
EMAILS_FAILED.labels("welcome", "retryable")
EMAILS_FAILED.labels("welcome", "permanent")
