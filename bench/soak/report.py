"""The soak's report: plain text, every figure from what was observed, nothing left out."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.soak.traffic import PASSWORD_CHANGE_GRACE, Acceptance, Sample, Traffic

# Recovery is looked for this long after a fault's restoration at most.
RECOVERY_HORIZON = 30.0


@dataclass
class Fault:
    name: str
    injected: float  # monotonic
    restored: float | None = None  # when the process (or Redis) answered again
    rolling: bool = False  # a rolling restart: no request may fail inside it
    # auth down or Redis stopped: a password change or reset answered meanwhile could not end the
    # sessions on its request path (users answers 204 anyway, the event ends them once both are
    # back: services/users/src/users/upstream/auth.py)
    blocks_session_end: bool = False
    notes: list[str] = field(default_factory=list)
    window_end: float | None = None  # set by `close_windows`


def failed(sample: Sample) -> bool:
    return sample.status == 0 or sample.status >= 500


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    """Slope of y over x (None with fewer than two points)."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


@dataclass(frozen=True)
class Recovery:
    failures: int
    first_failure: float | None  # seconds after injection
    recovered: float | None  # first answer that is not a failure after the first failure


def recoveries(fault: Fault, samples: list[Sample], end: float) -> dict[str, Recovery]:
    horizon = min(end, (fault.restored or end) + RECOVERY_HORIZON)
    per_route: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if fault.injected <= sample.start <= horizon:
            per_route[sample.route].append(sample)
    result: dict[str, Recovery] = {}
    for route, group in sorted(per_route.items()):
        group.sort(key=lambda s: s.end)
        failures = [s for s in group if failed(s)]
        if not failures:
            result[route] = Recovery(0, None, None)
            continue
        first = failures[0]
        after = [s for s in group if not failed(s) and s.start >= first.start]
        # Recovered: the first good answer after which this route failed no more in the horizon.
        last_failure = failures[-1]
        good_after_last = [s for s in after if s.start >= last_failure.start]
        recovered = good_after_last[0].end - fault.injected if good_after_last else None
        result[route] = Recovery(len(failures), first.end - fault.injected, recovered)
    return result


def close_windows(faults: list[Fault], samples: list[Sample], end: float) -> None:
    """A fault's window: from its injection until it was restored and every route recovered
    (at most RECOVERY_HORIZON after the restoration), plus one second."""
    for fault in faults:
        restored = fault.restored or end
        if fault.rolling:
            fault.window_end = restored
            continue
        latest = max(
            (
                fault.injected + r.recovered
                for r in recoveries(fault, samples, end).values()
                if r.recovered
            ),
            default=restored,
        )
        fault.window_end = min(max(restored, latest) + 1.0, restored + RECOVERY_HORIZON)


def inside(sample: Sample, faults: Iterable[Fault]) -> bool:
    return any(
        f.window_end is not None and sample.end >= f.injected and sample.start <= f.window_end
        for f in faults
    )


def inside_window(at: float, fault: Fault) -> bool:
    return fault.window_end is not None and fault.injected <= at <= fault.window_end


def status_text(statuses: Counter[int]) -> str:
    return " ".join(
        f"{'no-answer' if code == 0 else code}:{count}" for code, count in sorted(statuses.items())
    )


def routes_section(samples: list[Sample]) -> list[str]:
    lines = [
        f"{'route':22} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses",
    ]
    per_route: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        per_route[sample.route].append(sample)
    for route, group in sorted(per_route.items()):
        latencies = [(s.end - s.start) * 1000 for s in group if s.status != 0]
        p50 = f"{percentile(latencies, 0.5):8.1f}" if latencies else f"{'-':>8}"
        p99 = f"{percentile(latencies, 0.99):8.1f}" if latencies else f"{'-':>8}"
        statuses = Counter(s.status for s in group)
        lines.append(f"{route:22} {len(group):8d} {p50} {p99}  {status_text(statuses)}")
    return lines


def fault_section(
    faults: list[Fault], samples: list[Sample], origin: float, end: float
) -> list[str]:
    lines: list[str] = []
    for fault in faults:
        restored = (
            f"restored at +{fault.restored - fault.injected:.1f}s"
            if fault.restored
            else "NOT restored"
        )
        window = (fault.window_end or end) - fault.injected
        in_window = [s for s in samples if inside(s, [fault])]
        failures = sum(1 for s in in_window if failed(s))
        lines.append(
            f"{fault.name} at {fault.injected - origin:.0f}s: {restored}; window {window:.1f}s, "
            f"{len(in_window)} requests, {failures} failed (5xx or no answer)"
        )
        lines.extend(f"    {note}" for note in fault.notes)
        if fault.rolling:
            bad = Counter((s.route, s.status) for s in in_window if failed(s))
            for (route, status), count in sorted(bad.items()):
                lines.append(f"    FAILED during the rolling restart: {route} {status}: {count}")
            continue
        for route, recovery in recoveries(fault, samples, end).items():
            if recovery.failures == 0:
                lines.append(f"    {route:22} unaffected (no failure)")
            else:
                back = (
                    f"recovered at +{recovery.recovered:.1f}s"
                    if recovery.recovered is not None
                    else "NOT recovered within the horizon"
                )
                lines.append(
                    f"    {route:22} {recovery.failures} failed, first at "
                    f"+{recovery.first_failure:.1f}s, {back}"
                )
    return lines


