"""The soak's accounting (bench/soak): each outcome under the heading that says what happened.

Plain functions over recorded samples, so no platform is needed: an ended token accepted while the
only service that ends sessions was down is told apart from one accepted against the contract, a
reset link is late, never sent, or lost with a users kill -9, and a refusal says what it said.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import httpx

from bench.soak import report, run
from bench.soak.infra import Mail
from bench.soak.traffic import Acceptance, Traffic

AUTH_DOWN = report.Fault("auth SIGTERM, restarted", 135.0, 144.4, blocks_session_end=True)
USERS_KILL = report.Fault("users killed -9, restarted", 99.0, 106.0)


def test_an_end_auth_could_not_carry_out_is_told_apart_from_one_it_broke() -> None:
    during = Acceptance("access", "password reset", 5.5, 143.0, 200)
    too_late = Acceptance("access", "password change", 15.0, 152.0, 200)  # > 5 s after its return
    logout = Acceptance("access", "logout", 1.0, 140.0, 200)  # a 204 logout: auth did end it
    other_fault = Acceptance("access", "password change", 5.5, 104.0, 200)

    assert report.ended_while_blocked(during, [USERS_KILL, AUTH_DOWN]) is AUTH_DOWN
    for acceptance in (too_late, logout, other_fault):
        assert report.ended_while_blocked(acceptance, [USERS_KILL, AUTH_DOWN]) is None


def test_unseen_reset_links_are_late_never_sent_or_lost_with_a_kill() -> None:
    traffic = Traffic.__new__(Traffic)  # only the fields the section reads
    traffic.unseen_links = [("a@x.org", 97.0), ("b@x.org", 20.0), ("c@x.org", 150.0)]
    traffic.forgot_accepted = Counter({"a@x.org": 2, "b@x.org": 1, "c@x.org": 1})
    mail = Mail()
    mail.reset_tokens.update({"a@x.org": ["one"], "b@x.org": ["late"]})
    soak = SimpleNamespace(
        traffic=traffic, sink=SimpleNamespace(mail=mail), faults=[USERS_KILL], origin=0.0
    )
    problems: list[str] = []

    lines = run.reset_links_section(soak, problems)  # type: ignore[arg-type]

    assert lines[0].endswith("3; arrived later: 1; never sent: 2")
    assert "LOST WITH USERS KILLED -9 2.0s AFTER THE 202" in lines[1]
    assert lines[2].startswith("    NEVER SENT: 202 at 150.0s")
    assert problems == [
        "1 reset links asked for (202) were never sent",
        "1 reset links asked for (202) were lost with users killed -9 before their "
        "off-request-path task ran",
    ]


def test_a_refusal_is_a_401_or_403_and_says_what_it_said() -> None:
    traffic = Traffic.__new__(Traffic)
    traffic.refused_live = []
    revoked = {"title": "Unauthorized", "detail": "The token has been revoked."}

    traffic.refused("me", httpx.Response(401, json=revoked))
    traffic.refused("me", httpx.Response(503, json={"title": "Service Unavailable"}))

    assert [(r.status, r.said) for r in traffic.refused_live] == [
        (401, "401 Unauthorized: The token has been revoked.")
    ]
