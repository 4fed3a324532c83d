"""The demo's QoE summary as plain rows: one column per session. Pure.

``summary_rows`` turns the sessions' QoE reports into ``(metric, [value per
session])`` rows that any front end can draw (the CLI draws a rich table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localcast.demo.checks import Hosts, ServedBy, served_by
from localcast.player import QoeReport


@dataclass(frozen=True)
class SessionOutcome:
    """One demo session: who played what from where, its QoE report, what went wrong."""

    label: str
    profile_id: str
    client_ip: str
    report: QoeReport
    killed: str | None = None  # the appliance SIGKILLed mid-play, if any
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


Row = tuple[str, list[str]]


def _served(report: QoeReport, hosts: Hosts) -> str:
    return " then ".join(f"{s.appliance_id} ({s.kind})" for s in served_by(report, hosts)) or "-"


def _sites(report: QoeReport, hosts: Hosts) -> str:
    return ", ".join(dict.fromkeys(s.site_id for s in served_by(report, hosts))) or "-"


def _appliance_label(who: ServedBy) -> str:
    return f"bytes from {who.appliance_id} ({who.kind})"


def summary_rows(sessions: Sequence[SessionOutcome], hosts: Hosts) -> list[Row]:
    """Rows of the summary table: client and outcome, QoE, then bytes per appliance."""

    def row(name: str, values: list[str]) -> Row:
        return (name, values)

    reports = [s.report for s in sessions]
    rows = [
        row("client", [f"{s.client_ip} ({s.profile_id})" for s in sessions]),
        row("served by", [_served(r, hosts) for r in reports]),
        row("site", [_sites(r, hosts) for r in reports]),
        row("played", [f"{r.start_offset_s:.1f} s -> {r.end_position_s:.1f} s" for r in reports]),
        row(
            "startup time",
            ["-" if r.startup_time_s is None else f"{r.startup_time_s:.2f} s" for r in reports],
        ),
        row("rebuffers", [f"{r.rebuffer_count} ({r.rebuffer_time_s:.2f} s)" for r in reports]),
        row("average bitrate", [f"{r.avg_bitrate_bps / 1e6:.2f} Mb/s" for r in reports]),
        row("quality switches", [str(r.quality_switches) for r in reports]),
        row("failovers", [_failovers(s) for s in sessions]),
        row("bytes", [f"{r.bytes_total:,}" for r in reports]),
    ]
    appliances: dict[str, ServedBy] = {}
    for r in reports:
        for host in r.bytes_by_host:
            who = hosts.get(host, ServedBy(host, "?", "unknown"))
            appliances.setdefault(host, who)
    for host, who in sorted(appliances.items(), key=lambda kv: kv[1].appliance_id):
        values = [f"{r.bytes_by_host[host]:,}" if host in r.bytes_by_host else "-" for r in reports]
        rows.append(row(_appliance_label(who), values))
    rows.append(
        row(
            "views recorded",
            [", ".join(f"{v:.1f}" for v in r.views_reported) or "-" for r in reports],
        )
    )
    rows.append(row("expectations", ["ok" if s.ok else "FAILED" for s in sessions]))
    return rows


def _failovers(session: SessionOutcome) -> str:
    r = session.report
    text = f"{r.failovers} ({r.request_errors} failed requests)"
    return f"{text}; {session.killed} killed" if session.killed else text
