"""deploy/grafana/gatehouse.json: a loadable dashboard that shows every Gatehouse metric."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.support import ROOT

DASHBOARD = ROOT / "deploy/grafana/gatehouse.json"
METRICS = (
    "gatehouse_http_requests_total",
    "gatehouse_http_request_duration_seconds_bucket",
    "gatehouse_upstream_requests_total",
    "gatehouse_rate_limited_total",
    "gatehouse_revoked_total",
    "gatehouse_circuit_open",
    "gatehouse_outbox_pending",
    "gatehouse_emails_sent_total",
    "gatehouse_emails_failed_total",
)


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def graph_panels() -> list[dict[str, Any]]:
    return [p for p in load()["panels"] if p["type"] != "row"]


def test_dashboard_shows_every_gatehouse_metric() -> None:
    expressions = " ".join(t["expr"] for p in graph_panels() for t in p["targets"])
    missing = [metric for metric in METRICS if metric not in expressions]
    assert missing == []


def test_latency_and_rate_are_broken_down_per_route_and_upstream() -> None:
    expressions = [t["expr"] for p in graph_panels() for t in p["targets"]]
    assert any("histogram_quantile(0.99" in e and "route" in e for e in expressions)
    assert any("gatehouse_http_requests_total" in e and "route" in e for e in expressions)
    assert any(
        "gatehouse_upstream_requests_total" in e and "upstream, outcome" in e for e in expressions
    )


def test_panels_are_well_formed() -> None:
    dashboard = load()
    assert dashboard["uid"] == "gatehouse"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in graph_panels():
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids
        assert len(ref_ids) == len(set(ref_ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "service"}
