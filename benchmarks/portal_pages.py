"""Portal pages at production-like scale: how long each page takes to answer, server side.

A control plane in process (SQLite in a temporary directory), built through
its real services: a topology of 50 partners with 8 sites of 5 appliances
each (2,000 appliances over 400 sites; two ASNs per partner) plus the
operator's IX sites and origin, 500 titles, every appliance registered and
heartbeating a full inventory and its load, a BGP session per partner
appliance (its site's /24s and its partner's aggregate), some trouble (about
2 % of the appliances down, 3 % with a disk near full, 2.5 % of the sessions
down, a route inconsistency at one site in 10 or so), traffic reports of
every appliance for 30 UTC days (the clients of its own partner; an IX or
origin appliance serves every partner's), playback decisions counted on
every one of those days, a fill plan, 200 appliance requests (the planner's
answer to one form, stored on each), a PeeringDB export with a few hundred
exchanges and facilities, and 101 portal users. Then each page is asked
through the ASGI app (Starlette's TestClient, logged in through the real
login) a few times warm, and its median and 95th percentile printed:

* a partner's user: home, an appliance, traffic (30 days), its requests, a
  request, peering;
* the operator: every partner's requests, an IX appliance (its traffic: every
  partner's), the fleet, the catalog, the users;
* the login POST itself (argon2id by design: ~50-100 ms, reported apart).

Figures are wall-clock ms per request on this machine (the test client's own
overhead, well under 1 ms, included); nothing is enforced.

    .venv/bin/python benchmarks/portal_pages.py [--partners 50] [--sites 8]
        [--per-site 5] [--titles 500] [--days 30] [--requests 200] [--repeat 15]
        [--profile /portal/operator/fleet]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import random
import statistics
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the synthetic titles and plane of the tests
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from control_fixtures import client_for, make_plane, synthetic_title  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from localcast.control.route_schemas import RoutesReport  # noqa: E402
from localcast.control.service import ControlPlane, HeartbeatReport, InventoryReport  # noqa: E402
from localcast.control.topology import parse_topology  # noqa: E402
from localcast.control.traffic import TrafficRow  # noqa: E402
from localcast.core.fleet import Load  # noqa: E402
from localcast.core.inventory import freeze  # noqa: E402
from localcast.core.steering import steer  # noqa: E402
from localcast.portal import eligibility  # noqa: E402
from localcast.portal.accounts import AccountStore  # noqa: E402
from localcast.portal.requests_store import APPROVED, DECLINED, SUBMITTED, RequestStore  # noqa: E402

DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
PASSWORD = "correct horse battery"
OPERATOR = "op@localcast.example"
OPERATOR_ASN = 64496
SLOW_MS = 150.0  # a page slower than this (median) is worth a look


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Scale:
    partners: int = 50
    sites: int = 8  # per partner
    per_site: int = 5  # appliances
    ix_sites: int = 4
    titles: int = 500
    days: int = 30
    requests: int = 200
    ixs: int = 300
    facilities: int = 200
    held: int = 150  # titles an embedded appliance holds


@dataclass
class Fleet:
    plane: ControlPlane
    clock: Clock
    partner: str  # the partner whose user is timed
    user: str  # that user's email
    appliance: str  # one of its appliances
    request_id: int  # one of its requests
    setup: dict[str, float] = field(default_factory=dict)


# --- building the fleet ---------------------------------------------------------------------


def pid(i: int) -> str:
    return f"isp-{i:02d}"


def site_prefix(i: int, j: int) -> ipaddress.IPv4Network:
    """Partner ``i``'s site ``j``: a /19 of its 10.i.0.0/16."""
    return ipaddress.IPv4Network(f"10.{i}.{j * 32}.0/19")


