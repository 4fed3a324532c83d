"""What the global options hand to every subcommand."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from localcast.config import Config


@dataclass(frozen=True)
class CliState:
    config: Config
    log_json: bool
    log_level: str


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
