"""Views and resume: the pure decisions, then the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import m3u8
import pytest
from control_fixtures import ALL_APPLIANCES, FakeClock, bring_up, client_for, make_plane, provision
from control_fixtures import synthetic_title as make_title
from fastapi.testclient import TestClient

from localcast.control.service import ControlPlane
from localcast.core.views import ViewRecord, ViewWrite, decide_view_write, resume_point

TITLE = make_title("t1", segments=5, segment_s=4.0)  # 20 s, segments start at 0, 4, 8, 12, 16


def record(offset_s: float, client_time: float | None = None, at: float = 100.0) -> ViewRecord:
    return ViewRecord("p1", "t1", offset_s, "web", client_time, at)


def write(offset_s: float, client_time: float | None = None, at: float = 200.0) -> ViewWrite:
    return ViewWrite(offset_s, "web", client_time, at)


# --- pure: which write wins --------------------------------------------------------------------


def test_first_write_is_recorded() -> None:
    v = decide_view_write(None, write(9.5), "p1", "t1", 20.0)
    assert v.applied and v.record.offset_s == 9.5 and v.record.updated_at == 200.0


def test_newer_client_time_wins_and_older_is_ignored() -> None:
    stored = record(12.0, client_time=50)
    newer = decide_view_write(stored, write(14.0, client_time=51), "p1", "t1", 20.0)
    assert newer.applied and newer.record.offset_s == 14.0
    stale = decide_view_write(stored, write(3.0, client_time=49), "p1", "t1", 20.0)
    assert not stale.applied and stale.record == stored
    assert stale.reason == "stale: client_time 49 is older than the stored 50"


def test_without_client_times_the_server_receive_time_decides() -> None:
    stored = record(12.0, at=100.0)
    assert decide_view_write(stored, write(3.0, at=101.0), "p1", "t1", 20.0).applied
    assert not decide_view_write(stored, write(3.0, at=99.0), "p1", "t1", 20.0).applied


def test_offsets_are_clamped_to_the_title() -> None:
    assert decide_view_write(None, write(-5), "p1", "t1", 20.0).record.offset_s == 0.0
    v = decide_view_write(None, write(99), "p1", "t1", 20.0)
    assert v.record.offset_s == 20.0 and "clamped from 99" in v.reason


# --- pure: where to resume -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "resume"),
    [(None, 0.0), (0.0, 0.0), (3.99, 0.0), (4.0, 4.0), (9.5, 8.0), (18.9, 16.0), (19.0, 0.0)],
)
def test_resume_at_the_start_of_the_segment_holding_the_offset(
    stored: float | None, resume: float
) -> None:
    assert resume_point(stored, TITLE.manifest).offset_s == resume


def test_watched_to_95_percent_starts_over() -> None:
    r = resume_point(19.0, TITLE.manifest)  # 95 % of 20 s
    assert r.offset_s == 0.0 and r.reason.startswith("finished")
    assert resume_point(18.99, TITLE.manifest).offset_s == 16.0


# --- the API -------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ControlPlane, TestClient, FakeClock]]:
    clock = FakeClock()
    plane = make_plane(tmp_path, clock)
    creds = provision(plane, TITLE)
    client = client_for(plane)
    bring_up(client, creds, {a: [TITLE] for a in ALL_APPLIANCES})
    yield plane, client, clock
    plane.close()


def test_put_then_get_a_view(api: tuple[ControlPlane, TestClient, FakeClock]) -> None:
    _, c, clock = api
    r = c.put("/v1/views/p1/t1", json={"offset_s": 9.5, "platform": "web"})
    assert r.status_code == 200 and r.json()["applied"]
    got = c.get("/v1/views/p1/t1").json()
    assert got["offset_s"] == 9.5 and got["platform"] == "web"
    assert got["resume_offset_s"] == 8.0 and got["updated_at"] == clock()
    assert c.get("/v1/profiles/p1").json()["id"] == "p1"  # created on first view


def test_stale_write_is_answered_not_applied(
    api: tuple[ControlPlane, TestClient, FakeClock],
) -> None:
    _, c, _ = api
    c.put("/v1/views/p1/t1", json={"offset_s": 12, "platform": "tv", "client_time": 50})
    r = c.put("/v1/views/p1/t1", json={"offset_s": 2, "platform": "web", "client_time": 40})
    assert r.status_code == 200
    body = r.json()
    assert not body["applied"] and body["reason"].startswith("stale")
    assert body["offset_s"] == 12 and body["platform"] == "tv"
    assert c.get("/v1/views/p1/t1").json()["offset_s"] == 12


def test_playback_resumes_at_the_segment_start(
    api: tuple[ControlPlane, TestClient, FakeClock],
) -> None:
    _, c, _ = api
    ask = {"title_id": "t1", "profile_id": "p1"}
    assert c.post("/v1/playback", json=ask).json()["resume_offset_s"] == 0.0
    c.put("/v1/views/p1/t1", json={"offset_s": 9.5, "platform": "web"})
    body = c.post("/v1/playback", json=ask).json()
    assert body["resume_offset_s"] == 8.0 and "segment 2" in body["resume_reason"]
    assert body["mpd_url"].endswith("/manifest.mpd#t=8")
    text = c.get(body["multivariant_url"].split("http://testserver")[1]).text
    assert "#EXT-X-START:TIME-OFFSET=8.000000" in text
    assert m3u8.loads(text).start.time_offset == 8.0
    c.put("/v1/views/p1/t1", json={"offset_s": 19.5, "platform": "web"})
    assert c.post("/v1/playback", json=ask).json()["resume_offset_s"] == 0.0


def test_view_errors(api: tuple[ControlPlane, TestClient, FakeClock]) -> None:
    _, c, _ = api
    assert c.get("/v1/views/p1/t1").status_code == 404  # nothing stored yet
    r = c.put("/v1/views/p1/nope", json={"offset_s": 1})
    assert r.status_code == 404 and r.json()["detail"] == "unknown title 'nope'"
    r = c.put("/v1/views/p1/t1", json={"platform": "web"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "offset_s"]
    r = c.put("/v1/views/p1/t1", json={"offset_s": "soon"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "offset_s"]
    r = c.put("/v1/views/bad%20id/t1", json={"offset_s": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "profile_id"]
    assert c.get("/v1/profiles/ghost").status_code == 404
