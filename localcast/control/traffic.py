"""Traffic accounting in the control plane: appliance reports and playback decisions, per day.

:class:`TrafficService` belongs to a :class:`~localcast.control.service.ControlPlane`
(``plane.traffic``). Two inputs, both counted in memory and added to the
database by :meth:`TrafficService.flush`:

* **traffic reports** (``POST /v1/appliances/{id}/traffic``, from the
  appliance's reporter): per client network and request kind, the requests,
  body bytes and 5xx answers its data plane served. Each row is attributed to
  the client's partner (:func:`localcast.core.traffic.partner_of`, over the
  current snapshot's routes) and to the serving appliance's site and its kind,
  and counted for the UTC day of the report's ``period_end`` (the control
  plane's day when ``period_end`` lies in the future). A report retried (its
  answer was lost) is recognised by its ``report_id`` (else its period) and
  not counted twice: the last 64 per appliance, in memory, so a retry across
  a control plane restart would count again.
* **playback decisions** (``ControlPlane.count_playback``, the playback fast
  path: one dict increment per event under a lock, no I/O): the decision's
  outcome at the site of its first pathway, and every better-ranked site
  passed over (content or health miss), for the client's partner
  (:func:`localcast.core.traffic.decision_partner`).

The counts go to ``traffic_daily`` and ``steering_daily`` (upserts that add,
so several control plane processes may share the database) from the app's
refresh loop (every ``refresh_interval_s``), before every read, and at
shutdown. :meth:`partner_traffic` reads a window of days back and
computes the figures (:mod:`localcast.core.traffic`, where each is defined).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from localcast.control.errors import NotFound
from localcast.control.models import Partner, SteeringDaily, TrafficDaily
from localcast.control.snapshot import SnapshotHolder
from localcast.control.steering_stats import outcome
from localcast.core.fleet import FleetSnapshot
from localcast.core.steering import SteeringDecision
from localcast.core.traffic import (
    NO_PARTNER,
    PASSED_CONTENT,
    PASSED_HEALTH,
    PartnerTraffic,
    SteeringRecord,
    TrafficRecord,
    decision_partner,
    parse_net,
    partner_of,
    partner_traffic,
    utc_day,
)

log = logging.getLogger(__name__)
Clock = Callable[[], float]

TrafficKey = tuple[int, str, str, str, str]  # (day, partner, kind, source kind, site)
SteeringKey = tuple[int, str, str, str]  # (day, partner, site, event)
FUTURE_SLACK_S = 300.0  # a period_end further ahead than this is counted on today
SEEN_REPORTS = 64  # report ids (or periods) remembered per appliance, for retried reports


@dataclass(frozen=True)
class TrafficRow:
    """One row of an appliance's report (validated by the API's schema)."""

    net: str
    kind: str  # viewer | fill
    requests: int
    bytes: int
    errors_5xx: int = 0


@dataclass(frozen=True)
class IngestResult:
    rows: int
    attributed: int  # rows whose network is some partner's
    day: int
    duplicate: bool
    site_id: str
    source_kind: str


def decision_events(decision: SteeringDecision) -> list[tuple[str, str]]:
    """(site, event) of a decision: its outcome at its first pathway's site, passed sites."""
    o = outcome(decision)
    events = [(decision.pathways[0].site_id, o.label)]
    events += [(sid, PASSED_CONTENT) for sid in o.missed_sites]
    if decision.excluded and o.label != o.kind:
        rank = {s.site_id: s.rank for s in decision.sites}
        best = rank.get(decision.pathways[0].site_id, 0)
        health: list[str] = []
        for x in decision.excluded:
            r = rank.get(x.site_id)
            if r is None or r >= best or x.site_id in o.missed_sites or x.site_id in health:
                continue
            if x.reason.startswith("health miss"):
                health.append(x.site_id)
        events += [(sid, PASSED_HEALTH) for sid in health]
    return events


