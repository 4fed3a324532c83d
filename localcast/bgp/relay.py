"""Relay what the speaker learns to the control plane: full resync, then deltas.

:class:`Relay` subscribes to a :class:`~localcast.bgp.speaker.Speaker`'s
events and POSTs them, per BGP session, to
``{control_url}/v1/appliances/{appliance_id}/routes`` with the appliance's
bearer credential. The JSON contract (what the control plane implements)::

    {
      "kind": "full" | "delta",
      "seq": 8,                 # per (appliance, session), +1 per post
      "base_seq": 7,            # delta: the seq it applies on top of; full: null
      "more": false,            # full: true when more parts of this full follow
      "sent_at": 1700000000.5,  # appliance wall clock
      "session": {              # the BGP session, as NeighborStatus.as_dict() plus:
        "neighbor": "192.0.2.1", "local_as": 65001, "ebgp": true,
        "state": "established", "peer_router_id": "...", "remote_as": 65002, ...,
        "filtered": {"bogon": 3},   # prefixes the import policy refuses now, by reason
        "filtered_prefixes": {      # ... which: the first FILTERED_LISTED per reason
          "bogon": {"count": 3, "prefixes": ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]}
        }
      },
      "announce": [             # groups of prefixes sharing attributes
        {"prefixes": ["203.0.113.0/24", ...], "next_hop": "192.0.2.1",
         "as_path": [65002, 65010], "as_path_length": 2, "origin_as": 65010,
         "origin": "igp", "med": 10, "local_pref": null,
         "communities": ["65002:100"], "large_communities": ["65002:1:2"],
         "atomic_aggregate": false}
      ],
      "withdraw": ["198.51.100.0/24", "2001:db8::/32"]
    }

``filtered_prefixes`` is in every full and in a delta when what the session
refuses changed since the list the control plane last took (absent: keep
the last one); the prefixes refused first are listed, at most
:data:`FILTERED_LISTED` per reason, so a leaked full table refused by the
max-prefix limit does not bloat a report. An UPDATE whose prefixes are all
refused changes no route, so the speaker sends no event for it: the relay
looks at what each session refuses every ``filter_check_s`` and reports a
change.

Semantics: a ``full`` replaces every route of that session; a ``delta``
applies on top of ``base_seq`` (announce replaces, withdraw removes; a
withdraw of an unknown prefix is a no-op). The control plane answers 200
``{"seq": N, "resync": false}``; ``"resync": true`` or 409 (it lost track,
e.g. ``base_seq`` is not what it holds) makes the relay send a full again.
A large full is split into parts: every part is a ``full`` with
``more: true`` but the last, and each part after the first carries the
previous part's seq as ``base_seq``; the control plane stages the parts and
replaces the session's routes once, at the last part (no moment with only
part of the table). Sessions that go down send their withdrawals as a delta with
``state`` no longer ``established``. When the control plane is unreachable
the relay keeps retrying with backoff, and sends a full for every session
once it is back (what it missed was coalesced, not queued).

The relay never blocks the speaker: events are queued and merged between
posts. No BGP logic here; no decisions about routes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from localcast.bgp import prefix as pfx
from localcast.bgp.adjrib import AdjRibIn, Announce, RibDelta
from localcast.bgp.events import EndOfRib, MaxPrefixAlarm, RouteDelta, SessionChanged
from localcast.bgp.messages import PathAttributes, SegmentType
from localcast.bgp.prefix import Afi
from localcast.bgp.speaker import Speaker, Subscription

log = logging.getLogger(__name__)

_ORIGIN_NAMES = {0: "igp", 1: "egp", 2: "incomplete"}

#: Prefixes listed per filter reason in a session's report (the count is always whole).
FILTERED_LISTED = 100

FilterMark = tuple[int, int, int]


def filter_mark(rib: AdjRibIn) -> FilterMark:
    """Changes whenever the set of prefixes ``rib`` refuses (or their reasons) changes: every
    refusal counts in ``rejected_total``, and a prefix no longer refused leaves ``filtered``."""
    refused = rib.filtered
    return (
        sum(rib.counters.rejected_total.values()),
        len(refused[Afi.IPV4]),
        len(refused[Afi.IPV6]),
    )


def filtered_prefixes(rib: AdjRibIn, limit: int = FILTERED_LISTED) -> dict[str, dict[str, Any]]:
    """Per reason the session's import policy refuses prefixes now: how many, and the first
    ``limit`` refused (IPv4 first), listed in prefix order. Stops reading the refused
    prefixes as soon as every reason's list is complete."""
    counts = {str(r): n for r, n in rib.filtered_by_reason.items() if n > 0}
    picked: dict[str, list[tuple[Afi, int]]] = {r: [] for r in counts}
    wanted = {r: min(n, limit) for r, n in counts.items()}
    left = sum(wanted.values())
    for afi in (Afi.IPV4, Afi.IPV6):
        for p, reason in rib.filtered[afi].items():
            if left == 0:
                break
            got = picked.get(reason)
            if got is not None and len(got) < wanted[reason]:
                got.append((afi, p))
                left -= 1
    return {
        r: {"count": counts[r], "prefixes": [pfx.to_text(afi, p) for afi, p in sorted(picked[r])]}
        for r in sorted(counts)
    }


