"""`localcast control user add|invite|list`: portal accounts, from the database.

The first operator is made here (``user add``); after that operators invite
partners' users from the portal's Users page or with ``user invite``, which
prints a one-time link. A password comes from ``--password-file`` (``-``:
standard input) or an interactive prompt, never from the command line, where
other users of the machine could read it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from localcast.cli.control import DatabaseUrl, _plane
from localcast.cli.state import fail

Role = Annotated[str, typer.Option(help="operator | partner")]
PartnerOpt = Annotated[
    str | None, typer.Option(help="The partner (as in the topology) of a partner's user.")
]


def _password(password_file: Path | None) -> str:
    if password_file is None:
        value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text()
    return text.rstrip("\r\n")


def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The user's email (their login).")],
    role: Role = "operator",
    partner: PartnerOpt = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file ('-': stdin).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a portal user with a password (the first operator starts here)."""
    from localcast.portal.accounts import AccountError, AccountStore

    password = _password(password_file)
    plane = _plane(ctx, database_url)
    try:
        user = AccountStore(plane.sessions).add_user(
            email, password, role, plane.clock(), partner, name
        )
    except AccountError as exc:
        raise fail(f"{exc.field + ': ' if exc.field else ''}{exc.reason}", 2) from exc
    finally:
        plane.close()
    typer.echo(f"added {user.role} {user.email}" + (f" of {user.partner}" if user.partner else ""))


def invite(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="Who is invited.")],
    role: Role = "partner",
    partner: PartnerOpt = None,
    base_url: Annotated[
        str, typer.Option(help="How the invitee reaches the portal.")
    ] = "http://127.0.0.1:8000",
    database_url: DatabaseUrl = None,
) -> None:
    """Make a one-time invitation link (valid 7 days) for a new user."""
    from localcast.portal.accounts import AccountError, AccountStore

    plane = _plane(ctx, database_url)
    try:
        inv = AccountStore(plane.sessions).invite(email, role, partner, None, plane.clock())
    except AccountError as exc:
        raise fail(f"{exc.field + ': ' if exc.field else ''}{exc.reason}", 2) from exc
    finally:
        plane.close()
    typer.echo(f"{base_url.rstrip('/')}/portal/invite/{inv.token}")


def list_users(ctx: typer.Context, database_url: DatabaseUrl = None) -> None:
    """Every portal user: email, role, partner, state."""
    from localcast.portal.accounts import AccountStore

    plane = _plane(ctx, database_url)
    try:
        users = AccountStore(plane.sessions).users()
    finally:
        plane.close()
    for u in users:
        state = "disabled" if u.disabled else "active"
        typer.echo(f"{u.email}\t{u.role}\t{u.partner or '-'}\t{state}")


def register(control_app: typer.Typer) -> None:
    user_app = typer.Typer(
        help="Portal accounts: operators and partners' users.", no_args_is_help=True
    )
    user_app.command("add")(add)
    user_app.command("invite")(invite)
    user_app.command("list")(list_users)
    control_app.add_typer(user_app, name="user")
