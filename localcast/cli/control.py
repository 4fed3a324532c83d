"""`localcast control ...`: run and administer the control plane.

``serve`` runs the HTTP API; ``migrate``, ``apply``, ``import-titles``,
``credential``, ``release`` and ``fill plan|status|links`` work on the
database directly (a running server picks the change up within ``[control]
refresh_interval_s``); ``reporter`` runs the appliance-side register +
heartbeat loop for a store directory.
Heavy imports happen inside the commands, so ``localcast --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    control_app.command("release")(release)
    from localcast.cli.control_traffic import traffic  # needs this module's helpers

    control_app.command("traffic")(traffic)
    from localcast.cli.control_users import register as register_users

    register_users(control_app)
    fill_app = typer.Typer(
        help="Proactive fill: plan the manifests, show progress and per-link bytes.",
        no_args_is_help=True,
    )
    fill_app.command("plan")(fill_plan)
    fill_app.command("status")(fill_status)
    fill_app.command("links")(fill_links)
    control_app.add_typer(fill_app, name="fill")
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
    traffic_dir: Annotated[
        Path | None,
        typer.Option(help="The data plane's traffic counts to post (default <run>/traffic)."),
    ] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics-dir",
            help="The data plane's metric snapshots, read for its load "
            "(default appliance.metrics_dir, else <run>/metrics).",
        ),
    ] = None,
) -> None:
    """Register APPLIANCE and heartbeat its store's inventory and its data plane's load
    (connections, egress, requests and 5xx answered) until interrupted."""
    from localcast.appliance.settings import CONTACT_FILE
    from localcast.control.credentials import CredentialStore
    from localcast.control.reporter import run_reporter
    from localcast.metrics import metrics_dir
    from localcast.metrics.load import NodeLoad

    st = state(ctx)
    settings = _settings(ctx)
    url = control_url or f"http://{settings.listen}:{settings.port}"
    secret = credential_value or CredentialStore(st.config.paths.home / "credentials").read(
        appliance
    )
    if secret is None:
        raise fail(f"no credential for {appliance}: pass --credential")
    store_dir = store or st.config.paths.store
    try:
        load = NodeLoad(metrics or metrics_dir(st.config))  # the same files as its /metrics
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_reporter(
                url,
                appliance,
                secret,
                store_dir,
                interval,
                load=load,
                traffic_dir=traffic_dir or st.config.paths.run / "traffic",
                contact_file=st.config.paths.run / CONTACT_FILE,  # read by the data plane
            )
        )


# --- proactive fill ------------------------------------------------------------------------------

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def parse_when(text: str) -> float:
    """Unix seconds, or an ISO 8601 date-time (UTC when it names no zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is neither unix seconds nor an ISO 8601 date-time "
            "(e.g. 2026-03-01T20:00:00+01:00)"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def release(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="Title id.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="Release time: unix seconds or ISO 8601 (UTC if no zone)."),
    ] = None,
    expected: Annotated[
        float | None,
        typer.Option(help="Expected sessions per day in each region.", min=0),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="A region it is released in (repeat; default: all)."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the scheduled release.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Schedule a title's release (placed ahead of it), or --clear it."""
    from localcast.control.errors import ControlError
    from localcast.core.forecast import Release

    if not clear and (at is None or expected is None):
        raise fail("give --at and --expected (or --clear)", 2)
    when = 0.0
    if at is not None:
        try:
            when = parse_when(at)
        except ValueError as exc:
            raise fail(f"--at: {exc}", 2) from exc
    plane = _plane(ctx, database_url)
    try:
        if clear:
            plane.clear_release(title)
            typer.echo(f"release of {title} cleared")
            return
        assert expected is not None
        regions = tuple(dict.fromkeys(region)) if region else None
        plane.set_release(Release(title, when, expected, regions))
    except ControlError as exc:
        raise fail(exc.reason) from exc
    finally:
        plane.close()
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).isoformat()
    where = ", ".join(regions) if regions else "every region"
    typer.echo(f"release of {title} at {stamp}: {expected:g} sessions/day in {where}")


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def fill_plan(
    ctx: typer.Context, as_json: AsJson = False, database_url: DatabaseUrl = None
) -> None:
    """Forecast demand, place titles and store each appliance's fill manifest now."""
    plane = _plane(ctx, database_url)
    try:
        out = plane.plan_fills()
    finally:
        plane.close()
    if as_json:
        _echo_json(
            {
                "day": out.day,
                "appliances": out.appliances,
                "changed": list(out.changed),
                "churn": out.churn,
                "left_out": {k: list(v) for k, v in out.left_out.items()},
                "seconds": out.seconds,
            }
        )
        return
    changed = ", ".join(out.changed) or "none"
    typer.echo(
        f"day {out.day}: {out.appliances} manifest(s), changed: {changed}; "
        f"churn {out.churn} title copies; {out.seconds:.3f} s"
    )
    for site_id, titles in sorted(out.left_out.items()):
        typer.echo(f"left out at {site_id} (no room): {', '.join(titles)}")


def fill_status(
    ctx: typer.Context, as_json: AsJson = False, database_url: DatabaseUrl = None
) -> None:
    """Fill progress per site and appliance: titles and bytes wanted vs held, state, alarm."""
    plane = _plane(ctx, database_url)
    try:
        view = plane.fills.progress(plane.clock())
    finally:
        plane.close()
    if as_json:
        _echo_json(view)
        return
    if not view["planned"]:
        typer.echo("no fill plan yet: run `localcast control fill plan`")
    for site in view["sites"]:
        w = site["window"]
        typer.echo(
            f"site {site['site_id']} ({site['kind']}, region {site['region']}): window "
            f"{w['spec']} {w['tz']} {'open' if w['open'] else 'closed'}; "
            f"{_size(site['bytes_held'])} of {_size(site['bytes_wanted'])}"
        )
        for a in site["appliances"]:
            state = a["state"] or "no report"
            line = (
                f"  {a['appliance_id']} v{a['version']}: {a['titles_held']}/{a['titles_wanted']} "
                f"titles, {_size(a['bytes_held'])} of {_size(a['bytes_wanted'])}, {state}"
            )
            if a["alarm"]:
                line += f" ALARM: {a['alarm']}"
            typer.echo(line)


def fill_links(
    ctx: typer.Context,
    as_json: AsJson = False,
    detail: Annotated[
        bool, typer.Option("--detail", help="With the crossings of each file.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Fill bytes per link (source site -> site) and how often each file crossed it."""
    plane = _plane(ctx, database_url)
    try:
        rows = plane.fills.links(detail or as_json)
    finally:
        plane.close()
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo("no fill transfers reported yet")
    for r in rows:
        typer.echo(
            f"{r['from_site']} -> {r['to_site']} ({r['from_kind']}): {r['files']} file(s), "
            f"{_size(r['bytes'])}, {r['transfers']} transfer(s), "
            f"at most {r['max_crossings']} per file"
        )
        if detail:
            for key, n in sorted(r["crossings"].items()):
                typer.echo(f"  {key}: {n}")
