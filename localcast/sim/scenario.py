"""Generated simulation documents: a national-scale fleet for benchmarks and tests.

:func:`national` lays out ``sites`` sites: one origin, a few IX sites (peering
with every ISP, no routes: the peering default), and per ISP one PNI site
hearing the ISP's aggregate plus embedded sites each hearing a more specific
part of it over BGP. Subscribers are split between ISPs by a Zipf law (a few
big ISPs, many small ones) and evenly over each ISP's embedded sites.
"""

from __future__ import annotations

from typing import Any

_ZONES = (
    ("Europe/Paris", 48.86, 2.35),
    ("Europe/Berlin", 52.52, 13.40),
    ("Europe/London", 51.51, -0.13),
    ("Europe/Madrid", 40.42, -3.70),
    ("Europe/Rome", 41.90, 12.50),
    ("Europe/Warsaw", 52.23, 21.01),
    ("Europe/Stockholm", 59.33, 18.07),
    ("Europe/Amsterdam", 52.37, 4.90),
)


def national(
    subscribers: int = 1_000_000,
    titles: int = 10_000,
    sites: int = 100,
    isps: int = 10,
    ix_sites: int = 5,
    seed: int = 1,
    days: int = 1,
    embedded_disk_tb: float = 30.0,
    embedded_gbps: float = 20.0,
    embedded_per_site: int = 2,
) -> dict[str, Any]:
    """A simulation document (see the module text)."""
    per_isp_sites = max(2, (sites - 1 - ix_sites) // isps)
    weights = [1.0 / (i + 1) for i in range(isps)]
    total_w = sum(weights)
    isp_docs: list[dict[str, Any]] = []
    site_docs: list[dict[str, Any]] = [
        {"id": "origin", "kind": "origin", "lat": 37.4, "lon": -122.1, "tz": "UTC"}
    ]
    for x in range(ix_sites):
        tz, lat, lon = _ZONES[x % len(_ZONES)]
        site_docs.append(
            {
                "id": f"ix-{x:02d}",
                "kind": "ix",
                "lat": lat,
                "lon": lon,
                "tz": tz,
                "link_gbps": 400.0,
                "appliances": [{"count": 4, "disk_tb": 200.0, "gbps": 100.0}],
            }
        )
    left = sites - len(site_docs)
    for i in range(isps):
        isp_id = f"isp-{i:02d}"
        tz, lat, lon = _ZONES[i % len(_ZONES)]
        n_sites = min(per_isp_sites, left - (isps - i - 1) * 2)
        if i == isps - 1:
            n_sites = left
        left -= n_sites
        n_emb = max(1, n_sites - 1)
        subs = int(subscribers * weights[i] / total_w)
        agg = f"10.{i}.0.0/16"
        prefixes = []
        for e in range(n_emb):
            prefixes.append(
                {
                    "prefix": f"10.{i}.{(256 >> (_len_for(n_emb) - 16)) * e}.0/{_len_for(n_emb)}",
                    "subscribers": subs // n_emb,
                }
            )
        isp_docs.append(
            {
                "id": isp_id,
                "asn": 64600 + i,
                "tz": tz,
                "transit_gbps": 100.0,
                "prefixes": prefixes,
            }
        )
        if n_sites > n_emb:
            site_docs.append(
                {
                    "id": f"{isp_id}-pni",
                    "kind": "pni",
                    "isp": isp_id,
                    "lat": lat,
                    "lon": lon,
                    "tz": tz,
                    "region": isp_id,
                    "prefixes": [agg],
                    "link_gbps": 200.0,
                    "appliances": [{"count": 2, "disk_tb": 120.0, "gbps": 100.0}],
                }
            )
        for e in range(n_emb):
            site_docs.append(
                {
                    "id": f"{isp_id}-e{e:02d}",
                    "kind": "embedded",
                    "isp": isp_id,
                    "lat": lat + 0.1 * e,
                    "lon": lon + 0.1 * e,
                    "tz": tz,
                    "region": isp_id,
                    "prefixes": [prefixes[e]["prefix"]],
                    "link_gbps": 100.0,
                    "appliances": [
                        {
                            "count": embedded_per_site,
                            "disk_tb": embedded_disk_tb,
                            "gbps": embedded_gbps,
                            "class": "flash",
                        }
                    ],
                }
            )
    return {
        "sim": {"seed": seed, "days": days, "start": "2025-03-03"},
        "isps": isp_docs,
        "sites": site_docs,
        "catalog": {"titles": titles, "releases_per_day": max(1, titles // 2000)},
        "demand": {"zipf": 0.9, "sessions_per_subscriber": 1.0},
    }


def _len_for(parts: int) -> int:
    """The prefix length that cuts a /16 into at least ``parts`` equal parts, within /24."""
    bits = max(0, (parts - 1).bit_length())
    return min(24, 16 + bits)
