"""The player: one playback session, as a real device would run it.

Flow: ask the control plane to play (``POST /v1/playback``), fetch the
multivariant playlist, keep the rungs this device can play on every pathway,
fetch the steering manifest and reload it at its TTL, then download init and
media segments (video at the rung the ABR core picks, audio alongside) from
the current pathway over keep-alive HTTP, through the emulated link. A failed
request (HTTP error, refused, reset, timeout) penalises its pathway; the same
request is retried on the next pathway. The playback model
(:mod:`localcast.core.buffer`) turns arrivals and the clock into startup,
stalls and the playhead; the viewing offset is reported every
``view_interval_s`` of media and when playback stops. The result is a
:class:`~localcast.player.qoe.QoeReport`.

Decisions live in pure modules (``core.abr``, ``core.buffer``,
``core.throughput``, ``core.tokenbucket``, ``player.steering``,
``player.hls``); this module only sequences I/O around them. Two tasks run
beside the session's monitor loop: the downloader and the steering reloader.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from localcast.core.abr import AbrConfig, AbrState, Ladder, choose
from localcast.core.buffer import (
    Phase,
    Playback,
    advance,
    begin,
    buffered,
    media_time_until,
    stop,
)
from localcast.core.throughput import ThroughputEstimator, add_sample, estimate_bps
from localcast.core.tokenbucket import parse_rate
from localcast.player.api import ControlApi, PlaybackGrant
from localcast.player.clock import Clock
from localcast.player.errors import FetchError, PlaybackFailed, PlayerError
from localcast.player.hls import (
    MediaPlaylist,
    MediaSegment,
    PlaylistError,
    Presentation,
    build_presentation,
    parse_media_playlist,
    parse_multivariant,
)
from localcast.player.link import Link, Transfer
from localcast.player.qoe import QoeReport, SegmentRecord, average_bitrate_bps, quality_switches
from localcast.player.steering import pathway_order, steering_request_url

log = logging.getLogger(__name__)

DEFAULT_CONTROL_URL = "http://127.0.0.1:8000"
EPS_S = 1e-3
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class PlayerTuning:
    """Knobs a device maker would set; the defaults suit VOD with 2-6 s segments."""

    codecs: tuple[str, ...] = ("avc1", "mp4a")
    platform: str = "cli"
    max_buffer_s: float = 30.0  # stop downloading above this much buffered media
    view_interval_s: float = 10.0  # report the viewing offset this often (media seconds)
    timeout_segments: float = 2.0  # per-operation request timeout, in segment durations
    min_timeout_wall_s: float = 1.0  # ... but never below this many wall seconds
    attempts_per_pathway: int = 3  # per request, before giving up
    retry_backoff_s: float = 2.0  # wait when every pathway has just failed
    pathway_penalty_s: float = 60.0  # a failed pathway goes to the back this long
    steering_retry_s: float = 30.0  # after a failed steering reload
    control_timeout_s: float = 5.0
    abr: AbrConfig = field(default_factory=AbrConfig)


@dataclass(frozen=True)
class PlayerEvent:
    """Something a viewer might notice; ``at_s`` on the player's clock."""

    kind: str  # open, start, segment, stall, resume, failover, steering, view, end, error
    at_s: float
    message: str
    segment: SegmentRecord | None = None  # for "segment" events


EventSink = Callable[[PlayerEvent], None]


async def play(
    title_id: str,
    profile_id: str,
    *,
    control_url: str = DEFAULT_CONTROL_URL,
    bandwidth: int | str | None = None,
    stop_at_s: float | None = None,
    speed: float = 1.0,
    source_address: str | None = None,
    max_height: int | None = 1080,
    on_event: EventSink | None = None,
    tuning: PlayerTuning | None = None,
) -> QoeReport:
    """Play ``title_id`` for ``profile_id`` to the end (or ``stop_at_s``); return the QoE.

    ``bandwidth`` emulates the access link (bits/s, or ``"3M"``/``"800k"``);
    ``speed`` runs the player's clock that many times faster than real time;
    ``source_address`` binds the client sockets (e.g. ``127.0.0.5``) so the
    session looks like a distinct subscriber. Raises
    :class:`~localcast.player.errors.PlayerError` if playback cannot start;
    failures after that end the session with ``report.error`` set.
    """
    rate_bps = parse_rate(bandwidth) if isinstance(bandwidth, str) else bandwidth
    tuning = tuning or PlayerTuning()
    clock = Clock(speed)
    transport = httpx.AsyncHTTPTransport(local_address=source_address, retries=0)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        transport=transport,
        limits=limits,
        trust_env=False,  # never through a proxy from the environment
        follow_redirects=True,
        headers={"Accept-Encoding": "identity", "User-Agent": "localcast-player"},
    ) as client:
        session = _Session(
            title_id=title_id,
            profile_id=profile_id,
            control_url=control_url,
            clock=clock,
            link=Link(client, clock, rate_bps),
            api=ControlApi(client, control_url, tuning.control_timeout_s),
            stop_at_s=stop_at_s,
            max_height=max_height,
            tuning=tuning,
            on_event=on_event,
        )
        return await session.run()