def attributes_json(attrs: PathAttributes, peer_as: int) -> dict[str, Any]:
    length = 0
    for seg in attrs.as_path or ():
        if seg.type == SegmentType.AS_SEQUENCE:
            length += len(seg.asns)
        elif seg.type == SegmentType.AS_SET:
            length += 1
    return {
        "next_hop": attrs.next_hop,
        "as_path": list(attrs.flat_as_path()),
        "as_path_length": length,  # RFC 4271 §9.1.2.2: a set counts one
        "origin_as": attrs.origin_as(peer_as),
        "origin": _ORIGIN_NAMES.get(int(attrs.origin), "incomplete")
        if attrs.origin is not None
        else None,
        "med": attrs.med,
        "local_pref": attrs.local_pref,
        "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in attrs.communities],
        "large_communities": [f"{a}:{b}:{c}" for a, b, c in attrs.large_communities],
        "atomic_aggregate": attrs.atomic_aggregate,
    }


class _Pending:
    """Net changes of one session since the last post: prefix -> attributes or None."""

    def __init__(self) -> None:
        self.changes: dict[tuple[Afi, int], PathAttributes | None] = {}
        self.session_changed = False

    def add(self, delta: RibDelta) -> None:
        changes = self.changes
        for w in delta.withdraw:
            afi = w.afi
            for p in w.prefixes:
                changes[(afi, p)] = None
        for a in delta.announce:
            afi, attrs = a.afi, a.attributes
            for p in a.prefixes:
                changes[(afi, p)] = attrs

    def __bool__(self) -> bool:
        return bool(self.changes) or self.session_changed

    def split(self) -> tuple[list[Announce], list[tuple[Afi, int]]]:
        groups: dict[tuple[Afi, int], tuple[PathAttributes, list[int]]] = {}
        withdraw: list[tuple[Afi, int]] = []
        for (afi, p), attrs in self.changes.items():
            if attrs is None:
                withdraw.append((afi, p))
                continue
            group = groups.get((afi, id(attrs)))
            if group is None:
                groups[(afi, id(attrs))] = (attrs, [p])
            else:
                group[1].append(p)
        return [Announce(afi, a, tuple(ps)) for (afi, _), (a, ps) in groups.items()], withdraw


