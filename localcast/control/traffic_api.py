"""Traffic routes: appliance traffic reports in, per-partner daily figures out.

* ``POST /v1/appliances/{id}/traffic``  appliance credential;
  ``{report_id?, period_start, period_end, rows: [{net, kind, requests, bytes, errors_5xx}]}``
  (a report is counted once per ``report_id``, else per period) where
  ``net`` is a client network (``203.0.113.0/24``, ``2001:db8:a::/48``; no host bits, no
  longer than /24 or /48), ``kind`` ``viewer`` or ``fill`` -> ``{ok, rows, attributed,
  unattributed, day, duplicate, site_id, source_kind}``; 422 names a malformed field
* ``GET /v1/partners/{id}/traffic?days=N``  (N = 1..366, default 7) the partner's
  figures per UTC day, oldest first, ending today, and over the window: viewer bytes by
  source kind, offload ratio, fill bytes, decisions by outcome, misses by class, per
  site bytes, byte share and caching efficiency (each figure is defined in
  :mod:`localcast.core.traffic`); 404 for an unknown partner
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from localcast.control.credentials import bearer
from localcast.control.deps import PartnerReader, Plane
from localcast.control.schemas import Finite
from localcast.control.traffic import TrafficRow
from localcast.core.traffic import (
    V4_NET_BITS,
    V6_NET_BITS,
    Counts,
    Figures,
    PartnerTraffic,
    SiteFigures,
    day_date,
)

router = APIRouter()
Authorization = Annotated[str | None, Header()]
MAX_ROWS = 200_000
MAX_DAYS = 366


def _client_net(text: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a network with no host bits set: {exc}") from exc
    longest = V4_NET_BITS if net.version == 4 else V6_NET_BITS
    if net.prefixlen > longest:
        raise ValueError(f"/{net.prefixlen} is longer than /{longest}: report networks, not hosts")
    return str(net)


class TrafficRowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    net: Annotated[str, AfterValidator(_client_net)]
    kind: Literal["viewer", "fill"]
    requests: int = Field(ge=0)
    bytes: int = Field(ge=0)
    errors_5xx: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _errors_are_requests(self) -> TrafficRowIn:
        if self.errors_5xx > self.requests:
            raise ValueError(f"errors_5xx ({self.errors_5xx}) exceeds requests ({self.requests})")
        return self


class TrafficReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="Set by the sender: a report id is counted once"
    )
    period_start: Finite = Field(ge=0, description="First count, unix seconds (appliance clock)")
    period_end: Finite = Field(ge=0, description="Last count, unix seconds (appliance clock)")
    rows: list[TrafficRowIn] = Field(default=[], max_length=MAX_ROWS)

    @model_validator(mode="after")
    def _ordered(self) -> TrafficReportIn:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


class TrafficReportOut(BaseModel):
    ok: bool
    rows: int
    attributed: int
    unattributed: int
    day: str
    duplicate: bool
    site_id: str
    source_kind: str


class CountsOut(BaseModel):
    requests: int
    bytes: int
    errors_5xx: int


class SiteOut(BaseModel):
    site_id: str
    kind: str
    bytes: int
    requests: int
    errors_5xx: int
    byte_share: float | None
    served: int
    content_misses: int
    health_misses: int
    caching_efficiency: float | None


class FiguresOut(BaseModel):
    date: str | None = Field(description="UTC date; None for the window's total")
    viewer: CountsOut
    bytes_by_source: dict[str, int]
    requests_by_source: dict[str, int]
    offload_ratio: float | None
    fill: CountsOut
    fill_bytes_by_source: dict[str, int]
    decisions: int
    by_outcome: dict[str, int]
    misses: dict[str, int]
    sites: list[SiteOut]


class PartnerTrafficOut(BaseModel):
    partner: str
    days: int
    first_date: str
    last_date: str
    daily: list[FiguresOut]
    total: FiguresOut


def _counts(c: Counts) -> CountsOut:
    return CountsOut(requests=c.requests, bytes=c.bytes, errors_5xx=c.errors_5xx)


def _site(s: SiteFigures) -> SiteOut:
    return SiteOut(
        site_id=s.site_id,
        kind=s.kind,
        bytes=s.bytes,
        requests=s.requests,
        errors_5xx=s.errors_5xx,
        byte_share=s.byte_share,
        served=s.served,
        content_misses=s.content_misses,
        health_misses=s.health_misses,
        caching_efficiency=s.caching_efficiency,
    )


def figures_out(f: Figures) -> FiguresOut:
    return FiguresOut(
        date=None if f.day is None else day_date(f.day),
        viewer=_counts(f.viewer),
        bytes_by_source=dict(f.bytes_by_source),
        requests_by_source=dict(f.requests_by_source),
        offload_ratio=f.offload_ratio,
        fill=_counts(f.fill),
        fill_bytes_by_source=dict(f.fill_bytes_by_source),
        decisions=f.decisions,
        by_outcome=dict(f.by_outcome),
        misses=f.misses,
        sites=[_site(s) for s in f.sites.values()],
    )


def partner_traffic_out(t: PartnerTraffic) -> PartnerTrafficOut:
    return PartnerTrafficOut(
        partner=t.partner,
        days=t.last_day - t.first_day + 1,
        first_date=day_date(t.first_day),
        last_date=day_date(t.last_day),
        daily=[figures_out(f) for f in t.days],
        total=figures_out(t.total),
    )


@router.post("/v1/appliances/{appliance_id}/traffic", response_model=TrafficReportOut)
def post_traffic(
    appliance_id: str,
    body: TrafficReportIn,
    plane: Plane,
    authorization: Authorization = None,
) -> TrafficReportOut:
    plane.authenticate(appliance_id, bearer(authorization))
    rows = [TrafficRow(r.net, r.kind, r.requests, r.bytes, r.errors_5xx) for r in body.rows]
    out = plane.traffic.ingest(
        appliance_id, body.period_start, body.period_end, rows, plane.clock(), body.report_id
    )
    return TrafficReportOut(
        ok=True,
        rows=out.rows,
        attributed=out.attributed,
        unattributed=out.rows - out.attributed,
        day=day_date(out.day),
        duplicate=out.duplicate,
        site_id=out.site_id,
        source_kind=out.source_kind,
    )


@router.get(
    "/v1/partners/{partner_id}/traffic",
    response_model=PartnerTrafficOut,
    dependencies=[PartnerReader],
)
def get_partner_traffic(
    partner_id: str,
    plane: Plane,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="UTC days ending today")] = 7,
) -> PartnerTrafficOut:
    return partner_traffic_out(plane.traffic.partner_traffic(partner_id, days, plane.clock()))
