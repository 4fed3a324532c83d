"""The portal's route explorer at full tables: how long ``/portal/routes`` takes, server side.

A control plane in process (the portal tests' topology: embedded site
``a-par`` with ``a1`` and ``a2``, PNI site ``b-lys`` with ``b1``, an IX site
and the origin) fed through its real route feed with the generated full
table of :mod:`_bgp_table` (900,000 IPv4 prefixes by default, fixed seed,
in announce groups of 256 prefixes sharing an AS path, as a router sends
them):

* ``a1``: two sessions (two ISP routers), the whole table from one, 90% of
  it from the other (so the feed keeps per-session tables);
* ``a2``: the whole table but every 500th prefix, every 1000th with another
  local preference (inconsistencies across the site);
* ``b1`` (PNI, another partner): every 10th prefix (the rest of ``a-par``'s
  prefixes have no alternate source);
* ``a1``'s first session reports 3 filter reasons with their prefixes.

Then, as the partner's user (logged in through the real login, Starlette's
TestClient), prints:

* the view functions alone (``localcast.portal.views.routes_view``): the
  first page of routes, a page deep in the table, the inconsistencies of the
  site, the routes with no alternate source (each once, uncached);
* the site's page at its first load, then each page **cold** (the first load
  after the site's routes changed: one delta on ``a1``'s second router before
  each sample) and **warm** (a reload, routes unchanged): the site's page, the
  same with the no-alternate-source check and with the inconsistencies asked
  for, a page half way through the table, a prefix filter; and the site's page
  cold after another site's routes changed (a delta on ``b1``);
* how long the feed takes to apply one small delta to ``a1`` (two sessions
  at full tables) and to ``b1``.

Figures are wall-clock ms on this machine (median and worst of the samples);
nothing is enforced.

    .venv/bin/python benchmarks/portal_routes.py [--v4 900000] [--v6 0] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the portal tests' plane and users
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from _bgp_table import generate, generate_v6  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from portal_support import ALICE, Portal, login, portal_plane  # noqa: E402

from localcast.bgp import prefix as pfx  # noqa: E402
from localcast.bgp.prefix import Afi  # noqa: E402
from localcast.control.route_schemas import RoutesReport  # noqa: E402
from localcast.portal.views import routes_view as rv  # noqa: E402

SITE = "a-par"
GROUP = 256  # prefixes per announce group (one AS path each)
SLOW_MS = 500.0  # a page slower than this is worth a look


def texts(v4: int, v6: int) -> list[str]:
    out = [pfx.to_text(Afi.IPV4, pfx.make(net, ln)) for net, ln in generate(v4)]
    out += [pfx.to_text(Afi.IPV6, pfx.make(net, ln)) for net, ln in generate_v6(v6)] if v6 else []
    return out


def groups(prefixes: list[str], asn: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "prefixes": prefixes[i : i + GROUP],
            "next_hop": "192.0.2.1",
            "as_path": [asn, 64700 + (i // GROUP) % 500],
            "as_path_length": 2,
            "origin": "igp",
            "communities": [f"{asn}:100"],
            **extra,
        }
        for i in range(0, len(prefixes), GROUP)
    ]


def report(
    neighbor: str,
    announce: list[dict[str, Any]],
    kind: str = "full",
    seq: int = 1,
    asn: int = 64501,
    **session: Any,
) -> RoutesReport:
    return RoutesReport.model_validate(
        {
            "kind": kind,
            "seq": seq,
            "base_seq": seq - 1 if kind == "delta" else None,
            "sent_at": 1000.0,
            "session": {
                "neighbor": neighbor,
                "local_as": 65001,
                "ebgp": True,
                "remote_as": asn,
                "state": "established",
                "peer_router_id": "10.0.0.1",
                "uptime_s": 7200.0,
                "received": sum(len(g["prefixes"]) for g in announce),
                "accepted": sum(len(g["prefixes"]) for g in announce),
                **session,
            },
            "announce": announce,
        }
    )


FILTERED = {
    "bogon": ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"],
    "too_specific": [f"203.0.113.{i * 4}/30" for i in range(60)],
    "origin_not_allowed": [f"198.51.{i}.0/24" for i in range(100)],
}


def feed(portal: Portal, table: list[str]) -> dict[str, float]:
    plane, creds = portal.plane, portal.credentials
    took: dict[str, float] = {}
    sample = {r: {"count": len(p) * 7, "prefixes": p} for r, p in FILTERED.items()}
    filtered = {r: len(p) * 7 for r, p in FILTERED.items()}
    reports = [
        (
            "a1 router 1: all",
            "a1",
            report("127.0.0.2", groups(table, 64501), filtered=filtered, filtered_prefixes=sample),
        ),
        (
            "a1 router 2: 90%",
            "a1",
            report("127.0.0.3", groups(table[: len(table) // 10 * 9], 64501)),
        ),
        (
            "a2: with differences",
            "a2",
            report(
                "127.0.0.4",
                groups([p for i, p in enumerate(table) if i % 500 and i % 1000 != 1], 64501)
                + groups(table[1::1000], 64501, local_pref=200),
            ),
        ),
        ("b1 (PNI): every 10th", "b1", report("127.0.0.5", groups(table[::10], 64502), asn=64502)),
    ]
    for name, aid, r in reports:
        started = time.perf_counter()
        out = plane.ingest_routes(aid, creds[aid], r)
        took[name] = time.perf_counter() - started
        if out.resync:
            raise RuntimeError(out.reason)
    plane.routes.wait_rebuild()
    return took


class Churn:
    """One small delta on one session (a prefix announced, the next one another): the routes
    change, as they do every few seconds at a full table."""

    def __init__(self, portal: Portal, aid: str, neighbor: str, asn: int) -> None:
        self.portal, self.aid, self.neighbor, self.asn = portal, aid, neighbor, asn
        self.seq = 1

    def __call__(self) -> float:
        self.seq += 1
        prefix = f"100.64.{self.seq % 256}.0/24"
        r = report(
            self.neighbor, groups([prefix], self.asn), kind="delta", seq=self.seq, asn=self.asn
        )
        started = time.perf_counter()
        out = self.portal.plane.ingest_routes(self.aid, self.portal.credentials[self.aid], r)
        if out.resync:
            raise RuntimeError(out.reason)
        return time.perf_counter() - started


def ms(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, max(samples) * 1000


def line(name: str, samples: list[float], note: str = "") -> None:
    med, worst = ms(samples)
    flag = "  <- slow" if med > SLOW_MS else ""
    print(f"  {name:58} {med:9.1f} {worst:9.1f}  {note}{flag}", flush=True)


def functions(portal: Portal, total: int) -> None:
    snap = portal.plane.snapshot
    labels = rv.Labels(snap.sites, frozenset({SITE}))
    print(f"\n{'view functions alone (uncached, once each)':60} {'ms':>9}")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("routes: first page", lambda: rv.route_page(snap, SITE, None, 0, rv.DEFAULT_ROWS)),
        ("routes: a page half way", lambda: rv.route_page(snap, SITE, None, total // 2, 50)),
        ("inconsistencies of the site", lambda: rv.consistency(snap, SITE)),
    ]
    if hasattr(rv, "SiteRoutes"):  # the site's reports over sorted arrays of prefixes
        sessions = portal.plane.routes.session_prefixes
        calls.append(
            (
                "no alternate source (one session; no PNI/IX)",
                lambda: rv.SiteRoutes(snap, SITE, sessions).sources(),
            )
        )
    else:
        lonely = getattr(rv, "lonely")  # noqa: B009 - the version before SiteRoutes
        calls.append(("no alternate source", lambda: lonely(snap, SITE, labels)))
    for name, call in calls:
        started = time.perf_counter()
        call()
        print(f"  {name:58} {(time.perf_counter() - started) * 1000:9.1f}", flush=True)


def timed_get(c: TestClient, params: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    r = c.get("/portal/routes", params=params)
    took = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{params}: {r.status_code} {r.text[:300]}")
    return took, len(r.content)


def pages(c: TestClient, churn_a1: Churn, churn_b1: Churn, repeat: int, total: int) -> None:
    print(f"\n{'page (as the partner)':60} {'median ms':>9} {'max ms':>9}")
    line("site page: first load (nothing kept yet)", [timed_get(c, {"site": SITE})[0]])
    for name, params in (
        ("site page", {"site": SITE}),
        ("site page ?check=lonely", {"site": SITE, "check": "lonely"}),
        ("site page ?check=consistency", {"site": SITE, "check": "consistency"}),
        ("a page half way", {"site": SITE, "offset": total // 2}),
        ("a prefix filter (/8)", {"site": SITE, "q": "60.0.0.0/8"}),
    ):
        cold, warm = [], []
        size = 0
        for _ in range(max(repeat // 2, 2)):
            churn_a1()
            took, size = timed_get(c, params)
            cold.append(took)
        warm = [timed_get(c, params)[0] for _ in range(repeat)]
        line(f"{name}: cold (a1 changed)", cold, f"{size // 1024} KiB")
        line(f"{name}: warm (reload)", warm)
    for name, params in (
        ("site page", {"site": SITE}),
        ("site page ?check=lonely", {"site": SITE, "check": "lonely"}),
    ):
        cold = []
        for _ in range(max(repeat // 2, 2)):
            churn_b1()
            cold.append(timed_get(c, params)[0])
        line(f"{name}: cold (b1 changed: another site)", cold)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--v4", type=int, default=900_000, help="IPv4 prefixes in the full table")
    ap.add_argument("--v6", type=int, default=0, help="IPv6 prefixes in the full table")
    ap.add_argument("--repeat", type=int, default=5, help="warm loads per page")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("localcast").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="portal-routes-bench-") as tmp:
        started = time.perf_counter()
        table = texts(args.v4, args.v6)
        print(f"full table: {args.v4:,} IPv4 + {args.v6:,} IPv6 prefixes", flush=True)
        portal = portal_plane(Path(tmp))
        try:
            took = feed(portal, table)
            for name, s in took.items():
                print(f"  fed {name}: {s:.1f} s", flush=True)
            print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
            functions(portal, len(table))
            churn = Churn(portal, "b1", "127.0.0.5", 64502)
            churn_a1 = Churn(portal, "a1", "127.0.0.3", 64501)
            with portal.client() as c:
                login(c, ALICE)
                pages(c, churn_a1, churn, args.repeat, len(table))
            print(f"\n{'route feed':60} {'median ms':>9} {'max ms':>9}")
            line(
                "one delta to a1 (2 sessions at full tables)",
                [churn_a1() for _ in range(args.repeat)],
            )
            line("one delta to b1 (1 session, 10% table)", [churn() for _ in range(args.repeat)])
        finally:
            portal.plane.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
