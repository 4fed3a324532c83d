"""The routes API in process: route reports from appliances change steering; reading routes.

Topology (:data:`control_fixtures.TOPOLOGY`): embedded site a-par (a1, a2),
PNI site b-lys (b1), IX site ix-fra (ix1, no route source: peering default),
origin. Clients in 203.0.113.0/24 match no configured prefix, so until an
appliance hears a route for them they go to the IX.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from control_fixtures import (
    FakeClock,
    SyntheticTitle,
    bring_up,
    client_for,
    make_plane,
    provision,
    synthetic_title,
)
from fastapi.testclient import TestClient

from localcast.control import route_feed
from localcast.control.route_schemas import RoutesReport
from localcast.control.service import ControlPlane
from localcast.core.rib import prefix_text

ALL = ("a1", "a2", "b1", "ix1", "o1")
CLIENT = "203.0.113.7"
NET = "203.0.113.0/24"


@dataclass
class Env:
    plane: ControlPlane
    clock: FakeClock
    title: SyntheticTitle
    creds: dict[str, str]
    client: TestClient


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = FakeClock()
    plane = make_plane(tmp_path, clock)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    client = client_for(plane, CLIENT)
    bring_up(client, creds, {a: [title] for a in ALL})
    yield Env(plane, clock, title, creds, client)
    plane.close()


PEER = "127.0.0.2"


def route(*prefixes: str, as_path: tuple[int, ...] = (64501,), **extra: Any) -> dict[str, Any]:
    """One announce group, as :mod:`localcast.bgp.relay` sends it."""
    return {
        "prefixes": list(prefixes),
        "next_hop": "192.0.2.1",
        "as_path": list(as_path),
        "as_path_length": len(as_path),
        "origin_as": as_path[-1] if as_path else 64501,
        "origin": "igp",
        "med": None,
        "local_pref": None,
        "communities": ["64501:100"],
        "large_communities": [],
        "atomic_aggregate": False,
        **extra,
    }


def session(peer: str = PEER, state: str = "established", **extra: Any) -> dict[str, Any]:
    """The relay's session object: NeighborStatus.as_dict() plus neighbor, local_as, ebgp."""
    up = state == "established"
    return {
        "neighbor": peer,
        "local_as": 65001,
        "ebgp": True,
        "address": peer,
        "remote_as": 64501,
        "description": "isp",
        "state": state,
        "state_since": 990.0,
        "uptime_s": 10.0 if up else None,
        "last_error": None,
        "peer_router_id": "10.0.0.1" if up else None,
        "hold_time_s": 90 if up else None,
        "families": ["ipv4", "ipv6"] if up else [],
        "received": 1,
        "accepted": 1,
        "filtered": {},
        "rejected_total": {},
        "max_prefix_alarm": False,
        **extra,
    }


def full(seq: int, *groups: dict[str, Any], peer: str = PEER, **sess: Any) -> dict[str, Any]:
    return {
        "kind": "full",
        "seq": seq,
        "base_seq": None,
        "sent_at": 1000.0,
        "session": session(peer, **sess),
        "announce": list(groups),
        "withdraw": [],
    }


def delta(
    seq: int,
    base_seq: int,
    announce: list[dict[str, Any]] = (),  # type: ignore[assignment]
    withdraw: list[str] = (),  # type: ignore[assignment]
    peer: str = PEER,
    **sess: Any,
) -> dict[str, Any]:
    return {
        "kind": "delta",
        "seq": seq,
        "base_seq": base_seq,
        "sent_at": 1000.0 + seq,
        "session": session(peer, **sess),
        "announce": list(announce),
        "withdraw": list(withdraw),
    }