class TrafficService:
    """Counts in memory, flushed to the daily tables; the per-partner figures."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: SnapshotHolder,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.holder = holder
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._traffic: dict[TrafficKey, list[int]] = {}
        self._steering: dict[SteeringKey, int] = {}
        self._seen: dict[str, deque[str | tuple[float, float]]] = {}
        # since this process started, for /metrics: (partner, kind, source kind) -> [req, bytes]
        self.totals: dict[tuple[str, str, str], list[int]] = {}
        self.reports = 0

    # --- the playback fast path --------------------------------------------------------------

    def count(self, decision: SteeringDecision, snapshot: FleetSnapshot, now: float) -> None:
        """One successful playback decision (memory only)."""
        if not decision.pathways:
            return
        partner = decision_partner(decision, snapshot.sites) or NO_PARTNER
        day = utc_day(now)
        events = decision_events(decision)
        with self._lock:
            for site_id, event in events:
                key = (day, partner, site_id, event)
                self._steering[key] = self._steering.get(key, 0) + 1

    # --- appliance reports -------------------------------------------------------------------

    def ingest(
        self,
        appliance_id: str,
        period_start: float,
        period_end: float,
        rows: Iterable[TrafficRow],
        now: float,
        report_id: str | None = None,
    ) -> IngestResult:
        """Attribute and count one report of an authenticated appliance."""
        snap = self.holder.current
        a = snap.appliances.get(appliance_id)
        if a is None:
            raise NotFound(f"unknown appliance {appliance_id!r}")
        site = snap.sites[a.site_id]
        kind = site.kind.value
        day = utc_day(period_end if period_end <= now + FUTURE_SLACK_S else now)
        partners: dict[str, str] = {}
        counted: dict[TrafficKey, list[int]] = {}
        n = attributed = 0
        for row in rows:
            n += 1
            partner = partners.get(row.net)
            if partner is None:
                partner = partners[row.net] = partner_of(snap, parse_net(row.net)) or NO_PARTNER
            if partner != NO_PARTNER:
                attributed += 1
            key = (day, partner, row.kind, kind, site.id)
            c = counted.setdefault(key, [0, 0, 0])
            c[0] += row.requests
            c[1] += row.bytes
            c[2] += row.errors_5xx
        period = (period_start, period_end)
        tag: str | tuple[float, float] = report_id if report_id is not None else period
        with self._lock:
            seen = self._seen.setdefault(appliance_id, deque(maxlen=SEEN_REPORTS))
            duplicate = tag in seen
            if not duplicate:
                seen.append(tag)
                self.reports += 1
                for key, (req, nbytes, errs) in counted.items():
                    c = self._traffic.setdefault(key, [0, 0, 0])
                    c[0] += req
                    c[1] += nbytes
                    c[2] += errs
                    t = self.totals.setdefault((key[1], key[2], key[3]), [0, 0])
                    t[0] += req
                    t[1] += nbytes
        if duplicate:
            log.info("appliance %s: traffic report %s already counted", appliance_id, tag)
        return IngestResult(n, attributed, day, duplicate, site.id, kind)

    # --- the database ------------------------------------------------------------------------

    def flush(self) -> int:
        """Add the pending counts to the daily tables; how many rows were written."""
        with self._flush_lock:
            with self._lock:
                traffic, self._traffic = self._traffic, {}
                steering, self._steering = self._steering, {}
            if not traffic and not steering:
                return 0
            try:
                with self.sessions.begin() as s:
                    _add_traffic(s, traffic)
                    _add_steering(s, steering)
            except Exception:
                self._restore(traffic, steering)
                raise
            return len(traffic) + len(steering)

    def _restore(
        self, traffic: Mapping[TrafficKey, list[int]], steering: Mapping[SteeringKey, int]
    ) -> None:
        with self._lock:
            for key, vals in traffic.items():
                c = self._traffic.setdefault(key, [0, 0, 0])
                for i, v in enumerate(vals):
                    c[i] += v
            for skey, v in steering.items():
                self._steering[skey] = self._steering.get(skey, 0) + v

    def close(self) -> None:
        try:
            self.flush()
        except Exception:  # the database may be gone: the counts are lost, not the shutdown
            log.exception("could not write the last traffic counts")

    def since_start(self) -> tuple[int, dict[tuple[str, str, str], int]]:
        """(reports counted, bytes per (partner, kind, source kind)) since this process started."""
        with self._lock:
            return self.reports, {key: c[1] for key, c in self.totals.items()}

    def pending(self) -> tuple[int, int]:
        """(traffic keys, steering keys) not yet in the database."""
        with self._lock:
            return len(self._traffic), len(self._steering)

    # --- reads -------------------------------------------------------------------------------

    def partners(self) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(Partner.id).order_by(Partner.id)))

    def partner_traffic(self, partner_id: str, days: int, now: float) -> PartnerTraffic:
        """The partner's figures for the ``days`` UTC days ending today."""
        self.flush()
        last = utc_day(now)
        first = last - days + 1
        with self.sessions() as s:
            if s.get(Partner, partner_id) is None:
                raise NotFound(f"unknown partner {partner_id!r}")
            traffic = _traffic_records(s, first, last, partner_id)
            steering = _steering_records(s, first, last, partner_id)
        snap = self.holder.current
        kinds = {sid: site.kind.value for sid, site in snap.sites.items()}
        return partner_traffic(partner_id, first, last, traffic, steering, kinds)

    def day_records(self, day: int) -> list[TrafficRecord]:
        """Every partner's traffic of one UTC day (pending counts flushed first)."""
        self.flush()
        with self.sessions() as s:
            return _traffic_records(s, day, day, None)


