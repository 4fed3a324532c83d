"""The demo's expectations and its summary rows, on hand-made QoE reports (no processes)."""

from __future__ import annotations

from dataclasses import replace

from localcast.demo import checks
from localcast.demo.checks import ServedBy
from localcast.demo.report import SessionOutcome, summary_rows
from localcast.player import QoeReport, SegmentRecord

HOSTS = {
    "127.0.0.1:1001": ServedBy("e1", "isp", "embedded"),
    "127.0.0.1:1002": ServedBy("e2", "isp", "embedded"),
    "127.0.0.1:2001": ServedBy("ix1", "ix", "ix"),
}


def seg(index: int, host: str, rung: int = 1) -> SegmentRecord:
    return SegmentRecord(
        index=index,
        start_s=2.0 * index,
        duration_s=2.0,
        rung=rung,
        bitrate_bps=1_000_000 * (rung + 1),
        label=f"{rung}",
        pathway=HOSTS[host].appliance_id,
        host=host,
        size_bytes=1000,
        attempts=1,
        buffer_s=4.0,
        throughput_bps=None,
        reason="test",
    )


def report(*segments: SegmentRecord, **overrides: object) -> QoeReport:
    by_host: dict[str, int] = {}
    for s in segments:
        by_host[s.host] = by_host.get(s.host, 0) + s.size_bytes
    base = QoeReport(
        title_id="demo",
        profile_id="alice",
        session_id="s",
        completed=True,
        error=None,
        start_offset_s=segments[0].start_s,
        end_position_s=segments[-1].start_s + segments[-1].duration_s,
        startup_time_s=0.2,
        rebuffer_count=0,
        rebuffer_time_s=0.0,
        avg_bitrate_bps=2e6,
        quality_switches=0,
        failovers=0,
        request_errors=0,
        steering_switches=0,
        bytes_total=sum(by_host.values()),
        bytes_by_host=by_host,
        views_reported=(segments[-1].start_s + segments[-1].duration_s,),
        speed=2.0,
        segments=segments,
    )
    return replace(base, **overrides)


E1, E2, IX = "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:2001"


def test_a_clean_embedded_session_passes() -> None:
    r = report(seg(0, E1), seg(1, E1), seg(2, E1))
    assert checks.check_played("s", r, 0.0, 6.0) == []
    assert checks.check_served_only_by("s", r, HOSTS, "embedded") == []
    assert checks.check_no_rebuffer("s", r) == []
    assert checks.check_views("s", r, 6.0) == []


def test_wrong_site_wrong_span_and_stalls_are_named() -> None:
    r = report(seg(0, E1), seg(1, IX), rebuffer_count=1, rebuffer_time_s=0.5)
    assert checks.check_served_only_by("s", r, HOSTS, "embedded") == [
        "s: expected only embedded appliances, was served by e1 (embedded), ix1 (ix)"
    ]
    assert checks.check_played("s", r, 2.0, 6.0) == [
        "s: started at 0 s, not 2 s",
        "s: ended at 4 s, not 6 s",
    ]
    assert checks.check_no_rebuffer("s", r) == ["s: 1 rebuffer(s), 0.50 s stalled"]
    failed = replace(r, completed=False, error="every pathway failed")
    assert checks.check_played("s", failed, 0.0, 4.0) == [
        "s: did not finish (every pathway failed)"
    ]


def test_failover_needs_a_kill_a_switch_and_the_survivor_last() -> None:
    good = report(seg(6, E1), seg(7, E1), seg(8, E2), seg(9, E2), failovers=1)
    assert checks.check_failover("s", good, HOSTS, "e1") == []
    assert checks.check_failover("s", good, HOSTS, None) == [
        "s: no appliance was killed (the player never got far enough)"
    ]
    never_left = report(seg(6, E1), seg(7, E1))
    assert checks.check_failover("s", never_left, HOSTS, "e1") == [
        "s: no failover after e1 was killed",
        "s: the last segment still came from e1",
    ]
    wrong_victim = replace(good, failovers=1)
    assert checks.check_failover("s", wrong_victim, HOSTS, "e2") == [
        "s: e2 was not the appliance serving the session",
        "s: the last segment still came from e2",
    ]


def test_summary_rows_one_column_per_session() -> None:
    inside = SessionOutcome(
        "inside",
        "alice",
        "127.0.1.10",
        report(seg(0, E1), seg(1, E2), failovers=1, request_errors=2),
        killed="e1",
    )
    outside = SessionOutcome(
        "outside", "bob", "127.0.2.20", report(seg(0, IX)), problems=("outside: bad",)
    )
    rows = dict(summary_rows([inside, outside], HOSTS))
    assert rows["client"] == ["127.0.1.10 (alice)", "127.0.2.20 (bob)"]
    assert rows["served by"] == ["e1 (embedded) then e2 (embedded)", "ix1 (ix)"]
    assert rows["site"] == ["isp", "ix"]
    assert rows["failovers"] == ["1 (2 failed requests); e1 killed", "0 (0 failed requests)"]
    assert rows["bytes from e1 (embedded)"] == ["1,000", "-"]
    assert rows["bytes from ix1 (ix)"] == ["-", "1,000"]
    assert rows["expectations"] == ["ok", "FAILED"]
    assert list(rows)[-1] == "expectations"
