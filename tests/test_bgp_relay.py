"""The relay to the control plane, against a tiny fake ``POST /v1/appliances/{id}/routes``.

A raw BGP peer announces and withdraws through a real speaker; the relay posts
to :class:`FakeControlPlane` (in process, through httpx.MockTransport), which
implements the documented contract: a full replaces a session's routes, a
delta applies on top of ``base_seq`` or is answered with a resync, a session
without ``filtered_prefixes`` keeps the last ones. The fake's
view must always end up equal to the speaker's Adj-RIB-In, across an outage,
a resync request, split posts and a session that goes down.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bgp_support import RawPeer, free_port

from localcast.bgp import prefix
from localcast.bgp.codec import encode
from localcast.bgp.config import parse_bgp_config
from localcast.bgp.messages import (
    AsPathSegment,
    FourOctetAs,
    Keepalive,
    Multiprotocol,
    Open,
    Origin,
    PathAttributes,
    SegmentType,
    Update,
)
from localcast.bgp.relay import Relay
from localcast.bgp.speaker import Speaker

PEER, PEER_AS = "127.0.0.3", 65003


@dataclass
class FakeControlPlane:
    """Applies the relay contract; ``down`` makes requests fail, ``resync_next`` refuses one."""

    routes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    resync_next: bool = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("control plane down", request=request)
        assert request.url.path == "/v1/appliances/app-1/routes"
        assert request.headers["authorization"] == "Bearer s3cret"
        body = json.loads(request.content)
        self.posts.append(body)
        neighbor = body["session"]["neighbor"]
        if body["kind"] == "full" and body["base_seq"] is None:
            self.routes[neighbor] = {}
        elif self.resync_next or body["base_seq"] != self.seq.get(neighbor):
            self.resync_next = False
            return httpx.Response(200, json={"seq": self.seq.get(neighbor, 0), "resync": True})
        table = self.routes.setdefault(neighbor, {})
        for p in body["withdraw"]:
            table.pop(p, None)
        for group in body["announce"]:
            attrs = {k: v for k, v in group.items() if k != "prefixes"}
            for p in group["prefixes"]:
                table[p] = attrs
        self.seq[neighbor] = body["seq"]
        session = dict(body["session"])
        kept = self.sessions.get(neighbor, {}).get("filtered_prefixes")
        if "filtered_prefixes" not in session and kept is not None:  # unchanged: the last one
            session["filtered_prefixes"] = kept
        self.sessions[neighbor] = session
        return httpx.Response(200, json={"seq": body["seq"], "resync": False})


def attrs(*path: int) -> PathAttributes:
    return PathAttributes(
        origin=Origin.IGP,
        as_path=(AsPathSegment(SegmentType.AS_SEQUENCE, (PEER_AS, *path)),),
        next_hop="192.0.2.1",
        med=7,
        communities=(PEER_AS << 16 | 42,),
    )


def prefixes(*texts: str) -> tuple[int, ...]:
    return tuple(prefix.parse(t)[1] for t in texts)


def rib_view(speaker: Speaker) -> dict[str, tuple[int, ...]]:
    rib = speaker.rib(PEER)
    return {prefix.to_text(afi, p): a.flat_as_path() for afi, p, a in rib.items()}


def fake_view(fake: FakeControlPlane) -> dict[str, tuple[int, ...]]:
    return {p: tuple(a["as_path"]) for p, a in fake.routes.get(PEER, {}).items()}


async def until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def connect_peer(port: int) -> RawPeer:
    def establish() -> RawPeer:
        peer = RawPeer(PEER, port)
        caps = (Multiprotocol(1, 1), FourOctetAs(PEER_AS))
        peer.send(Open(PEER_AS, 0, "192.0.2.3", caps))
        peer.receive_until(lambda ms: Keepalive() in ms)
        peer.send(Keepalive())
        return peer

    return await asyncio.to_thread(establish)


def test_relay_keeps_the_control_plane_in_step() -> None:
    asyncio.run(_scenario())


async def _scenario() -> None:
    port = free_port()
    config = parse_bgp_config(
        {
            "local_as": 65001,
            "router_id": "10.0.0.1",
            "listen": "127.0.0.1",
            "port": port,
            "neighbors": [{"address": PEER, "remote_as": PEER_AS, "passive": True}],
        }
    )
    fake = FakeControlPlane()
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    speaker = Speaker(config)
    await speaker.start()
    relay = Relay(
        speaker,
        client,
        "http://control.test",
        "app-1",
        "s3cret",
        batch_s=0.01,
        max_prefixes_per_post=3,
        retry_s=0.05,
    )
    task = asyncio.create_task(relay.run())
    peer = await connect_peer(port)
    try:
        await until(lambda: fake.sessions.get(PEER, {}).get("state") == "established", "session up")
        first = fake.posts[0]
        assert first["kind"] == "full" and first["base_seq"] is None and first["announce"] == []

        peer.send(
            encode(
                Update(
                    attributes=attrs(65010),
                    nlri=prefixes("11.1.0.0/16", "11.2.0.0/16", "11.3.0.0/16", "11.4.0.0/16"),
                )
            )
        )
        peer.send(encode(Update(attributes=attrs(), nlri=prefixes("45.0.0.0/22", "10.0.0.0/8"))))
        await until(lambda: len(fake_view(fake)) == 5, "five routes at the control plane")
        assert fake_view(fake) == rib_view(speaker)
        route = fake.routes[PEER]["11.1.0.0/16"]
        assert route == {
            "next_hop": "192.0.2.1",
            "as_path": [PEER_AS, 65010],
            "as_path_length": 2,
            "origin_as": 65010,
            "origin": "igp",
            "med": 7,
            "local_pref": None,
            "communities": [f"{PEER_AS}:42"],
            "large_communities": [],
            "atomic_aggregate": False,
        }
        assert all(
            sum(len(g["prefixes"]) for g in p["announce"]) + len(p["withdraw"]) <= 3
            for p in fake.posts
        )  # split into posts of at most 3 prefixes
        assert fake.sessions[PEER]["filtered"] == {"bogon": 1}
        assert fake.sessions[PEER]["ebgp"] is True and fake.sessions[PEER]["local_as"] == 65001

        # withdraw, then an outage during which more changes happen
        peer.send(encode(Update(withdrawn=prefixes("11.1.0.0/16"))))
        await until(lambda: "11.1.0.0/16" not in fake.routes[PEER], "the withdrawal")
        fake.down = True
        peer.send(encode(Update(withdrawn=prefixes("11.2.0.0/16"))))
        peer.send(encode(Update(attributes=attrs(65011), nlri=prefixes("11.9.0.0/16"))))
        await until(lambda: relay.trouble is not None, "the relay to notice the outage")
        posts_before = len(fake.posts)
        fake.down = False  # back: a full resync, then deltas again
        await until(lambda: fake_view(fake) == rib_view(speaker), "the resync")
        assert fake.posts[posts_before]["kind"] == "full"
        # that full (4 routes, posts of at most 3) came in two parts: chained, the last says so
        parts = fake.posts[posts_before : posts_before + 2]
        assert [(p["kind"], p["more"]) for p in parts] == [("full", True), ("full", False)]
        assert parts[1]["base_seq"] == parts[0]["seq"] and parts[0]["base_seq"] is None

        # the control plane lost track: it asks for a resync
        fake.resync_next = True
        peer.send(encode(Update(attributes=attrs(65012), nlri=prefixes("11.10.0.0/16"))))
        await until(lambda: "11.10.0.0/16" in fake.routes.get(PEER, {}), "the route after resync")
        assert any(p["kind"] == "full" for p in fake.posts[posts_before + 1 :])
        assert fake_view(fake) == rib_view(speaker)

        # the session goes down: its routes are withdrawn at the control plane
        peer.close()
        await until(lambda: not fake.routes.get(PEER), "the withdrawal of everything")
        await until(lambda: fake.sessions[PEER]["state"] != "established", "the session state")
    finally:
        peer.close()
        await speaker.stop()
        await asyncio.wait_for(task, 5)  # the relay ends with the speaker
        await client.aclose()


@pytest.mark.parametrize("kind", ["delta", "full"])
def test_a_refused_post_is_retried_not_lost(kind: str) -> None:
    """A 500 from the control plane keeps the data owed (a full stays owed)."""

    async def scenario() -> None:
        port = free_port()
        config = parse_bgp_config(
            {
                "local_as": 65001,
                "router_id": "10.0.0.1",
                "port": port,
                "neighbors": [{"address": PEER, "remote_as": PEER_AS, "passive": True}],
            }
        )
        fake = FakeControlPlane()
        failures = {"left": 2}

        def flaky(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if body["kind"] == kind and failures["left"] > 0:
                failures["left"] -= 1
                return httpx.Response(500, text="database busy")
            return fake.handler(request)

        client = httpx.AsyncClient(transport=httpx.MockTransport(flaky))
        async with Speaker(config) as speaker:
            relay = Relay(speaker, client, "http://c", "app-1", "s3cret", batch_s=0, retry_s=0.02)
            task = asyncio.create_task(relay.run())
            peer = await connect_peer(port)
            try:
                nlri = prefixes("11.1.0.0/16", "11.2.0.0/16")
                peer.send(encode(Update(attributes=attrs(), nlri=nlri)))
                await until(lambda: fake_view(fake) == rib_view(speaker) != {}, "the routes")
                assert failures["left"] == 0
            finally:
                peer.close()
        await asyncio.wait_for(task, 5)
        await client.aclose()

    asyncio.run(scenario())


def test_as_path_length_counts_a_set_once() -> None:
    from localcast.bgp.relay import attributes_json

    a = PathAttributes(
        origin=Origin.INCOMPLETE,
        as_path=(
            AsPathSegment(SegmentType.AS_SEQUENCE, (65002, 65003)),
            AsPathSegment(SegmentType.AS_SET, (65010, 65011, 65012)),
        ),
        large_communities=((65002, 1, 2),),
    )
    out = attributes_json(a, 65002)
    assert out["as_path_length"] == 3 and out["origin_as"] is None
    assert out["origin"] == "incomplete" and out["large_communities"] == ["65002:1:2"]


def test_filtered_prefixes_are_listed_bounded_and_sent_when_they_change() -> None:
    """Which prefixes the import policy refuses, per reason: the first 100 listed with the
    whole count; a refused-only UPDATE (no route changes, no speaker event) still reaches the
    control plane; a delta that changes nothing refused does not repeat the list."""

    async def scenario() -> None:
        port = free_port()
        config = parse_bgp_config(
            {
                "local_as": 65001,
                "router_id": "10.0.0.1",
                "port": port,
                "neighbors": [{"address": PEER, "remote_as": PEER_AS, "passive": True}],
            }
        )
        fake = FakeControlPlane()
        client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))

        def listed() -> dict[str, Any]:
            out: dict[str, Any] = fake.sessions.get(PEER, {}).get("filtered_prefixes", {})
            return out

        async with Speaker(config) as speaker:
            relay = Relay(
                speaker, client, "http://c", "app-1", "s3cret", batch_s=0, filter_check_s=0.05
            )
            task = asyncio.create_task(relay.run())
            peer = await connect_peer(port)
            try:
                await until(lambda: fake.sessions.get(PEER, {}).get("state") == "established", "up")
                assert fake.sessions[PEER]["filtered_prefixes"] == {}  # a full lists them always
                bogons = [f"10.{i // 256}.{i % 256}.0/24" for i in range(150)]
                peer.send(encode(Update(attributes=attrs(), nlri=prefixes(*bogons))))
                await until(lambda: "bogon" in listed(), "the refused-only UPDATE reported")
                assert fake.sessions[PEER]["filtered"] == {"bogon": 150}
                assert listed()["bogon"] == {"count": 150, "prefixes": bogons[:100]}

                posts = len(fake.posts)
                peer.send(encode(Update(attributes=attrs(), nlri=prefixes("11.1.0.0/16"))))
                await until(lambda: "11.1.0.0/16" in fake.routes.get(PEER, {}), "the route")
                assert all("filtered_prefixes" not in p["session"] for p in fake.posts[posts:])
                assert listed()["bogon"]["count"] == 150  # the fake keeps the last one

                peer.send(encode(Update(withdrawn=prefixes(*bogons[:120]))))
                await until(lambda: listed().get("bogon", {}).get("count") == 30, "the withdrawal")
                assert listed()["bogon"]["prefixes"] == bogons[120:]
                assert fake.sessions[PEER]["filtered"] == {"bogon": 30}
            finally:
                peer.close()
        await asyncio.wait_for(task, 5)
        await client.aclose()

    asyncio.run(scenario())


def test_filtered_prefixes_per_reason_ipv4_first_in_prefix_order() -> None:
    from localcast.bgp.adjrib import AdjRibIn
    from localcast.bgp.policy import ImportPolicy
    from localcast.bgp.relay import filter_mark, filtered_prefixes

    rib = AdjRibIn(ImportPolicy(local_as=65001, peer_as=PEER_AS))
    mark = filter_mark(rib)
    rib.apply(Update(attributes=attrs(), nlri=prefixes("192.168.1.0/24", "10.9.0.0/16")))
    rib.apply(Update(attributes=attrs(), nlri=prefixes("11.0.0.0/25", "10.1.0.0/16", "0.0.0.0/0")))
    assert filter_mark(rib) != mark
    assert filtered_prefixes(rib, limit=2) == {
        "bogon": {"count": 3, "prefixes": ["10.9.0.0/16", "192.168.1.0/24"]},  # first 2 refused
        "default_route": {"count": 1, "prefixes": ["0.0.0.0/0"]},
        "too_specific": {"count": 1, "prefixes": ["11.0.0.0/25"]},
    }
    mark = filter_mark(rib)
    rib.apply(Update(attributes=attrs(), nlri=prefixes("10.9.0.0/16")))  # refused again
    assert filter_mark(rib) != mark  # same counts, but it changed: listed again
    rib.apply(Update(withdrawn=prefixes("10.9.0.0/16", "192.168.1.0/24", "0.0.0.0/0")))
    assert filtered_prefixes(rib) == {
        "bogon": {"count": 1, "prefixes": ["10.1.0.0/16"]},
        "too_specific": {"count": 1, "prefixes": ["11.0.0.0/25"]},
    }
