"""`localcast demo`: video -> ingest -> fleet -> three playback sessions, with QoE tables.

The scenario lives in :mod:`localcast.demo.scenario`; this module only parses
options, prints what the scenario says (rich) and turns its verdict into the
exit status: 0 when every session showed what it should, 1 otherwise, 130
when interrupted. Every process the demo starts is stopped before it exits
(Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from localcast.cli.state import fail, state
from localcast.demo.checks import Hosts
from localcast.demo.report import SessionOutcome, summary_rows
from localcast.demo.scenario import DemoConfig, DemoResult, run_demo
from localcast.player import PlayerEvent

_EVENT_STYLE = {"failover": "bold magenta", "stall": "bold red", "error": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)


class RichNarrator:
    """Prints the demo's steps, notable player events, verdicts and the summary table."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def _stamp(self) -> str:
        return f"[dim]{time.monotonic() - self.started:5.1f}s[/dim]"

    def step(self, text: str) -> None:
        self.console.print(f"{self._stamp()} {text}", highlight=False)

    def event(self, session: str, event: PlayerEvent) -> None:
        style = _EVENT_STYLE.get(event.kind)
        if style is not None:
            self.console.print(
                f"{self._stamp()} [{style}]{session}: {event.kind}[/] {event.message}",
                highlight=False,
            )

    def session(self, outcome: SessionOutcome, hosts: Hosts) -> None:
        mark = "[green]ok[/green]" if outcome.ok else "[bold red]FAILED[/bold red]"
        r = outcome.report
        self.step(
            f"{outcome.label}: {mark} ({r.start_offset_s:.1f} s -> {r.end_position_s:.1f} s, "
            f"{r.rebuffer_count} rebuffers, {r.failovers} failovers)"
        )
        for problem in outcome.problems:
            self.console.print(f"      [red]{problem}[/red]", highlight=False)

    def summary(self, result: DemoResult) -> None:
        table = Table(title="QoE per playback session", title_justify="left")
        table.add_column("metric", style="bold")
        for s in result.sessions:
            table.add_column(s.label)
        for name, values in summary_rows(result.sessions, result.hosts):
            table.add_row(name, *values)
        self.console.print(table)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _hold(console: Console) -> None:
    """Wait for Ctrl-C (or SIGTERM)."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping everything")


def demo_cmd(
    ctx: typer.Context,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave it all running, print the watch page URL, wait for ^C."),
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Empty directory for the demo's homes and logs (default: a temporary one, "
            "removed after a successful run).",
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Run the players' clocks this many times real time.")
    ] = 2.0,
    duration: Annotated[float, typer.Option(help="Length of the generated video, seconds.")] = 24.0,
) -> None:
    """Run Localcast end to end on loopback and show what viewers experienced.

    Generates and ingests a short video, starts the control plane, two
    appliances embedded in a demo ISP (127.0.1.0/24), one at an IX and the
    origin; fills the title onto the appliances ahead of its release (origin ->
    IX -> ISP site, then peer); plays it from inside the ISP (stop halfway,
    resume, SIGKILL of the serving appliance mid-play) and from outside
    (served by the IX); prints the QoE of each session.
    """
    st = state(ctx)
    if speed <= 0:
        raise fail("--speed must be positive", 2)
    if not 16 <= duration <= 120:
        raise fail("--duration must be between 16 and 120 seconds", 2)
    if st.log_level.lower() != "debug":  # one line per request would drown the story
        for name in ("httpx", "httpcore", "localcast.player", "localcast.media"):
            logging.getLogger(name).setLevel(logging.WARNING)
    home = home or ctx.find_root().params.get("home")  # `localcast --home DIR demo` too
    if home is not None:
        root = Path(home).expanduser().resolve()
        if root.exists() and any(root.iterdir()):
            raise fail(f"{root} is not empty: give an empty or new directory", 2)
        temporary = False
    else:
        root = Path(tempfile.mkdtemp(prefix="localcast-demo-"))
        temporary = True
    console = Console(highlight=False)
    narrator = RichNarrator(console)

    def hold(result: DemoResult) -> None:
        console.print(f"\n[bold]watch page:[/bold] {result.watch_url}")
        if result.portal is not None:
            console.print(f"[bold]partner portal:[/bold] {result.portal.url}")
            for email, password in result.portal.logins.items():
                console.print(f"  log in as {email}  password {password}")
        console.print(
            "everything keeps running (one embedded appliance was killed); Ctrl-C stops it all"
        )
        _hold(console)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_demo(
            DemoConfig(root=root, speed=speed, duration_s=duration),
            narrator,
            hold if keep else None,
        )
    except KeyboardInterrupt:
        console.print(f"interrupted: every process stopped; files in {root}")
        raise typer.Exit(130) from None
    except Exception as exc:
        console.print(f"[bold red]demo failed:[/bold red] {exc}")
        console.print(f"logs and files: {root}")
        raise typer.Exit(1) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result.problems:
        console.print(f"[bold red]{len(result.problems)} expectation(s) failed[/bold red]")
        console.print(f"logs and files: {root}")
        raise typer.Exit(1)
    console.print("[bold green]demo passed:[/bold green] every expectation held")
    if temporary:
        shutil.rmtree(root, ignore_errors=True)
    else:
        console.print(f"files and logs kept in {root}")
