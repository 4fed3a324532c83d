"""The portal's traffic page: its charts' data (page JSON, tables, CSV) and its scope.

Traffic is fed as the appliances report it (``plane.traffic.ingest``) and as viewers
play (``/v1/playback``), over two UTC days; every expected figure is computed by hand.
Topology (:mod:`portal_support`): isp-a's embedded a-par (a1, a2; 10.1.0.0/16), isp-b's
PNI b-lys (b1; 10.2.0.0/16), the IX ix-fra (ix1), the origin (o1).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_fixtures import NOW, client_for
from fastapi.testclient import TestClient
from portal_support import ALICE, BOB, OPERATOR, Portal, login, portal_plane

from localcast.control.traffic import TrafficRow
from localcast.portal.pages import traffic

TODAY, YESTERDAY = "2027-01-15", "2027-01-14"
PLAY = {"title_id": "t1", "profile_id": "p1", "device": {"codecs": ["avc1", "mp4a"]}}


def client(portal: Portal) -> TestClient:
    return portal.client("10.1.2.3")


def ingest(portal: Portal, aid: str, at: float, *rows: TrafficRow) -> None:
    portal.plane.traffic.ingest(aid, at - 5, at, rows, portal.clock())


def play(portal: Portal, ip: str) -> str:
    with client_for(portal.plane, ip) as c:
        r = c.post("/v1/playback", json=PLAY)
        assert r.status_code == 200, r.text
        site: str = r.json()["pathways"][0]["site_id"]
        return site


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    p = portal_plane(tmp_path)
    day = 86400.0
    # yesterday: isp-a 1000 B embedded, 1000 B over the IX, 2000 B from the origin
    ingest(p, "a1", NOW - day, TrafficRow("10.1.2.0/24", "viewer", 1, 1000))
    ingest(p, "ix1", NOW - day, TrafficRow("10.1.2.0/24", "viewer", 1, 1000))
    ingest(p, "o1", NOW - day, TrafficRow("10.1.9.0/24", "viewer", 2, 2000))
    # today: isp-a 6000 B embedded (+ 50 000 B of fill), 3000 B over the IX; isp-b its PNI
    ingest(
        p,
        "a1",
        NOW,
        TrafficRow("10.1.2.0/24", "viewer", 10, 6000),
        TrafficRow("10.1.2.0/24", "fill", 1, 50_000),
    )
    ingest(p, "ix1", NOW, TrafficRow("10.1.2.0/24", "viewer", 3, 3000))
    ingest(p, "b1", NOW, TrafficRow("10.2.5.0/24", "viewer", 6, 16_000))
    # today's playback: two from isp-a's site, then it loses the title: one content miss
    assert play(p, "10.1.2.3") == "a-par"
    assert play(p, "10.1.7.7") == "a-par"
    with client_for(p.plane) as c:
        for aid in ("a1", "a2"):
            r = c.post(
                f"/v1/appliances/{aid}/heartbeat",
                json={"inventory": {"kind": "full", "seq": 2, "titles": {}}},
                headers={"Authorization": f"Bearer {p.credentials[aid]}"},
            )
            assert r.status_code == 200, r.text
    assert play(p, "10.1.2.3") == "ix-fra"
    assert play(p, "10.2.0.9") == "b-lys"
    yield p
    p.plane.close()


def chart_specs(html: str) -> dict[str, dict[str, Any]]:
    found = re.findall(
        r'<script type="application/json" id="chart-data-([a-z]+)">(.*?)</script>', html, re.S
    )
    return {name: json.loads(body) for name, body in found}


def rows_of(csv_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(csv_text)))


def test_the_charts_carry_the_partners_figures_per_day(portal: Portal) -> None:
    with client(portal) as c:
        login(c, ALICE)
        r = c.get("/portal/traffic", params={"days": 2})
        assert r.status_code == 200, r.text
        specs = chart_specs(r.text)
    assert list(specs) == ["sources", "offload", "caching", "fill", "misses"]
    src = specs["sources"]
    assert src["columns"] == ["date", "embedded_bytes", "pni_bytes", "ix_bytes", "origin_bytes"]
    assert src["rows"] == [[YESTERDAY, 1000, 0, 1000, 2000], [TODAY, 6000, 0, 3000, 0]]
    assert [s["label"] for s in src["series"]] == [
        "Embedded (your appliances)",
        "Private peering",
        "Internet exchange",
        "Transit (origin)",
    ]
    assert specs["offload"]["rows"] == [[YESTERDAY, 0.25], [TODAY, pytest.approx(6000 / 9000)]]
    assert specs["fill"]["rows"] == [[YESTERDAY, 1000, 0], [TODAY, 6000, 50_000]]
    assert specs["misses"]["columns"] == ["date", "content_miss", "health_miss", "sessions"]
    assert specs["misses"]["rows"] == [[YESTERDAY, 0, 0, 0], [TODAY, 1, 0, 3]]
    caching = {(row[0], row[1]): row[2:] for row in specs["caching"]["rows"]}
    assert caching[(TODAY, "a-par")] == ["embedded", 2, 1, pytest.approx(2 / 3)]
    assert caching[(TODAY, "ix-fra")] == ["ix", 1, 0, 1.0]
    assert caching[(YESTERDAY, "a-par")] == ["embedded", 0, 0, None]
    # every chart: a heading, an aria-label on its canvas, a CSV link, a data table
    for name in specs:
        assert f'id="h-{name}"' in r.text
        assert re.search(rf'<canvas id="chart-{name}" role="img" aria-label="[^"]+"', r.text)
        assert f"/portal/traffic.csv?chart={name}&amp;days=2" in r.text
    assert r.text.count("<caption>") == len(specs) + 1  # one per chart, plus the sites
    assert '<td class="num">6.00 kB</td>' in r.text  # today's embedded bytes, in a table
    assert "66.7%" in r.text  # today's offload
    assert '<script src="/portal/static/traffic.js">' in r.text


def test_each_csv_is_exactly_its_charts_data(portal: Portal) -> None:
    with client(portal) as c:
        login(c, ALICE)
        specs = chart_specs(c.get("/portal/traffic", params={"days": 2}).text)
        for name, spec in specs.items():
            r = c.get("/portal/traffic.csv", params={"chart": name, "days": 2})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/csv")
            assert r.headers["content-disposition"] == (
                f'attachment; filename="traffic-isp-a-{name}-{YESTERDAY}-{TODAY}.csv"'
            )
            got = rows_of(r.text)
            assert got[0] == spec["columns"]
            want = [["" if v is None else str(v) for v in row] for row in spec["rows"]]
            assert got[1:] == want
        assert rows_of(c.get("/portal/traffic.csv?chart=sources&days=2").text) == [
            ["date", "embedded_bytes", "pni_bytes", "ix_bytes", "origin_bytes"],
            [YESTERDAY, "1000", "0", "1000", "2000"],
            [TODAY, "6000", "0", "3000", "0"],
        ]
        assert c.get("/portal/traffic.csv?chart=nope").status_code == 404


def test_a_partner_sees_only_its_own_traffic(portal: Portal) -> None:
    with client(portal) as c:
        login(c, ALICE)
        assert c.get("/portal/traffic", params={"partner": "isp-b"}).status_code == 404
        assert c.get("/portal/traffic", params={"partner": "nope"}).status_code == 404
        r = c.get("/portal/traffic.csv", params={"chart": "sources", "partner": "isp-b"})
        assert r.status_code == 404
        assert c.get("/portal/traffic", params={"partner": "isp-a"}).status_code == 200
    with client(portal) as c:
        login(c, BOB)
        r = c.get("/portal/traffic", params={"days": 1})
        assert chart_specs(r.text)["sources"]["rows"] == [[TODAY, 0, 16_000, 0, 0]]
        assert chart_specs(r.text)["misses"]["rows"] == [[TODAY, 0, 0, 1]]
        assert c.get("/portal/traffic.csv?chart=offload&partner=isp-a").status_code == 404


def test_the_operator_picks_any_partner(portal: Portal) -> None:
    with client(portal) as c:
        login(c, OPERATOR)
        r = c.get("/portal/traffic", params={"partner": "isp-b", "days": 1})
        assert r.status_code == 200
        assert chart_specs(r.text)["offload"]["rows"] == [[TODAY, 0.0]]
        assert "/portal/traffic.csv?chart=offload&amp;days=1&amp;partner=isp-b" in r.text
        r = c.get("/portal/traffic.csv?chart=sources&days=1&partner=isp-b")
        assert rows_of(r.text)[1] == [TODAY, "0", "16000", "0", "0"]
        assert c.get("/portal/traffic", params={"partner": "nope"}).status_code == 404
        r = c.get("/portal/traffic")  # no partner: the first by name
        assert chart_specs(r.text)["sources"]["rows"][-1] == [TODAY, 6000, 0, 3000, 0]


def test_the_page_needs_a_login_and_a_sane_window(portal: Portal) -> None:
    with client(portal) as c:
        r = c.get("/portal/traffic", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")
        login(c, ALICE)
        assert c.get("/portal/traffic", params={"days": 0}).status_code == 422
        assert c.get("/portal/traffic", params={"days": 400}).status_code == 422
        r = c.get("/portal/traffic", params={"days": 30})
        assert r.status_code == 200 and len(chart_specs(r.text)["sources"]["rows"]) == 30


def test_json_in_the_page_cannot_close_its_script() -> None:
    text = str(traffic.json_script({"x": "</script><b>"}))
    assert "</script>" not in text and json.loads(text) == {"x": "</script><b>"}
