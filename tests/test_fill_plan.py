"""Planning the fill over a fleet: which regions' demand each site places by (fallback demand)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from control_fixtures import appliance, site, snapshot

from localcast.core.fillplan import (
    FillPlan,
    PlanParams,
    fallback_regions,
    placement_order,
    plan_fill,
    site_demand,
    title_sizes,
)
from localcast.core.fleet import FleetSnapshot, Site, SiteKind
from localcast.core.forecast import DAY_S, DemandRecord
from localcast.core.placement import PlacementAppliance, PlacementParams, place_site

TODAY = 20_000
NOW = TODAY * DAY_S + 3600.0
TITLES = tuple(f"t{i:02d}" for i in range(1, 13))  # equal sizes: ids of one length
FULL = PlanParams(placement=PlacementParams(fill_ratio=1.0))


def fleet(sites: list[Site], rooms: dict[str, int]) -> FleetSnapshot:
    """One appliance per site named in ``rooms``, holding that many titles."""
    bare = snapshot(sites, [], TITLES)
    size = title_sizes(bare.catalog)[TITLES[0]]
    assert set(title_sizes(bare.catalog).values()) == {size}
    apps = [
        replace(appliance(f"{sid}-1", sid, titles=()), disk_bytes=n * size)
        for sid, n in rooms.items()
    ]
    return snapshot(sites, apps, TITLES)


def demand(region: str, sessions: dict[str, float]) -> list[DemandRecord]:
    return [DemandRecord(TODAY - 1, region, t, n) for t, n in sessions.items()]


def held(plan: FillPlan, site_id: str) -> frozenset[str]:
    """The titles the plan puts on the site's appliances."""
    return frozenset().union(
        *(m.titles for aid, m in plan.manifests.items() if aid.startswith(site_id + "-"))
    )


def test_fallback_regions_follow_steering_reach() -> None:
    """Embedded first, then PNI, then IX. A PNI whose prefix covers an embedded site's is
    that site's region's fallback; an IX over peering is every earlier site's; an IX with
    prefixes, or one that speaks BGP, only by overlap; disjoint sites are nobody's."""
    north = replace(site("emb-a", SiteKind.EMBEDDED, ("10.1.0.0/24",)), region="north")
    sites = [
        site("ix-x", SiteKind.IX),
        site("pni-a", SiteKind.PNI, ("10.1.0.0/16",)),
        site("emb-b", SiteKind.EMBEDDED, ("10.2.0.0/24",)),
        north,
        site("ix-p", SiteKind.IX, ("10.9.0.0/16",)),
        site("pni-v6", SiteKind.PNI, ("2001:db8::/32",)),
        site("emb-v6", SiteKind.EMBEDDED, ("2001:db8:1::/48",)),
    ]
    ordered = placement_order(sites)
    assert [s.id for s in ordered] == [
        "emb-a",
        "emb-b",
        "emb-v6",
        "pni-a",
        "pni-v6",
        "ix-p",
        "ix-x",
    ]
    got = fallback_regions(ordered, frozenset())
    assert got == {
        "emb-a": (),
        "emb-b": (),
        "emb-v6": (),
        "pni-a": ("north",),
        "pni-v6": ("emb-v6",),
        "ix-p": (),
        "ix-x": ("emb-b", "emb-v6", "ix-p", "north", "pni-a", "pni-v6"),
    }
    assert fallback_regions(ordered, frozenset({"ix-x"}))["ix-x"] == ()


def test_an_ix_holds_what_the_embedded_sites_miss() -> None:
    """Demand is counted at the embedded site (its clients' best); the IX behind it, with
    room for four titles, places the next four by that demand, not the catalog's first four
    (which the embedded site holds already: before, the IX had no demand and cold-filled
    by id)."""
    sites = [
        site("emb", SiteKind.EMBEDDED, ("10.1.0.0/24",)),
        site("ix", SiteKind.IX),
        site("origin", SiteKind.ORIGIN),
    ]
    snap = fleet(sites, {"emb": 4, "ix": 4})
    history = demand("emb", {t: 100.0 - i for i, t in enumerate(TITLES)})
    plan = plan_fill(snap, history, [], {}, NOW, FULL)
    assert held(plan, "emb") == set(TITLES[:4])
    assert held(plan, "ix") == set(TITLES[4:8])
    assert [p.site_id for p in plan.placements] == ["emb", "ix"]  # by id, as before
    assert plan.forecast["ix"] == {}  # nobody's best site: no demand of its own