def topology(scale: Scale) -> dict[str, Any]:
    rnd = random.Random(1)
    partners = [
        {"name": pid(i), "asns": [65000 + 2 * i, 65001 + 2 * i]} for i in range(scale.partners)
    ]
    sites: list[dict[str, Any]] = []
    appliances: list[dict[str, Any]] = []
    port = 20000
    for i in range(scale.partners):
        lat0, lon0 = rnd.uniform(36, 60), rnd.uniform(-9, 30)
        for j in range(scale.sites):
            sid = f"{pid(i)}-s{j}"
            sites.append(
                {
                    "id": sid,
                    "kind": "pni" if j == scale.sites - 1 else "embedded",
                    "partner": pid(i),
                    "lat": round(lat0 + rnd.uniform(-2, 2), 3),
                    "lon": round(lon0 + rnd.uniform(-2, 2), 3),
                    "tz": "Europe/Paris",
                    "prefixes": [str(site_prefix(i, j))],
                    "region": f"r{i % 10}",
                }
            )
            for k in range(scale.per_site):
                port += 1
                appliances.append(
                    {
                        "id": f"{sid}-a{k}",
                        "site": sid,
                        "url": f"http://127.0.0.1:{port}",
                        "disk_gb": 100,
                        "gbps": 40,
                    }
                )
    for x in range(scale.ix_sites):
        sid = f"ix-{x}"
        sites.append(
            {"id": sid, "kind": "ix", "lat": 50.0 + x, "lon": 8.0 + x, "tz": "Europe/Berlin"}
        )
        for k in range(4):
            port += 1
            appliances.append(
                {
                    "id": f"{sid}-a{k}",
                    "site": sid,
                    "url": f"http://127.0.0.1:{port}",
                    "disk_gb": 400,
                    "gbps": 100,
                }
            )
    sites.append(
        {"id": "origin", "kind": "origin", "lat": 37.4, "lon": -122.1, "tz": "America/Los_Angeles"}
    )
    for k in range(2):
        appliances.append(
            {
                "id": f"o{k}",
                "site": "origin",
                "url": f"http://127.0.0.1:{18000 + k}",
                "disk_gb": 4000,
                "gbps": 100,
            }
        )
    return {"partners": partners, "sites": sites, "appliances": appliances}


def peeringdb_export(scale: Scale) -> dict[str, Any]:
    """A combined dump: the operator's network at ``scale.ixs`` exchanges (one or two ports
    each) and ``scale.facilities`` facilities, among other networks' records."""
    rnd = random.Random(2)
    nets = [
        {
            "id": 9000,
            "asn": OPERATOR_ASN,
            "name": "Localcast",
            "irr_as_set": "AS-LC",
            "policy_general": "Open",
            "website": "https://localcast.example",
            "status": "ok",
        }
    ]
    nets += [
        {"id": 9001 + n, "asn": 64600 + n, "name": f"Other {n}", "status": "ok"} for n in range(50)
    ]
    ix, ixlan, netixlan, fac, netfac = [], [], [], [], []
    for x in range(scale.ixs):
        ix.append(
            {
                "id": 100 + x,
                "name": f"IX-{x}",
                "name_long": f"Exchange number {x}",
                "city": f"City {x % 97}",
                "country": ["FR", "DE", "NL", "GB", "US"][x % 5],
                "region_continent": "Europe",
                "website": f"https://ix{x}.example",
                "status": "ok",
            }
        )
        ixlan.append({"id": 500 + x, "ix_id": 100 + x, "name": "", "status": "ok"})
        for p in range(1 + x % 2):
            netixlan.append(
                {
                    "id": len(netixlan) + 1,
                    "net_id": 9000,
                    "ix_id": 100 + x,
                    "ixlan_id": 500 + x,
                    "name": f"IX-{x}",
                    "asn": OPERATOR_ASN,
                    "speed": rnd.choice([10000, 100000, 400000]),
                    "ipaddr4": f"198.18.{x % 250}.{p + 1}",
                    "ipaddr6": f"2001:db8:{x:x}::{p + 1}",
                    "is_rs_peer": bool(p),
                    "operational": True,
                    "status": "ok",
                }
            )
        for n in range(5):  # other networks at the same exchange
            netixlan.append(
                {
                    "id": len(netixlan) + 1,
                    "net_id": 9001 + n,
                    "ix_id": 100 + x,
                    "ixlan_id": 500 + x,
                    "asn": 64600 + n,
                    "speed": 10000,
                    "ipaddr4": f"198.19.{x % 250}.{n + 1}",
                    "status": "ok",
                }
            )
    for f in range(scale.facilities * 2):
        fac.append(
            {
                "id": 700 + f,
                "name": f"Facility {f}",
                "city": f"City {f % 97}",
                "country": "FR",
                "address1": f"{f} rue du Port",
                "latitude": rnd.uniform(36, 60),
                "longitude": rnd.uniform(-9, 30),
                "status": "ok",
            }
        )
        if f % 2 == 0:
            netfac.append(
                {
                    "id": f + 1,
                    "net_id": 9000,
                    "fac_id": 700 + f,
                    "local_asn": OPERATOR_ASN,
                    "status": "ok",
                }
            )
    return {
        "net": {"data": nets},
        "ix": {"data": ix},
        "ixlan": {"data": ixlan},
        "netixlan": {"data": netixlan},
        "fac": {"data": fac},
        "netfac": {"data": netfac},
    }


