"""The partner portal in a real browser, against a real stack.

Debian Chromium (Playwright, headless) on the portal of a real control plane
(``localcast control serve``) with real appliances on loopback: partner
``isp-a`` (embedded site ``a-par``: ``a1``, ``a2``), partner ``isp-b`` (PNI
site ``b-lys``: ``b1``), the operator's IX (``ix1``) and origin (``o1``).
``a1`` runs its BGP speaker (``localcast bgp run``) with one session to a
BIRD 2 playing isp-a's router, which announces the subscribers' /24 (on a
veth pair the test makes: no packet leaves the host), 11.1.0.0/16, and
10.99.0.0/16 (private space, which the speaker's import policy filters).
A player session from a subscriber's address makes traffic the appliances
report. The users are made with ``localcast control user add``.

In the browser: the partner logs in, sees its appliances and their statuses,
drains one and sees the steering explanation change, opens the route
explorer, sees the traffic charts drawn with data, requests an appliance and
gets the planner's answer, and gets a 404 for the other partner's appliance;
the operator logs in and approves the request. Every page is checked for
labelled inputs, links that answer, and no sideways scrolling on a phone.
Screenshots of each page go to ``test-artifacts/portal/``. Waits are for
conditions, never for elapsed time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from bgp_support import Bird, free_port, isp_router, require_bird, speaker_toml
from fault_support import NetNs, PlayableTitle, PlayerThread, playable_title, poll
from playwright.sync_api import sync_playwright
from test_web_watch import CHROMIUM, CHROMIUM_ARGS

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec
from localcast.player import PlayerTuning

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "portal"
PEERINGDB = REPO / "tests" / "data" / "peeringdb_sample.json"
ISP_A_AS, ISP_B_AS, OUR_AS = 65002, 65003, 65001
ROUTER = "127.0.0.2"
ANNOUNCED = "11.1.0.0/16"
BOGON = "10.99.0.0/16"  # private space: the speaker's import policy filters it
HOLD_S = 6
PASSWORD = "correct horse battery staple"
OPERATOR = "noc@localcast.example"
ALICE = "alice@isp-a.example"
BOB = "bob@isp-b.example"


def spec(subscribers: str) -> StackSpec:
    return StackSpec(
        partners=(
            PartnerSpec(name="isp-a", asns=[ISP_A_AS]),
            PartnerSpec(name="isp-b", asns=[ISP_B_AS]),
        ),
        sites=(
            SiteSpec(
                id="a-par",
                kind=SiteKind.EMBEDDED,
                partner="isp-a",
                lat=48.85,
                lon=2.35,
                tz="Europe/Paris",
                prefixes=[subscribers],
            ),
            SiteSpec(
                id="b-lys",
                kind=SiteKind.PNI,
                partner="isp-b",
                lat=45.76,
                lon=4.83,
                tz="Europe/Paris",
                prefixes=["127.0.2.0/24"],
            ),
            SiteSpec(id="ix-ams", kind=SiteKind.IX, lat=52.37, lon=4.9, tz="Europe/Amsterdam"),
            SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="UTC"),
        ),
        appliances=(
            NodeSpec("a1", "a-par"),
            NodeSpec("a2", "a-par"),
            NodeSpec("b1", "b-lys"),
            NodeSpec("ix1", "ix-ams", disk_gb=100.0),
            NodeSpec("o1", "origin", serves_origin=True),
        ),
        control={"peeringdb_file": str(PEERINGDB), "operator_asn": 64496},
    )


def add_user(stack: LocalStack, email: str, role: str, partner: str | None = None) -> None:
    argv = [sys.executable, "-m", "localcast", "--home", str(stack.control_home)]
    argv += ["control", "user", "add", email, "--role", role, "--password-file", "-"]
    argv += ["--name", email.split("@")[0].title()]
    if partner:
        argv += ["--partner", partner]
    out = subprocess.run(
        argv, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


@dataclass
class Env:
    stack: LocalStack
    title: PlayableTitle
    subscriber: str  # a subscriber's address (BGP-announced, on the test's veth)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require_bird()
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed: run `make deps`")
    tmp = tmp_path_factory.mktemp("portal")
    title = playable_title("portal-t1", 24.0, 4.0, video=((240, 400_000), (360, 800_000)))
    with (
        NetNs("portal", base="11.202") as ns,
        LocalStack(tmp / "stack", spec(ns.prefix)) as stack,
    ):
        title.write(stack.origin)
        stack.publish(title.title_id)
        port = free_port()
        routers = {"isp-a edge router": ROUTER}
        (stack.appliances["a1"].home / "config.toml").write_text(
            speaker_toml(port, OUR_AS, routers, ISP_A_AS, HOLD_S)
        )
        speaker = stack.spawn_beside(
            "a1",
            "bgp",
            *("bgp", "run", "--control-url", stack.control_url, "--appliance", "a1"),
            "--status-every=0",
        )
        (tmp / "r1").mkdir()
        conf = isp_router(
            tmp / "r1",
            "r1",
            address=ROUTER,
            router_id="192.0.2.251",
            isp_as=ISP_A_AS,
            speaker_port=port,
            speaker_as=OUR_AS,
            routes=[ns.prefix, ANNOUNCED, BOGON],
            hold=HOLD_S,
        )
        bird = Bird(tmp / "r1", conf)
        bird.start()
        try:
            poll(lambda: _heard(stack) >= {ns.prefix, ANNOUNCED}, "BIRD's routes at a1")
            poll(lambda: BOGON in _routes_text(stack), "the bogon among a1's filtered prefixes")
            add_user(stack, OPERATOR, "operator")
            add_user(stack, ALICE, "partner", "isp-a")
            add_user(stack, BOB, "partner", "isp-b")
            _make_traffic(stack, title, ns.host_ip)
            yield Env(stack, title, ns.host_ip)
        finally:
            bird.stop()
            assert speaker.running(), speaker.log_tail()


def _routes_text(stack: LocalStack) -> str:
    return httpx.get(f"{stack.control_url}/v1/routes", trust_env=False).text


def _heard(stack: LocalStack) -> set[str]:
    r = httpx.get(f"{stack.control_url}/v1/routes", params={"limit": "100"}, trust_env=False)
    assert r.status_code == 200, r.text
    return {x["prefix"] for x in r.json()["routes"] if x["appliance_id"] == "a1"}


def _make_traffic(stack: LocalStack, title: PlayableTitle, source: str) -> None:
    """One whole session from a subscriber; wait until isp-a's traffic counts it."""
    player = PlayerThread(
        title.title_id,
        "portal-viewer",
        control_url=stack.control_url,
        source_address=source,
        speed=4.0,
        tuning=PlayerTuning(max_buffer_s=12.0, platform="portal-test"),
    )
    player.start()
    report = player.result(120)
    assert report.request_errors == 0, report.to_dict(False)

    def counted() -> bool:
        r = httpx.get(f"{stack.control_url}/v1/partners/isp-a/traffic", trust_env=False)
        return r.status_code == 200 and sum(r.json()["total"]["bytes_by_source"].values()) > 0

    poll(counted, "isp-a's traffic at the control plane", timeout_s=60)