def test_spilled_demand_ranks_held_titles_after_the_missed_ones() -> None:
    """``spill_share`` of a held title's demand reaches the fallback: with room left after
    the missed titles, the IX takes the most demanded held ones (not the lowest ids)."""
    sites = [site("emb", SiteKind.EMBEDDED, ("10.1.0.0/24",)), site("ix", SiteKind.IX)]
    snap = fleet(sites, {"emb": 4, "ix": 10})
    ranked = ("t04", "t03", "t02", "t01", "t05", "t06", "t07", "t08", "t09", "t10")
    history = demand("emb", {t: 100.0 - i for i, t in enumerate(ranked)})
    plan = plan_fill(snap, history, [], {}, NOW, FULL)
    ix = next(p for p in plan.placements if p.site_id == "ix")
    assert ix.left_out == ()
    order = list(ix.replicas)  # placement order: most demand per byte first
    assert order[:6] == ["t05", "t06", "t07", "t08", "t09", "t10"]
    assert order[6:10] == ["t04", "t03", "t02", "t01"]  # spilled, by their demand
    none = plan_fill(snap, history, [], {}, NOW, replace(FULL, spill_share=0.0))
    ix0 = next(p for p in none.placements if p.site_id == "ix")
    assert list(ix0.replicas)[:6] == order[:6]
    with pytest.raises(ValueError, match="spill_share"):
        PlanParams(spill_share=1.5)


def test_a_region_shared_by_two_sites_counts_what_each_misses() -> None:
    """Two embedded sites of one region share its clients: a title only one holds is
    missed by half of them, so it weighs half at the IX. Demand halves per rank: the IX
    (three titles) takes t03 (held by one: 1/2 x 512), t04 (1/2 x 256) and t05 (128)."""
    north = [
        replace(site("emb-a", SiteKind.EMBEDDED, ("10.1.0.0/24",)), region="north"),
        replace(site("emb-b", SiteKind.EMBEDDED, ("10.1.1.0/24",)), region="north"),
    ]
    snap = fleet([*north, site("ix", SiteKind.IX)], {"emb-a": 2, "emb-b": 4, "ix": 3})
    history = demand("north", {t: 2.0 ** (12 - i) for i, t in enumerate(TITLES, start=1)})
    plan = plan_fill(snap, history, [], {}, NOW, FULL)
    assert held(plan, "emb-a") == {"t01", "t02"}
    assert held(plan, "emb-b") == {"t01", "t02", "t03", "t04"}
    assert held(plan, "ix") == {"t03", "t04", "t05"}


def test_sites_that_are_nobodys_fallback_place_as_before() -> None:
    """An embedded site and a PNI of disjoint prefixes: each places by its region's forecast
    exactly as :func:`place_site` does with it."""
    sites = [
        site("emb", SiteKind.EMBEDDED, ("10.1.0.0/24",)),
        site("pni", SiteKind.PNI, ("10.2.0.0/24",)),
    ]
    snap = fleet(sites, {"emb": 3, "pni": 5})
    history = demand("emb", {t: 50.0 - i for i, t in enumerate(TITLES)})
    history += demand("pni", {t: float(i + 1) for i, t in enumerate(TITLES)})
    plan = plan_fill(snap, history, [], {}, NOW, FULL)
    sizes = title_sizes(snap.catalog)
    for p in plan.placements:
        own = site_demand(plan.forecast[p.site_id], sizes, 0.0)
        apps = [
            PlacementAppliance(
                f"{p.site_id}-1", p.site_id, snap.appliances[f"{p.site_id}-1"].disk_bytes
            )
        ]
        assert p == place_site(p.site_id, apps, sizes, own, FULL.placement)


def test_listed_titles_keep_their_room_unless_clearly_beaten() -> None:
    """The site lists t01..t03; t04 is asked a little more than t03 (not 1.5 times): the
    manifest stays. Asked twice as much, t04 takes t03's room."""
    sites = [site("emb", SiteKind.EMBEDDED, ("10.1.0.0/24",))]
    snap = fleet(sites, {"emb": 3})
    first = plan_fill(snap, demand("emb", {"t01": 50, "t02": 40, "t03": 30}), [], {}, NOW, FULL)
    assert held(first, "emb") == {"t01", "t02", "t03"}
    later = NOW + DAY_S
    noise = [
        DemandRecord(TODAY, "emb", t, n)
        for t, n in {"t01": 50, "t02": 40, "t03": 30, "t04": 36}.items()
    ]
    kept = plan_fill(snap, noise, [], first.manifests, later, FULL)
    assert held(kept, "emb") == {"t01", "t02", "t03"} and kept.churn == 0
    assert held(
        plan_fill(snap, noise, [], first.manifests, later, replace(FULL, keep_bonus=0.0)), "emb"
    ) == {"t01", "t02", "t04"}
    rising = [
        DemandRecord(TODAY, "emb", t, n)
        for t, n in {"t01": 50, "t02": 40, "t03": 30, "t04": 60}.items()
    ]
    moved = plan_fill(snap, rising, [], first.manifests, later, FULL)
    assert held(moved, "emb") == {"t01", "t02", "t04"} and moved.churn == 1
    with pytest.raises(ValueError, match="keep_bonus"):
        PlanParams(keep_bonus=-0.5)
