"""`localcast control ...`: run and administer the control plane.

``serve`` runs the HTTP API; ``migrate``, ``apply``, ``import-titles`` and
``credential`` work on the database directly (a running server picks the
change up within ``[control] refresh_interval_s``); ``reporter`` runs the
appliance-side register + heartbeat loop for a store directory.
Heavy imports happen inside the commands, so ``localcast --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from localcast.cli.state import fail, state
from localcast.config import ConfigError

if TYPE_CHECKING:
    from localcast.control.service import ControlPlane
    from localcast.control.settings import ControlSettings

DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="SQLAlchemy URL (default [control] database_url, else SQLite)."),
]


def register(app: typer.Typer) -> None:
    control_app = typer.Typer(
        help="The control plane: fleet, catalog, steering.", no_args_is_help=True
    )
    control_app.command("serve")(serve)
    control_app.command("migrate")(migrate)
    control_app.command("apply")(apply)
    control_app.command("import-titles")(import_titles)
    control_app.command("credential")(credential)
    control_app.command("reporter")(reporter)
    app.add_typer(control_app, name="control")


def _settings(ctx: typer.Context, **overrides: object) -> ControlSettings:
    from localcast.control.settings import load_settings

    try:
        return load_settings(state(ctx).config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc


def _plane(ctx: typer.Context, database_url: str | None) -> ControlPlane:
    from localcast.control.service import ControlPlane
    from localcast.keyfile import KeyfileError

    settings = _settings(ctx, database_url=database_url)
    try:
        return ControlPlane.open(state(ctx).config, settings)
    except KeyfileError as exc:
        raise fail(str(exc)) from exc


def serve(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the control plane HTTP API (migrates the database first)."""
    from localcast.control.server import serve as run

    st = state(ctx)
    settings = _settings(ctx, listen=listen, port=port, database_url=database_url)
    st.config.paths.ensure()
    run(st.config, settings, st.log_level)


def migrate(ctx: typer.Context, database_url: DatabaseUrl = None) -> None:
    """Bring the database schema to the newest revision."""
    from localcast.control.db import make_engine
    from localcast.control.db import migrate as run
    from localcast.control.settings import database_url as url_of

    settings = _settings(ctx, database_url=database_url)
    engine = make_engine(url_of(settings, state(ctx).config.paths.database))
    run(engine)
    typer.echo(f"schema up to date: {engine.url.render_as_string(hide_password=True)}")
    engine.dispose()


def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Topology file (TOML).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the plan.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply a topology file: create, update and remove partners, sites and appliances."""
    from localcast.control.topology import TopologyError, load_topology

    try:
        spec = load_topology(file)
    except TopologyError as exc:
        raise fail(f"invalid topology:\n{exc}", 2) from exc
    plane = _plane(ctx, database_url)
    try:
        out = plane.apply_topology(spec, dry_run=dry_run)
    finally:
        plane.close()
    verb = "would change" if dry_run else "changed"
    if out.plan.empty:
        typer.echo("topology unchanged")
    for kind, changes in out.plan.summary().items():
        for what, names in changes.items():
            if names:
                typer.echo(f"{verb}: {kind} {what}: {', '.join(names)}")
    for aid, secret in sorted(out.credentials.items()):
        path = plane.credential_store.path(aid)
        typer.echo(f"credential {aid}: {secret}  (saved to {path})")


def import_titles(
    ctx: typer.Context,
    origin: Annotated[
        Path | None, typer.Option(help="Origin store directory (default paths.origin).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import every title manifest found in the origin store into the catalog."""
    origin_dir = origin or state(ctx).config.paths.origin
    if not origin_dir.is_dir():
        raise fail(f"{origin_dir}: no such directory")
    plane = _plane(ctx, database_url)
    try:
        report = plane.import_origin(origin_dir)
    finally:
        plane.close()
    for title_id in report.imported:
        typer.echo(f"imported {title_id}")
    for path, reason in report.failed.items():
        typer.echo(f"skipped {path}: {reason}", err=True)
    if not report.imported and not report.failed:
        typer.echo(f"no manifests under {origin_dir}")
    if report.failed:
        raise typer.Exit(1)


def credential(
    ctx: typer.Context,
    appliance: Annotated[str, typer.Argument(help="Appliance id.")],
    rotate: Annotated[bool, typer.Option("--rotate", help="Issue a new credential.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print an appliance's credential, or rotate it (the old one stops working)."""
    from localcast.control.errors import NotFound

    plane = _plane(ctx, database_url)
    try:
        if rotate:
            try:
                typer.echo(plane.rotate_credential(appliance))
            except NotFound as exc:
                raise fail(exc.reason) from exc
            return
        if appliance not in plane.snapshot.appliances:
            raise fail(f"unknown appliance {appliance!r}")
        secret = plane.credential_store.read(appliance)
        if secret is None:
            raise fail(f"no stored credential for {appliance}: use --rotate to issue one")
        typer.echo(secret)
    finally:
        plane.close()


def reporter(
    ctx: typer.Context,
    appliance: Annotated[str, typer.Option(help="Appliance id.")],
    control_url: Annotated[
        str | None, typer.Option(help="Control plane URL (default from [control]).")
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="Store directory (default paths.store).")
    ] = None,
    interval: Annotated[float, typer.Option(help="Heartbeat interval, seconds.")] = 5.0,
    credential_value: Annotated[
        str | None,
        typer.Option("--credential", help="Bearer secret (default: <home>/credentials/ID.secret)."),
    ] = None,
) -> None:
    """Register APPLIANCE and heartbeat its store's inventory until interrupted."""
    from localcast.control.credentials import CredentialStore
    from localcast.control.reporter import run_reporter

    st = state(ctx)
    settings = _settings(ctx)
    url = control_url or f"http://{settings.listen}:{settings.port}"
    secret = credential_value or CredentialStore(st.config.paths.home / "credentials").read(
        appliance
    )
    if secret is None:
        raise fail(f"no credential for {appliance}: pass --credential")
    store_dir = store or st.config.paths.store
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_reporter(url, appliance, secret, store_dir, interval))
