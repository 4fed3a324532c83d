"""`localcast control traffic PARTNER`: a partner's traffic per UTC day, from the database.

The figures are those of ``GET /v1/partners/{id}/traffic`` (defined in
:mod:`localcast.core.traffic`); a running control plane writes its counts
to the database every ``refresh_interval_s``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from localcast.cli.control import AsJson, DatabaseUrl, _echo_json, _plane, _size
from localcast.cli.state import fail


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def traffic(
    ctx: typer.Context,
    partner: Annotated[str, typer.Argument(help="Partner (ISP) name, as in the topology.")],
    days: Annotated[int, typer.Option(help="UTC days ending today.", min=1, max=366)] = 7,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Bytes by source kind, offload ratio, misses and per-site caching efficiency per day."""
    from localcast.control.errors import NotFound
    from localcast.control.traffic_api import partner_traffic_out

    plane = _plane(ctx, database_url)
    try:
        out = partner_traffic_out(plane.traffic.partner_traffic(partner, days, plane.clock()))
    except NotFound as exc:
        raise fail(exc.reason) from exc
    finally:
        plane.close()
    if as_json:
        _echo_json(out.model_dump())
        return
    typer.echo(f"partner {out.partner}: {out.first_date} .. {out.last_date} ({out.days} day(s))")
    typer.echo(
        f"{'date':<10}  {'viewer':>9}  {'embedded':>9}  {'pni':>9}  {'ix':>9}  {'origin':>9}  "
        f"{'offload':>7}  {'5xx':>5}  {'plays':>6}  {'c-miss':>6}  {'h-miss':>6}  {'fill':>9}"
    )
    for f in [*out.daily, out.total]:
        by = f.bytes_by_source
        typer.echo(
            f"{f.date or 'total':<10}  {_size(f.viewer.bytes):>9}  "
            + "  ".join(f"{_size(by.get(k, 0)):>9}" for k in ("embedded", "pni", "ix", "origin"))
            + f"  {_pct(f.offload_ratio):>7}  {f.viewer.errors_5xx:>5}  {f.decisions:>6}  "
            f"{f.misses['content_miss']:>6}  {f.misses['health_miss']:>6}  {_size(f.fill.bytes):>9}"
        )
    sites: list[Any] = out.total.sites
    if sites:
        typer.echo("sites over the window:")
    for s in sites:
        typer.echo(
            f"  {s.site_id} ({s.kind or '?'}): {_size(s.bytes)} ({_pct(s.byte_share)} of the "
            f"bytes), {s.requests} request(s), {s.errors_5xx} 5xx; served {s.served} "
            f"session(s), passed over {s.content_misses} (content) {s.health_misses} (health); "
            f"caching efficiency {_pct(s.caching_efficiency)}"
        )
