"""The player end to end, over real HTTP on loopback, against a fake control plane and
two fake appliances (127.0.0.2 and 127.0.0.3) serving synthetic content-addressed HLS.

The fake speaks the control-plane contract (playback, multivariant with content
steering, steering manifest, views) and the appliance URL scheme
(``/<token>/<title>/<sha256>.<ext>``). Appliances can be told to go down after
serving N media files, in three ways: HTTP 503, connection closed before
answering, or a body cut short. Nothing here asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from localcast.cli import app
from localcast.player import PlayerTuning, QoeReport, TitleNotFound, play

TITLE = "t1"
PROFILE = "prof"
TOKEN = "lc1~k1~4102444800~1~-~c2lnbmF0dXJl"
SEG_S = 2.0
N_SEG = 10
DURATION_S = SEG_S * N_SEG
VIDEO = ((400_000, 640, 360), (1_000_000, 1280, 720), (2_500_000, 1920, 1080))
AUDIO_BPS = 128_000
SPEED = 20.0


# --- synthetic content --------------------------------------------------------------


class Content:
    """Files by name, and what each media file is: (kind, rung, segment index)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.what: dict[str, tuple[str, int, int]] = {}
        self.video_playlists = [
            self._rendition("video", i, rate) for i, (rate, _, _) in enumerate(VIDEO)
        ]
        self.audio_playlist = self._rendition("audio", 0, AUDIO_BPS)

    def _add(self, label: str, size: int) -> str:
        body = (label.encode() + b"\x00" * size)[:size]
        name = hashlib.sha256(body).hexdigest()
        self.files[name] = body
        return name

    def _rendition(self, kind: str, rung: int, rate: int) -> str:
        init = self._add(f"{kind}-{rung}-init", 700) + ".mp4"
        self.files[init] = self.files.pop(init[:-4])
        self.what[init] = (kind, rung, -1)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{int(SEG_S)}",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f'#EXT-X-MAP:URI="{init}"',
        ]
        for i in range(N_SEG):
            name = self._add(f"{kind}-{rung}-{i}", int(rate * SEG_S / 8)) + ".m4s"
            self.files[name] = self.files.pop(name[:-4])
            self.what[name] = (kind, rung, i)
            lines += [f"#EXTINF:{SEG_S:.3f},", name]
        lines.append("#EXT-X-ENDLIST")
        text = "\n".join(lines).encode() + b"\n"
        playlist = hashlib.sha256(text).hexdigest() + ".m3u8"
        self.files[playlist] = text
        return playlist


# --- fake servers ---------------------------------------------------------------------


class _Server:
    def __init__(self, address: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer((address, 0), handler)
        self.httpd.daemon_threads = True
        self.host = f"{address}:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.owner.get(self)

    def do_POST(self) -> None:
        self.owner.post(self)

    def do_PUT(self) -> None:
        self.owner.put(self)

    def _json_body(self) -> Any:
        n = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(n) or b"null")


