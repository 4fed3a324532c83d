"""``GET /metrics`` of the control plane: Prometheus text, read from the plane at scrape time.

Nothing is counted for Prometheus on the request paths: :class:`PlaneCollector`
(a ``prometheus_client`` custom collector, one registry per app) reads the
plane's state when scraped: the steering outcome counters
(:mod:`localcast.control.steering_stats`), the current snapshot (appliances,
their heartbeats and last reported load, learned routes), the BGP sessions as
the relays last reported them (:mod:`localcast.control.route_feed`), the fill
transfers and today's traffic (two small queries), the traffic reports counted
by this process. Families (counters end in ``_total`` on exposition)::

    localcast_control_playback_requests_total              requests answered with a session
    localcast_control_steering_decisions_total{outcome}    embedded|pni|ix|origin|content_miss|...
    localcast_control_steering_content_misses_total{site}  decisions passing a site over (content)
    localcast_control_appliances{status}                   by held status: ok|warning|error|unknown
    localcast_control_appliance_up{appliance, site}        1 alive (fresh heartbeats), else 0
    localcast_control_appliance_heartbeat_age_seconds{appliance, site}   (heard from ones only)
    localcast_control_appliance_disk_used_bytes{appliance, site}     as last reported
    localcast_control_appliance_disk_free_bytes{appliance, site}
    localcast_control_appliance_routes{appliance, site}     prefixes in its Adj-RIB-In (BGP)
    localcast_control_bgp_session_state{appliance, neighbor, state}   1 for the current state
    localcast_control_bgp_session_routes_accepted{appliance, neighbor}
    localcast_control_route_table_routes{source}            configured | learned
    localcast_control_fill_bytes_total{appliance, source_kind}   fill transfers: peer|tier|origin
    localcast_control_traffic_reports_total                 appliance traffic reports counted
    localcast_control_traffic_bytes_total{partner, kind, source_kind}   reported since start
    localcast_control_partner_bytes_today{partner, source_kind}  viewer bytes, this UTC day
    localcast_control_partner_offload_ratio{partner}        today's offload ratio (with bytes only)

``partner`` is ``""`` for clients no partner's route covers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from localcast.bgp.fsm import State
from localcast.control import repository as repo
from localcast.control.deps import Plane
from localcast.control.service import ControlPlane
from localcast.core import health as core_health
from localcast.core.traffic import OUTCOMES, SOURCE_KINDS, VIEWER, offload_ratio, utc_day

router = APIRouter()
log = logging.getLogger(__name__)
P = "localcast_control_"
STATUS_LEVELS = tuple(level.value for level in core_health.StatusLevel)
BGP_STATES = tuple(str(s) for s in State)


class PlaneCollector(Collector):
    """Reads one control plane's state at every scrape (see the module text)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def collect(self) -> Iterator[Metric]:
        yield from self._steering()
        yield from self._appliances()
        yield from self._bgp()
        yield from self._fill()
        yield from self._traffic()

    def _steering(self) -> Iterator[Metric]:
        view = self.plane.fills.stats.view()
        decisions = view["decisions"]
        outcomes = view["outcomes"]
        missed = view["content_miss_sites"]
        assert isinstance(decisions, int)
        assert isinstance(outcomes, dict) and isinstance(missed, dict)
        yield CounterMetricFamily(
            P + "playback_requests",
            "Playback requests answered with a session (POST /v1/playback, 200).",
            value=decisions,
        )
        by = CounterMetricFamily(
            P + "steering_decisions",
            "Playback decisions by outcome: the first pathway's site kind, or the miss "
            "that passed a better-ranked site over.",
            labels=["outcome"],
        )
        for label in (*OUTCOMES, *sorted(set(outcomes) - set(OUTCOMES))):
            by.add_metric([label], outcomes.get(label, 0))
        yield by
        sites = CounterMetricFamily(
            P + "steering_content_misses",
            "Playback decisions that passed a better-ranked site over for a content miss.",
            labels=["site"],
        )
        for site_id, n in sorted(missed.items()):
            sites.add_metric([site_id], n)
        yield sites

    def _appliances(self) -> Iterator[Metric]:
        snap, now = self.plane.snapshot, self.plane.clock()
        levels = dict.fromkeys(STATUS_LEVELS, 0)
        up = GaugeMetricFamily(
            P + "appliance_up", "1 while the appliance's heartbeats are fresh.", labels=L2
        )
        age = GaugeMetricFamily(
            P + "appliance_heartbeat_age_seconds",
            "Seconds since the appliance's last heartbeat (appliances heard from).",
            labels=L2,
        )
        used = GaugeMetricFamily(
            P + "appliance_disk_used_bytes", "Store bytes used, as last reported.", labels=L2
        )
        free = GaugeMetricFamily(
            P + "appliance_disk_free_bytes", "Store filesystem bytes free, as reported.", labels=L2
        )
        routes = GaugeMetricFamily(
            P + "appliance_routes",
            "Prefixes in the appliance's Adj-RIB-In (BGP-speaking appliances).",
            labels=L2,
        )
        ribs = snap.routes.learned.ribs
        for aid, a in sorted(snap.appliances.items()):
            labels = [aid, a.site_id]
            held = self.plane.health.statuses.get(aid)  # as GET /v1/appliances shows it
            level = (held.level if held is not None else core_health.StatusLevel.UNKNOWN).value
            levels[level] = levels.get(level, 0) + 1
            up.add_metric(labels, 1 if core_health.liveness(a.health, now).alive else 0)
            last = a.health.last_heartbeat_at
            if last is not None:
                age.add_metric(labels, max(0.0, now - last))
            used.add_metric(labels, a.load.disk_used_bytes)
            free.add_metric(labels, a.load.disk_free_bytes)
            rib = ribs.get(aid)
            if rib is not None:
                routes.add_metric(labels, len(rib))
        by_status = GaugeMetricFamily(
            P + "appliances",
            "Appliances by held status (worst component wins; unknown: not observed yet).",
            labels=["status"],
        )
        for level, n in levels.items():
            by_status.add_metric([level], n)
        yield from (by_status, up, age, used, free, routes)
        table = GaugeMetricFamily(
            P + "route_table_routes",
            "Client routes in the steering snapshot, by source.",
            labels=["source"],
        )
        table.add_metric(["configured"], snap.routes.configured_count)
        table.add_metric(["learned"], snap.routes.learned.route_count)
        yield table

    def _bgp(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            P + "bgp_session_state",
            "BGP session state per appliance and neighbor, as the relay last reported: "
            "1 for the current state.",
            labels=["appliance", "neighbor", "state"],
        )
        accepted = GaugeMetricFamily(
            P + "bgp_session_routes_accepted",
            "Prefixes the session holds in the appliance's Adj-RIB-In, as reported.",
            labels=["appliance", "neighbor"],
        )
        for (aid, neighbor), fs in sorted(self.plane.routes.states().items()):
            current = fs.session.state
            for s in BGP_STATES if current in BGP_STATES else (*BGP_STATES, current):
                state.add_metric([aid, neighbor, s], 1 if s == current else 0)
            accepted.add_metric([aid, neighbor], fs.session.accepted)
        yield state
        yield accepted

    def _fill(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(
            P + "fill_bytes",
            "Bytes fetched by fill agents (stored transfers), by receiving appliance and "
            "source kind (peer, tier, origin).",
            labels=["appliance", "source_kind"],
        )
        with self.plane.sessions() as s:
            fetched = repo.fill_bytes_by_kind(s)
        for aid, kinds in sorted(fetched.items()):
            for kind, n in sorted(kinds.items()):
                fam.add_metric([aid, kind], n)
        yield fam

    def _traffic(self) -> Iterator[Metric]:
        t = self.plane.traffic
        reports, since_start = t.since_start()
        yield CounterMetricFamily(
            P + "traffic_reports",
            "Appliance traffic reports counted by this process.",
            value=reports,
        )
        total = CounterMetricFamily(
            P + "traffic_bytes",
            "Body bytes appliances reported serving since this process started, by client "
            "partner, request kind and source kind.",
            labels=["partner", "kind", "source_kind"],
        )
        for (partner, kind, source), nbytes in sorted(since_start.items()):
            total.add_metric([partner, kind, source], nbytes)
        yield total
        today: dict[str, dict[str, int]] = {}
        for r in t.day_records(utc_day(self.plane.clock())):
            if r.kind == VIEWER:
                by = today.setdefault(r.partner, dict.fromkeys(SOURCE_KINDS, 0))
                by[r.source_kind] = by.get(r.source_kind, 0) + r.bytes
        bytes_today = GaugeMetricFamily(
            P + "partner_bytes_today",
            "Viewer bytes served to the partner's clients this UTC day, by source kind.",
            labels=["partner", "source_kind"],
        )
        ratio = GaugeMetricFamily(
            P + "partner_offload_ratio",
            "This UTC day's offload ratio: viewer bytes from embedded sites / all viewer "
            "bytes served to the partner's clients.",
            labels=["partner"],
        )
        for partner, by in sorted(today.items()):
            for source, n in sorted(by.items()):
                bytes_today.add_metric([partner, source], n)
            offload = offload_ratio(by)
            if partner and offload is not None:
                ratio.add_metric([partner], offload)
        yield bytes_today
        yield ratio


L2 = ["appliance", "site"]


def registry_for(plane: ControlPlane) -> CollectorRegistry:
    """A registry holding only the plane's collector (cheap: built per scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlaneCollector(plane))
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(plane: Plane) -> Response:
    return Response(generate_latest(registry_for(plane)), media_type=CONTENT_TYPE_LATEST)
