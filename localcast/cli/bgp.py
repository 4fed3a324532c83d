"""`localcast bgp run|check`: the appliance's BGP speaker on its own.

``run`` starts the speaker from ``[appliance.bgp]`` (see
:mod:`localcast.bgp.config`), prints session changes as they happen and a
status table every ``--status-every`` seconds, and, with ``--control-url``
and ``--appliance``, relays the routes to the control plane; every second it
publishes its metrics for the node's ``/metrics`` (``localcast.metrics.bgp``). SIGINT/SIGTERM
stop it cleanly (a Cease to every peer). ``check`` validates the section and
the RPKI files and prints the neighbors. Inside an appliance node the same
:class:`~localcast.bgp.speaker.Speaker` runs as a task next to the data plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from localcast.bgp.config import BgpConfig, bgp_config, import_policy
from localcast.bgp.events import EndOfRib, MaxPrefixAlarm, NeighborStatus, SessionChanged
from localcast.bgp.speaker import Speaker
from localcast.cli.state import fail, state
from localcast.config import ConfigError
from localcast.metrics import MetricsWriter, metrics_dir, publish_loop
from localcast.metrics.bgp import COMPONENT, publish_speaker

if TYPE_CHECKING:
    from localcast.bgp.relay import Relay


def register(app: typer.Typer) -> None:
    bgp_app = typer.Typer(help="The appliance's BGP speaker.", no_args_is_help=True)
    bgp_app.command("run")(run)
    bgp_app.command("check")(check)
    app.add_typer(bgp_app, name="bgp")


def _load(ctx: typer.Context, port: int | None = None) -> BgpConfig:
    st = state(ctx)
    try:
        cfg = bgp_config(st.config)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    if cfg is None:
        raise fail(f"no [appliance.bgp] section in {st.config.paths.home / 'config.toml'}", 2)
    return cfg if port is None else cfg.model_copy(update={"port": port})


def status_table(rows: list[NeighborStatus]) -> Table:
    table = Table("neighbor", "AS", "state", "up", "received", "accepted", "filtered", "last error")
    for s in rows:
        filtered = ", ".join(f"{r} {n}" for r, n in sorted(s.filtered.items())) or "-"
        if s.max_prefix_alarm:
            filtered += " (MAX-PREFIX ALARM)"
        table.add_row(
            s.address,
            str(s.remote_as),
            str(s.state),
            f"{s.uptime_s:.0f} s" if s.uptime_s is not None else "-",
            str(s.received),
            str(s.accepted),
            filtered,
            s.last_error or "",
        )
    return table


def check(ctx: typer.Context) -> None:
    """Validate the appliance.bgp section (and RPKI files); list the neighbors."""
    cfg = _load(ctx)
    console = Console()
    table = Table("neighbor", "AS", "mode", "hold", "families", "policy")
    for n in cfg.neighbors:
        try:
            policy = import_policy(cfg, n)
        except ConfigError as exc:
            raise fail(str(exc), 2) from exc
        parts = [f"<= /{n.max_length_v4} v4, /{n.max_length_v6} v6"]
        if n.allowed_origins is not None:
            parts.append("origins " + ",".join(str(a) for a in n.allowed_origins))
        if n.max_prefixes:
            parts.append(f"max {n.max_prefixes}")
        if policy.rpki is not None:
            parts.append(f"RPKI {len(policy.rpki)} VRPs")
        if n.allow_loopback:
            parts.append("loopback allowed")
        table.add_row(
            n.address,
            str(n.remote_as),
            "passive" if n.passive else f"active -> port {n.port}",
            str(cfg.hold_time_of(n)),
            ",".join(n.families),
            "; ".join(parts),
        )
    console.print(f"AS{cfg.local_as} router id {cfg.router_id}, listening on port {cfg.port}")
    console.print(table)


def run(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Listen port (default from config).")] = None,
    status_every: Annotated[
        float, typer.Option(help="Print the neighbor table every N seconds (0: never).")
    ] = 30.0,
    control_url: Annotated[
        str | None, typer.Option(help="Relay routes to this control plane.")
    ] = None,
    appliance: Annotated[str | None, typer.Option(help="Appliance id, for the relay.")] = None,
    credential_value: Annotated[
        str | None,
        typer.Option("--credential", help="Bearer secret (default: <home>/credentials/ID.secret)."),
    ] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics-dir", help="Metrics snapshot directory (default appliance.metrics_dir)."
        ),
    ] = None,
) -> None:
    """Run the BGP speaker until interrupted; print session changes and status."""
    cfg = _load(ctx, port)
    try:
        writer = MetricsWriter(COMPONENT, metrics or metrics_dir(state(ctx).config))
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    secret = None
    if control_url:
        if not appliance:
            raise fail("--control-url needs --appliance", 2)
        from localcast.control.credentials import CredentialStore

        home = state(ctx).config.paths.home
        secret = credential_value or CredentialStore(home / "credentials").read(appliance)
        if secret is None:
            raise fail(f"no credential for {appliance}: pass --credential", 2)
    console = Console()

    def on_event(event: object) -> None:
        if isinstance(event, SessionChanged):
            console.print(f"{event.neighbor}: {event.old} -> {event.new} ({event.reason})")
        elif isinstance(event, EndOfRib):
            console.print(f"{event.neighbor}: end of RIB ({event.afi.name.lower()})")
        elif isinstance(event, MaxPrefixAlarm):
            console.print(f"[bold red]{event.neighbor}: over {event.limit} prefixes[/]")

    async def main() -> None:
        try:
            speaker = Speaker(cfg, on_event=on_event)
        except ConfigError as exc:
            raise fail(str(exc), 2) from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks: list[asyncio.Task[None]] = []
        relays: list[Relay] = []

        def metrics_update(w: MetricsWriter) -> None:
            relay = (relays[0].posts, relays[0].trouble is None) if relays else None
            publish_speaker(w, speaker.status(), sum(speaker.refused.values()), relay)

        async with contextlib.AsyncExitStack() as stack:
            await speaker.start()
            stack.push_async_callback(speaker.stop)
            tasks.append(asyncio.create_task(publish_loop(writer, metrics_update)))
            if control_url and appliance and secret:
                import httpx

                from localcast.bgp.relay import Relay

                client = httpx.AsyncClient(timeout=30)
                stack.push_async_callback(client.aclose)
                relay = Relay(speaker, client, control_url, appliance, secret)
                relays.append(relay)
                tasks.append(asyncio.create_task(relay.run()))
            if status_every > 0:
                tasks.append(asyncio.create_task(_print_status(speaker, console, status_every)))
            await stop.wait()
            for t in tasks:
                t.cancel()
        console.print(status_table(speaker.status()))

    try:
        asyncio.run(main())
    except OSError as exc:
        raise fail(f"cannot listen: {exc}") from exc


async def _print_status(speaker: Speaker, console: Console, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        console.print(status_table(speaker.status()))
