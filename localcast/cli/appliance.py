"""`localcast appliance serve`: the appliance's HTTP data plane (supervisor + workers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from localcast.appliance.settings import settings_from_config
from localcast.appliance.supervisor import Supervisor
from localcast.cli.state import fail, state
from localcast.config import ConfigError
from localcast.keyfile import KeyfileError, load_keyring


def register(app: typer.Typer) -> None:
    appliance_app = typer.Typer(help="Run a content appliance.", no_args_is_help=True)
    appliance_app.command("serve")(serve)
    app.add_typer(appliance_app, name="appliance")


def serve(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(help="Address to listen on (config appliance.listen, else 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="TCP port, 0 picks a free one (config appliance.port, else 8080)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default one per core).")
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="Content store directory (default paths.store).")
    ] = None,
    keys: Annotated[
        Path | None, typer.Option(help="URL-signing keyring file (default paths.keys).")
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="Browser origin allowed to read responses (repeat; '*' for any)."),
    ] = None,
    access_log: Annotated[
        str | None,
        typer.Option(
            help="Access log file, '-' for stderr, 'off' (default logs/appliance-access.log)."
        ),
    ] = None,
    access_log_sample: Annotated[int | None, typer.Option(help="Log one request in N.")] = None,
    header_timeout: Annotated[
        float | None, typer.Option(help="Seconds for a request head to arrive (then 408).")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Seconds an idle keep-alive connection is kept.")
    ] = None,
    send_timeout: Annotated[
        float | None, typer.Option(help="Seconds a blocked write may make no progress.")
    ] = None,
) -> None:
    """Serve the content store over HTTP/1.1 to holders of signed URLs."""
    st = state(ctx)
    try:
        settings = settings_from_config(st.config, log_json=st.log_json)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    settings = settings.with_overrides(
        listen=listen,
        port=port,
        workers=workers,
        store=store.resolve() if store else None,
        keys=keys.resolve() if keys else None,
        cors_origins=tuple(cors_origin) if cors_origin else None,
        access_log=access_log,
        access_log_sample=access_log_sample,
        header_timeout_s=header_timeout,
        idle_timeout_s=idle_timeout,
        send_timeout_s=send_timeout,
    )
    try:
        keyring = load_keyring(settings.keys)
    except KeyfileError as exc:
        raise fail(str(exc)) from exc
    try:
        settings.store.mkdir(parents=True, exist_ok=True)
        supervisor = Supervisor(settings, keyring)
    except OSError as exc:
        raise fail(f"cannot listen on {settings.listen}:{settings.port}: {exc}") from exc

    def announce(url: str) -> None:
        typer.echo(
            f"appliance listening on {url} ({settings.worker_count} workers, "
            f"store {settings.store})"
        )
        sys.stdout.flush()

    code = supervisor.run(announce)
    if code:
        raise typer.Exit(code)