def post(env: Env, aid: str, body: dict[str, Any], secret: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {secret or env.creds[aid]}"}
    return env.client.post(f"/v1/appliances/{aid}/routes", json=body, headers=headers)


def ok(env: Env, aid: str, body: dict[str, Any]) -> dict[str, Any]:
    r = post(env, aid, body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    assert out["resync"] is False, out
    return out


def explain(env: Env, ip: str = CLIENT) -> dict[str, Any]:
    r = env.client.get("/v1/steering/explain", params={"ip": ip, "title": "t1"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def first(env: Env, ip: str = CLIENT) -> str:
    pathways = explain(env, ip)["pathways"]
    return str(pathways[0]["appliance_id"])


# --- ingest changes steering ---------------------------------------------------------------------


def test_full_delta_withdraw_and_session_down_move_clients(env: Env) -> None:
    assert first(env) == "ix1"  # nobody heard a route for the client: peering default
    out = ok(env, "a1", full(1, route(NET)))
    assert out["seq"] == 1 and out["routes"] == 1
    assert first(env) == "a1"  # embedded appliance heard the client's prefix
    d = explain(env)
    excluded = {x["appliance_id"]: x["reason"] for x in d["excluded"]}
    assert "heard no route covering" in excluded["a2"]
    # a real playback session steers there too
    r = env.client.post("/v1/playback", json={"title_id": "t1", "profile_id": "p1"})
    assert r.status_code == 200, r.text
    assert r.json()["pathways"][0]["appliance_id"] == "a1"

    ok(env, "a1", delta(2, 1, withdraw=[NET]))
    assert first(env) == "ix1"  # withdrawn: back to peering

    ok(env, "a1", delta(3, 2, announce=[route("203.0.112.0/23")]))
    assert first(env) == "a1"  # a covering /23 brings it back
    # the session goes down: its routes withdrawn, its state reported
    # (the relay's report of a session that went down: no longer established)
    ok(env, "a1", delta(4, 3, state="idle", accepted=0, last_error="hold timer expired"))
    assert first(env) == "ix1"
    page = env.client.get("/v1/routes", params={"appliance": "a1"}).json()
    assert page["total"] == 0
    (a1,) = page["appliances"]
    (s,) = a1["sessions"]
    assert s["seq"] == 4 and s["state"] == "idle" and s["neighbor"] == PEER
    assert s["last_error"] == "hold timer expired" and s["sent_at"] == 1004.0


def test_route_attributes_come_from_the_group_and_the_session(env: Env) -> None:
    ok(env, "a1", full(1, route(NET, "2001:db8::/32", med=5, large_communities=["1:2:3"])))
    rows = env.client.get("/v1/routes", params={"appliance": "a1"}).json()["routes"]
    assert [r["prefix"] for r in rows] == [NET, "2001:db8::/32"]
    r = rows[0]
    assert (r["peer"], r["peer_as"], r["peer_router_id"], r["ebgp"]) == (
        PEER,
        64501,
        "10.0.0.1",
        True,
    )
    assert r["received_at"] == 1000.0  # sent_at
    assert (r["med"], r["local_pref"], r["origin"]) == (5, 100, "igp")
    assert r["large_communities"] == ["1:2:3"] and r["next_hop"] == "192.0.2.1"
    # without sent_at: the control plane's clock; a missing ORIGIN: incomplete
    body = delta(2, 1, announce=[route("198.51.100.0/24", origin=None)])
    del body["sent_at"]
    ok(env, "a1", body)
    (r,) = env.client.get("/v1/routes", params={"prefix": "198.51.100.0/24"}).json()["routes"]
    assert r["received_at"] == env.clock() and r["origin"] == "incomplete"


def test_sessions_of_one_appliance_are_sequenced_and_replaced_separately(env: Env) -> None:
    other = "127.0.0.3"
    ok(env, "a1", full(1, route(NET)))
    ok(env, "a1", full(1, route("198.51.100.0/24", "198.51.101.0/24"), peer=other))
    # each session counts its own sequence
    ok(env, "a1", delta(2, 1, announce=[route("192.0.2.0/24")]))
    ok(env, "a1", delta(2, 1, withdraw=["198.51.101.0/24"], peer=other))
    r = post(env, "a1", delta(3, 1, withdraw=[NET]))  # stale base for the first session
    assert r.json()["resync"] is True and r.json()["seq"] == 2
    # a withdrawal from another session leaves the route
    ok(env, "a1", delta(3, 2, withdraw=[NET], peer=other))
    assert first(env) == "a1"
    # a full replaces only that session's routes
    ok(env, "a1", full(4, route("198.51.102.0/24"), peer=other))
    prefixes = {
        r["prefix"]: r["peer"]
        for r in env.client.get("/v1/routes", params={"appliance": "a1"}).json()["routes"]
    }
    assert prefixes == {NET: PEER, "192.0.2.0/24": PEER, "198.51.102.0/24": other}
    # a session going down withdraws its routes only
    ok(env, "a1", delta(5, 4, peer=other, state="active"))
    page = env.client.get("/v1/routes", params={"appliance": "a1"}).json()
    assert page["total"] == 2 and first(env) == "a1"
    sessions = {s["neighbor"]: (s["state"], s["seq"]) for s in page["appliances"][0]["sessions"]}
    assert sessions == {PEER: ("established", 2), other: ("active", 5)}


def sessions_of(env: Env, aid: str = "a1") -> dict[str, dict[str, Any]]:
    page = env.client.get("/v1/routes", params={"appliance": aid}).json()
    return {s["neighbor"]: s for a in page["appliances"] for s in a["sessions"]}


BOGONS = {"count": 3, "prefixes": ["10.0.0.0/8", "192.168.0.0/16"]}


def test_filtered_prefixes_are_kept_per_session(env: Env) -> None:
    """A relay lists, per filter reason, the first prefixes refused; the control plane keeps
    the latest per session (a report without the list keeps it while the counts hold)."""
    sample = {"bogon": BOGONS, "too_specific": {"count": 1, "prefixes": ["2001:db8::/64"]}}
    counts = {"bogon": 3, "too_specific": 1}
    ok(env, "a1", full(1, route(NET), filtered=counts, filtered_prefixes=sample))
    ok(env, "a1", full(1, route("198.51.100.0/24"), peer="127.0.0.3"))  # an older relay
    got = sessions_of(env)
    assert got[PEER]["filtered_prefixes"] == sample
    assert got["127.0.0.3"]["filtered_prefixes"] is None  # counts only, as before
    state = env.plane.routes.state("a1", PEER)
    assert state is not None and state.session.filtered_prefixes is not None
    assert state.session.filtered_prefixes["bogon"].count == 3
    ok(env, "a1", delta(2, 1, announce=[route("192.0.2.0/24")], filtered=counts))
    assert sessions_of(env)[PEER]["filtered_prefixes"] == sample  # unchanged: kept
    ok(env, "a1", delta(3, 2, filtered={"bogon": 2}))  # the counts moved without a list
    assert sessions_of(env)[PEER]["filtered_prefixes"] is None
    ok(env, "a1", delta(4, 3, filtered={}, filtered_prefixes={}))
    assert sessions_of(env)[PEER]["filtered_prefixes"] == {}


@pytest.mark.parametrize(
    ("listed", "loc", "message"),
    [
        (
            {
                "bogon": {
                    "count": 2000,
                    "prefixes": [f"10.{i // 256}.{i % 256}.0/24" for i in range(1001)],
                }
            },
            ["body", "session", "filtered_prefixes", "bogon", "prefixes"],
            "at most 1000 items",
        ),
        (
            {f"reason_{i}": {"count": 1} for i in range(33)},
            ["body", "session", "filtered_prefixes"],
            "at most 32 items",
        ),
        (
            {"bogon": {"count": 2, "prefixes": ["10.0.0.0/8", "10.0.0.1/8"]}},
            ["body", "session", "filtered_prefixes", "bogon", "prefixes"],
            "[1] '10.0.0.1/8' is not a network prefix: host bits set",
        ),
        (
            {"bogon": {"count": 1, "prefixes": ["10.0.0.0/8", "192.168.0.0/16"]}},
            ["body", "session", "filtered_prefixes", "bogon"],
            "count 1 is less than the 2 listed",
        ),
        (
            {"bogon": {"prefixes": []}},
            ["body", "session", "filtered_prefixes", "bogon", "count"],
            "",
        ),
        (
            {"x" * 65: {"count": 1}},
            ["body", "session", "filtered_prefixes", "x" * 65, "[key]"],
            "at most 64 characters",
        ),
    ],
)
def test_a_bad_or_oversized_filtered_list_is_refused_and_changes_nothing(
    env: Env, listed: dict[str, Any], loc: list[str], message: str
) -> None:
    ok(env, "a1", full(1, route(NET), filtered={"bogon": 3}, filtered_prefixes={"bogon": BOGONS}))
    before = env.plane.snapshot.routes.learned
    generation = env.plane.routes.generation
    bad = delta(2, 1, announce=[route("192.0.2.0/24")], filtered_prefixes=listed)
    r = post(env, "a1", bad)
    assert r.status_code == 422, r.text
    errors = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}
    assert tuple(loc) in errors, errors
    assert message in errors[tuple(loc)]
    # nothing else lost: routes, sequence, the list kept; the next delta applies
    assert env.plane.snapshot.routes.learned is before
    assert env.plane.routes.generation == generation
    assert sessions_of(env)[PEER]["filtered_prefixes"] == {"bogon": BOGONS}
    assert sessions_of(env)[PEER]["seq"] == 1 and set(held_routes(env)) == {NET}
    ok(env, "a1", delta(2, 1, announce=[route("192.0.2.0/24")], filtered={"bogon": 3}))
    assert set(held_routes(env)) == {NET, "192.0.2.0/24"}


def test_session_prefixes_are_each_sessions_own_and_stay_read_only(env: Env) -> None:
    """``RouteFeed.session_prefixes``: per session, what it announces (not only the best);
    a table handed out is never changed by later reports (copy on write); the generation
    moves with every report applied."""
    feed = env.plane.routes
    assert feed.session_prefixes("a1") == {} and feed.generation == 0
    other = "127.0.0.3"
    ok(env, "a1", full(1, route(NET, "198.51.100.0/24")))

    def keys(aid: str = "a1") -> dict[str, set[str]]:
        return {
            nb: {prefix_text(v, k) for v in (4, 6) for k in rib.table(v)}
            for nb, rib in feed.session_prefixes(aid).items()
        }

    assert keys() == {PEER: {NET, "198.51.100.0/24"}}  # one session: the appliance's RIB
    assert feed.generation == 1
    ok(env, "a1", full(1, route(NET, "192.0.2.0/24", as_path=(64501,)), peer=other))
    assert keys() == {PEER: {NET, "198.51.100.0/24"}, other: {NET, "192.0.2.0/24"}}
    held = feed.session_prefixes("a1")[other]
    mine = feed.session_prefixes("a1")[PEER]
    assert feed.session_prefixes("a1")[PEER] is mine  # no copy per call
    with pytest.raises(TypeError):
        held.table(4)[0] = held.table(4)[next(iter(held.table(4)))]  # type: ignore[index]
    ok(env, "a1", delta(2, 1, announce=[route("203.0.112.0/24")], withdraw=[NET], peer=other))
    assert keys()[other] == {"192.0.2.0/24", "203.0.112.0/24"}
    assert {prefix_text(4, k) for k in held.table(4)} == {NET, "192.0.2.0/24"}  # as handed out
    assert feed.session_prefixes("a1")[PEER] is mine  # the other session's change: same table
    assert feed.session_prefixes("a1")[other].table(6) is held.table(6)  # unchanged family
    ok(env, "a1", delta(3, 2, peer=other, state="idle"))
    assert keys() == {PEER: {NET, "198.51.100.0/24"}, other: set()}  # down: announces nothing
    assert feed.generation == 4
    r = post(env, "a1", delta(9, 8, peer=other))  # resync: not applied, no new generation
    assert r.json()["resync"] is True and feed.generation == 4
    ok(env, "b1", full(1, route(NET), peer="127.0.0.9"))
    assert keys("b1") == {"127.0.0.9": {NET}} and keys("a2") == {}


def held_routes(env: Env, aid: str = "a1") -> dict[str, tuple[str, list[int]]]:
    page = env.client.get("/v1/routes", params={"appliance": aid}).json()
    return {r["prefix"]: (r["peer"], r["as_path"]) for r in page["routes"]}


@pytest.mark.parametrize("big", [False, True], ids=["deltas", "index-builds"])
def test_two_routers_same_prefixes_one_goes_away_the_other_keeps_serving(
    env: Env, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """The usual redundant set-up: two ISP routers announce the same table to one appliance."""
    if big:
        monkeypatch.setattr(route_feed, "FULL_BUILD_AT", 2)
    other = "127.0.0.3"
    ok(env, "a1", full(1, route(NET, "198.51.100.0/24", as_path=(64501, 64501))))
    ok(env, "a1", full(1, route(NET, "198.51.100.0/24"), peer=other))
    # per prefix, the better route of the two sessions (shorter AS path: the second router)
    assert held_routes(env) == {NET: (other, [64501]), "198.51.100.0/24": (other, [64501])}
    # the better router withdraws one prefix: the first router's route is held, not nothing
    ok(env, "a1", delta(2, 1, withdraw=[NET], peer=other))
    assert held_routes(env)[NET] == (PEER, [64501, 64501]) and first(env) == "a1"
    # the better router goes down: every prefix falls back to the other router
    ok(env, "a1", delta(3, 2, peer=other, state="idle"))
    assert held_routes(env) == {
        NET: (PEER, [64501, 64501]),
        "198.51.100.0/24": (PEER, [64501, 64501]),
    }
    assert first(env) == "a1"
    # it comes back with a full table: its better routes win again
    ok(env, "a1", full(4, route(NET), peer=other))
    assert held_routes(env)[NET] == (other, [64501])
    # both gone: withdrawn
    ok(env, "a1", delta(5, 4, peer=other, state="active"))
    ok(env, "a1", delta(2, 1, peer=PEER, state="active"))
    assert held_routes(env) == {} and first(env) == "ix1"


def test_a_full_in_parts_replaces_the_table_once_at_its_last_part(env: Env) -> None:
    ok(env, "a1", full(1, route(NET, "198.51.100.0/24")))
    # a resync in two parts: until the last part, the old table stays whole
    part1 = {**full(2, route("192.0.2.0/24")), "more": True}
    out = ok(env, "a1", part1)
    assert "staged" in out["reason"] and out["seq"] == 2
    assert set(held_routes(env)) == {NET, "198.51.100.0/24"} and first(env) == "a1"
    part2 = {**full(3, route(NET)), "base_seq": 2}
    ok(env, "a1", part2)
    assert set(held_routes(env)) == {NET, "192.0.2.0/24"}
    # deltas follow the last part
    ok(env, "a1", delta(4, 3, withdraw=["192.0.2.0/24"]))
    # a part that does not follow the staged one: resync, nothing applied
    ok(env, "a1", {**full(5, route("198.51.101.0/24")), "more": True})
    r = post(env, "a1", {**full(7, route("198.51.102.0/24")), "base_seq": 6})
    assert r.status_code == 200 and r.json()["resync"] is True and r.json()["seq"] == 4
    assert set(held_routes(env)) == {NET}
    # more is for fulls only
    r = post(env, "a1", {**delta(5, 4), "more": True})
    assert r.status_code == 422


def test_embedded_beats_pni_for_the_same_prefix_and_explain_says_why(env: Env) -> None:
    ok(env, "b1", full(1, route(NET, as_path=(64502,))))
    assert first(env) == "b1"
    ok(env, "a1", full(1, route(NET, as_path=(64501, 64501, 64501))))  # prepending: no matter
    d = explain(env)
    assert d["pathways"][0]["appliance_id"] == "a1"
    sites = {s["site_id"]: s for s in d["sites"]}
    assert sites["a-par"]["rank"] == 1 and sites["a-par"]["rule"] == "bgp-route"
    assert sites["a-par"]["decided_by"] == "connection-kind"
    assert sites["a-par"]["versus"] == "b-lys"
    assert sites["a-par"]["route"]["as_path"] == [64501, 64501, 64501]
    assert sites["b-lys"]["decided_by"] == "connection-kind"
    assert sites["ix-fra"]["rule"] == "peering-default"
    assert sites["ix-fra"]["decided_by"] == "longest-prefix"
    assert sites["origin"]["decided_by"] == "origin-last"
    assert d["decision_steps"][:3] == ["origin-last", "longest-prefix", "connection-kind"]
    assert d["summary"][0].startswith("#1 a-par (embedded, bgp-route) [connection-kind]")
    # a more specific prefix at the PNI wins over the embedded /24 (longest prefix first)
    ok(env, "b1", delta(2, 1, announce=[route("203.0.113.0/25", as_path=(64502,))]))
    d = explain(env)
    assert d["sites"][0]["site_id"] == "b-lys"
    assert d["sites"][0]["decided_by"] == "longest-prefix"


def test_explain_keeps_its_older_parameter_names(env: Env) -> None:
    r = env.client.get("/v1/steering/explain", params={"client_ip": CLIENT, "title_id": "t1"})
    assert r.status_code == 200 and r.json()["client_ip"] == CLIENT
    r = env.client.get("/v1/steering/explain", params={"ip": "nope", "title": "t1"})
    assert r.status_code == 422 and r.json()["field"] == "ip"
    r = env.client.get("/v1/steering/explain", params={"ip": CLIENT})
    assert r.status_code == 422 and r.json()["field"] == "title"


# --- sequencing ----------------------------------------------------------------------------------


def test_out_of_sequence_delta_asks_for_a_resync(env: Env) -> None:
    r = post(env, "a1", delta(2, 1, announce=[route(NET)]))
    assert r.status_code == 200
    assert r.json()["resync"] is True and r.json()["seq"] == 0  # no base since start
    assert first(env) == "ix1"
    ok(env, "a1", full(5, route(NET)))
    r = post(env, "a1", delta(7, 6, withdraw=[NET]))
    assert r.json()["resync"] is True and r.json()["seq"] == 5
    assert first(env) == "a1"  # not applied
    ok(env, "a1", delta(6, 5, withdraw=[NET]))
    assert first(env) == "ix1"


def test_a_restarted_control_plane_asks_for_a_full_table(env: Env, tmp_path: Path) -> None:
    ok(env, "a1", full(1, route(NET)))
    restarted = make_plane(tmp_path, env.clock)
    try:
        c = client_for(restarted, CLIENT)
        r = c.post(
            "/v1/appliances/a1/routes",
            json=delta(2, 1, announce=[route("198.51.100.0/24")]),
            headers={"Authorization": f"Bearer {env.creds['a1']}"},
        )
        assert r.status_code == 200 and r.json()["resync"] is True
        assert restarted.snapshot.routes.learned.route_count == 0
    finally:
        restarted.close()


# --- validation and authentication ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (full(1, route("203.0.113.1/24")), ["body", "announce", 0, "prefixes"]),
        (full(1, route(NET), route(NET, "not-a-prefix")), ["body", "announce", 1, "prefixes"]),
        (full(1, route()), ["body", "announce", 0, "prefixes"]),
        (full(1, route(NET, as_path=(0,))), ["body", "announce", 0, "as_path", 0]),
        (full(1, route(NET, med=2**32)), ["body", "announce", 0, "med"]),
        (full(1, route(NET, communities=["1:2:3"])), ["body", "announce", 0, "communities", 0]),
        (full(1, route(NET, next_hop="x")), ["body", "announce", 0, "next_hop"]),
        (full(1, route(NET, peer="127.0.0.2")), ["body", "announce", 0, "peer"]),  # old format
        (full(1, peer_router_id="::1"), ["body", "session", "peer_router_id"]),
        (full(1, remote_as=0), ["body", "session", "remote_as"]),
        (full(1, peer="nope"), ["body", "session", "neighbor"]),
        (delta(2, 1, withdraw=[NET, "2001:db8::1/32"]), ["body", "withdraw"]),
        (delta(2, 1, withdraw=[{"prefix": NET}]), ["body", "withdraw", 0]),  # old format
        ({**full(1), "session": None}, ["body", "session"]),
        ({**full(1), "sessions": [session()]}, ["body", "sessions"]),  # old format
        ({"kind": "delta", "seq": 2, "session": session()}, ["body"]),  # no base_seq
        ({"kind": "other", "seq": 2}, ["body", "kind"]),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(
    env: Env, body: dict[str, Any], loc: list[Any]
) -> None:
    r = post(env, "a1", body)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert loc in locs, locs


def test_unknown_appliance_and_bad_credentials(env: Env) -> None:
    r = post(env, "nope", full(1, route(NET)), secret="whatever")
    assert r.status_code == 404
    r = post(env, "a1", full(1, route(NET)), secret="wrong")
    assert r.status_code == 401
    r = env.client.post("/v1/appliances/a1/routes", json=full(1, route(NET)))
    assert r.status_code == 401
    r = post(env, "a1", full(1, route(NET)), secret=env.creds["a2"])  # another's credential
    assert r.status_code == 401
    assert env.plane.snapshot.routes.learned.route_count == 0


# --- reading routes ------------------------------------------------------------------------------


def test_routes_filters_and_pagination(env: Env) -> None:
    a1 = [f"198.51.{i}.0/24" for i in range(5)]
    ok(env, "a1", full(1, route(*a1), route("198.51.0.0/16")))
    ok(env, "b1", full(1, route("198.51.3.0/24", as_path=(64502, 64503), med=7)))
    get = env.client.get
    page = get("/v1/routes", params={"appliance": "a1", "limit": 2}).json()
    assert page["total"] == 6 and [r["prefix"] for r in page["routes"]] == [
        "198.51.0.0/16",
        "198.51.0.0/24",
    ]
    page = get("/v1/routes", params={"appliance": "a1", "limit": 2, "offset": 5}).json()
    assert [r["prefix"] for r in page["routes"]] == ["198.51.4.0/24"]
    # unfiltered: every appliance, in appliance order, a page may cross appliances
    page = get("/v1/routes", params={"limit": 3, "offset": 5}).json()
    assert page["total"] == 7
    assert [(r["appliance_id"], r["prefix"]) for r in page["routes"]] == [
        ("a1", "198.51.4.0/24"),
        ("b1", "198.51.3.0/24"),
    ]
    assert [a["appliance_id"] for a in page["appliances"]] == ["a1", "b1"]
    assert get("/v1/routes").json()["limit"] == 100
    # by site
    page = get("/v1/routes", params={"site": "b-lys"}).json()
    assert page["total"] == 1 and page["routes"][0]["site_id"] == "b-lys"
    # who heard exactly this prefix, with which attributes
    page = get("/v1/routes", params={"prefix": "198.51.3.0/24"}).json()
    rows = {r["appliance_id"]: r for r in page["routes"]}
    assert set(rows) == {"a1", "b1"}
    assert rows["b1"]["as_path"] == [64502, 64503] and rows["b1"]["med"] == 7
    assert rows["a1"]["local_pref"] == 100 and rows["a1"]["communities"] == ["64501:100"]
    assert rows["a1"]["peer_router_id"] == "10.0.0.1" and rows["a1"]["site_id"] == "a-par"
    # the routes covering an address, longest first
    page = get("/v1/routes", params={"ip": "198.51.3.9"}).json()
    assert [(r["appliance_id"], r["prefix"]) for r in page["routes"]] == [
        ("a1", "198.51.3.0/24"),
        ("b1", "198.51.3.0/24"),
        ("a1", "198.51.0.0/16"),
    ]
    page = get("/v1/routes", params={"ip": "198.51.3.9", "site": "b-lys"}).json()
    assert [r["appliance_id"] for r in page["routes"]] == ["b1"]
    assert get("/v1/routes", params={"ip": "192.0.2.1"}).json()["total"] == 0
    # errors
    assert get("/v1/routes", params={"prefix": "198.51.3.1/24"}).json()["field"] == "prefix"
    assert get("/v1/routes", params={"ip": "x"}).status_code == 422
    assert get("/v1/routes", params={"appliance": "zz"}).status_code == 404
    assert get("/v1/routes", params={"site": "zz"}).status_code == 404
    assert get("/v1/routes", params={"limit": 0}).status_code == 422


def test_reports_show_an_inconsistent_site_and_a_route_without_alternate(env: Env) -> None:
    p1, p2 = "198.51.100.0/24", "203.0.113.0/24"
    ok(env, "a1", full(1, route(p1, p2)))
    ok(env, "a2", full(1, route(p1)))
    ok(env, "b1", full(1, route(p2, as_path=(64502,))))
    r = env.client.get("/v1/routes/reports")
    assert r.status_code == 200, r.text
    body = r.json()
    (apar,) = [s for s in body["site_consistency"] if s["site_id"] == "a-par"]
    assert not apar["consistent"] and apar["missing_count"] == 1
    (diff,) = apar["diffs"]
    assert diff["prefix"] == p2 and diff["missing_from"] == ["a2"] and diff["off_site"] == ["a2"]
    assert "off-site" in diff["reason"]
    (blys,) = [s for s in body["site_consistency"] if s["site_id"] == "b-lys"]
    assert blys["consistent"]
    lonely = body["no_alternate_source"]
    assert lonely["count"] == 1
    assert lonely["routes"] == [{"prefix": p1, "heard_by": ["a1", "a2"], "sites": ["a-par"]}]
    # the same prefix with different attributes at a2
    ok(env, "a2", delta(2, 1, announce=[route(p2, as_path=(64501, 64501))]))
    (apar,) = [
        s
        for s in env.client.get("/v1/routes/reports").json()["site_consistency"]
        if s["site_id"] == "a-par"
    ]
    assert apar["missing_count"] == 0 and apar["attribute_count"] == 1
    assert apar["diffs"][0]["attributes"]["a2"]["as_path"] == [64501, 64501]


# --- big full tables and the background rebuild --------------------------------------------------


def test_big_full_table_builds_the_index_and_rebuild_keeps_routes(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route_feed, "FULL_BUILD_AT", 3)
    ok(env, "a1", full(1, route(NET, "198.51.100.0/24", "198.51.101.0/24")))
    learned = env.plane.snapshot.routes.learned
    assert len(learned.overlay) == 0 and learned.route_count == 3  # built, not a delta
    assert first(env) == "a1"
    ok(env, "a1", delta(2, 1, withdraw=[NET]))
    assert len(env.plane.snapshot.routes.learned.overlay) == 1
    assert first(env) == "ix1"
    assert env.plane.routes.rebuild() is True
    learned = env.plane.snapshot.routes.learned
    assert len(learned.overlay) == 0 and learned.route_count == 2
    assert first(env) == "ix1"
    assert first(env, "198.51.101.9") == "a1"


def test_a_rebuild_overtaken_by_a_full_table_is_dropped(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route_feed, "FULL_BUILD_AT", 1)
    ok(env, "a1", full(1, route("198.51.100.0/24")))
    real = route_feed.rebuilt

    def overtaken(index: Any) -> Any:
        fresh = real(index)
        report = RoutesReport.model_validate(full(1, route(NET)))
        env.plane.routes.ingest("b1", report, env.clock())  # a full build meanwhile
        return fresh

    monkeypatch.setattr(route_feed, "rebuilt", overtaken)
    assert env.plane.routes.rebuild() is False
    assert first(env) == "b1"
    assert first(env, "198.51.100.1") == "a1"


def test_background_rebuild_starts_when_the_overlay_is_big(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("localcast.core.routeindex.REBUILD_AT", 2)
    ok(env, "a1", full(1, route(NET), route("198.51.100.0/24")))  # overlay of 2: rebuild
    env.plane.routes.wait_rebuild()
    learned = env.plane.snapshot.routes.learned
    assert len(learned.overlay) == 0 and learned.route_count == 2
    assert first(env) == "a1"


@pytest.mark.parametrize(
    "text",
    ["0.0.0.0/0", "203.0.113.0/24", "10.0.0.0/8", "192.0.2.1/32", "::/0", "2001:db8::/32"],
)
def test_fast_prefix_agrees_with_the_core(text: str) -> None:
    from localcast.control.route_schemas import fast_prefix
    from localcast.core.rib import parse_prefix

    assert fast_prefix(text) == parse_prefix(text)


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0/33", "10.0.0.0", "x/8", "::1/129", "1/8"])
def test_fast_prefix_refuses_what_the_core_refuses(text: str) -> None:
    from localcast.control.route_schemas import fast_prefix

    with pytest.raises(ValueError):
        fast_prefix(text)
