"""common.metrics.RequestTally: scraped, it reads as a prometheus_client Counter and Histogram
fed the same requests would."""

from __future__ import annotations

import re
import time

from common.metrics import RequestTally
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.1, 1.0, 10.0)
# (counter labels, histogram labels, seconds): on bounds (a bound counts in its own bucket),
# between them, under the first, past the last, and a status counted twice
REQUESTS = [
    (("users.me", "users", "200"), ("users.me",), 0.001),
    (("users.me", "users", "200"), ("users.me",), 0.0011),
    (("users.me", "users", "401"), ("users.me",), 0.0),
    (("users.me", "users", "200"), ("users.me",), 10.0),
    (("auth.login", "auth", "429"), ("auth.login",), 25.0),
    (("auth.login", "auth", "200"), ("auth.login",), 0.05),
]


def exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape's lines, each `_created` timestamp replaced by `T` (they differ by a few µs)."""
    text = generate_latest(registry).decode()
    return sorted(
        re.sub(r"(_created\{.*\}|_created) \S+$", r"\1 T", line) for line in text.splitlines()
    )


def test_a_scrape_reads_as_prometheus_clients_counter_and_histogram() -> None:
    reference = CollectorRegistry()
    counter = Counter(
        "t_requests_total", "Requests.", ["route", "upstream", "status"], registry=reference
    )
    histogram = Histogram(
        "t_duration_seconds", "Durations.", ["route"], buckets=BUCKETS, registry=reference
    )
    tallied = CollectorRegistry()
    tally = RequestTally(
        ("t_requests_total", "Requests.", ["route", "upstream", "status"]),
        ("t_duration_seconds", "Durations.", ["route"]),
        buckets=BUCKETS,
        registry=tallied,
    )
    for counted, timed, seconds in REQUESTS:
        counter.labels(*counted).inc()
        histogram.labels(*timed).observe(seconds)
        tally.observe(counted, timed, seconds)
    expected, got = exposition(reference), exposition(tallied)
    assert 't_requests_total{route="users.me",status="200",upstream="users"} 3.0' in got
    assert 't_duration_seconds_bucket{le="0.001",route="users.me"} 2.0' in got  # 0.0 and 0.001
    assert 't_duration_seconds_bucket{le="+Inf",route="auth.login"} 2.0' in got
    assert got == expected


def test_created_is_when_a_series_first_counted() -> None:
    tally = RequestTally(
        ("c_total", "C.", ["a"]), ("h_seconds", "H.", ["a"]), (1.0,), registry=None
    )
    before = time.time()
    tally.observe(("x",), ("x",), 0.5)
    later = time.time()
    tally.observe(("x",), ("x",), 0.5)
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in tally.collect()
        for sample in family.samples
    }
    assert before <= samples["c_created", None] <= later
    assert before <= samples["h_seconds_created", None] <= later
    assert samples["c_total", None] == 2
    assert samples["h_seconds_bucket", "1.0"] == 2
    assert samples["h_seconds_sum", None] == 1.0
