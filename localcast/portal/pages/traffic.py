"""The traffic page (``GET /portal/traffic?days=&partner=``) and its charts' CSV.

Charts of a partner's figures per UTC day (the control plane counts per day:
``traffic_daily`` and ``steering_daily``; there is no finer time here), each
defined in :mod:`localcast.core.traffic`:

* ``sources``: viewer bytes served to the partner's clients by the kind of the
  serving site: embedded (its own appliances), private peering (PNI), IX,
  transit (the origin);
* ``offload``: the offload ratio, embedded bytes / all viewer bytes;
* ``caching``: caching efficiency per site, ``served / (served + content
  misses)``: of the playback sessions a site was first in line for (and not
  saturated), the share it could serve from its disks;
* ``fill``: bytes the partner's embedded appliances served to viewers against
  the bytes fetched into appliances in its network (fill);
* ``misses``: playback sessions sent past a better-ranked site, by class
  (content miss: it lacked the title; health miss: it was saturated), with all
  sessions for scale.

Every chart's data is one table (:class:`Chart`: columns and rows): embedded in
the page as JSON for ``static/traffic.js`` to draw, shown as a table for
screen readers, and served as CSV (``GET /portal/traffic.csv?chart=<name>``),
so the three always agree. A partner's user sees its own partner only: any
other ``?partner=`` answers 404, for the page and the CSV alike.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from localcast.control.deps import Plane
from localcast.control.errors import NotFound
from localcast.core.traffic import PartnerTraffic, day_date
from localcast.portal import scope
from localcast.portal.auth import CurrentViewer
from localcast.portal.render import page, url

router = APIRouter()

DEFAULT_DAYS = 14
MAX_DAYS = 366
DAY_CHOICES = (7, 14, 30, 90)
SOURCES = (
    ("embedded", "Embedded (your appliances)"),
    ("pni", "Private peering"),
    ("ix", "Internet exchange"),
    ("origin", "Transit (origin)"),
)
KINDS = {
    "embedded": "Embedded",
    "pni": "Private peering",
    "ix": "Internet exchange",
    "origin": "Origin (transit)",
}
MISSES = (("content_miss", "Content miss"), ("health_miss", "Health miss"))
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="UTC days ending today")]

Cell = int | float | str | None


@dataclass(frozen=True)
class Series:
    key: str  # the column drawn
    label: str


@dataclass(frozen=True)
class Chart:
    """One chart: its table (the CSV), and how traffic.js draws it."""

    name: str
    title: str
    meaning: str  # what the chart shows, in a sentence or two (shown under its heading)
    kind: str  # bar | line
    unit: str  # bytes | ratio | count
    stacked: bool
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    series: tuple[Series, ...]
    group: str | None = None  # long format: one line per value of this column (caching)

    def aria(self, first: str, last: str) -> str:
        return f"{self.title}, per UTC day from {first} to {last}. The data table follows."

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "unit": self.unit,
            "stacked": self.stacked,
            "x": "date",
            "group": self.group,
            "series": [{"key": s.key, "label": s.label} for s in self.series],
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
        }

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow(["" if v is None else v for v in r])
        return out.getvalue()


def _sources(t: PartnerTraffic) -> Chart:
    rows: tuple[tuple[Cell, ...], ...] = tuple(
        (day_date(f.day or 0), *(f.bytes_by_source.get(k, 0) for k, _ in SOURCES)) for f in t.days
    )
    return Chart(
        "sources",
        "Traffic by source",
        "Bytes served to your viewers each day, by where they came from: your embedded "
        "appliances, our private peering with you, an internet exchange, or transit from "
        "the origin. Fill traffic (appliances filling their disks) is not in it.",
        "bar",
        "bytes",
        True,
        ("date", *(f"{k}_bytes" for k, _ in SOURCES)),
        rows,
        tuple(Series(f"{k}_bytes", label) for k, label in SOURCES),
    )


def _offload(t: PartnerTraffic) -> Chart:
    rows = tuple((day_date(f.day or 0), f.offload_ratio) for f in t.days)
    return Chart(
        "offload",
        "Offload ratio",
        "The share of your viewers' bytes served by your embedded appliances, each day "
        "(embedded bytes / all bytes by source). No point on a day with no traffic.",
        "line",
        "ratio",
        False,
        ("date", "offload_ratio"),
        rows,
        (Series("offload_ratio", "Offload ratio"),),
    )


def _caching(t: PartnerTraffic) -> Chart:
    shown = [
        sid for sid, s in t.total.sites.items() if s.served + s.content_misses > 0
    ]  # sites that were first in line for some session
    rows: list[tuple[Cell, ...]] = []
    for f in t.days:
        for sid in shown:
            s = f.sites.get(sid)
            kind = t.total.sites[sid].kind
            if s is None:
                rows.append((day_date(f.day or 0), sid, kind, 0, 0, None))
            else:
                rows.append(
                    (
                        day_date(f.day or 0),
                        sid,
                        kind,
                        s.served,
                        s.content_misses,
                        s.caching_efficiency,
                    )
                )
    return Chart(
        "caching",
        "Caching efficiency by site",
        "Of the playback sessions a site was first in line for, the share it served from "
        "its disks (served / (served + content misses)). A content miss is a session sent "
        "on because the site lacked the title; a saturated site is a health miss, not here.",
        "line",
        "ratio",
        False,
        ("date", "site", "kind", "served", "content_misses", "caching_efficiency"),
        tuple(rows),
        (Series("caching_efficiency", "Caching efficiency"),),
        group="site",
    )


def _fill(t: PartnerTraffic) -> Chart:
    rows = tuple(
        (day_date(f.day or 0), f.bytes_by_source.get("embedded", 0), f.fill.bytes) for f in t.days
    )
    return Chart(
        "fill",
        "Served from appliances and fetched into them",
        "Bytes your embedded appliances served to viewers each day, and the bytes fetched "
        "into appliances in your network to fill their disks (fill): a cache serving many "
        "times what it fetches is working well.",
        "bar",
        "bytes",
        False,
        ("date", "served_from_embedded_bytes", "fill_fetched_bytes"),
        rows,
        (
            Series("served_from_embedded_bytes", "Served to viewers from your appliances"),
            Series("fill_fetched_bytes", "Fetched into appliances (fill)"),
        ),
    )


def _misses(t: PartnerTraffic) -> Chart:
    rows: tuple[tuple[Cell, ...], ...] = tuple(
        (day_date(f.day or 0), *(f.misses.get(k, 0) for k, _ in MISSES), f.decisions)
        for f in t.days
    )
    return Chart(
        "misses",
        "Misses by class",
        "Playback sessions of your viewers sent past a better-ranked site, each day: a "
        "content miss (that site lacked the title) or a health miss (it was saturated), "
        "with all playback sessions for scale.",
        "bar",
        "count",
        True,
        ("date", "content_miss", "health_miss", "sessions"),
        rows,
        (
            *(Series(k, label) for k, label in MISSES),
            Series("sessions", "All playback sessions"),
        ),
    )


CHARTS: dict[str, Callable[[PartnerTraffic], Chart]] = {
    "sources": _sources,
    "offload": _offload,
    "caching": _caching,
    "fill": _fill,
    "misses": _misses,
}


def charts(t: PartnerTraffic) -> list[Chart]:
    return [make(t) for make in CHARTS.values()]


# --- formatting ---------------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def pct(v: float | None) -> str:
    return "no data" if v is None else f"{v * 100:.1f}%"


def cell_text(chart: Chart, column: str, v: Cell) -> str:
    if v is None:
        return "no data"
    if isinstance(v, str):
        return v
    if column.endswith("_bytes"):
        return human_bytes(v)
    if chart.unit == "ratio" and isinstance(v, float):
        return pct(v)
    return f"{v:,}"


def heading(chart: Chart, column: str) -> str:
    labels = {s.key: s.label for s in chart.series}
    return labels.get(column, column.replace("_", " ").capitalize())


def json_script(data: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breaks out)."""
    text = json.dumps(data, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _table(chart: Chart) -> dict[str, Any]:
    return {
        "headings": [heading(chart, c) for c in chart.columns],
        "numeric": [c not in ("date", "site", "kind") for c in chart.columns],
        "rows": [
            [cell_text(chart, c, v) for c, v in zip(chart.columns, r, strict=True)]
            for r in chart.rows
        ],
    }


def _site_rows(t: PartnerTraffic) -> list[dict[str, str]]:
    return [
        {
            "site": s.site_id,
            "kind": KINDS.get(s.kind, s.kind or "unknown"),
            "bytes": human_bytes(s.bytes),
            "share": pct(s.byte_share),
            "served": f"{s.served:,}",
            "content_misses": f"{s.content_misses:,}",
            "health_misses": f"{s.health_misses:,}",
            "efficiency": pct(s.caching_efficiency),
        }
        for s in t.total.sites.values()
    ]


# --- routes -------------------------------------------------------------------------------------


@router.get("/portal/traffic", response_class=HTMLResponse)
def traffic_page(
    request: Request,
    viewer: CurrentViewer,
    plane: Plane,
    partner: str | None = None,
    days: Days = DEFAULT_DAYS,
) -> HTMLResponse:
    pid = scope.partner_for(viewer, plane, partner)
    t = plane.traffic.partner_traffic(pid, days, plane.clock())
    first, last = day_date(t.first_day), day_date(t.last_day)
    p = pid if viewer.is_operator else None
    shown = [
        {
            "chart": c,
            "spec": json_script(c.spec()),
            "aria": c.aria(first, last),
            "table": _table(c),
            "csv": url("/portal/traffic.csv", chart=c.name, days=days, partner=p),
        }
        for c in charts(t)
    ]
    total = t.total
    return page(
        request,
        viewer,
        "traffic.html",
        f"{pid}: traffic" if viewer.is_operator else "Traffic",
        partner=pid,
        partner_id=pid,
        operator_partner=p,
        days=days,
        day_choices=sorted({*DAY_CHOICES, days}),
        first=first,
        last=last,
        charts=shown,
        sites=_site_rows(t),
        summary={
            "viewer_bytes": human_bytes(total.viewer.bytes),
            "offload": pct(total.offload_ratio),
            "sessions": f"{total.decisions:,}",
            "content_misses": f"{total.misses.get('content_miss', 0):,}",
            "health_misses": f"{total.misses.get('health_miss', 0):,}",
            "fill_bytes": human_bytes(total.fill.bytes),
        },
        empty=total.viewer.bytes == 0 and total.decisions == 0 and total.fill.bytes == 0,
    )


@router.get("/portal/traffic.csv")
def traffic_csv(
    viewer: CurrentViewer,
    plane: Plane,
    chart: str,
    partner: str | None = None,
    days: Days = DEFAULT_DAYS,
) -> Response:
    pid = scope.partner_for(viewer, plane, partner)
    make = CHARTS.get(chart)
    if make is None:
        raise NotFound(f"no chart {chart!r} (charts: {', '.join(CHARTS)})")
    t = plane.traffic.partner_traffic(pid, days, plane.clock())
    c = make(t)
    name = f"traffic-{pid}-{c.name}-{day_date(t.first_day)}-{day_date(t.last_day)}.csv"
    return Response(
        c.csv(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
