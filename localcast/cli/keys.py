"""`localcast keys init` and `localcast sign`: the shared URL-signing keyring and tokens."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from localcast.cli.state import fail, state
from localcast.core.tokens import TokenError, signed_path
from localcast.keyfile import KeyfileError, create_keyring, load_keyring


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(help="Manage the URL-signing keyring.", no_args_is_help=True)
    keys_app.command("init")(keys_init)
    app.add_typer(keys_app, name="keys")
    app.command("sign")(sign)


def keys_init(ctx: typer.Context) -> None:
    """Create the keyring (one random key) if there is none yet; print its path."""
    path = state(ctx).config.paths.keys
    ring = create_keyring(path)
    typer.echo(f"{path} (current key {ring.current})")


def sign(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Path prefix to cover: /TITLE or /TITLE/FILE.")],
    ttl: Annotated[int, typer.Option(help="Seconds until the token expires.")] = 3600,
    client_net: Annotated[
        str | None, typer.Option(help="Bind to a client network, e.g. 10.0.0.0/8.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Print a full URL on this appliance base URL.")
    ] = None,
) -> None:
    """Print a signed path (or URL) for PREFIX, as the control plane would issue it."""
    try:
        ring = load_keyring(state(ctx).config.paths.keys)
        path = signed_path(ring, prefix, int(time.time()) + ttl, client_net)
    except (KeyfileError, TokenError) as exc:
        raise fail(str(exc)) from exc
    typer.echo((base_url.rstrip("/") if base_url else "") + path)