def _chunks(
    announce: list[Announce], withdraw: list[tuple[Afi, int]], limit: int
) -> list[tuple[list[Announce], list[tuple[Afi, int]]]]:
    """Split into posts of at most ``limit`` prefixes (withdrawals first)."""
    out: list[tuple[list[Announce], list[tuple[Afi, int]]]] = []
    cur_a: list[Announce] = []
    cur_w: list[tuple[Afi, int]] = []
    room = limit
    for i in range(0, len(withdraw), limit):
        part = withdraw[i : i + limit]
        cur_w = part
        room = limit - len(part)
        if room == 0:
            out.append(([], cur_w))
            cur_w, room = [], limit
    for group in announce:
        prefixes = group.prefixes
        while prefixes:
            take, prefixes = prefixes[:room], prefixes[room:]
            cur_a.append(Announce(group.afi, group.attributes, take))
            room -= len(take)
            if room == 0:
                out.append((cur_a, cur_w))
                cur_a, cur_w, room = [], [], limit
    if cur_a or cur_w or not out:
        out.append((cur_a, cur_w))
    return out


class _Rejected(Exception):
    def __init__(self, neighbor: str, why: str) -> None:
        super().__init__(why)
        self.neighbor = neighbor


class Relay:
    def __init__(
        self,
        speaker: Speaker,
        client: httpx.AsyncClient,
        control_url: str,
        appliance_id: str,
        credential: str,
        batch_s: float = 0.2,
        max_prefixes_per_post: int = 200_000,
        retry_s: float = 1.0,
        max_retry_s: float = 30.0,
        wall: Callable[[], float] = time.time,
        filter_check_s: float = 5.0,
    ) -> None:
        self.speaker = speaker
        self.client = client
        self.url = f"{control_url.rstrip('/')}/v1/appliances/{appliance_id}/routes"
        self.headers = {"Authorization": f"Bearer {credential}"}
        self.batch_s = batch_s
        self.limit = max_prefixes_per_post
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.wall = wall
        self.sub: Subscription = speaker.events()  # subscribed now: nothing is missed
        self.seq: dict[str, int] = {}
        self.pending: dict[str, _Pending] = {}
        self.need_full: set[str] = set(speaker.sessions)
        self.posts = 0
        self.trouble: str | None = None
        self.filter_check_s = filter_check_s
        self.filter_listed: dict[str, FilterMark] = {}  # what the control plane took last
        self._listing: dict[str, tuple[FilterMark, dict[str, Any]]] = {}  # computed, by mark
        self._filters_checked = float("-inf")  # event loop time

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled (or the speaker stops): resync, then forward batches."""
        backoff = self.retry_s
        while True:
            try:
                await self._flush()
                self._state(None)
                backoff = self.retry_s
                if self.need_full:  # asked to resync again: do not wait for an event
                    await asyncio.sleep(self.retry_s)
                    continue
            except httpx.HTTPError as exc:
                self._state(f"control plane unreachable: {exc!r}")
                self.need_full = set(self.speaker.sessions)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_retry_s)
                continue
            except _Rejected as exc:
                self._state(f"control plane refused routes: {exc}")
                self.need_full.add(exc.neighbor)  # what that post carried is owed: send it all
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_retry_s)
                continue
            if not await self._wait_for_events():
                return

    async def _wait_for_events(self) -> bool:
        """Block for the next event, then gather a batch; False when the speaker stopped.

        At most every ``filter_check_s``, the sessions whose refused prefixes changed are
        owed a report, events or not (a refused-only UPDATE makes no event).
        """
        loop = asyncio.get_running_loop()
        due = self._filters_checked + self.filter_check_s
        try:
            async with asyncio.timeout_at(due):
                first = await self.sub.__anext__()
        except StopAsyncIteration:
            return False
        except TimeoutError:
            pass
        else:
            self._take([first])
            if self.batch_s > 0:
                await asyncio.sleep(self.batch_s)
            self._take(self.sub.pending())
        if loop.time() >= due:
            self._filters_checked = loop.time()
            self._filters_changed()
        return True

    def _filters_changed(self) -> None:
        for neighbor, mark in list(self.filter_listed.items()):
            if (
                neighbor in self.speaker.sessions
                and filter_mark(self.speaker.rib(neighbor)) != mark
            ):
                self.pending.setdefault(neighbor, _Pending()).session_changed = True

    def _filtered(self, neighbor: str, kind: str) -> tuple[FilterMark, dict[str, Any] | None]:
        """The session's filtered prefixes to send (None: the control plane has them)."""
        rib = self.speaker.rib(neighbor)
        mark = filter_mark(rib)
        if kind != "full" and self.filter_listed.get(neighbor) == mark:
            return mark, None
        cached = self._listing.get(neighbor)
        if cached is None or cached[0] != mark:
            cached = self._listing[neighbor] = (mark, filtered_prefixes(rib))
        return cached

    def _take(self, events: Iterable[object]) -> None:
        for ev in events:
            if isinstance(ev, RouteDelta):
                self.pending.setdefault(ev.neighbor, _Pending()).add(ev.delta)
            elif isinstance(ev, SessionChanged | EndOfRib | MaxPrefixAlarm):
                self.pending.setdefault(ev.neighbor, _Pending()).session_changed = True

    async def _flush(self) -> None:
        """Send every owed full, then every pending delta."""
        self._take(self.sub.pending())
        for neighbor in sorted(self.need_full):
            await self._send_full(neighbor)
        for neighbor in sorted(self.pending):
            if neighbor in self.need_full:
                await self._send_full(neighbor)
                continue
            pending = self.pending.pop(neighbor)
            if pending:
                announce, withdraw = pending.split()
                await self._send(neighbor, "delta", announce, withdraw)

    async def _send_full(self, neighbor: str) -> None:
        # Synchronous up to the first post: the snapshot matches the events consumed.
        self._take(self.sub.pending())
        self.pending.pop(neighbor, None)
        announce = self.speaker.rib(neighbor).snapshot()
        self.need_full.discard(neighbor)
        try:
            await self._send(neighbor, "full", announce, [])
        except BaseException:
            self.need_full.add(neighbor)
            raise

    async def _send(
        self,
        neighbor: str,
        kind: str,
        announce: list[Announce],
        withdraw: list[tuple[Afi, int]],
    ) -> None:
        session = self.speaker.sessions[neighbor]
        peer_as = session.neighbor.remote_as
        parts = _chunks(announce, withdraw, self.limit)
        for i, (part_a, part_w) in enumerate(parts):
            base = None if kind == "full" and i == 0 else self.seq.get(neighbor, 0)
            seq = self.seq.get(neighbor, 0) + 1
            status = session.status().as_dict()
            status.update(neighbor=neighbor, local_as=self.speaker.config.local_as)
            status["ebgp"] = session.ebgp
            mark, listed = self._filtered(neighbor, kind)
            if listed is not None:
                status["filtered_prefixes"] = listed
            body = {
                "kind": kind,
                "seq": seq,
                "base_seq": base,
                "more": kind == "full" and i < len(parts) - 1,
                "sent_at": self.wall(),
                "session": status,
                "announce": [
                    {
                        "prefixes": [pfx.to_text(a.afi, p) for p in a.prefixes],
                        **attributes_json(a.attributes, peer_as),
                    }
                    for a in part_a
                ],
                "withdraw": [pfx.to_text(afi, p) for afi, p in part_w],
            }
            resp = await self.client.post(self.url, json=body, headers=self.headers)
            self.posts += 1
            if resp.status_code == 409 or (
                resp.status_code == 200 and _json(resp).get("resync") is True
            ):
                log.info("control plane asked for a full resync of %s", neighbor)
                self.need_full.add(neighbor)
                self.filter_listed.pop(neighbor, None)
                self.seq[neighbor] = int(_json(resp).get("seq", 0) or 0)
                return
            if resp.status_code != 200:
                raise _Rejected(neighbor, f"{resp.status_code}: {resp.text[:200]}")
            self.seq[neighbor] = seq
            if listed is not None:
                self.filter_listed[neighbor] = mark

    def _state(self, trouble: str | None) -> None:
        if trouble != self.trouble:
            if trouble:
                log.warning("BGP relay: %s", trouble)
            else:
                log.info("BGP relay: control plane reachable")
            self.trouble = trouble


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