# --- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Visit:
    """A logged-in browser context with the page checks every visit gets."""

    def __init__(self, browser: Any, base: str, email: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", self._console)
        self.seen_links: dict[str, str] = {}  # link -> the first page (shot) showing it
        self.page.goto(f"{base}/portal/")
        assert "/portal/login" in self.page.url
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(f"{base}/portal/")

    def go(self, path: str, shot: str, status: int = 200) -> Any:
        response = self.page.goto(f"{self.base}{path}")
        assert response is not None and response.status == status, (path, response)
        self.check(shot)
        return self.page

    def check(self, shot: str) -> None:
        """Labels on every input, and a screenshot of the page as it is."""
        self.page.wait_for_load_state("networkidle")
        unlabelled = self.page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden' && e.labels.length === 0
                        && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
                .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"{shot}: inputs without a label: {unlabelled}"
        hrefs = self.page.evaluate(
            """() => [...document.querySelectorAll('a[href]')]
                .filter(a => !a.getAttribute('href').startsWith('#')).map(a => a.href)"""
        )
        for h in hrefs:
            if h.startswith(self.base):
                self.seen_links.setdefault(h.split("#")[0], shot)
        self.page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)

    def dead_links(self) -> list[str]:
        """Every link seen on the visited pages that does not answer 200 for this viewer."""
        dead = []
        for href in sorted(self.seen_links):
            r = self.context.request.get(href, max_redirects=0)
            if r.status != 200:
                dead.append(f"{href} -> {r.status} (linked from {self.seen_links[href]})")
        return dead

    def phone(self, path: str, shot: str) -> None:
        """The page at a phone's width: readable without sideways scrolling."""
        page = self.context.new_page()
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{self.base}{path}")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
        page.close()
        assert overflow <= 1, f"{path} scrolls sideways on a phone by {overflow}px"

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} on {self.page.url}")

    def close(self, expected_404: str = "") -> None:
        self.context.close()
        errors = [e for e in self.errors if not (expected_404 and expected_404 in e)]
        assert errors == [], errors


def explanation(page: Any) -> tuple[list[str], str]:
    """The pathways the explanation gives (appliance ids, best first) and its whole text."""
    box = page.locator('section[aria-labelledby="explain"]')
    table = box.locator("table", has=page.locator("caption", has_text="Pathways"))
    pathways = [c.strip() for c in table.locator("tbody tr td:nth-child(2)").all_inner_texts()]
    return pathways, str(box.inner_text())


