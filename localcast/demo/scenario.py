"""The demo, end to end: make a video, ingest it, run a fleet, play it three ways.

1. generate a short synthetic source (ffmpeg) and ingest it into the origin
   store (ABR ladder, 2 s CMAF segments, HLS + DASH);
2. start the stack (:mod:`localcast.devstack`): the control plane, two
   appliances embedded in the demo ISP (prefix 127.0.1.0/24), one at an IX
   site, and the origin appliance as every client's last resort;
3. schedule the title's release (in an hour, with an expected audience), so
   the control plane's fill plan places it before release: every appliance's
   fill agent fetches it, origin -> IX once, IX -> the ISP's site once, the
   second embedded appliance from its peer; wait until the control plane sees
   them holding it;
4. play, as real player sessions bound to loopback source addresses:
   a subscriber inside the ISP stops halfway; the same subscriber resumes
   from the stored offset while the appliance serving it is SIGKILLed with
   enough buffered to fail over without a rebuffer; a viewer outside the ISP
   is served over peering by the IX;
5. check each session against what it must show (:mod:`localcast.demo.checks`).

Everything the demo starts is stopped when :func:`run_demo` returns or
raises. What is said along the way goes to a :class:`Narrator`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from localcast.demo import checks
from localcast.demo.checks import Hosts, ServedBy
from localcast.demo.portal import PARTNER, PortalOutcome, check_portal
from localcast.demo.report import SessionOutcome
from localcast.demo.topology import DEMO_SPEC, EMBEDDED_SITE, INSIDE_CLIENT, OUTSIDE_CLIENT
from localcast.devstack import LocalStack
from localcast.media.ingest import IngestParams, ingest
from localcast.media.manifest import TitleManifest
from localcast.media.origin import DirectoryOriginStore
from localcast.media.testsource import make_test_source
from localcast.player import PlayerEvent, PlayerTuning, QoeReport, play

TITLE_ID = "demo"
TITLE_NAME = "Localcast demo (testsrc2)"
RELEASE_IN_S = 3600.0  # the title is scheduled for release in an hour...
EXPECTED_SESSIONS = 1000.0  # ...to this many sessions a day in every region


@dataclass(frozen=True)
class DemoConfig:
    root: Path  # everything the demo writes goes under here
    duration_s: float = 24.0
    width: int = 1280
    height: int = 720
    segment_s: float = 2.0
    speed: float = 2.0  # the players' clocks run this many times real time
    buffer_s: float = 8.0  # the players' buffer target (the title is short)
    outside_bandwidth: str = "3M"  # the outside viewer's access link


@dataclass
class DemoResult:
    sessions: list[SessionOutcome] = field(default_factory=list)
    hosts: dict[str, ServedBy] = field(default_factory=dict)
    watch_url: str = ""
    root: Path | None = None
    portal: PortalOutcome | None = None

    @property
    def problems(self) -> list[str]:
        found = [p for s in self.sessions for p in s.problems]
        return found + (self.portal.problems if self.portal is not None else [])


class Narrator(Protocol):
    """Where the demo says what it does (the CLI prints it)."""

    def step(self, text: str) -> None: ...

    def event(self, session: str, event: PlayerEvent) -> None: ...

    def session(self, outcome: SessionOutcome, hosts: Hosts) -> None: ...

    def summary(self, result: DemoResult) -> None: ...


def run_demo(
    cfg: DemoConfig, say: Narrator, hold: Callable[[DemoResult], None] | None = None
) -> DemoResult:
    """Run the whole demo; ``hold(result)`` (``--keep``) runs before the stack is stopped."""
    cfg.root.mkdir(parents=True, exist_ok=True)
    say.step(f"generating a {cfg.duration_s:g} s {cfg.width}x{cfg.height} test video (ffmpeg)")
    source = make_test_source(cfg.root / "source.mp4", cfg.duration_s, cfg.width, cfg.height)
    with LocalStack(cfg.root / "stack", DEMO_SPEC, fill=True, fill_refresh_s=0.5) as stack:
        say.step(f"control plane at {stack.control_url}")
        for node in stack.appliances.values():
            site = DEMO_SPEC.site_of(node.id)
            say.step(f"appliance {node.id} at {node.url} (site {site.id}, {site.kind.value})")
        params = IngestParams(segment_duration_s=cfg.segment_s, preset="ultrafast")
        done = ingest(source, TITLE_ID, TITLE_NAME, DirectoryOriginStore(stack.origin), params)
        manifest = done.manifest
        rungs = ", ".join(f"{r.height}p" for r in manifest.video)
        say.step(
            f"ingested {TITLE_ID}: {rungs} + audio, {len(manifest.video[0].segments)} segments "
            f"of {cfg.segment_s:g} s, {manifest.total_bytes / 1e6:.1f} MB "
            f"in {done.elapsed_s:.1f} s"
        )
        release = (time.time() + RELEASE_IN_S, EXPECTED_SESSIONS)
        placed = stack.fill_titles([TITLE_ID], release=release)[TITLE_ID]
        origin_nodes = [n.id for n in stack.appliances.values() if n.spec.serves_origin]
        say.step(
            f"released in {RELEASE_IN_S / 3600:g} h to {EXPECTED_SESSIONS:g} expected sessions "
            f"a day: the fill plan placed {TITLE_ID} on {', '.join(placed)} ahead of release; "
            f"{', '.join(origin_nodes)} serves the origin store"
        )
        for link in sorted(
            stack.fill_links(), key=lambda x: (x["from_kind"] != "origin", x["to_site"])
        ):
            say.step(
                f"fill {link['from_site']} -> {link['to_site']} ({link['from_kind']}): "
                f"{link['files']} files, {link['bytes'] / 1e6:.1f} MB, "
                f"each file at most {link['max_crossings']}x"
            )
        result = DemoResult(hosts=_hosts(stack), root=cfg.root)
        result.watch_url = f"{stack.control_url}/watch/{TITLE_ID}?profile=viewer"
        say.step(
            f"players run {cfg.speed:g}x real time with a {cfg.buffer_s:g} s buffer target "
            "(the title is short)"
        )
        for play_session in (_first_half, _resume_with_failover, _outside):
            outcome = play_session(cfg, stack, manifest, result.hosts, say)
            result.sessions.append(outcome)
            say.session(outcome, result.hosts)
        embedded = [n.id for n in stack.appliances.values() if n.spec.site == EMBEDDED_SITE]
        killed = next((n.id for n in stack.appliances.values() if not n.running()), None)
        result.portal = check_portal(stack, embedded, killed)
        say.step(
            f"partner portal: {PARTNER} logs in and sees "
            + ", ".join(f"{a} {s}" for a, s in result.portal.statuses.items())
            + f", {result.portal.embedded_bytes / 1e6:.1f} MB served by its embedded appliances"
        )
        for problem in result.portal.problems:
            say.step(f"FAILED {problem}")
        say.summary(result)
        if hold is not None:
            hold(result)
    return result


def _hosts(stack: LocalStack) -> dict[str, ServedBy]:
    out = {}
    for node in stack.appliances.values():
        site = stack.spec.site_of(node.id)
        out[node.host] = ServedBy(node.id, site.id, site.kind.value)
    return out


def _video_end_s(manifest: TitleManifest) -> float:
    last = manifest.video[0].segments[-1]
    return last.start_s + last.duration_s


def _play(
    cfg: DemoConfig,
    stack: LocalStack,
    label: str,
    profile: str,
    client_ip: str,
    say: Narrator,
    *,
    stop_at_s: float | None = None,
    bandwidth: str | None = None,
    on_event: Callable[[PlayerEvent], None] | None = None,
) -> QoeReport:
    def events(event: PlayerEvent) -> None:
        if on_event is not None:
            on_event(event)
        say.event(label, event)

    say.step(f"{label}: {profile} plays from {client_ip}")
    return asyncio.run(
        play(
            TITLE_ID,
            profile,
            control_url=stack.control_url,
            source_address=client_ip,
            stop_at_s=stop_at_s,
            bandwidth=bandwidth,
            speed=cfg.speed,
            tuning=PlayerTuning(max_buffer_s=cfg.buffer_s, platform="demo"),
            on_event=events,
        )
    )


def _half(manifest: TitleManifest) -> float:
    """The start of the segment nearest the middle: where the first session stops."""
    segments = manifest.video[0].segments
    return segments[len(segments) // 2].start_s


def _first_half(
    cfg: DemoConfig, stack: LocalStack, manifest: TitleManifest, hosts: Hosts, say: Narrator
) -> SessionOutcome:
    label = "inside, stops halfway"
    stop = _half(manifest)
    report = _play(cfg, stack, label, "alice", INSIDE_CLIENT, say, stop_at_s=stop)
    problems = [
        *checks.check_played(label, report, 0.0, stop),
        *checks.check_served_only_by(label, report, hosts, "embedded"),
        *checks.check_views(label, report, stop),
    ]
    return SessionOutcome(label, "alice", INSIDE_CLIENT, report, problems=tuple(problems))


def _resume_with_failover(
    cfg: DemoConfig, stack: LocalStack, manifest: TitleManifest, hosts: Hosts, say: Narrator
) -> SessionOutcome:
    label = "inside, resumes + failover"
    view = stack.views("alice", TITLE_ID)
    resume_s = float(view["resume_offset_s"]) if view else 0.0
    say.step(
        f"{label}: the control plane holds alice at {view['offset_s'] if view else '-'} s "
        f"({view['resume_reason'] if view else 'no view'})"
    )
    killed: list[str] = []
    first_index = manifest.video[0].segment_at(resume_s).index

    def kill_when_buffered(event: PlayerEvent) -> None:
        seg = event.segment
        if killed or seg is None or seg.index < first_index + 2 or seg.buffer_s < cfg.segment_s:
            return
        who = hosts.get(seg.host)
        if who is None:
            return
        stack.kill(who.appliance_id)
        killed.append(who.appliance_id)
        say.step(
            f"{label}: SIGKILL {who.appliance_id} (the appliance serving alice) "
            f"with {seg.buffer_s + seg.duration_s:.1f} s buffered"
        )

    report = _play(cfg, stack, label, "alice", INSIDE_CLIENT, say, on_event=kill_when_buffered)
    end = _video_end_s(manifest)
    victim = killed[0] if killed else None
    problems = [
        *checks.check_played(label, report, resume_s, end),
        *checks.check_served_only_by(label, report, hosts, "embedded"),
        *checks.check_failover(label, report, hosts, victim),
        *checks.check_no_rebuffer(label, report),
        *checks.check_views(label, report, report.end_position_s),
    ]
    if resume_s <= 0:
        problems.append(f"{label}: no resume point was stored by the first session")
    return SessionOutcome(label, "alice", INSIDE_CLIENT, report, victim, tuple(problems))


def _outside(
    cfg: DemoConfig, stack: LocalStack, manifest: TitleManifest, hosts: Hosts, say: Narrator
) -> SessionOutcome:
    label = "outside the ISP"
    bw = cfg.outside_bandwidth
    report = _play(cfg, stack, f"{label} ({bw}b/s link)", "bob", OUTSIDE_CLIENT, say, bandwidth=bw)
    problems = [
        *checks.check_played(label, report, 0.0, _video_end_s(manifest)),
        *checks.check_served_only_by(label, report, hosts, "ix"),
    ]
    return SessionOutcome(label, "bob", OUTSIDE_CLIENT, report, problems=tuple(problems))
