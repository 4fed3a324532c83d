"""`localcast appliance serve|fill`: the appliance's HTTP data plane (supervisor + workers)
and its fill agent (fetches the fill manifest, downloads, verifies, reports);
`localcast appliance drain|disable|enable ID`: maintenance, through the control plane's API
(``POST`` / ``DELETE /v1/appliances/{id}/maintenance`` with the admin token)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from localcast.appliance.settings import settings_from_config
from localcast.appliance.supervisor import Supervisor
from localcast.cli.state import fail, state
from localcast.config import ConfigError
from localcast.keyfile import KeyfileError, load_keyring


def register(app: typer.Typer) -> None:
    appliance_app = typer.Typer(help="Run a content appliance.", no_args_is_help=True)
    appliance_app.command("serve")(serve)
    appliance_app.command("fill")(fill)
    appliance_app.command("drain")(drain)
    appliance_app.command("disable")(disable)
    appliance_app.command("enable")(enable)
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


CREDENTIAL_ENV = "LOCALCAST_CREDENTIAL"


def fill(
    ctx: typer.Context,
    appliance: Annotated[str, typer.Option(help="Appliance id.")],
    control_url: Annotated[
        str | None,
        typer.Option(help="Control plane URL (default: the control config's listen and port)."),
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="Store directory (default paths.store).")
    ] = None,
    credential_file: Annotated[
        Path | None,
        typer.Option(
            help=f"File holding the bearer secret (else ${CREDENTIAL_ENV}, "
            "else <home>/credentials/ID.secret)."
        ),
    ] = None,
    refresh: Annotated[float, typer.Option(help="Manifest refresh, seconds.")] = 60.0,
    retry: Annotated[
        float, typer.Option(help="Seconds before asking again after a failed manifest.")
    ] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Files downloaded at once.")] = 4,
    reserve_mb: Annotated[
        float, typer.Option(min=0, help="Free space (MB) the fill leaves on the filesystem.")
    ] = 256.0,
    timeout: Annotated[float, typer.Option(help="HTTP timeout per read, seconds.")] = 30.0,
    backoff_max: Annotated[
        float, typer.Option(min=0.1, help="Longest rest of a failed source (per file), seconds.")
    ] = 60.0,
    keep_unlisted: Annotated[
        bool,
        typer.Option("--keep-unlisted", help="Never delete titles the manifest does not list."),
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="One pass, print its outcome, exit (1 on alarm).")
    ] = False,
) -> None:
    """Fill the store from the control plane's fill manifest until interrupted."""
    from localcast.appliance.fill import AgentSettings, FillState, run_fill_agent
    from localcast.control.credentials import CredentialStore
    from localcast.control.settings import load_settings

    st = state(ctx)
    url = control_url
    if url is None:
        try:
            settings = load_settings(st.config)
        except ConfigError as exc:
            raise fail(str(exc), 2) from exc
        url = f"http://{settings.listen}:{settings.port}"
    if credential_file is not None:
        try:
            secret: str | None = credential_file.read_text().strip() or None
        except OSError as exc:
            raise fail(f"cannot read {credential_file}: {exc}") from exc
    else:
        secret = os.environ.get(CREDENTIAL_ENV) or CredentialStore(
            st.config.paths.home / "credentials"
        ).read(appliance)
    if secret is None:
        raise fail(f"no credential for {appliance}: pass --credential-file or set {CREDENTIAL_ENV}")
    agent_settings = AgentSettings(
        refresh_s=refresh,
        retry_s=retry,
        concurrency=concurrency,
        reserve_bytes=int(reserve_mb * 1e6),
        backoff_max_s=backoff_max,
        delete_unlisted=not keep_unlisted,
    )
    if st.log_level.lower() != "debug":  # a line per file fetched is for debugging
        logging.getLogger("httpx").setLevel(logging.WARNING)
    store_dir = (store or st.config.paths.store).resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    run = run_fill_agent(url, appliance, secret, store_dir, agent_settings, timeout, once)
    result = None
    with contextlib.suppress(KeyboardInterrupt):
        result = asyncio.run(run)
    if once:
        if result is None:
            raise fail("no usable fill manifest (see the log)")
        typer.echo(
            f"fill {result.state}: {result.files} files stored ({result.bytes} bytes), "
            f"{result.missing} missing"
            + (f", deleted {', '.join(result.deleted)}" if result.deleted else "")
            + (f"; alarm: {result.alarm}" if result.alarm else "")
        )
        if result.state is FillState.ALARM:
            raise typer.Exit(1)


