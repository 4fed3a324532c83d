"""The watch page in a real browser, against a real stack on loopback.

Debian Chromium (headless, web security on) loads ``/watch/{title}`` from the
control plane; hls.js plays the per-session multivariant with content
steering from an appliance on another origin (CORS), resumes at the stored
offset and reports views. A screenshot goes to ``test-artifacts/``. The
browser client is 127.0.0.1, outside every ISP prefix: the IX appliance
serves it, the origin appliance is its fallback.

The page's scripts keep their state in ``window.localcast`` (started,
startedAt, startPosition, session, errors). Nothing asserts on elapsed time:
waits are for conditions, with generous limits.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from localcast.control.topology import SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec, topology_document
from localcast.media.ingest import IngestParams, ingest
from localcast.media.manifest import TitleManifest
from localcast.media.origin import DirectoryOriginStore
from localcast.media.testsource import make_test_source
from localcast.web.assets import hlsjs_path
from localcast.web.watch import render_watch_page, script_json, watch_router

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
TITLE = "web1"
SEGMENT_S = 2.0
SPEC = StackSpec(
    sites=(
        SiteSpec(id="ix-fra", kind=SiteKind.IX, lat=50.11, lon=8.68, tz="Europe/Berlin"),
        SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="UTC"),
    ),
    appliances=(NodeSpec("ix1", "ix-fra"), NodeSpec("origin1", "origin", serves_origin=True)),
)
VIDEO = "document.getElementById('video')"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- the page itself (no browser) --------------------------------------------------------------


def test_script_json_cannot_end_the_script_element() -> None:
    text = script_json({"title_id": "</script><b>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert text == '{"title_id": "\\u003c/script\\u003e\\u003cb\\u003e\\u0026"}'


def test_page_embeds_parseable_params() -> None:
    page = render_watch_page(
        '<h1>{{TITLE}} {{PROFILE}}</h1><script type="application/json">{{PARAMS}}</script>',
        "t-1",
        "p.1",
    )
    assert page == (
        '<h1>t-1 p.1</h1><script type="application/json">'
        '{"title_id": "t-1", "profile_id": "p.1"}</script>'
    )


def test_router_validates_and_reports_missing_hlsjs() -> None:
    app = FastAPI()
    app.include_router(watch_router(None))
    client = TestClient(app)
    page = client.get("/watch/t1?profile=alice")
    assert page.status_code == 200
    assert '{"title_id": "t1", "profile_id": "alice"}' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/watch/..hidden").status_code == 404
    assert client.get("/watch/t1?profile=%3Cscript%3E").status_code == 422
    assert client.get("/static/hls.min.js").status_code == 503
    assert client.get("/static/watch.js").headers["content-type"].startswith("text/javascript")


# --- the real thing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if hlsjs_path() is None:
        pytest.fail("hls.js is not installed: run `make deps`")
    root = tmp_path_factory.mktemp("web")
    source = make_test_source(root / "src.mp4", 16, 640, 360)
    with LocalStack(root / "stack", SPEC) as s:
        params = IngestParams(segment_duration_s=SEGMENT_S, preset="ultrafast")
        ingest(source, TITLE, "Web", DirectoryOriginStore(s.origin), params)
        s.publish(TITLE)
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is not installed: run `make deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass(frozen=True)
class Seen:
    url: str
    status: int
    headers: dict[str, str]


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, list[Seen]]]:
    """A fresh page (own context: no shared cache) and every response it got."""
    context = browser.new_context(viewport={"width": 1280, "height": 960})
    p = context.new_page()
    seen: list[Seen] = []
    p.on("response", lambda r: seen.append(Seen(r.url, r.status, r.headers)))
    try:
        yield p, seen
    finally:
        context.close()


def wait_started(page: Any) -> None:
    page.wait_for_function(
        "() => (window.localcast && window.localcast.started) || "
        "(window.localcast && window.localcast.errors.length > 0)",
        timeout=45_000,
    )
    errors = page.evaluate("() => window.localcast.errors")
    assert errors == [], errors


@pytest.mark.slow
def test_plays_from_the_appliance_and_reports_views(
    stack: LocalStack, page: tuple[Any, list[Seen]]
) -> None:
    p, seen = page
    p.goto(f"{stack.control_url}/watch/{TITLE}?profile=viewer")
    wait_started(p)
    assert p.evaluate("() => window.localcast.startedAt") < SEGMENT_S  # nothing stored: from 0
    p.wait_for_function(f"() => {VIDEO}.currentTime > 2", timeout=30_000)
    first = p.evaluate(f"() => {VIDEO}.currentTime")
    p.wait_for_function(f"() => {VIDEO}.currentTime > {first} + 1", timeout=30_000)  # it plays
    assert p.evaluate(f"() => {VIDEO}.muted")

    p.evaluate(f"() => {VIDEO}.pause()")  # a pause saves the offset (as do the 10 s reports)
    paused_at = p.evaluate(f"() => {VIDEO}.currentTime")

    def recorded() -> bool:
        view = stack.views("viewer", TITLE)
        return view is not None and view["offset_s"] > 0

    p.wait_for_function("() => window.localcast.reports > 0", timeout=10_000)
    assert recorded()
    view = stack.views("viewer", TITLE)
    assert view is not None and view["platform"] == "web"
    assert view["offset_s"] == pytest.approx(paused_at, abs=0.5)

    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / "watch-page.png"), full_page=True)

    # Media came from the IX appliance (another origin, CORS), never from the control plane.
    ix = stack.appliances["ix1"]
    media = [s for s in seen if s.url.endswith((".m4s", ".mp4"))]
    assert len(media) >= 4, [s.url for s in seen]
    assert {origin_of(s.url) for s in media} == {ix.url}
    assert all(s.status == 200 for s in media)
    assert {s.headers.get("access-control-allow-origin") for s in media} == {stack.control_url}
    playlists = [s for s in seen if s.url.endswith(".m3u8")]
    assert {origin_of(s.url) for s in playlists} == {stack.control_url, ix.url}
    control = [s for s in seen if origin_of(s.url) == stack.control_url]
    assert not [s.url for s in control if s.url.endswith((".m4s", ".mp4"))]
    assert any("/steering" in s.url for s in control)  # hls.js follows content steering
    pathway = p.evaluate("() => window.localcast.pathway")
    assert pathway == "ix1"


@pytest.mark.slow
def test_resumes_near_the_stored_offset(stack: LocalStack, page: tuple[Any, list[Seen]]) -> None:
    stored = 9.0  # inside segment [8 s, 10 s)
    r = httpx.put(
        f"{stack.control_url}/v1/views/resumer/{TITLE}",
        json={"offset_s": stored, "platform": "test"},
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    p, seen = page
    p.goto(f"{stack.control_url}/watch/{TITLE}?profile=resumer")
    wait_started(p)
    state = p.evaluate(
        "() => ({start: window.localcast.startPosition, at: window.localcast.startedAt})"
    )
    assert state["start"] == 8.0  # the control plane's resume point: the segment's start
    assert 8.0 <= state["at"] < 8.0 + 2 * SEGMENT_S
    p.wait_for_function(f"() => {VIDEO}.currentTime > {state['at']} + 0.5", timeout=30_000)
    assert "8.0 s" in p.text_content("#resume")
    first_media = next(s for s in seen if s.url.endswith(".m4s"))
    assert origin_of(first_media.url) == stack.appliances["ix1"].url


@pytest.mark.slow
def test_appliance_cors_for_the_control_plane_origin(stack: LocalStack) -> None:
    """What the browser relies on, checked at the HTTP level: simple GETs, preflight, others."""
    with httpx.Client(trust_env=False) as http:
        grant = http.post(
            f"{stack.control_url}/v1/playback",
            json={"title_id": TITLE, "profile_id": "cors", "device": {"codecs": ["avc1"]}},
        ).json()
        base = grant["pathways"][0]["base_url"]
        manifest = TitleManifest.from_json(
            json.loads((stack.origin / TITLE / "manifest.json").read_text())
        )
        url = base + manifest.video[0].segments[0].file.name
        ours = {"Origin": stack.control_url}
        got = http.get(url, headers=ours)
        assert got.status_code == 200
        assert got.headers["access-control-allow-origin"] == stack.control_url
        exposed = {
            h.strip().lower() for h in got.headers["access-control-expose-headers"].split(",")
        }
        assert {"content-length", "content-range"} <= exposed
        ranged = http.get(url, headers={**ours, "Range": "bytes=0-99"})
        assert ranged.status_code == 206 and ranged.headers["access-control-allow-origin"]
        pre = http.options(
            url,
            headers={
                **ours,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "range",
            },
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == stack.control_url
        assert "range" in pre.headers["access-control-allow-headers"].lower()
        other = http.get(url, headers={"Origin": "http://127.0.0.1:1"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


@pytest.mark.slow
def test_follows_content_steering_off_a_drained_appliance(
    stack: LocalStack, page: tuple[Any, list[Seen]]
) -> None:
    """An operator drains the IX appliance mid-play: the control plane's steering manifest
    ranks the origin first, and hls.js moves there by itself (no new playback session)."""
    p, seen = page
    p.goto(f"{stack.control_url}/watch/{TITLE}?profile=steered")
    wait_started(p)
    assert p.evaluate("() => window.localcast.pathway") == "ix1"
    urls = {aid: node.url for aid, node in stack.appliances.items()}
    normal = topology_document(stack.spec, urls)
    drained = copy.deepcopy(normal)
    for appliance in drained["appliances"]:
        appliance["drained"] = appliance["id"] == "ix1"
    with httpx.Client(trust_env=False) as http:
        try:
            assert http.post(f"{stack.control_url}/v1/topology", json=drained).status_code == 200
            marker = len(seen)
            p.wait_for_function("() => window.localcast.pathway === 'origin1'", timeout=20_000)
            at = p.evaluate(f"() => {VIDEO}.currentTime")
            p.wait_for_function(f"() => {VIDEO}.currentTime > {at} + 0.5", timeout=20_000)
        finally:
            assert http.post(f"{stack.control_url}/v1/topology", json=normal).status_code == 200
    assert p.evaluate("() => window.localcast.errors") == []
    after = [origin_of(s.url) for s in seen[marker:]]
    assert stack.appliances["origin1"].url in after  # playlists (and media) from the origin now
    sessions = [s.url for s in seen if "/v1/playback" in s.url]
    assert len(sessions) == 1