# --- SQL -----------------------------------------------------------------------------------------


def _upsert(
    s: Session, table: type[TrafficDaily] | type[SteeringDaily], rows: list[dict[str, object]]
) -> bool:
    """An adding upsert on SQLite and PostgreSQL; False on another dialect."""
    dialect = s.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return False
    ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
    if table is TrafficDaily:
        keys = ["day", "partner_id", "kind", "source_kind", "site_id"]
        adds = {
            "requests": TrafficDaily.requests + ins.excluded.requests,
            "bytes": TrafficDaily.bytes + ins.excluded.bytes,
            "errors_5xx": TrafficDaily.errors_5xx + ins.excluded.errors_5xx,
        }
    else:
        keys = ["day", "partner_id", "site_id", "event"]
        adds = {"decisions": SteeringDaily.decisions + ins.excluded.decisions}
    s.execute(ins.on_conflict_do_update(index_elements=keys, set_=adds), rows)
    return True


def _add_traffic(s: Session, counts: Mapping[TrafficKey, list[int]]) -> None:
    if not counts:
        return
    rows: list[dict[str, object]] = [
        {
            "day": d,
            "partner_id": p,
            "kind": k,
            "source_kind": sk,
            "site_id": site,
            "requests": req,
            "bytes": nbytes,
            "errors_5xx": errs,
        }
        for (d, p, k, sk, site), (req, nbytes, errs) in counts.items()
    ]
    if _upsert(s, TrafficDaily, rows):
        return
    for (d, p, k, sk, site), (req, nbytes, errs) in counts.items():  # portable fallback
        row = s.get(TrafficDaily, (d, p, k, sk, site))
        if row is None:
            s.add(
                TrafficDaily(
                    day=d,
                    partner_id=p,
                    kind=k,
                    source_kind=sk,
                    site_id=site,
                    requests=req,
                    bytes=nbytes,
                    errors_5xx=errs,
                )
            )
        else:
            row.requests += req
            row.bytes += nbytes
            row.errors_5xx += errs


def _add_steering(s: Session, counts: Mapping[SteeringKey, int]) -> None:
    if not counts:
        return
    rows: list[dict[str, object]] = [
        {"day": d, "partner_id": p, "site_id": site, "event": e, "decisions": n}
        for (d, p, site, e), n in counts.items()
    ]
    if _upsert(s, SteeringDaily, rows):
        return
    for (d, p, site, e), n in counts.items():  # portable fallback
        row = s.get(SteeringDaily, (d, p, site, e))
        if row is None:
            s.add(SteeringDaily(day=d, partner_id=p, site_id=site, event=e, decisions=n))
        else:
            row.decisions += n


def _traffic_records(
    s: Session, first: int, last: int, partner_id: str | None
) -> list[TrafficRecord]:
    q = select(TrafficDaily).where(TrafficDaily.day >= first, TrafficDaily.day <= last)
    if partner_id is not None:
        q = q.where(TrafficDaily.partner_id == partner_id)
    return [
        TrafficRecord(
            r.day, r.partner_id, r.kind, r.source_kind, r.site_id, r.requests, r.bytes, r.errors_5xx
        )
        for r in s.scalars(q)
    ]


def _steering_records(s: Session, first: int, last: int, partner_id: str) -> list[SteeringRecord]:
    q = select(SteeringDaily).where(
        SteeringDaily.day >= first,
        SteeringDaily.day <= last,
        SteeringDaily.partner_id == partner_id,
    )
    return [
        SteeringRecord(r.day, r.partner_id, r.site_id, r.event, r.decisions) for r in s.scalars(q)
    ]