# --- maintenance: drain, disable, enable (an HTTP client of the control plane) ------------------

ADMIN_TOKEN_ENV = "LOCALCAST_ADMIN_TOKEN"

ControlUrl = Annotated[
    str | None,
    typer.Option(help="Control plane URL (default: the control config's listen and port)."),
]
AdminToken = Annotated[
    str | None,
    typer.Option(
        help=f"Admin bearer token (default ${ADMIN_TOKEN_ENV}, else the control config's "
        "admin_token)."
    ),
]
Duration = Annotated[
    str,
    typer.Option("--for", help="How long: 3h to 30d, e.g. 6h, 2d, 1d12h; it then ends by itself."),
]
Reason = Annotated[str, typer.Option(help="Why, for the fleet view and the logs.")]
ApplianceId = Annotated[str, typer.Argument(help="Appliance id.")]


def _control(
    ctx: typer.Context, control_url: str | None, admin_token: str | None
) -> tuple[str, dict[str, str]]:
    from localcast.control.settings import load_settings

    st = state(ctx)
    token = admin_token or os.environ.get(ADMIN_TOKEN_ENV)
    if control_url is None or token is None:
        try:
            settings = load_settings(st.config)
        except ConfigError as exc:
            raise fail(str(exc), 2) from exc
        control_url = control_url or f"http://{settings.listen}:{settings.port}"
        token = token or settings.admin_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return control_url.rstrip("/"), headers


def _maintenance(
    ctx: typer.Context,
    appliance_id: str,
    control_url: str | None,
    admin_token: str | None,
    body: dict[str, str] | None,
) -> dict[str, Any]:
    import httpx

    url, headers = _control(ctx, control_url, admin_token)
    target = f"{url}/v1/appliances/{appliance_id}/maintenance"
    try:
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            if body is None:
                resp = http.delete(target, headers=headers)
            else:
                resp = http.post(target, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise fail(f"control plane at {url} unreachable: {exc}") from exc
    try:
        data = resp.json()
    except ValueError:
        data = {"detail": resp.text[:300]}
    if resp.status_code != 200:
        detail = data.get("detail", data) if isinstance(data, dict) else data
        raise fail(f"HTTP {resp.status_code}: {detail}", 2 if resp.status_code == 422 else 1)
    assert isinstance(data, dict)
    return data


def _show(data: dict[str, Any]) -> None:
    m = data.get("maintenance")
    steering = data["steering"]
    if m is not None:
        typer.echo(f"{data['appliance_id']}: {m['description']}")
    taking = "takes new sessions" if steering["new_sessions"] else "takes no new sessions"
    kept = "in-flight sessions kept" if steering["keep_in_flight"] else "in-flight sessions moved"
    typer.echo(f"{data['appliance_id']}: {taking}, {kept} ({steering['reason']})")


def _begin(
    mode: str,
    ctx: typer.Context,
    appliance_id: str,
    duration: str,
    reason: str,
    control_url: str | None,
    admin_token: str | None,
) -> None:
    body = {"mode": mode, "duration": duration, "reason": reason}
    _show(_maintenance(ctx, appliance_id, control_url, admin_token, body))


def drain(
    ctx: typer.Context,
    appliance_id: ApplianceId,
    duration: Duration = "6h",
    reason: Reason = "",
    control_url: ControlUrl = None,
    admin_token: AdminToken = None,
) -> None:
    """Drain an appliance: no new sessions; sessions on it finish there."""
    _begin("drain", ctx, appliance_id, duration, reason, control_url, admin_token)


def disable(
    ctx: typer.Context,
    appliance_id: ApplianceId,
    duration: Duration = "6h",
    reason: Reason = "",
    control_url: ControlUrl = None,
    admin_token: AdminToken = None,
) -> None:
    """Disable an appliance: out of steering entirely (players on it move now)."""
    _begin("disable", ctx, appliance_id, duration, reason, control_url, admin_token)


def enable(
    ctx: typer.Context,
    appliance_id: ApplianceId,
    control_url: ControlUrl = None,
    admin_token: AdminToken = None,
) -> None:
    """End an appliance's drain or disable now."""
    data = _maintenance(ctx, appliance_id, control_url, admin_token, None)
    if data.get("maintenance") is None:
        typer.echo(f"{appliance_id}: was neither drained nor disabled")
    _show(data)
