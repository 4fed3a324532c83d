"""Helpers for the fault and load tests: real faults on real processes, and the checks after.

- :func:`playable_title`: a synthetic title the CLI player can play (real HLS
  playlists, segment sizes true to the ladder's bitrates, random bytes for
  media: the player does not decode), written to an origin store;
- :class:`ThrottleProxy`: a TCP proxy of our own (asyncio, in its own thread)
  whose upstream -> client bytes pass a shared pacer at ``rate_bps`` (no tc
  netem on these kernels); unthrottled, it is a plain forwarder;
- :class:`NetNs`: a network namespace of the test's, joined to this one by a
  veth pair (``10.200.N.1`` here, ``10.200.N.2`` inside), whose link the test
  takes down and up; deleted on exit, even after a failure. Our end's address
  also serves as a client address outside loopback (a subscriber);
- :func:`tmpfs`: a small tmpfs mounted on a directory for the ``with`` block;
- :class:`PlayerThread`: one ``localcast.player.play`` session in a thread, so
  the test can do harm while it plays;
- :func:`group_rss_bytes`: resident memory of a process group, from ``/proc``;
- the "no data lost" checks: :func:`check_session` (played through, every
  segment fetched in order, the stored view is the last one reported) and
  :func:`check_store` (every file of a store matches the sha256 in its name).

Only loopback addresses and addresses inside namespaces made here are ever
used. Waits poll conditions with deadlines; nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec
from localcast.devstack.procs import group_members
from localcast.media.hls import render_media_playlist, render_multivariant
from localcast.media.manifest import FileRef, Rendition, Segment, TitleManifest
from localcast.player import PlayerEvent, QoeReport, play

SUBSCRIBERS = "127.0.1.0/24"  # the ISP's clients: loopback source addresses


def one_isp_spec(
    appliances: tuple[NodeSpec, ...],
    *,
    ix: bool = True,
    fill_window: str | None = None,
    control: dict[str, Any] | None = None,
) -> StackSpec:
    """The fault tests' fleet: ISP ``isp`` with its embedded site ``isp-par``
    (:data:`SUBSCRIBERS`), the IX site ``ix-ams`` (unless ``ix=False``), the origin."""
    embedded = SiteSpec(
        id="isp-par",
        kind=SiteKind.EMBEDDED,
        partner="isp",
        lat=48.85,
        lon=2.35,
        tz="Europe/Paris",
        prefixes=[SUBSCRIBERS],
        **({"fill_window": fill_window} if fill_window else {}),
    )
    sites = [embedded]
    if ix:
        sites.append(
            SiteSpec(id="ix-ams", kind=SiteKind.IX, lat=52.37, lon=4.9, tz="Europe/Amsterdam")
        )
    sites.append(SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="UTC"))
    return StackSpec(
        partners=(PartnerSpec(name="isp", asns=[64500]),),
        sites=tuple(sites),
        appliances=appliances,
        control=control or {},
    )


EPS_S = 0.1

# --- a playable synthetic title ----------------------------------------------------------------

# (height, peak bits/s) per video rung: the ladder's 240p-720p targets
VIDEO_RUNGS: tuple[tuple[int, int], ...] = (
    (240, 400_000),
    (360, 800_000),
    (480, 1_400_000),
    (720, 2_800_000),
)
AUDIO_BPS = 128_000
FILL_RATIO = 0.8  # a segment's size is this share of its rung's peak bitrate


@dataclasses.dataclass(frozen=True)
class PlayableTitle:
    manifest: TitleManifest
    files: dict[str, bytes]  # file name -> content

    @property
    def title_id(self) -> str:
        return self.manifest.title_id

    @property
    def total_bytes(self) -> int:
        return sum(len(b) for b in self.files.values())

    def write(self, origin: Path) -> Path:
        """Publish under ``origin/<title_id>/`` (files and manifest.json), by rename."""
        import json

        staging = origin / f".{self.title_id}.writing"
        staging.mkdir(parents=True)
        for name, data in self.files.items():
            (staging / name).write_bytes(data)
        (staging / "manifest.json").write_text(json.dumps(self.manifest.to_json()))
        final = origin / self.title_id
        staging.rename(final)
        return final


def _file(files: dict[str, bytes], data: bytes, ext: str) -> FileRef:
    sha = hashlib.sha256(data).hexdigest()
    files[f"{sha}.{ext}"] = data
    return FileRef(sha, ext, len(data))


def playable_title(
    title_id: str,
    duration_s: float,
    segment_s: float,
    video: tuple[tuple[int, int], ...] = VIDEO_RUNGS,
    audio_bps: int = AUDIO_BPS,
) -> PlayableTitle:
    """A title of ``duration_s`` in ``segment_s`` segments: video ``(height, bps)`` rungs and
    one audio track; real media playlists, random media bytes of true-to-bitrate sizes."""
    files: dict[str, bytes] = {}
    count = max(1, round(duration_s / segment_s))
    placeholder = FileRef("0" * 64, "m3u8", 0)

    def rendition(rid: str, kind: str, bps: int, height: int) -> Rendition:
        segs = tuple(
            Segment(
                i,
                i * segment_s,
                segment_s,
                _file(files, os.urandom(int(bps * FILL_RATIO * segment_s / 8)), "m4s"),
            )
            for i in range(count)
        )
        r = Rendition(
            id=rid,
            kind=kind,
            codec="avc1.64001f" if kind == "video" else "mp4a.40.2",
            bandwidth=bps,
            average_bandwidth=int(bps * FILL_RATIO),
            init=_file(files, f"{title_id}/{rid}/init".encode() + os.urandom(600), "mp4"),
            playlist=placeholder,
            segments=segs,
            width=(height * 16 // 9) // 2 * 2 if kind == "video" else 0,
            height=height if kind == "video" else 0,
            frame_rate=25.0 if kind == "video" else 0.0,
            channels=2 if kind == "audio" else 0,
            sample_rate=48000 if kind == "audio" else 0,
        )
        playlist = _file(files, render_media_playlist(r).encode(), "m3u8")
        return dataclasses.replace(r, playlist=playlist)

    renditions = [rendition(f"video-{h}p", "video", bps, h) for h, bps in video]
    renditions.append(rendition("audio-aac", "audio", audio_bps, 0))
    manifest = TitleManifest(
        title_id=title_id,
        name=f"Playable {title_id}",
        duration_s=count * segment_s,
        segment_duration_s=segment_s,
        source_sha256="0" * 64,
        renditions=tuple(renditions),
        multivariant=placeholder,
        mpd=placeholder,
    )
    multivariant = _file(files, render_multivariant(manifest).encode(), "m3u8")
    mpd = _file(files, f"<MPD><!-- {title_id} --></MPD>\n".encode(), "mpd")
    manifest = dataclasses.replace(manifest, multivariant=multivariant, mpd=mpd)
    return PlayableTitle(manifest, files)


# --- a throttling TCP proxy ------------------------------------------------------------------

Address = tuple[str, int]


class ThrottleProxy:
    """A TCP proxy in its own event-loop thread.

    Client -> upstream bytes pass as they come; upstream -> client bytes go
    out in chunks of at most ``chunk`` bytes, paced by one schedule shared by
    every connection at ``rate_bps`` (None: as fast as they come), so the
    rate is the whole proxy's, like a link's. ``upstream`` may be a callable,
    read at each new connection (an address known only later). ``set_rate``
    changes the rate at once.
    """

    def __init__(
        self,
        upstream: Address | Callable[[], Address],
        listen: Address = ("127.0.0.1", 0),
        rate_bps: float | None = None,
        chunk: int = 16384,
    ) -> None:
        self._upstream = upstream
        self._listen = listen
        self.rate_bps = rate_bps
        self.chunk = chunk
        self.bytes_down = 0
        self.connections = 0
        self._next_send = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: Address = listen

    def __enter__(self) -> ThrottleProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def start(self) -> ThrottleProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, *self._listen)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = (host, port)

    def set_rate(self, rate_bps: float | None) -> None:
        def apply() -> None:
            self.rate_bps = rate_bps
            self._next_send = 0.0

        self._loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            target = self._upstream() if callable(self._upstream) else self._upstream
            up_reader, up_writer = await asyncio.open_connection(*target)
            await asyncio.gather(
                self._pipe(reader, up_writer, throttle=False),
                self._pipe(up_reader, writer, throttle=True),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the proxy stops: end quietly (nothing awaits us)
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _pace(self, nbytes: int) -> None:
        rate = self.rate_bps
        if rate is None or rate <= 0:
            return
        now = time.monotonic()
        start = max(now, self._next_send)
        self._next_send = start + nbytes * 8 / rate
        if start > now:
            await asyncio.sleep(start - now)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, throttle: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(self.chunk if throttle else 65536)
                if not data:
                    break
                if throttle:
                    await self._pace(len(data))
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            writer.close()


# --- network namespaces ----------------------------------------------------------------------


def _ip(*args: str) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def _free_subnet(base: str) -> int:
    """N such that no address or route of ``base``.N.0/24 exists here."""
    used = _ip("-4", "-o", "addr", "show") + _ip("-4", "route", "show")
    start = 20 + os.getpid() % 200
    for k in range(230):
        n = (start + k) % 230 + 20
        if f"{base}.{n}." not in used:
            return n
    raise RuntimeError(f"no free {base}.N.0/24 subnet for a test namespace")


class NetNs:
    """A network namespace joined to this one by a veth pair: ``host_ip`` on our side,
    ``inner_ip`` inside, in a free ``<base>.N.0/24``; nothing else is routed. A context
    manager that deletes it. ``base`` is 10.200 by default; a test that needs a client
    address BGP may announce (private space is a bogon to the speaker's import policy)
    passes another: the addresses exist only on this pair, and no packet leaves the host."""

    _count = 0

    def __init__(self, tag: str = "ns", base: str = "10.200") -> None:
        NetNs._count += 1
        suffix = f"{os.getpid() % 100000}{NetNs._count}"
        self.name = f"lcf-{tag}-{suffix}"
        self.host_if = f"lch{suffix}"[:15]
        self.inner_if = f"lci{suffix}"[:15]
        self.base = base
        self.subnet = 0
        self.up = False

    @property
    def host_ip(self) -> str:
        return f"{self.base}.{self.subnet}.1"

    @property
    def inner_ip(self) -> str:
        return f"{self.base}.{self.subnet}.2"

    @property
    def prefix(self) -> str:
        return f"{self.base}.{self.subnet}.0/24"

    def __enter__(self) -> NetNs:
        try:
            self.create()
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def create(self) -> None:
        self.subnet = _free_subnet(self.base)
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if)
        _ip("link", "set", self.inner_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        self.exec("ip", "addr", "add", f"{self.inner_ip}/24", "dev", self.inner_if)
        self.exec("ip", "link", "set", self.inner_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        self.up = True

    def exec(self, *argv: str) -> str:
        return _ip("netns", "exec", self.name, *argv)

    def link_down(self) -> None:
        """Cut the namespace off: our end of the veth pair down."""
        _ip("link", "set", self.host_if, "down")
        self.up = False

    def link_up(self) -> None:
        _ip("link", "set", self.host_if, "up")
        self.up = True

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=20)


# --- a small tmpfs -----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``mount -o size=``, e.g. ``3m``) on ``path`` for the block;
    unmounted afterwards (lazily if something still holds it), even after a failure."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        check=True,
        capture_output=True,
        timeout=20,
    )
    try:
        yield path
    finally:
        done = subprocess.run(["umount", str(path)], capture_output=True, timeout=20)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == target for line in fh)


# --- players in threads ------------------------------------------------------------------------


class PlayerThread(threading.Thread):
    """One ``play(...)`` session in its own thread and event loop; events are collected."""

    def __init__(self, title_id: str, profile_id: str, **kwargs: Any) -> None:
        super().__init__(daemon=True, name=f"player-{profile_id}")
        self.title_id = title_id
        self.profile_id = profile_id
        self.kwargs = kwargs
        self.events: list[PlayerEvent] = []
        self.report: QoeReport | None = None
        self.error: BaseException | None = None
        user_sink = kwargs.pop("on_event", None)

        def sink(event: PlayerEvent) -> None:
            self.events.append(event)
            if user_sink is not None:
                user_sink(event)

        self.kwargs["on_event"] = sink

    def run(self) -> None:
        try:
            self.report = asyncio.run(play(self.title_id, self.profile_id, **self.kwargs))
        except BaseException as exc:
            self.error = exc

    def segments(self) -> list[PlayerEvent]:
        return [e for e in list(self.events) if e.kind == "segment"]

    def wait_segments(self, n: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.segments()) < n:
            if not self.is_alive():
                raise AssertionError(f"player ended before {n} segments: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"player fetched {len(self.segments())} of {n} segments")
            time.sleep(0.02)

    def result(self, timeout_s: float = 120.0) -> QoeReport:
        self.join(timeout_s)
        if self.is_alive():
            raise AssertionError(f"player {self.profile_id} still running after {timeout_s} s")
        if self.error is not None:
            raise AssertionError(f"player {self.profile_id} failed: {self.error!r}")
        assert self.report is not None
        return self.report


# --- memory ------------------------------------------------------------------------------------


def group_rss_bytes(pgid: int) -> int:
    """Resident set of every live process of group ``pgid`` (VmRSS summed, bytes)."""
    total = 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def group_cpu_s(pgid: int) -> float:
    """CPU time (user + system) of the live processes of group ``pgid`` so far, seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# --- the control plane's answers ---------------------------------------------------------------


def fleet(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """``GET /v1/appliances`` by id."""
    rows = httpx.get(f"{stack.control_url}/v1/appliances", trust_env=False, timeout=10).json()
    return {a["id"]: a for a in rows}


def poll(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """``check()`` once truthy (exceptions count as not yet); AssertionError at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} ({last!r})")
        time.sleep(0.1)


def playback(stack: LocalStack, title_id: str, profile_id: str, client_ip: str) -> dict[str, Any]:
    """``POST /v1/playback`` from ``client_ip`` (a bound source address)."""
    transport = httpx.HTTPTransport(local_address=client_ip)
    with httpx.Client(transport=transport, trust_env=False, timeout=10) as http:
        r = http.post(
            f"{stack.control_url}/v1/playback",
            json={"title_id": title_id, "profile_id": profile_id},
        )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def steering_priority(session: dict[str, Any]) -> list[str]:
    """The live steering manifest's pathway order for a session started earlier."""
    r = httpx.get(session["steering_url"], trust_env=False, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["PATHWAY-PRIORITY"])


# --- no data lost ------------------------------------------------------------------------------


def check_session(
    stack: LocalStack,
    report: QoeReport,
    manifest: TitleManifest,
    *,
    start_s: float = 0.0,
    max_rebuffers: int = 0,
) -> list[str]:
    """Problems with a session that had to survive a fault: it played from ``start_s`` to the
    end without an error (every failed request recovered), fetched every video segment once
    and in order, stalled at most ``max_rebuffers`` times, and the control plane holds the
    last viewing offset it reported."""
    problems = []
    last = manifest.video[0].segments[-1]
    end_s = last.start_s + last.duration_s
    if report.error or not report.completed:
        problems.append(f"did not finish: {report.error or 'stopped early'}")
    if abs(report.start_offset_s - start_s) > EPS_S or abs(report.end_position_s - end_s) > EPS_S:
        problems.append(f"played {report.start_offset_s}-{report.end_position_s}, not to {end_s}")
    first = manifest.video[0].segment_at(start_s).index
    indices = [s.index for s in report.segments]
    if indices != list(range(first, last.index + 1)):
        problems.append(f"segments fetched {indices}, not {first}..{last.index} once each")
    if report.rebuffer_count > max_rebuffers:
        problems.append(
            f"{report.rebuffer_count} rebuffers ({report.rebuffer_time_s:.2f} s), "
            f"at most {max_rebuffers} allowed"
        )
    view = stack.views(report.profile_id, report.title_id)
    if not report.views_reported:
        problems.append("no view was recorded")
    elif view is None or abs(float(view["offset_s"]) - report.views_reported[-1]) > EPS_S:
        got = None if view is None else view["offset_s"]
        problems.append(f"stored view {got}, the player last recorded {report.views_reported[-1]}")
    return problems


def check_store(store: Path, title_ids: tuple[str, ...] | None = None) -> list[str]:
    """Files of ``store`` (its title directories, or only ``title_ids``) whose content does not
    match the sha256 in their name; no ``.part`` or staging file inside a title directory."""
    problems = []
    dirs = [store / t for t in title_ids] if title_ids else sorted(store.iterdir())
    for d in dirs:
        if not d.is_dir() or d.name.startswith("."):
            continue
        for f in sorted(d.iterdir()):
            if f.name == "manifest.json":
                continue
            sha, _, ext = f.name.partition(".")
            if len(sha) != 64 or ext not in ("mp4", "m4s", "m3u8", "mpd"):
                problems.append(f"{f}: not a content-addressed name")
                continue
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if digest != sha:
                problems.append(f"{f}: content hashes to {digest}")
    return problems


def served_by(report: QoeReport, hosts: dict[str, str]) -> list[str]:
    """Appliance ids (``hosts``: ``host:port`` -> id) of the report's segments, in order."""
    return [hosts.get(s.host, s.host) for s in report.segments]


def hosts_of(stack: LocalStack) -> dict[str, str]:
    return {node.host: aid for aid, node in stack.appliances.items()}


# --- many players in a process of their own (the load test) --------------------------------------


def run_players(config: dict[str, Any]) -> dict[str, Any]:
    """Run ``config["players"]`` sessions of ``play(...)`` concurrently in one event loop (this
    process's) and return their QoE reports as dicts, with the loop's lag and CPU time.

    ``config``: ``control_url``, ``title_id``, ``bandwidth``, ``stagger_s`` (starts spread over
    it), ``max_buffer_s``, ``players`` (a list of ``{"profile", "ip"}``).
    """
    from localcast.player import PlayerTuning

    players = config["players"]
    tuning = PlayerTuning(max_buffer_s=config["max_buffer_s"], platform="load")
    lags: list[float] = []

    async def session(i: int, p: dict[str, str]) -> QoeReport:
        await asyncio.sleep(config["stagger_s"] * i / len(players))
        return await play(
            config["title_id"],
            p["profile"],
            control_url=config["control_url"],
            source_address=p["ip"],
            bandwidth=config["bandwidth"],
            tuning=tuning,
        )

    async def watch(done: asyncio.Event) -> None:
        while not done.is_set():
            t0 = time.monotonic()
            await asyncio.sleep(0.1)
            lags.append(time.monotonic() - t0 - 0.1)

    async def main() -> list[QoeReport | BaseException]:
        done = asyncio.Event()
        watcher = asyncio.create_task(watch(done))
        try:
            return await asyncio.gather(
                *(session(i, p) for i, p in enumerate(players)), return_exceptions=True
            )
        finally:
            done.set()
            await watcher

    started, cpu0 = time.monotonic(), time.process_time()
    results = asyncio.run(main())
    return {
        "reports": [r.to_dict() if isinstance(r, QoeReport) else None for r in results],
        "errors": [repr(r) if isinstance(r, BaseException) else None for r in results],
        "lags_s": sorted(lags),
        "wall_s": time.monotonic() - started,
        "cpu_s": time.process_time() - cpu0,
    }


if __name__ == "__main__":  # python fault_support.py players CONFIG.json OUT.json
    import json
    import sys

    if sys.argv[1:2] != ["players"] or len(sys.argv) != 4:
        sys.exit("usage: fault_support.py players CONFIG.json OUT.json")
    outcome = run_players(json.loads(Path(sys.argv[2]).read_text()))
    Path(sys.argv[3]).write_text(json.dumps(outcome))
