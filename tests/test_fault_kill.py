"""Fault: an appliance SIGKILLed mid-stream (a power cut), on a real stack.

One ISP with two embedded appliances (e1, e2; clients 127.0.1.0/24), an IX
appliance and the origin appliance, each node a real process group
(:class:`~localcast.devstack.LocalStack`). The appliance serving a session
is killed with ``kill -9`` to its whole group while the session plays:

- the CLI player with a buffer that covers the failover: it fails over to the
  next pathway with no rebuffer;
- the CLI player with a small buffer: at most one rebuffer;
- hls.js in headless Chromium (a viewer outside the ISP, on the IX appliance):
  the page follows content steering to the next pathway (the origin) and the
  video keeps playing past what was buffered at the kill.

Each asserts that no data was lost: the session played to its end with every
segment, every failed request recovered, the control plane holds the last
viewing offset, and the stores' files all match their names. The killed
appliance is started again after each test (same port and store).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fault_support import (
    PlayerThread,
    check_session,
    check_store,
    hosts_of,
    one_isp_spec,
    served_by,
)
from test_web_watch import CHROMIUM, CHROMIUM_ARGS, origin_of

from localcast.config import Config
from localcast.devstack import LocalStack, NodeSpec
from localcast.media.manifest import TitleManifest
from localcast.player import PlayerEvent, PlayerTuning, QoeReport
from localcast.web.assets import hlsjs_path

pytestmark = pytest.mark.slow

CLIENT = "127.0.1.10"  # inside the ISP: e1 / e2 serve it
SPEED = 4.0  # the CLI players' clocks run 4x real time
WEB_RATE = 2.0  # the browser plays at 2x
READ_AHEAD_S = 6  # hls.js buffers this far ahead (its default: 30 s)
VIDEO = "document.getElementById('video')"
SPEC = one_isp_spec(
    (
        NodeSpec("e1", "isp-par"),
        NodeSpec("e2", "isp-par"),
        NodeSpec("ix1", "ix-ams", disk_gb=100.0),
        NodeSpec("o1", "origin", serves_origin=True),
    )
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, ingested_title: tuple[Config, TitleManifest]
) -> Iterator[LocalStack]:
    config, manifest = ingested_title
    root = tmp_path_factory.mktemp("fault-kill")
    with LocalStack(root / "stack", SPEC) as s:
        shutil.copytree(config.paths.origin / manifest.title_id, s.origin / manifest.title_id)
        s.publish(manifest.title_id)
        yield s


@pytest.fixture
def revive(stack: LocalStack) -> Iterator[list[str]]:
    """Appliances the test killed; started again (and alive) afterwards."""
    killed: list[str] = []
    yield killed
    for aid in killed:
        stack.restart_appliance(aid)
    stack.wait_alive()


def kill_serving(
    stack: LocalStack, killed: list[str], min_index: int, min_buffer_s: float
) -> Callable[[PlayerEvent], None]:
    """An event sink that SIGKILLs the appliance serving the session once segment
    ``min_index`` or later arrives with at least ``min_buffer_s`` buffered (once)."""
    hosts = hosts_of(stack)

    def sink(event: PlayerEvent) -> None:
        seg = event.segment
        if killed or seg is None or seg.index < min_index:
            return
        if seg.buffer_s + seg.duration_s < min_buffer_s:
            return
        aid = hosts[seg.host]
        stack.kill(aid)  # in the player's loop: nothing more is fetched until it is done
        killed.append(aid)

    return sink


def play_through_kill(
    stack: LocalStack,
    manifest: TitleManifest,
    profile: str,
    killed: list[str],
    max_buffer_s: float,
    min_buffer_s: float,
) -> QoeReport:
    player = PlayerThread(
        manifest.title_id,
        profile,
        control_url=stack.control_url,
        source_address=CLIENT,
        speed=SPEED,
        tuning=PlayerTuning(max_buffer_s=max_buffer_s, platform="fault-test"),
        on_event=kill_serving(stack, killed, 1, min_buffer_s),
    )
    player.start()
    report = player.result(120)
    assert killed, "the session never got far enough to kill its appliance"
    order = served_by(report, hosts_of(stack))
    victim = killed[0]
    assert order[0] == victim, order
    assert order[-1] != victim, f"{victim} still served the last segment: {order}"
    assert report.failovers >= 1
    return report


def test_kill9_buffer_covers_failover_no_rebuffer(
    stack: LocalStack, ingested_title: tuple[Config, TitleManifest], revive: list[str]
) -> None:
    _, manifest = ingested_title
    segment_s = manifest.segment_duration_s
    # 3 segments of buffer target; kill with at least 2 segments in hand
    report = play_through_kill(stack, manifest, "big-buffer", revive, 3 * segment_s, 2 * segment_s)
    problems = check_session(stack, report, manifest, max_rebuffers=0)
    for node in stack.appliances.values():
        problems += check_store(node.store, (manifest.title_id,))
    assert problems == [], problems
    print(
        f"\nkill -9 {revive[0]} (buffer >= {2 * segment_s:g} s): {report.failovers} failover(s), "
        f"{report.request_errors} failed request(s) all retried, "
        f"{report.rebuffer_count} rebuffer(s)"
    )


def test_kill9_small_buffer_at_most_one_rebuffer(
    stack: LocalStack, ingested_title: tuple[Config, TitleManifest], revive: list[str]
) -> None:
    _, manifest = ingested_title
    segment_s = manifest.segment_duration_s
    # a buffer target of 1.5 segments: the next one is fetched with at most half a segment
    # left; killed as soon as a segment arrives, whatever is buffered
    report = play_through_kill(stack, manifest, "small-buffer", revive, 1.5 * segment_s, 0.0)
    problems = check_session(stack, report, manifest, max_rebuffers=1)
    for node in stack.appliances.values():
        problems += check_store(node.store, (manifest.title_id,))
    assert problems == [], problems
    print(
        f"\nkill -9 {revive[0]} (buffer <= {1.5 * segment_s:g} s): "
        f"{report.failovers} failover(s), {report.request_errors} failed request(s) "
        f"all retried, {report.rebuffer_count} rebuffer(s) ({report.rebuffer_time_s:.2f} s)"
    )


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is not installed: run `make deps`")
    if hlsjs_path() is None:
        pytest.fail("hls.js is not installed: run `make deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def read_ahead_only(seconds: float) -> Callable[[Any], None]:
    """A Playwright route handler serving hls.js with a shorter read-ahead by default (a
    device with little memory), so that playing on after a kill needs the next pathway."""

    def handle(route: Any) -> None:
        resp = route.fetch()
        patch = (
            "\n;Hls.DefaultConfig = Object.assign({}, Hls.DefaultConfig, "
            f"{{maxBufferLength: {seconds}, maxMaxBufferLength: {seconds}}});\n"
        )
        route.fulfill(response=resp, body=resp.text() + patch)

    return handle


def test_kill9_hlsjs_follows_steering_to_the_next_pathway(
    stack: LocalStack,
    ingested_title: tuple[Config, TitleManifest],
    browser: Any,
    revive: list[str],
) -> None:
    """Chromium on 127.0.0.1 (outside the ISP) plays from the IX appliance; it is killed
    with a few seconds buffered; hls.js moves to the origin pathway (its own error
    handling and the re-ranked steering manifest) and plays on past the kill point."""
    _, manifest = ingested_title
    title = manifest.title_id
    context = browser.new_context()
    page = context.new_page()
    seen: list[tuple[float, str, int]] = []
    page.on("response", lambda r: seen.append((time.monotonic(), r.url, r.status)))
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.route("**/static/hls.min.js", read_ahead_only(READ_AHEAD_S))
    try:
        page.goto(f"{stack.control_url}/watch/{title}?profile=browser")
        page.wait_for_function(
            "() => window.localcast.started || window.localcast.errors.length > 0",
            timeout=45_000,
        )
        assert page.evaluate("() => window.localcast.errors") == []
        assert page.evaluate("() => window.localcast.pathway") == "ix1"
        page.evaluate(f"() => {{ {VIDEO}.playbackRate = {WEB_RATE}; }}")
        page.wait_for_function(f"() => {VIDEO}.currentTime > 3", timeout=30_000)
        state = page.evaluate(
            f"() => {{ const v = {VIDEO}; const b = v.buffered;"
            " return {at: v.currentTime, ahead: b.length ? b.end(b.length - 1) : 0}; }"
        )
        killed_at = time.monotonic()
        stack.kill("ix1")
        revive.append("ix1")
        target = min(manifest.duration_s - 1.0, max(state["ahead"], state["at"]) + 8.0)
        page.wait_for_function(
            f"() => {VIDEO}.ended || {VIDEO}.currentTime > {target}", timeout=60_000
        )
        assert page.evaluate("() => window.localcast.errors") == []
        assert page.evaluate("() => window.localcast.pathway") == "o1"
        reached = page.evaluate(f"() => {VIDEO}.currentTime")
        page.evaluate(f"() => {VIDEO}.pause()")  # saves the offset
        page.wait_for_function("() => window.localcast.reports > 0", timeout=10_000)
    finally:
        context.close()

    origin = stack.appliances["o1"].url
    after = [(url, status) for t, url, status in seen if t > killed_at]
    media_after = [(u, s) for u, s in after if u.endswith((".m4s", ".mp4"))]
    assert media_after, "no media fetched after the kill"
    assert {origin_of(u) for u, _ in media_after} == {origin}, media_after
    assert all(s == 200 for _, s in media_after), media_after
    # the only failed requests are to the killed appliance (hls.js retried them elsewhere)
    ix = stack.appliances["ix1"].url
    assert {origin_of(u) for u in failed} <= {ix}, failed
    view = stack.views("browser", title)
    assert view is not None and view["offset_s"] == pytest.approx(reached, abs=1.0)
    for node in stack.appliances.values():
        assert check_store(node.store, (title,)) == []
    print(
        f"\nkill -9 ix1 at {state['at']:.1f} s (buffered to {state['ahead']:.1f} s): "
        f"hls.js moved to o1 and played to {reached:.1f} s; "
        f"{len(failed)} request(s) to ix1 failed, {len(media_after)} media files from o1"
    )


def test_stack_left_whole(stack: LocalStack) -> None:
    """After the kills and restarts every appliance is alive and serving again."""
    rows = httpx.get(f"{stack.control_url}/v1/appliances", trust_env=False).json()
    assert {a["id"]: a["alive"] for a in rows} == dict.fromkeys(stack.appliances, True)
    assert all(node.running() for node in stack.appliances.values())
