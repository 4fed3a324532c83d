"""The fill manifest an appliance's agent fetches (``GET /v1/appliances/{id}/fill``).

Built per request from the steering snapshot and the fill view, with pure
core functions: the site's window (:mod:`localcast.core.fillwindow`), the
rate cap of the appliance's class or override, per title whether it is
urgent (a release due before the next window), its files and its ranked
sources (:func:`localcast.core.fillsources.fill_sources`). Each source
carries a base URL signed with the **fill** keyring over ``/<title_id>``,
so ``base_url + <file name>`` is fetchable as is.

Sources are the registered appliances that are alive now (the target is
always a node, so leaders are chosen among live planners). ``holding`` is
per title: COMPLETE when the appliance holds the whole title, PARTIAL when
it holds some of its files. Titles come urgent first, then by expected
demand in the site's region, then by id. Outside the window ``rate_bps`` is
0, or the urgent rate when an urgent title is listed: then only the titles
marked ``urgent`` are to be fetched now. No I/O.
"""

from __future__ import annotations

import math
from typing import Any

from localcast.control.fill_state import FillView
from localcast.core.fillsources import EscalationPolicy, FillNode, Holding, fill_sources
from localcast.core.fillwindow import (
    closes_at,
    fill_rate,
    is_open,
    is_urgent,
    next_open,
    parse_window,
    rate_cap,
)
from localcast.core.fleet import Appliance, ApplianceState, CatalogTitle, FleetSnapshot
from localcast.core.health import liveness
from localcast.core.tokens import Keyring, signed_path


def fill_node(snapshot: FleetSnapshot, a: Appliance) -> FillNode:
    site = snapshot.sites[a.site_id]
    return FillNode(a.id, a.site_id, site.kind, site.lat, site.lon)


def source_nodes(snapshot: FleetSnapshot, target: Appliance, now: float) -> list[FillNode]:
    """The target and every registered appliance alive now (dead ones serve no fill)."""
    return [
        fill_node(snapshot, a)
        for a in snapshot.appliances.values()
        if a.site_id in snapshot.sites
        and (
            a.id == target.id
            or (a.state is ApplianceState.REGISTERED and liveness(a.health, now).alive)
        )
    ]


def holding_of(snapshot: FleetSnapshot, nodes: list[FillNode], title_id: str) -> dict[str, Holding]:
    out: dict[str, Holding] = {}
    for n in nodes:
        a = snapshot.appliances[n.appliance_id]
        if title_id in a.titles:
            out[n.appliance_id] = Holding.COMPLETE
        elif title_id in a.titles_partial:
            out[n.appliance_id] = Holding.PARTIAL
    return out


def required_sizes(entry: CatalogTitle) -> dict[str, int]:
    """File name -> size of the files an appliance must hold for the title, manifest order."""
    return {f.name: f.size for f in entry.manifest.files() if f.name in entry.required_files}


def _finite(t: float | None) -> float | None:
    return None if t is None or math.isinf(t) else t


def agent_manifest(
    snapshot: FleetSnapshot,
    view: FillView,
    appliance_id: str,
    now: float,
    fill_keys: Keyring,
    token_ttl_s: int,
    policy: EscalationPolicy,
) -> dict[str, Any]:
    """The manifest body (see ``fill_api``); ``appliance_id`` has a stored manifest."""
    target = snapshot.appliances[appliance_id]
    site = snapshot.sites[target.site_id]
    stored = view.manifests[appliance_id]
    window = parse_window(site.fill_window, site.tz)
    window_open = is_open(window, now)
    cap = rate_cap(target.appliance_class, target.fill_bps)
    nodes = source_nodes(snapshot, target, now)
    me = fill_node(snapshot, target)
    expires = int(now) + token_ttl_s
    demand = view.forecast.get(site.region_id, {})
    ranked: list[tuple[tuple[bool, float, str], dict[str, Any]]] = []
    for title_id in stored.manifest.titles:
        entry = snapshot.catalog.get(title_id)
        if entry is None:  # left the catalog since the plan
            continue
        release = view.releases.get(title_id)
        urgent = is_urgent(release.release_at if release else None, window, now)
        planned = view.planned.get(title_id, frozenset())
        sources = fill_sources(
            me, title_id, nodes, holding_of(snapshot, nodes, title_id), planned, policy
        )
        token_path = signed_path(fill_keys, f"/{title_id}", expires) + "/"
        order = (not urgent, -demand.get(title_id, 0.0), title_id)
        ranked.append(
            (
                order,
                {
                    "title_id": title_id,
                    "urgent": urgent,
                    "release_at": release.release_at if release else None,
                    "complete": title_id in target.titles,
                    "files": [
                        {"name": name, "size": size} for name, size in required_sizes(entry).items()
                    ],
                    "sources": [
                        {
                            "appliance_id": s.appliance_id,
                            "site_id": s.site_id,
                            "kind": s.kind.value,
                            "holding": s.holding.value,
                            "hop": s.hop,
                            "base_url": snapshot.appliances[s.appliance_id].base_url.rstrip("/")
                            + token_path,
                        }
                        for s in sources
                    ],
                },
            )
        )
    titles = [t for _, t in sorted(ranked, key=lambda r: r[0])]
    any_urgent = any(t["urgent"] for t in titles)
    return {
        "appliance_id": appliance_id,
        "site_id": site.id,
        "version": stored.manifest.version,
        "day": stored.manifest.day,
        "generated_at": stored.generated_at,
        "now": now,
        "window": {
            "spec": window.spec,
            "tz": window.tz,
            "open": window_open,
            "always_open": window.always_open,
            "next_open_at": _finite(next_open(window, now)),
            "closes_at": _finite(closes_at(window, now)),
        },
        "rate_bps": fill_rate(window, cap, now, any_urgent),
        "cap_bps": cap,
        "capacity_bytes": target.disk_bytes,
        "escalation": {"wait_s": policy.wait_s, "max_tier_sites": policy.max_tier_sites},
        "titles": titles,
    }
