"""What each demo session must show, as checks over its QoE report. Pure.

Every check returns the problems it found (empty: as expected), each a
sentence naming the session, so the demo can print them all and exit
non-zero. :class:`ServedBy` says which appliance and site stand behind a
host (``127.0.0.1:PORT``) a report names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from localcast.player import QoeReport

EPS_S = 0.1


@dataclass(frozen=True)
class ServedBy:
    appliance_id: str
    site_id: str
    kind: str  # embedded, pni, ix, origin


Hosts = Mapping[str, ServedBy]


def served_by(report: QoeReport, hosts: Hosts) -> list[ServedBy]:
    """Who served the report's media segments, in order of first use."""
    out: list[ServedBy] = []
    for seg in report.segments:
        who = hosts.get(seg.host, ServedBy(seg.host, "?", "unknown"))
        if who not in out:
            out.append(who)
    return out


def site_kinds(report: QoeReport, hosts: Hosts) -> set[str]:
    return {s.kind for s in served_by(report, hosts)}


def check_played(label: str, report: QoeReport, start_s: float, end_s: float) -> list[str]:
    """Played from ``start_s`` to ``end_s``, without an error."""
    problems = []
    if report.error or not report.completed:
        problems.append(f"{label}: did not finish ({report.error or 'stopped early'})")
    if abs(report.start_offset_s - start_s) > EPS_S:
        problems.append(f"{label}: started at {report.start_offset_s:g} s, not {start_s:g} s")
    if abs(report.end_position_s - end_s) > EPS_S:
        problems.append(f"{label}: ended at {report.end_position_s:g} s, not {end_s:g} s")
    if not report.segments:
        problems.append(f"{label}: fetched no segment")
    return problems


def check_served_only_by(label: str, report: QoeReport, hosts: Hosts, kind: str) -> list[str]:
    """Every segment came from appliances of sites of ``kind``."""
    kinds = site_kinds(report, hosts)
    if kinds and kinds != {kind}:
        who = ", ".join(f"{s.appliance_id} ({s.kind})" for s in served_by(report, hosts))
        return [f"{label}: expected only {kind} appliances, was served by {who}"]
    return []


def check_no_rebuffer(label: str, report: QoeReport) -> list[str]:
    if report.rebuffer_count:
        return [
            f"{label}: {report.rebuffer_count} rebuffer(s), {report.rebuffer_time_s:.2f} s stalled"
        ]
    return []


def check_failover(label: str, report: QoeReport, hosts: Hosts, killed: str | None) -> list[str]:
    """The appliance ``killed`` mid-play served the session first, and never after the failover."""
    if killed is None:
        return [f"{label}: no appliance was killed (the player never got far enough)"]
    problems = []
    if report.failovers < 1:
        problems.append(f"{label}: no failover after {killed} was killed")
    order = [s.appliance_id for s in served_by(report, hosts)]
    if not order or order[0] != killed:
        problems.append(f"{label}: {killed} was not the appliance serving the session")
    ids = [hosts[s.host].appliance_id if s.host in hosts else s.host for s in report.segments]
    if killed in ids:
        last = len(ids) - 1 - ids[::-1].index(killed)
        if last == len(ids) - 1:
            problems.append(f"{label}: the last segment still came from {killed}")
    return problems


def check_views(label: str, report: QoeReport, expected_last_s: float) -> list[str]:
    if not report.views_reported or abs(report.views_reported[-1] - expected_last_s) > EPS_S:
        got = report.views_reported[-1] if report.views_reported else None
        return [f"{label}: last view reported {got}, expected {expected_last_s:g} s"]
    return []
