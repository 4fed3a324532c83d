"""`localcast play TITLE --profile P`: play a title as a device would and print its QoE."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from localcast.cli.state import fail, state
from localcast.core.tokenbucket import RateError, parse_rate
from localcast.player import DEFAULT_CONTROL_URL, PlayerError, PlayerEvent, QoeReport, play

_EVENT_STYLE = {
    "segment": "dim",
    "stall": "bold red",
    "resume": "yellow",
    "failover": "bold magenta",
    "steering": "cyan",
    "error": "bold red",
    "start": "green",
}


def register(app: typer.Typer) -> None:
    app.command("play")(play_cmd)


def play_cmd(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="Title id to play.")],
    profile: Annotated[str, typer.Option(help="Viewer profile id (resume offset, views).")],
    control: Annotated[
        str | None,
        typer.Option(help="Control plane URL (default: [player] control_url, or 127.0.0.1:8000)."),
    ] = None,
    bandwidth: Annotated[
        str | None, typer.Option(help="Emulated link rate, e.g. 3M or 800k (bits/s).")
    ] = None,
    stop_at: Annotated[
        float | None, typer.Option(help="Stop at this media time (seconds) and record it.")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Run the player's clock this many times real time.")
    ] = 1.0,
    source_address: Annotated[
        str | None, typer.Option(help="Bind client sockets to this local address (127.0.0.5).")
    ] = None,
    max_height: Annotated[int, typer.Option(help="Tallest video the device shows.")] = 1080,
    as_json: Annotated[bool, typer.Option("--json", help="Print the QoE report as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Play TITLE: steering, ABR, failover, views; then print the QoE summary."""
    cli = state(ctx)
    if cli.log_level.lower() != "debug":  # one INFO line per request drowns the progress
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    cfg = cli.config.section("player")
    control_url = control or str(cfg.get("control_url", DEFAULT_CONTROL_URL))
    try:
        rate_bps = parse_rate(bandwidth) if bandwidth else None
    except RateError as exc:
        raise fail(str(exc), 2) from exc
    if speed <= 0:
        raise fail("--speed must be positive", 2)
    progress = Console(stderr=True)

    def show(event: PlayerEvent) -> None:
        style = _EVENT_STYLE.get(event.kind, "")
        progress.print(f"[{event.at_s:7.2f}s] {event.kind:<8} {event.message}", style=style)

    try:
        report = asyncio.run(
            play(
                title,
                profile,
                control_url=control_url,
                bandwidth=rate_bps,
                stop_at_s=stop_at,
                speed=speed,
                source_address=source_address,
                max_height=max_height,
                on_event=None if (quiet or as_json) else show,
            )
        )
    except PlayerError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        Console().print(qoe_table(report))
    if report.error:
        raise typer.Exit(1)


def qoe_table(report: QoeReport) -> Table:
    """The QoE summary as a two-column rich table."""
    table = Table(title=f"QoE: {report.title_id} for {report.profile_id}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    startup = "-" if report.startup_time_s is None else f"{report.startup_time_s:.2f} s"
    outcome = "completed" if report.completed else f"stopped ({report.error or 'early'})"
    rows = [
        ("outcome", outcome),
        ("played", f"{report.start_offset_s:.1f} s -> {report.end_position_s:.1f} s"),
        ("startup time", startup),
        ("rebuffers", f"{report.rebuffer_count} ({report.rebuffer_time_s:.2f} s)"),
        ("average bitrate", f"{report.avg_bitrate_bps / 1e6:.2f} Mb/s"),
        ("quality switches", str(report.quality_switches)),
        ("failovers", f"{report.failovers} ({report.request_errors} failed requests)"),
        ("steering switches", str(report.steering_switches)),
        ("bytes", f"{report.bytes_total:,}"),
    ]
    rows += [(f"  from {host}", f"{n:,}") for host, n in sorted(report.bytes_by_host.items())]
    rows.append(("views recorded", ", ".join(f"{v:.1f}" for v in report.views_reported) or "-"))
    for name, value in rows:
        table.add_row(name, value)
    return table