class Appliance:
    """Serves the title under the token; can go down after ``fail_after`` media files."""

    def __init__(self, address: str, content: Content) -> None:
        self.content = content
        self.lock = threading.Lock()
        self.fail_after: int | None = None
        self.fail_mode = "503"
        self.media_served = 0
        self.served: list[str] = []
        self.failed: list[str] = []
        self.clients: set[str] = set()
        self.body_bytes_written = 0
        owner = self
        self.server = _Server(address, type("H", (_Handler,), {"owner": owner}))
        self.host, self.url = self.server.host, self.server.url

    def get(self, h: _Handler) -> None:
        parts = urlsplit(h.path).path.split("/")
        with self.lock:
            self.clients.add(h.client_address[0])
        if len(parts) != 4 or parts[1] != TOKEN or parts[2] != TITLE:
            h._send(404, b"")
            return
        name = parts[3]
        body = self.content.files.get(name)
        if body is None:
            h._send(404, b"")
            return
        with self.lock:
            down = self.fail_after is not None and self.media_served >= self.fail_after
            if down:
                self.failed.append(name)
            elif not name.endswith(".m3u8"):
                self.media_served += 1
        if down:
            self._fail(h, body)
            return
        h._send(200, body)
        with self.lock:
            self.served.append(name)
            self.body_bytes_written += len(body)

    def _fail(self, h: _Handler, body: bytes) -> None:
        if self.fail_mode == "503":
            h._send(503, b"")
        elif self.fail_mode == "reset":
            h.close_connection = True  # hang up without answering
        else:  # truncate: promise the whole body, send half, hang up
            half = body[: len(body) // 2]
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(half)
            h.wfile.flush()
            h.close_connection = True
            with self.lock:
                self.body_bytes_written += len(half)

    def post(self, h: _Handler) -> None:
        h._send(405, b"")

    put = post


class ControlPlane:
    def __init__(self, content: Content, appliances: dict[str, Appliance]) -> None:
        self.content = content
        self.appliances = appliances
        self.lock = threading.Lock()
        self.resume_offset_s = 0.0
        self.steering_ttl_s = 1.0
        self.priority: Callable[[], list[str]] = lambda: ["p1", "p2"]
        self.playback_requests: list[Any] = []
        self.steering_queries: list[dict[str, list[str]]] = []
        self.views: list[Any] = []
        self.server = _Server("127.0.0.1", type("H", (_Handler,), {"owner": self}))
        self.url = self.server.url

    def post(self, h: _Handler) -> None:
        body = h._json_body()
        with self.lock:
            self.playback_requests.append(body)
        if h.path != "/v1/playback" or body.get("title_id") != TITLE:
            h._send(404, b'{"detail": "unknown title"}', "application/json")
            return
        grant = {
            "session_id": "s1",
            "multivariant_url": "/v1/sessions/s1/multivariant.m3u8",
            "mpd_url": "/v1/sessions/s1/manifest.mpd",
            "pathways": [
                {
                    "id": p,
                    "appliance_id": f"a{i}",
                    "site_id": f"site{i}",
                    "kind": "embedded",
                    "base_url": a.url,
                    "rank": i,
                }
                for i, (p, a) in enumerate(self.appliances.items(), start=1)
            ],
            "resume_offset_s": self.resume_offset_s,
            "expires_at": 4102444800,
        }
        h._send(200, json.dumps(grant).encode(), "application/json")

    def put(self, h: _Handler) -> None:
        body = h._json_body()
        if h.path != f"/v1/views/{PROFILE}/{TITLE}":
            h._send(404, b"")
            return
        with self.lock:
            self.views.append(body)
        h._send(204, b"")

    def get(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        if url.path == "/v1/sessions/s1/multivariant.m3u8":
            h._send(200, self._multivariant().encode(), "application/vnd.apple.mpegurl")
        elif url.path == "/v1/steering/s1":
            with self.lock:
                self.steering_queries.append(parse_qs(url.query))
            manifest = {
                "VERSION": 1,
                "TTL": self.steering_ttl_s,
                "RELOAD-URI": "/v1/steering/s1?session=s1",
                "PATHWAY-PRIORITY": self.priority(),
            }
            h._send(200, json.dumps(manifest).encode(), "application/json")
        else:
            h._send(404, b"")

    def _multivariant(self) -> str:
        c = self.content
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            '#EXT-X-CONTENT-STEERING:SERVER-URI="/v1/steering/s1",PATHWAY-ID="p1"',
        ]
        if self.resume_offset_s:
            lines.append(f"#EXT-X-START:TIME-OFFSET={self.resume_offset_s}")
        for p, a in self.appliances.items():
            base = f"{a.url}/{TOKEN}/{TITLE}"
            lines.append(
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud-{p}",NAME="English",LANGUAGE="en",'
                f'DEFAULT=YES,AUTOSELECT=YES,URI="{base}/{c.audio_playlist}",PATHWAY-ID="{p}"'
            )
            for (rate, w, h), playlist in zip(VIDEO, c.video_playlists, strict=True):
                lines.append(
                    f'#EXT-X-STREAM-INF:BANDWIDTH={rate},CODECS="avc1.64001f,mp4a.40.2",'
                    f'RESOLUTION={w}x{h},AUDIO="aud-{p}",PATHWAY-ID="{p}"'
                )
                lines.append(f"{base}/{playlist}")
        return "\n".join(lines) + "\n"


class FakeCdn:
    def __init__(self) -> None:
        self.content = Content()
        self.appliances = {
            "p1": Appliance("127.0.0.2", self.content),
            "p2": Appliance("127.0.0.3", self.content),
        }
        self.control = ControlPlane(self.content, self.appliances)
        self.control_url = self.control.url

    def close(self) -> None:
        for s in [self.control.server] + [a.server for a in self.appliances.values()]:
            s.close()

    def segment_indices(self, names: list[str], kind: str = "video") -> list[int]:
        return [
            self.content.what[n][2]
            for n in names
            if n in self.content.what
            and self.content.what[n][0] == kind
            and self.content.what[n][2] >= 0
        ]


@pytest.fixture
def cdn() -> Iterator[FakeCdn]:
    fake = FakeCdn()
    yield fake
    fake.close()


def _play(cdn: FakeCdn, **kwargs: Any) -> QoeReport:
    kwargs.setdefault("speed", SPEED)
    return asyncio.run(play(TITLE, PROFILE, control_url=cdn.control_url, **kwargs))


def _assert_consistent(report: QoeReport, cdn: FakeCdn) -> None:
    """The QoE numbers agree with each other and with what the servers sent."""
    assert sum(report.bytes_by_host.values()) == report.bytes_total
    for a in cdn.appliances.values():
        assert report.bytes_by_host.get(a.host, 0) == a.body_bytes_written
    assert report.bytes_total >= sum(s.size_bytes for s in report.segments)
    rates = [s.bitrate_bps for s in report.segments]
    assert min(rates) <= report.avg_bitrate_bps <= max(rates)
    changes = sum(
        1 for a, b in zip(report.segments, report.segments[1:], strict=False) if a.rung != b.rung
    )
    assert report.quality_switches == changes
    assert report.rebuffer_time_s >= 0
    assert (report.rebuffer_count == 0) == (report.rebuffer_time_s == 0)
    assert report.startup_time_s is not None and report.startup_time_s > 0
    assert list(report.views_reported) == [v["offset_s"] for v in cdn.control.views]
    assert list(report.views_reported) == sorted(report.views_reported)


# --- tests ------------------------------------------------------------------------------


def test_plays_to_the_end_on_the_steered_pathway(cdn: FakeCdn) -> None:
    report = _play(cdn)
    assert report.completed and report.error is None
    assert report.end_position_s == DURATION_S
    assert [s.index for s in report.segments] == list(range(N_SEG))
    assert {s.pathway for s in report.segments} == {"p1"}
    assert report.failovers == report.request_errors == 0
    assert set(report.bytes_by_host) == {cdn.appliances["p1"].host}
    assert report.views_reported[-1] == DURATION_S
    assert any(10.0 <= v < DURATION_S for v in report.views_reported)  # the periodic one
    req = cdn.control.playback_requests[0]
    assert req["device"] == {"codecs": ["avc1", "mp4a"], "max_height": 1080}
    assert req["profile_id"] == PROFILE and req["platform"] == "cli"
    assert cdn.control.steering_queries[0]["_HLS_pathway"] == ["p1"]
    assert any("_HLS_throughput" in q for q in cdn.control.steering_queries)
    # audio came alongside: every audio segment once, after the audio init
    assert sorted(cdn.segment_indices(cdn.appliances["p1"].served, "audio")) == list(range(N_SEG))
    _assert_consistent(report, cdn)


@pytest.mark.parametrize("mode", ["503", "reset", "truncate"])
def test_fails_over_and_retries_the_segment(cdn: FakeCdn, mode: str) -> None:
    p1, p2 = cdn.appliances["p1"], cdn.appliances["p2"]
    p1.fail_after, p1.fail_mode = 5, mode
    report = _play(cdn)
    assert report.completed and report.error is None
    assert report.failovers == 1
    assert report.request_errors >= 1
    # the request that failed on p1 was made again on p2
    first_failed = p1.failed[0]
    assert first_failed in p2.served
    assert [s.index for s in report.segments] == list(range(N_SEG))
    assert report.segments[-1].pathway == "p2"
    assert (
        any(s.attempts > 1 for s in report.segments) or cdn.content.what[first_failed][0] == "audio"
    )
    assert report.bytes_by_host[p1.host] > 0 and report.bytes_by_host[p2.host] > 0
    assert report.views_reported[-1] == DURATION_S
    _assert_consistent(report, cdn)


def test_resumes_at_the_segment_holding_the_offset(cdn: FakeCdn) -> None:
    cdn.control.resume_offset_s = 9.0
    report = _play(cdn)
    assert report.start_offset_s == 9.0
    assert report.segments[0].index == 4  # [8 s, 10 s)
    fetched = cdn.segment_indices(cdn.appliances["p1"].served)
    assert min(fetched) == 4
    assert min(cdn.segment_indices(cdn.appliances["p1"].served, "audio")) == 4
    assert report.completed and report.views_reported[-1] == DURATION_S
    assert all(v >= 9.0 for v in report.views_reported)
    _assert_consistent(report, cdn)


def test_stop_at_reports_the_offset(cdn: FakeCdn) -> None:
    report = _play(cdn, stop_at_s=7.0)
    assert report.completed
    assert report.end_position_s == 7.0
    assert report.views_reported[-1] == 7.0
    assert max(s.index for s in report.segments) == 3  # [6 s, 8 s) holds 7 s
    assert max(cdn.segment_indices(cdn.appliances["p1"].served)) == 3
    _assert_consistent(report, cdn)


def test_follows_a_steering_priority_change(cdn: FakeCdn) -> None:
    p1 = cdn.appliances["p1"]
    cdn.control.priority = lambda: ["p2", "p1"] if p1.media_served >= 4 else ["p1", "p2"]
    report = _play(cdn, tuning=PlayerTuning(max_buffer_s=6.0))
    assert report.completed
    assert report.steering_switches >= 1
    assert report.failovers == report.request_errors == 0
    assert report.segments[0].pathway == "p1" and report.segments[-1].pathway == "p2"
    pathways = [q.get("_HLS_pathway", [""])[0] for q in cdn.control.steering_queries]
    assert "p2" in pathways  # the client told the server it moved
    _assert_consistent(report, cdn)


def test_a_slow_link_makes_abr_climb_only_as_far_as_it_fits(cdn: FakeCdn) -> None:
    report = _play(cdn, bandwidth="2M", speed=8.0)
    assert report.completed
    rungs = [s.rung for s in report.segments]
    assert rungs[0] == 0  # nothing measured yet
    assert 1 in rungs  # climbed to 1 Mb/s ...
    assert max(rungs) == 1  # ... but never to 2.5 Mb/s on a 2 Mb/s link
    assert report.quality_switches >= 1
    _assert_consistent(report, cdn)


def test_binds_the_requested_source_address(cdn: FakeCdn) -> None:
    report = _play(cdn, source_address="127.0.0.5", stop_at_s=4.0)
    assert report.completed
    assert cdn.appliances["p1"].clients == {"127.0.0.5"}


def test_every_pathway_down_ends_with_an_error_and_the_offset(cdn: FakeCdn) -> None:
    for a in cdn.appliances.values():
        a.fail_after = 4
    tuning = PlayerTuning(attempts_per_pathway=2, retry_backoff_s=0.5)
    report = _play(cdn, tuning=tuning)
    assert not report.completed
    assert report.error and "every pathway failed" in report.error
    assert report.end_position_s < DURATION_S
    assert report.views_reported[-1] == report.end_position_s
    assert sum(report.bytes_by_host.values()) == report.bytes_total


def test_unknown_title_raises(cdn: FakeCdn) -> None:
    with pytest.raises(TitleNotFound):
        asyncio.run(play("nope", PROFILE, control_url=cdn.control_url))


def test_cli_play_json(cdn: FakeCdn, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(tmp_path),
            "play",
            TITLE,
            "--profile",
            PROFILE,
            "--control",
            cdn.control_url,
            "--speed",
            str(SPEED),
            "--stop-at",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["completed"] is True and data["end_position_s"] == 5.0
    assert data["views_reported"][-1] == 5.0
    assert sum(data["bytes_by_host"].values()) == data["bytes_total"]


def test_cli_table_and_config_default(cdn: FakeCdn, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(f'[player]\ncontrol_url = "{cdn.control_url}"\n')
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(tmp_path),
            "play",
            TITLE,
            "--profile",
            PROFILE,
            "--speed",
            str(SPEED),
            "--stop-at",
            "3",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "startup time" in result.stdout and cdn.appliances["p1"].host in result.stdout


def test_cli_rejects_a_bad_bandwidth(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "play", TITLE, "--profile", PROFILE, "--bandwidth", "fast"]
    )
    assert result.exit_code == 2
