"""Small simulation documents for the simulator's tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from localcast.sim.config import SimSpec, parse_sim

T0 = 1740960000.0  # 2025-03-03T00:00:00Z, the default start


def small_doc(
    *,
    seed: int = 3,
    days: int = 1,
    subscribers: int = 2000,
    titles: int = 60,
    disk_tb: float = 0.2,
    gbps: float = 100.0,
    appliances: int = 1,
    equal_titles: bool = False,
    zipf: float = 0.9,
    slot_minutes: int = 30,
) -> dict[str, Any]:
    """One ISP (two embedded sites over BGP and a PNI), an IX, the origin."""
    duration = [60.0, 60.0] if equal_titles else [20.0, 120.0]
    return {
        "sim": {"seed": seed, "days": days, "slot_minutes": slot_minutes},
        "isps": [
            {
                "id": "isp-a",
                "asn": 64501,
                "tz": "Europe/Paris",
                "transit_gbps": 50.0,
                "prefixes": [
                    {"prefix": "10.1.0.0/24", "subscribers": subscribers // 2, "region": "n"},
                    {"prefix": "10.1.1.0/24", "subscribers": subscribers // 2, "region": "s"},
                ],
            },
            {
                "id": "isp-b",
                "asn": 64502,
                "tz": "Europe/Berlin",
                "prefixes": [{"prefix": "10.2.0.0/24", "subscribers": subscribers // 4}],
            },
        ],
        "sites": [
            {
                "id": "a-par",
                "kind": "embedded",
                "isp": "isp-a",
                "lat": 48.85,
                "lon": 2.35,
                "tz": "Europe/Paris",
                "prefixes": ["10.1.0.0/24"],
                "link_gbps": 100.0,
                "appliances": [{"count": appliances, "disk_tb": disk_tb, "gbps": gbps}],
            },
            {
                "id": "a-mrs",
                "kind": "embedded",
                "isp": "isp-a",
                "lat": 43.3,
                "lon": 5.37,
                "tz": "Europe/Paris",
                "prefixes": ["10.1.1.0/24"],
                "appliances": [{"count": appliances, "disk_tb": disk_tb, "gbps": gbps}],
            },
            {
                "id": "a-pni",
                "kind": "pni",
                "isp": "isp-a",
                "lat": 48.9,
                "lon": 2.4,
                "tz": "Europe/Paris",
                "prefixes": ["10.1.0.0/16"],
                "bgp": False,
                "appliances": [{"count": 1, "disk_tb": 2 * disk_tb, "gbps": gbps}],
            },
            {
                "id": "ix-fra",
                "kind": "ix",
                "lat": 50.1,
                "lon": 8.7,
                "tz": "Europe/Berlin",
                "appliances": [{"count": 2, "disk_tb": 2 * disk_tb, "gbps": gbps}],
            },
            {"id": "origin", "kind": "origin", "lat": 37.4, "lon": -122.1},
        ],
        "catalog": {"titles": titles, "duration_minutes": duration, "releases_per_day": 1},
        "demand": {"zipf": zipf, "sessions_per_subscriber": 1.0},
    }


def spec_of(doc: dict[str, Any]) -> SimSpec:
    return parse_sim(copy.deepcopy(doc))


def without_timings(report: dict[str, Any]) -> str:
    r = copy.deepcopy(report)
    r["run"].pop("counters", None)
    return json.dumps(r, sort_keys=True)