@contextmanager
def step(fleet_setup: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    fleet_setup[name] = time.perf_counter() - started
    print(f"  {name}: {fleet_setup[name]:.1f} s", flush=True)


def unhealthy(aid: str, every: int) -> bool:
    """About one appliance in ``every``, the same ones on every run."""
    return zlib.crc32(aid.encode()) % every == 0


def route_report(a_id: str, i: int, j: int) -> RoutesReport:
    """The appliance's session: its site's /24s and the partner's aggregate. About one session
    in 40 is down; about one site in 10 has an appliance missing a few /24s (a route
    inconsistency across the site)."""
    net = site_prefix(i, j)
    subnets = [str(s) for s in net.subnets(new_prefix=24)]
    if a_id.endswith("-a0") and zlib.crc32(a_id.encode()) % 10 == 0:
        subnets = subnets[:-3]
    return RoutesReport.model_validate(
        {
            "kind": "full",
            "seq": 1,
            "session": {
                "neighbor": f"192.0.2.{1 + j}",
                "local_as": 64496,
                "ebgp": True,
                "remote_as": 65000 + 2 * i,
                "state": "active" if unhealthy(a_id, 40) else "established",
                "peer_router_id": f"10.255.{i}.{j}",
                "description": f"{pid(i)} core {j}",
                "uptime_s": 86400.0 * 3,
                "received": 36,
                "accepted": 33,
                "filtered": {"bogon": 2, "too_specific": 1},
            },
            "announce": [
                {
                    "prefixes": subnets,
                    "next_hop": f"192.0.2.{1 + j}",
                    "as_path": [65000 + 2 * i],
                },
                {
                    "prefixes": [f"10.{i}.0.0/16"],
                    "next_hop": f"192.0.2.{1 + j}",
                    "as_path": [65000 + 2 * i, 65001 + 2 * i],
                },
            ],
        }
    )


def build(root: Path, scale: Scale) -> Fleet:
    setup: dict[str, float] = {}
    rnd = random.Random(3)
    export = root / "peeringdb.json"
    export.write_text(json.dumps(peeringdb_export(scale)))
    clock = Clock(NOW)
    plane = make_plane(
        root,
        clock,
        peeringdb_file=str(export),
        operator_asn=OPERATOR_ASN,  # type: ignore[arg-type]
    )
    titles = [synthetic_title(f"t{n:03d}", segments=2) for n in range(scale.titles)]
    with step(setup, "topology apply"):
        creds = plane.apply_topology(parse_topology(topology(scale))).credentials
    with step(setup, f"import {len(titles)} titles"):
        plane.import_manifests([t.manifest for t in titles])
    snap = plane.snapshot
    files = {t.title_id: sorted(t.files) for t in titles}
    ids = sorted(files)

    def holdings(aid: str) -> list[str]:
        kind = snap.sites[snap.appliances[aid].site_id].kind.value
        if kind == "origin":
            return ids
        n = len(ids) * 4 // 5 if kind == "ix" else min(scale.held, len(ids) // 2)
        return random.Random(aid).sample(ids, n)

    # 30 days of traffic and playback decisions, with the clock on each day in turn
    first = NOW - (scale.days - 1) * DAY
    partner_nets = {
        i: [str(s) for j in range(scale.sites) for s in site_prefix(i, j).subnets(new_prefix=24)]
        for i in range(scale.partners)
    }
    with step(setup, f"register, heartbeat {len(creds)} appliances (full inventories)"):
        clock.t = first - 600
        for aid, secret in sorted(creds.items()):
            plane.register(aid, secret, "bench", 3600.0)
            inv = freeze({t: files[t] for t in holdings(aid)})
            plane.heartbeat(aid, secret, beat(aid, rnd, InventoryReport(seq=1, full=inv)))
        clock.t = first - 300
        for aid, secret in sorted(creds.items()):
            plane.heartbeat(aid, secret, beat(aid, rnd))
    partner_appliances = {
        aid: (int(a.site_id[4:6]), int(a.site_id.split("-s")[1]))
        for aid, a in plane.snapshot.appliances.items()
        if a.site_id.startswith("isp-")
    }
    with step(setup, f"BGP: a full report from each of {len(partner_appliances)} appliances"):
        for aid, (i, j) in sorted(partner_appliances.items()):
            plane.ingest_routes(aid, creds[aid], route_report(aid, i, j))
        plane.routes.rebuild()
    with step(setup, "playback decisions to count (steer)"):
        decisions = []
        for i in range(scale.partners):
            for _ in range(20):
                ip = str(ipaddress.IPv4Network(rnd.choice(partner_nets[i]))[rnd.randrange(1, 254)])
                decisions.append(steer(plane.snapshot, ip, rnd.choice(ids), clock.t))
    with step(setup, f"{scale.days} days of traffic reports and decisions"):
        for d in range(scale.days):
            clock.t = first + d * DAY
            for decision in decisions:
                for _ in range(rnd.randrange(1, 4)):
                    plane.count_playback(decision)
            for aid in sorted(creds):
                rows = traffic_rows(aid, plane, partner_nets, rnd, scale)
                plane.traffic.ingest(aid, clock.t - 3600, clock.t, rows, clock.t, f"{aid}-{d}")
            plane.traffic.flush()
            plane.fills.flush_demand()
    clock.t = NOW
    with step(setup, "heartbeats now (alive again; about one appliance in 50 stays down)"):
        alive = sorted(aid for aid in creds if not unhealthy(aid, 50))
        for aid in alive:
            plane.heartbeat(aid, creds[aid], beat(aid, rnd))
        clock.t = NOW + 10
        for aid in alive:
            plane.heartbeat(aid, creds[aid], beat(aid, rnd))
        plane.health.refresh()
    with step(setup, "fill plan"):
        plane.plan_fills()
    with step(setup, "portal users (argon2)"):
        accounts = AccountStore(plane.sessions)
        accounts.add_user(OPERATOR, PASSWORD, "operator", clock(), name="Operator")
        for i in range(scale.partners):
            for u in range(2):
                accounts.add_user(f"u{u}@{pid(i)}.example", PASSWORD, "partner", clock(), pid(i))
    with step(setup, f"{scale.requests} appliance requests (the planner once)"):
        values = {
            "peak_gbps": "120",
            "sites": "Paris: 60%\nLyon: 25%\nLille",
            "rack_u": "4",
            "power_w": "1300",
            "port_count": "2",
            "port_gbps": "25",
            "contact": "noc@example.net, weekdays",
        }
        form, errors = eligibility.parse_form(values)
        assert form is not None, errors
        answer = eligibility.evaluate(form)
        store = RequestStore(plane.sessions)
        statuses = (SUBMITTED, SUBMITTED, APPROVED, DECLINED)
        first_id = 0
        for n in range(scale.requests):
            partner = pid(n % scale.partners)
            rid = store.create(partner, None, form.to_json(), NOW - (scale.requests - n) * 3600)
            store.set_eligibility(rid, answer)
            if statuses[n % 4] != SUBMITTED:
                store.decide(rid, statuses[n % 4] == APPROVED, 1, "bench", NOW)
            first_id = first_id or rid
    partner = pid(0)
    return Fleet(
        plane,
        clock,
        partner,
        f"u0@{partner}.example",
        f"{partner}-s0-a0",
        first_id,
        setup,
    )


def beat(aid: str, rnd: random.Random, inventory: InventoryReport | None = None) -> HeartbeatReport:
    """Its load; about one appliance in 30 has its disk near full."""
    used = rnd.randrange(20, 90) * 10**9
    if unhealthy(aid, 30):
        used = 95 * 10**9
    return HeartbeatReport(
        interval_s=3600.0,
        load=Load(
            active_connections=rnd.randrange(0, 3000),
            egress_bps=rnd.uniform(1e9, 30e9),
            disk_used_bytes=used,
            disk_free_bytes=100 * 10**9 - used,
        ),
        inventory=inventory,
    )


def traffic_rows(
    aid: str,
    plane: ControlPlane,
    partner_nets: dict[int, list[str]],
    rnd: random.Random,
    scale: Scale,
) -> list[TrafficRow]:
    """An appliance's day: 20 client /24s of its partner (an IX or origin appliance: of 20
    partners), viewer bytes, and a fill row."""
    site_id = plane.snapshot.appliances[aid].site_id
    if site_id.startswith("isp-"):
        nets = rnd.sample(partner_nets[int(site_id[4:6])], 20)
    else:
        nets = [rnd.choice(partner_nets[rnd.randrange(scale.partners)]) for _ in range(20)]
    rows = [
        TrafficRow(net, "viewer", rnd.randrange(100, 10_000), rnd.randrange(10**9, 10**11))
        for net in nets
    ]
    rows.append(TrafficRow("192.0.2.0/24", "fill", 50, rnd.randrange(10**8, 10**10)))
    return rows


# --- timing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    name: str
    path: str
    median_ms: float
    p95_ms: float
    status: int
    size: int


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def time_get(client: TestClient, name: str, path: str, repeat: int) -> Timing:
    r = client.get(path)  # warm: templates compiled, caches filled
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
    return Timing(
        name, path, statistics.median(samples), p95(samples), r.status_code, len(r.content)
    )


def login(client: TestClient, email: str) -> float:
    started = time.perf_counter()
    r = client.post(
        "/portal/login",
        data={"email": email, "password": PASSWORD, "next": "/portal/"},
        follow_redirects=False,
    )
    took = (time.perf_counter() - started) * 1000
    if r.status_code != 303:
        raise RuntimeError(f"login {email}: {r.status_code} {r.text[:300]}")
    return took


def run(fleet: Fleet, repeat: int) -> tuple[list[Timing], Timing]:
    pages: list[tuple[str, str, str]] = [
        ("partner home", fleet.user, "/portal/"),
        ("appliance", fleet.user, f"/portal/appliances/{fleet.appliance}"),
        ("traffic (30 days)", fleet.user, "/portal/traffic?days=30"),
        ("requests (partner)", fleet.user, "/portal/requests"),
        ("request", fleet.user, f"/portal/requests/{fleet.request_id}"),
        ("peering", fleet.user, "/portal/peering"),
        ("requests (operator: all)", OPERATOR, "/portal/requests"),
        ("appliance (operator: an IX's)", OPERATOR, "/portal/appliances/ix-0-a0"),
        ("operator fleet", OPERATOR, "/portal/operator/fleet"),
        ("operator catalog", OPERATOR, "/portal/operator/catalog"),
        ("operator users", OPERATOR, "/portal/operator/users"),
    ]
    out = []
    logins: list[float] = []
    clients: dict[str, TestClient] = {}
    try:
        for email in (fleet.user, OPERATOR):
            c = clients[email] = client_for(fleet.plane)
            c.__enter__()
            logins.append(login(c, email))
        for _ in range(max(repeat // 2, 3)):
            with client_for(fleet.plane) as c:
                logins.append(login(c, fleet.user))
        for name, email, path in pages:
            out.append(time_get(clients[email], name, path, repeat))
    finally:
        for c in clients.values():
            c.__exit__(None, None, None)
    median = statistics.median(logins)
    return out, Timing("login POST (argon2)", "/portal/login", median, p95(logins), 303, 0)


def table(timings: list[Timing], login_t: Timing) -> None:
    print(f"\n{'page':30} {'median ms':>10} {'p95 ms':>8} {'KiB':>7}  path")
    for t in timings:
        flag = "  <- slow" if t.median_ms > SLOW_MS else ""
        print(
            f"{t.name:30} {t.median_ms:10.1f} {t.p95_ms:8.1f} {t.size / 1024:7.0f}  {t.path}{flag}"
        )
    lt = login_t
    print(f"{lt.name:30} {lt.median_ms:10.1f} {lt.p95_ms:8.1f} {'':>7}  {lt.path}")
    slowest = max(timings, key=lambda t: t.median_ms)
    print(f"\nslowest page: {slowest.name} ({slowest.path}), median {slowest.median_ms:.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--partners", type=int, default=50)
    ap.add_argument("--sites", type=int, default=8, help="sites per partner")
    ap.add_argument("--per-site", type=int, default=5, help="appliances per partner site")
    ap.add_argument("--titles", type=int, default=500)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=15, help="warm requests per page")
    ap.add_argument("--profile", help="cProfile this page's path (after the table) to stdout")
    args = ap.parse_args()
    if not (1 <= args.partners <= 250 and 1 <= args.sites <= 8):
        ap.error("at most 250 partners (10.<i>.0.0/16 each) of at most 8 sites (a /19 each)")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("localcast").setLevel(logging.ERROR)
    scale = Scale(
        partners=args.partners,
        sites=args.sites,
        per_site=args.per_site,
        titles=args.titles,
        days=args.days,
        requests=args.requests,
    )
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        print(
            f"building: {scale.partners} partners x {scale.sites} sites x {scale.per_site} "
            f"appliances, {scale.titles} titles, {scale.days} days, {scale.requests} requests",
            flush=True,
        )
        started = time.perf_counter()
        fleet = build(Path(tmp), scale)
        snap = fleet.plane.snapshot
        print(
            f"built in {time.perf_counter() - started:.0f} s: {len(snap.sites)} sites, "
            f"{len(snap.appliances)} appliances, {len(snap.catalog)} titles, "
            f"{snap.routes.size} routes"
        )
        try:
            timings, login_t = run(fleet, args.repeat)
            table(timings, login_t)
            if args.profile:
                profile(fleet, args.profile)
        finally:
            fleet.plane.close()
    return 0


def profile(fleet: Fleet, path: str) -> None:
    """cProfile three requests of ``path``: the page functions (sync endpoints and
    dependencies, run inline here instead of in the thread pool, where a profiler started in
    this thread would not see them)."""
    import cProfile
    import pstats

    import fastapi.dependencies.utils
    import fastapi.routing

    prof = cProfile.Profile()
    pooled = fastapi.routing.run_in_threadpool

    async def inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        prof.enable()
        try:
            return func(*args, **kwargs)
        finally:
            prof.disable()

    email = OPERATOR if path.startswith("/portal/operator") else fleet.user
    with client_for(fleet.plane) as c:
        login(c, email)
        c.get(path)
        fastapi.routing.run_in_threadpool = inline  # type: ignore[assignment]
        fastapi.dependencies.utils.run_in_threadpool = inline  # type: ignore[assignment]
        try:
            for _ in range(3):
                c.get(path)
        finally:
            fastapi.routing.run_in_threadpool = pooled
            fastapi.dependencies.utils.run_in_threadpool = pooled
    print(f"\nprofile of 3 x GET {path}:")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    sys.exit(main())