def five_xx_section(samples: list[Sample], faults: list[Fault]) -> list[str]:
    counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    totals: Counter[bool] = Counter()
    for sample in samples:
        where = inside(sample, faults)
        totals[where] += 1
        if failed(sample):
            counts[where][f"{sample.route} {sample.status or 'no-answer'}"] += 1
    lines = []
    for where, title in ((True, "inside fault windows"), (False, "outside fault windows")):
        failures = sum(counts[where].values())
        lines.append(f"{title}: {failures} of {totals[where]} requests failed (5xx or no answer)")
        lines.extend(f"    {key}: {count}" for key, count in sorted(counts[where].items()))
    return lines


def rss_section(readings: list[tuple[float, str, int, float]], origin: float) -> list[str]:
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    pids: dict[str, int] = {}
    for at, label, pid, mb in readings:
        series[label].append(((at - origin) / 60, mb))
        pids[label] = pid
    lines = [
        "slope over the readings after the first (warm-up) when there are 3 or more; name#N is",
        "the Nth process of that name (restarted by a fault)",
        "process          pid  samples  RSS MB at each 30 s reading                slope MB/min",
    ]
    for label, points in sorted(series.items()):
        slope = least_squares_slope(points[1:] if len(points) >= 3 else points)
        values = " ".join(f"{mb:.0f}" for _, mb in points)
        shown = f"{slope:+.2f}" if slope is not None else "n/a (1 reading)"
        if len(points) == 2 and slope is not None:
            shown += " (2 readings, the warm-up one included)"
        lines.append(f"{label:14} {pids[label]:6d} {len(points):7d}  {values:40}  {shown}")
    return lines


def ended_while_blocked(acceptance: Acceptance, faults: Iterable[Fault]) -> Fault | None:
    """The fault during which the session of an ended token was ended by a password change or
    reset, when the token was accepted before the contract's 5 s counted from the fault's end:
    auth (or Redis) down, nobody could end it on the request path; users' event does once both
    are back. Not a loss to hide: the report lists each one under its own heading."""
    if not acceptance.reason.startswith("password"):
        return None
    ended = acceptance.at - acceptance.seconds_after_end
    for fault in faults:
        if not fault.blocks_session_end or fault.restored is None:
            continue
        if fault.injected <= ended <= fault.restored and (
            acceptance.at <= fault.restored + PASSWORD_CHANGE_GRACE
        ):
            return fault
    return None


def tokens_section(
    traffic: Traffic,
    sweeps: dict[str, int],
    redis_restarts: list[float],
    faults: list[Fault],
    origin: float,
) -> list[str]:
    kinds = Counter(t.kind for t in traffic.ended)
    probes = sum(t.probes for t in traffic.ended)
    never = sum(1 for t in traffic.ended if t.probes == 0)
    ended = ", ".join(f"{reason} {n}" for reason, n in sorted(traffic.ended_sessions.items()))
    lines = [
        f"ended sessions: {sum(traffic.ended_sessions.values())} ({ended or 'none'})",
        f"tokens of ended sessions tracked: {len(traffic.ended)} "
        f"(access {kinds['access']}, refresh {kinds['refresh']}); probes sent: {probes}; "
        f"never probed: {never}",
        "final sweep after the traffic: "
        + ", ".join(f"{kind} {count}" for kind, count in sweeps.items()),
        f"ENDED TOKENS ACCEPTED AGAIN: {len(traffic.accepted)}",
    ]

    def across_restart(acceptance: Acceptance) -> str:
        ended = acceptance.at - acceptance.seconds_after_end
        if any(ended < restart < acceptance.at for restart in redis_restarts):
            return "ended before a Redis restart, accepted after it"
        return "no Redis restart in between"

    blocked = [(a, f) for a in traffic.accepted if (f := ended_while_blocked(a, faults))]
    lines.append(
        f"    outside the contract: {len(traffic.accepted) - len(blocked)}; ended while auth or "
        f"Redis was down and accepted before {PASSWORD_CHANGE_GRACE:g} s after its return: "
        f"{len(blocked)}"
    )
    for a, fault in blocked:
        back = fault.restored or a.at
        lines.append(
            f"    ENDED WHILE {fault.name.upper()}: {a.kind} ({a.reason}) ended at "
            f"{a.at - a.seconds_after_end - origin:.1f}s, accepted at {a.at - origin:.1f}s, "
            f"{a.at - back:+.1f}s from the fault's end at {back - origin:.1f}s"
        )
    grouped: dict[tuple[str, str, int, str], list[Acceptance]] = defaultdict(list)
    for a in traffic.accepted:
        grouped[(a.kind, a.reason, a.status, across_restart(a))].append(a)
    for (kind, reason, status, when), group in sorted(grouped.items()):
        ages = [a.seconds_after_end for a in group]
        lines.append(
            f"    {len(group)} × {kind} token of a session ended by {reason} answered {status} "
            f"({min(ages):.1f}–{max(ages):.1f}s after it ended; {when})"
        )
    for a in traffic.accepted[:20]:
        ended_at = a.at - a.seconds_after_end
        during = [
            f.name
            for f in faults
            if f.injected <= a.at and (f.window_end or f.restored or a.at) >= ended_at
        ]
        lines.append(
            f"    {a.kind} ({a.reason}) ended at {ended_at - origin:.1f}s, accepted at "
            f"{a.at - origin:.1f}s"
            + (
                f"; a fault overlapping: {', '.join(during)}"
                if during
                else "; no fault overlapping"
            )
        )
    return lines
