"""The `localcast` command: one Typer app assembled from one module per command group.

Global options (``--home``, ``--log-level``, ``--log-json``) are handled here and
handed to subcommands as a :class:`CliState` on the Typer context; each
subcommand module builds its service from that, so nothing reaches for globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from localcast.cli import appliance, bgp, control, demo, keys, media, player, sim
from localcast.cli.state import CliState
from localcast.config import ConfigError, load_config
from localcast.logs import setup_logging

app = typer.Typer(
    name="localcast",
    help="Localcast: an open video CDN (appliances, control plane, player, simulator).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="Node home directory (default $LOCALCAST_HOME or ~/.localcast)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines.")] = False,
) -> None:
    setup_logging(log_level, log_json)
    try:
        ctx.obj = CliState(config=load_config(home), log_json=log_json, log_level=log_level)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


media.register(app)
keys.register(app)
appliance.register(app)
player.register(app)
control.register(app)
demo.register(app)
bgp.register(app)
sim.register(app)


def main() -> None:
    app()