def test_partner_and_operator_in_the_browser(env: Env, browser: Any) -> None:
    base = env.stack.control_url
    alice = Visit(browser, base, ALICE)
    page = alice.page
    try:
        # Home: isp-a's appliances with their statuses; nothing of isp-b
        alice.check("01-partner-home")
        for aid in ("a1", "a2"):
            row = page.locator("tr", has=page.locator(f'a[href="/portal/appliances/{aid}"]'))
            assert row.locator(".status").first.inner_text() == "OK", aid
        assert page.locator('a[href="/portal/appliances/b1"]').count() == 0
        alice.phone("/portal/", "01-partner-home-phone")

        # Route explorer: what a1 hears, what it filtered and why
        alice.go("/portal/routes?site=a-par", "02-routes")
        text = page.inner_text("main")
        assert ANNOUNCED in text and "established" in text
        filtered = page.locator("table", has=page.locator("caption", has_text="import policy"))
        assert "bogon" in filtered.inner_text() and BOGON in filtered.inner_text()
        # Steering explanation for a subscriber: a-par first, a1 still serving
        page.get_by_label("Client IP address").fill(env.subscriber)
        page.get_by_role("button", name="Explain").click()
        page.wait_for_load_state("networkidle")
        before, _ = explanation(page)
        assert before[0] == "a1", before  # a2 hears no route for it (the explorer says so)
        alice.check("03-explain-before-drain")

        # Appliance a1: BGP session up; drain it for 3 hours
        alice.go("/portal/appliances/a1", "04-appliance")
        assert "established" in page.locator("#bgp-h").locator("xpath=..").inner_text().lower()
        drain = page.locator('form[action="/portal/appliances/a1/drain"]')
        drain.get_by_label("For how long").select_option("3h")
        drain.get_by_label("Reason").fill("portal browser test")
        drain.get_by_role("button").click()
        page.wait_for_load_state("networkidle")
        assert "drain" in page.locator(".notice").inner_text().lower()
        alice.check("05-appliance-drained")

        # The steering explanation changes: a1 takes no new sessions
        alice.go(f"/portal/routes?site=a-par&ip={env.subscriber}", "06-explain-after-drain")
        after, text = explanation(page)
        assert after[0] != "a1" and after[0] == "an IX site", after  # none new on a1
        assert "a1: drain" in text.lower().replace("\n", " "), text

        # Traffic: the charts are drawn, with data, and their CSV answers
        alice.go("/portal/traffic", "07-traffic")
        drawn = page.evaluate(
            """() => [...document.querySelectorAll('canvas')].map(c => {
                   const chart = window.Chart && window.Chart.getChart(c);
                   return chart ? chart.data.datasets.reduce(
                       (n, d) => n + d.data.filter(v => v !== null && v !== 0).length, 0) : -1;
               })"""
        )
        assert drawn and all(n >= 0 for n in drawn), drawn  # every canvas has its chart
        assert any(n > 0 for n in drawn), drawn  # and the session's bytes are in one
        csv = page.locator('a[href*="traffic.csv"]').first.get_attribute("href")
        r = alice.context.request.get(f"{base}{csv}" if csv.startswith("/") else csv)
        assert r.status == 200 and "text/csv" in r.headers["content-type"]

        # Request an appliance: the planner's eligibility answer
        alice.go("/portal/requests", "08-requests")
        page.get_by_label("Peak traffic").fill("40")
        page.locator("#sites").fill("Paris, 60\nLyon, 40")
        page.locator("#rack_u").fill("4")
        page.locator("#power_w").fill("1500")
        page.locator("#port_count").fill("2")
        page.locator("#port_gbps").select_option("100")
        page.locator("#contact").fill("noc@isp-a.example, +33 1 23 45 67 89")
        page.get_by_role("button", name="Send the request").click()
        page.wait_for_url("**/portal/requests/*")
        # the page polls and reloads itself once the planner has answered
        page.wait_for_selector('#request-status:not([data-status="evaluating"])', timeout=120_000)
        page.wait_for_load_state("networkidle")
        assert page.locator("#request-status").get_attribute("data-status") == "submitted"
        answer = page.locator("#answer-h").locator("xpath=..").inner_text()
        assert "Eligible" in answer and "Expected offload at your peak hour" in answer
        request_url = page.url
        alice.check("09-request-answered")

        # The other partner's appliance does not exist for isp-a
        alice.go("/portal/appliances/b1", "10-other-partner-404", status=404)
        alice.go("/portal/peering", "11-peering")
        assert "Seine-IX" in page.inner_text("main")  # from the PeeringDB export
        assert alice.dead_links() == []
    finally:
        alice.close(expected_404="/portal/appliances/b1")

    op = Visit(browser, base, OPERATOR)
    page = op.page
    try:
        op.go("/portal/operator/fleet", "12-operator-fleet")
        assert "isp-b" in page.inner_text("main")
        op.go(request_url.removeprefix(base), "13-operator-request")
        page.get_by_label("Note to the partner").fill("Approved: two appliances ship next week.")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("#request-status").get_attribute("data-status") == "approved"
        op.check("14-operator-approved")
        op.go("/portal/operator/catalog", "15-operator-catalog")
        assert env.title.title_id in page.inner_text("main")
        op.go("/portal/?partner=isp-b", "16-operator-as-isp-b")
        assert page.locator('a[href="/portal/appliances/b1"]').count() >= 1
        op.go("/portal/operator/users", "17-operator-users")
        assert op.dead_links() == []
    finally:
        op.close()