class _Session:
    """The mutable shell around the pure models, for one playback."""

    def __init__(
        self,
        *,
        title_id: str,
        profile_id: str,
        control_url: str,
        clock: Clock,
        link: Link,
        api: ControlApi,
        stop_at_s: float | None,
        max_height: int | None,
        tuning: PlayerTuning,
        on_event: EventSink | None,
    ) -> None:
        self.title_id = title_id
        self.profile_id = profile_id
        self.control_url = control_url
        self.clock = clock
        self.link = link
        self.api = api
        self.stop_at_s = stop_at_s
        self.max_height = max_height
        self.tuning = tuning
        self.on_event = on_event

        self.abr_state = AbrState()
        self.estimator = ThroughputEstimator()
        self.playlists: dict[str, MediaPlaylist] = {}
        self.inits: set[str] = set()
        self.records: list[SegmentRecord] = []
        self.views: list[float] = []
        self.available: tuple[str, ...] = ()
        self.pathway = ""
        self.priority: tuple[str, ...] = ()
        self.penalized_until: dict[str, float] = {}
        self.failovers = 0
        self.request_errors = 0
        self.steering_switches = 0
        self.timeout_wall_s = max(tuning.min_timeout_wall_s, clock.wall(5.0))
        self._changed = asyncio.Event()
        self._pb: Playback | None = None

    # --- small helpers ---------------------------------------------------------------

    def _emit(self, kind: str, message: str, segment: SegmentRecord | None = None) -> None:
        log.debug("%s: %s", kind, message)
        if self.on_event is not None:
            self.on_event(PlayerEvent(kind, self.clock.now(), message, segment))

    @property
    def pb(self) -> Playback:
        assert self._pb is not None
        return self._pb

    def _update(self, new: Playback) -> None:
        """Install a new playback state, announcing phase changes."""
        old = self._pb
        self._pb = new
        if old is None or old.phase is new.phase:
            return
        if new.phase is Phase.PLAYING and old.phase is Phase.STARTUP:
            self._emit(
                "start", f"playing at {new.position_s:.1f} s after {new.startup_time_s:.2f} s"
            )
        elif new.phase is Phase.STALLED:
            self._emit("stall", f"rebuffering at {new.position_s:.1f} s")
        elif new.phase is Phase.PLAYING and old.phase is Phase.STALLED:
            self._emit("resume", f"resumed at {new.position_s:.1f} s")
        self._changed.set()

    def _tick(self) -> Playback:
        self._update(advance(self.pb, self.clock.now()))
        return self.pb

    def _switch_to(self, pathway: str, why: str) -> None:
        if pathway != self.pathway:
            self._emit("failover" if why == "error" else "steering", f"{self.pathway} -> {pathway}")
            if why == "error":
                self.failovers += 1
            else:
                self.steering_switches += 1
            self.pathway = pathway

    def _order(self) -> tuple[str, ...]:
        return pathway_order(self.available, self.priority, self.penalized_until, self.clock.now())

    def _fail(self, pathway: str, exc: FetchError) -> None:
        self.request_errors += 1
        log.info("pathway %s failed: %s", pathway, exc)
        self.penalized_until[pathway] = self.clock.now() + self.tuning.pathway_penalty_s
        if pathway == self.pathway:
            self._switch_to(self._order()[0], "error")

    async def _on_pathways(
        self, what: str, op: Callable[[str], Awaitable[T]]
    ) -> tuple[T, str, int]:
        """Run ``op(pathway)`` on the current pathway, failing over until it succeeds."""
        limit = self.tuning.attempts_per_pathway * max(1, len(self.available))
        attempts = 0
        while True:
            pathway = self.pathway
            attempts += 1
            try:
                return await op(pathway), pathway, attempts
            except FetchError as exc:
                self._fail(pathway, exc)
                if attempts >= limit:
                    raise PlaybackFailed(f"{what}: every pathway failed ({exc})") from exc
                if self.penalized_until.get(self.pathway, -math.inf) > self.clock.now():
                    await self.clock.sleep(self.tuning.retry_backoff_s)  # all are failing

    async def _get(self, url: str) -> Transfer:
        return await self.link.get(url, self.timeout_wall_s)

    async def _playlist(self, uri: str) -> MediaPlaylist:
        cached = self.playlists.get(uri)
        if cached is not None:
            return cached
        transfer = await self.link.get(uri, self.timeout_wall_s, keep_body=True)
        try:
            playlist = parse_media_playlist((transfer.body or b"").decode(), uri)
        except (PlaylistError, UnicodeDecodeError) as exc:
            raise FetchError(uri, f"bad media playlist: {exc}") from exc
        self.playlists[uri] = playlist
        return playlist

    async def _media(
        self, playlist_uri: str, at_s: float, init_key: str
    ) -> tuple[MediaSegment, list[Transfer]]:
        """The segment of ``playlist_uri`` at media time ``at_s`` (with its init if new)."""
        playlist = await self._playlist(playlist_uri)
        transfers = []
        if playlist.init_uri is not None and init_key not in self.inits:
            transfers.append(await self._get(playlist.init_uri))
            self.inits.add(init_key)
        segment = playlist.segments[playlist.index_at(at_s + EPS_S)]
        transfers.append(await self._get(segment.uri))
        return segment, transfers

    # --- the session -------------------------------------------------------------------

    async def run(self) -> QoeReport:
        requested_at = self.clock.now()
        grant = await self.api.start_playback(
            self.title_id,
            self.profile_id,
            self.tuning.codecs,
            self.max_height,
            self.tuning.platform,
        )
        presentation, steering_uri, start_hint = await self._open(grant)
        start_s = grant.resume_offset_s or start_hint or 0.0

        timeline, _, _ = await self._on_pathways(
            "video playlist", lambda p: self._playlist(presentation.rungs[0].uris[p])
        )
        audio_timeline: MediaPlaylist | None = None
        if presentation.has_audio:
            audio_timeline, _, _ = await self._on_pathways(
                "audio playlist", lambda p: self._playlist(presentation.rungs[0].audio_uris[p])
            )
        segment_s = max(s.duration_s for s in timeline.segments)
        self.timeout_wall_s = max(
            self.tuning.min_timeout_wall_s,
            self.clock.wall(self.tuning.timeout_segments * segment_s),
        )
        start_s = min(max(0.0, start_s), timeline.segments[-1].start_s)
        end_s = timeline.duration_s
        if self.stop_at_s is not None:
            end_s = min(end_s, max(start_s, self.stop_at_s))
        first = timeline.segments[timeline.index_at(start_s)]
        self._update(
            begin(
                requested_at,
                start_s,
                end_s,
                startup_buffer_s=first.end_s - start_s,
                resume_buffer_s=segment_s,
            )
        )
        self._emit("open", f"{len(presentation.rungs)} renditions, start at {start_s:.1f} s")

        downloader = asyncio.create_task(self._download(presentation, timeline, audio_timeline))
        steering = (
            asyncio.create_task(self._steer(steering_uri)) if steering_uri is not None else None
        )
        error: str | None = None
        try:
            error = await self._monitor(downloader)
        finally:
            for task in (downloader, steering):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.pb.phase is not Phase.ENDED:
                self._update(stop(self.pb, self.clock.now()))
            await self._report_view(self.pb.position_s)
        self._emit(
            "end", f"stopped at {self.pb.position_s:.1f} s" + (f": {error}" if error else "")
        )
        return self._report(grant, error)

    async def _open(self, grant: PlaybackGrant) -> tuple[Presentation, str | None, float | None]:
        text = await self.api.get_text(grant.multivariant_url)
        try:
            mv = parse_multivariant(text, grant.multivariant_url)
            presentation = build_presentation(mv, self.tuning.codecs, self.max_height)
        except PlaylistError as exc:
            raise PlayerError(str(exc)) from exc
        if not presentation.pathways:
            raise PlayerError("no pathway serves the whole ladder")
        ranked = [p.id for p in grant.pathways if p.id in presentation.pathways]
        self.available = tuple(ranked + [p for p in presentation.pathways if p not in ranked])
        default = mv.default_pathway
        self.pathway = default if default in self.available else self.available[0]
        return presentation, mv.steering_uri, mv.start_offset_s

    async def _monitor(self, downloader: asyncio.Task[None]) -> str | None:
        """Follow the playhead: report views, notice the end or a fatal download error."""
        interval = self.tuning.view_interval_s
        next_view = self.pb.start_s + interval
        while True:
            self._changed.clear()
            pb = self._tick()
            if downloader.done():
                exc = downloader.exception()
                if isinstance(exc, PlayerError):
                    self._emit("error", str(exc))
                    self._update(stop(pb, self.clock.now()))
                    return str(exc)
                if exc is not None:
                    raise exc
            if pb.phase is Phase.ENDED:
                return None
            if pb.phase is not Phase.STARTUP and pb.position_s >= next_view - EPS_S:
                await self._report_view(pb.position_s)
                while next_view <= pb.position_s + EPS_S:
                    next_view += interval
                continue
            wait = media_time_until(pb, min(next_view, pb.end_s))
            timeout = min(1.0, self.clock.wall(wait)) if wait is not None else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _report_view(self, offset_s: float) -> None:
        ok = await self.api.report_view(
            self.profile_id, self.title_id, offset_s, self.tuning.platform, time.time()
        )
        if ok:
            self.views.append(round(offset_s, 3))
            self._emit("view", f"offset {offset_s:.1f} s recorded")
        else:
            log.warning("could not record the viewing offset %.1f s", offset_s)

    async def _steer(self, uri: str) -> None:
        """Reload the steering manifest at its TTL and follow its pathway priority."""
        while True:
            url = steering_request_url(uri, self.pathway, estimate_bps(self.estimator))
            try:
                manifest = await self.api.steering(url)
            except PlayerError as exc:
                log.info("steering reload failed: %s", exc)
                await self.clock.sleep(self.tuning.steering_retry_s)
                continue
            self.priority = manifest.pathway_priority
            self._switch_to(self._order()[0], "steering")
            uri = manifest.reload_uri
            await self.clock.sleep(manifest.ttl_s)

    async def _wait_for_room(self, segment_s: float) -> None:
        """Hold off while the buffer is full (room for one more segment is needed)."""
        while True:
            pb = self._tick()
            excess = pb.buffer_s + segment_s - self.tuning.max_buffer_s
            if pb.phase is not Phase.PLAYING or excess <= 0:
                return
            await self.clock.sleep(excess + EPS_S)

    async def _download(
        self,
        presentation: Presentation,
        timeline: MediaPlaylist,
        audio_timeline: MediaPlaylist | None,
    ) -> None:
        try:
            await self._download_all(presentation, timeline, audio_timeline)
        finally:
            self._changed.set()

    async def _download_all(
        self,
        presentation: Presentation,
        timeline: MediaPlaylist,
        audio_timeline: MediaPlaylist | None,
    ) -> None:
        ladder = Ladder.of([r.bandwidth for r in presentation.rungs])
        v_next = timeline.index_at(self.pb.start_s)
        a_next = 0
        audio_until = math.inf
        if audio_timeline is not None:
            a_next = audio_timeline.index_at(timeline.segments[v_next].start_s + EPS_S)
            audio_until = audio_timeline.segments[a_next].start_s

        while v_next < len(timeline.segments):
            seg = timeline.segments[v_next]
            if seg.start_s >= self.pb.end_s - EPS_S:
                break
            await self._wait_for_room(seg.duration_s)
            pb = self._tick()
            if pb.phase is Phase.ENDED:
                return
            throughput = estimate_bps(self.estimator)
            decision = choose(ladder, self.abr_state, pb.buffer_s, throughput, self.tuning.abr)
            self.abr_state = decision.state
            if decision.delay_s > 0 and pb.phase is Phase.PLAYING:
                await self.clock.sleep(decision.delay_s)
                continue
            rung = presentation.rungs[decision.index]

            audio_segments: list[MediaSegment] = []
            if audio_timeline is not None:
                audio_segments = [
                    s for s in audio_timeline.segments[a_next:] if s.start_s < seg.end_s - EPS_S
                ]
            video_job = self._on_pathways(
                f"segment {seg.index}",
                functools.partial(
                    self._media_on, rung.uris, seg.start_s, f"video-{decision.index}"
                ),
            )
            ((_, v_transfers), pathway, attempts), a_transfers = await _together(
                video_job, self._fetch_audio(rung.audio_uris, audio_segments)
            )
            transfers = v_transfers + a_transfers
            size = sum(t.size_bytes for t in transfers)
            elapsed = max(t.finished_s for t in transfers) - min(t.started_s for t in transfers)
            self.estimator = add_sample(self.estimator, size, elapsed)

            v_next += 1
            if audio_timeline is not None:
                a_next += len(audio_segments)
                if a_next >= len(audio_timeline.segments):
                    audio_until = math.inf
                elif audio_segments:
                    audio_until = audio_segments[-1].end_s
            self._update(buffered(self.pb, min(seg.end_s, audio_until), self.clock.now()))
            record = SegmentRecord(
                index=seg.index,
                start_s=seg.start_s,
                duration_s=seg.duration_s,
                rung=decision.index,
                bitrate_bps=rung.bandwidth,
                label=rung.label,
                pathway=pathway,
                host=v_transfers[-1].host,
                size_bytes=size,
                attempts=attempts,
                buffer_s=round(pb.buffer_s, 3),
                throughput_bps=throughput,
                reason=decision.reason,
            )
            self.records.append(record)
            self._emit(
                "segment",
                f"#{seg.index} {rung.label} via {pathway} ({record.host}), "
                f"buffer {pb.buffer_s:.1f} s, {decision.reason}",
                record,
            )
        # Everything up to the end point is here (audio may end a hair before video).
        self._update(buffered(self.pb, self.pb.end_s, self.clock.now()))

    async def _media_on(
        self, uris: Mapping[str, str], at_s: float, init_key: str, pathway: str
    ) -> tuple[MediaSegment, list[Transfer]]:
        return await self._media(uris[pathway], at_s, init_key)

    async def _fetch_audio(
        self, uris: Mapping[str, str], segments: list[MediaSegment]
    ) -> list[Transfer]:
        """Fetch the audio segments that go with one video segment, each with failover."""
        fetched: list[Transfer] = []
        # one init per audio track; playlists are content-addressed, so name the track by one
        init_key = "audio-" + min(uris.values(), default="").rsplit("/", 1)[-1]
        for seg in segments:
            (_, transfers), _, _ = await self._on_pathways(
                f"audio segment {seg.index}",
                functools.partial(self._media_on, uris, seg.start_s, init_key),
            )
            fetched.extend(transfers)
        return fetched

    def _report(self, grant: PlaybackGrant, error: str | None) -> QoeReport:
        pb = self.pb
        reached = pb.position_s >= pb.end_s - EPS_S
        return QoeReport(
            title_id=self.title_id,
            profile_id=self.profile_id,
            session_id=grant.session_id,
            completed=reached and error is None,
            error=error,
            start_offset_s=pb.start_s,
            end_position_s=round(pb.position_s, 3),
            startup_time_s=pb.startup_time_s,
            rebuffer_count=pb.stall_count,
            rebuffer_time_s=pb.rebuffer_time_s(),
            avg_bitrate_bps=average_bitrate_bps(self.records),
            quality_switches=quality_switches(self.records),
            failovers=self.failovers,
            request_errors=self.request_errors,
            steering_switches=self.steering_switches,
            bytes_total=self.link.bytes_total,
            bytes_by_host=dict(self.link.bytes_by_host),
            views_reported=tuple(self.views),
            speed=self.clock.speed,
            segments=tuple(self.records),
        )


async def _together(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Run both concurrently; if either fails, cancel the other and raise."""
    task_a = asyncio.ensure_future(first)
    task_b = asyncio.ensure_future(second)
    try:
        await asyncio.gather(task_a, task_b)
    except BaseException:
        for task in (task_a, task_b):
            task.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)
        raise
    return task_a.result(), task_b.result()
