"""Proactive fill end to end, as real processes on loopback.

Two ISP sites of two embedded appliances each, one IX site, the origin: the
control plane plans (forecast -> placement -> manifests), every appliance's
fill agent fetches its manifest's files from the ranked sources (peer > tier
> origin) and reports its transfers, the reporters report inventory. Per-link
accounting (``GET /v1/fill/links``) then shows each file crossed
origin -> IX once and IX -> each ISP site once, the rest by peer fill; and
steering sends the ISP's clients to their embedded site.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from control_fixtures import synthetic_title

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.core.inventory import required_files
from localcast.devstack import LocalStack, NodeSpec, StackSpec

ALWAYS = "00:00-24:00"  # the test runs at any hour: every site's window is open
SPEC = StackSpec(
    partners=(PartnerSpec(name="isp-a", asns=[64500]), PartnerSpec(name="isp-b", asns=[64501])),
    sites=(
        SiteSpec(
            id="isp-a",
            kind=SiteKind.EMBEDDED,
            partner="isp-a",
            lat=48.85,
            lon=2.35,
            tz="Europe/Paris",
            prefixes=["127.0.1.0/24"],
            fill_window=ALWAYS,
        ),
        SiteSpec(
            id="isp-b",
            kind=SiteKind.EMBEDDED,
            partner="isp-b",
            lat=40.42,
            lon=-3.70,
            tz="Europe/Madrid",
            prefixes=["127.0.3.0/24"],
            fill_window=ALWAYS,
        ),
        SiteSpec(
            id="ix",
            kind=SiteKind.IX,
            lat=52.37,
            lon=4.90,
            tz="Europe/Amsterdam",
            fill_window=ALWAYS,
        ),
        SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="America/New_York"),
    ),
    appliances=(
        NodeSpec("a1", "isp-a"),
        NodeSpec("a2", "isp-a"),
        NodeSpec("b1", "isp-b"),
        NodeSpec("b2", "isp-b"),
        NodeSpec("ix1", "ix", disk_gb=100.0),
        NodeSpec("o1", "origin", disk_gb=1000.0, serves_origin=True),
    ),
    # wait for a nearer copy longer than a transfer takes; no demand history yet, so a small
    # catalog is given a floor of demand that puts it on every appliance (peer fill happens)
    control={"fill_wait_s": 60.0, "fill_floor_sessions": 1},
)
TITLES = ("fa", "fb", "fc")


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Any]]:
    root: Path = tmp_path_factory.mktemp("fill-e2e")
    with LocalStack(root, SPEC, fill=True, fill_refresh_s=0.5) as stack:
        titles = {t: synthetic_title(t, segments=4) for t in TITLES}
        for title in titles.values():
            title.write(stack.origin)
        holders = stack.fill_titles(TITLES, timeout_s=90)
        yield stack, (titles, holders)


def _links(stack: LocalStack) -> list[dict[str, Any]]:
    resp = httpx.get(f"{stack.control_url}/v1/fill/links", params={"detail": "true"})
    resp.raise_for_status()
    links: list[dict[str, Any]] = resp.json()
    return links


def test_every_appliance_holds_the_catalog_verified(filled: tuple[LocalStack, Any]) -> None:
    stack, (titles, holders) = filled
    for tid in TITLES:
        assert holders[tid] == ["a1", "a2", "b1", "b2", "ix1"]
    for aid in ("a1", "a2", "b1", "b2", "ix1"):
        store = stack.appliances[aid].store
        for tid, title in titles.items():
            want = required_files(title.manifest)
            on_disk = {p.name for p in (store / tid).iterdir()}
            assert want <= on_disk, (aid, tid, want - on_disk)
            for name in want:  # byte for byte what the origin has
                assert (store / tid / name).read_bytes() == title.files[name]
        assert not list(store.glob(".fill/**/*.part")), "no partial file left in the store"


def test_each_file_crossed_each_link_once(filled: tuple[LocalStack, Any]) -> None:
    stack, (titles, _) = filled
    files = {f"{tid}/{name}" for tid, t in titles.items() for name in required_files(t.manifest)}
    by_link = {(link["from_site"], link["to_site"]): link for link in _links(stack)}
    # origin -> IX once per file; IX -> each ISP site once per file; inside each ISP site one
    # peer copy per file (two appliances: the leader got it over the tier link)
    for pair in (("origin", "ix"), ("ix", "isp-a"), ("ix", "isp-b"), ("isp-a", "isp-a")):
        link = by_link.get(pair)
        assert link is not None, f"no fill over {pair}: {sorted(by_link)}"
        crossings: dict[str, int] = link["crossings"]
        assert set(crossings) == files, pair
        assert set(crossings.values()) == {1}, (pair, crossings)
    assert set(by_link[("isp-b", "isp-b")]["crossings"].values()) == {1}
    # nothing went from the origin straight into an ISP, nor between the two ISPs
    assert not {
        ("origin", "isp-a"),
        ("origin", "isp-b"),
        ("isp-a", "isp-b"),
        ("isp-b", "isp-a"),
    } & set(by_link)
    sizes = sum(len(t.files[n]) for t in titles.values() for n in required_files(t.manifest))
    assert by_link[("origin", "ix")]["bytes"] == sizes


def test_progress_and_steering_after_the_fill(filled: tuple[LocalStack, Any]) -> None:
    stack, _ = filled
    progress = httpx.get(f"{stack.control_url}/v1/fill/progress").json()
    rows = {a["appliance_id"]: a for site in progress["sites"] for a in site["appliances"]}
    assert set(rows) == {"a1", "a2", "b1", "b2", "ix1"}
    for aid, row in rows.items():
        assert row["complete"] and row["titles_held"] == len(TITLES), (aid, row)
        assert row["alarm"] is None
    assert rows["a1"]["fill_bytes"]["origin"] == 0 and rows["ix1"]["fill_bytes"]["origin"] > 0
    title = httpx.get(f"{stack.control_url}/v1/titles/fa").json()
    assert {"isp-a", "isp-b", "ix"} <= set(title["live_regions"])
    # a client of ISP A plays from ISP A's embedded appliances, both holding the title
    inside = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.1.10"))
    with inside:
        resp = inside.post(
            f"{stack.control_url}/v1/playback", json={"title_id": "fa", "profile_id": "p1"}
        )
    assert resp.status_code == 200, resp.text
    first_two = [p["appliance_id"] for p in resp.json()["pathways"][:2]]
    assert sorted(first_two) == ["a1", "a2"]


def test_synthetic_titles_are_distinct(filled: tuple[LocalStack, Any]) -> None:
    """Guard for the link test: files of different titles never share a name."""
    _, (titles, _) = filled
    names = [n for t in titles.values() for n in t.files]
    assert len(names) == len(set(names))
