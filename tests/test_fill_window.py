"""Fill windows in site-local time (DST, wrap-around, shifts), rates and urgency; pure."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.fillwindow import (
    APPLIANCE_CLASSES,
    URGENT_SHARE,
    FillWindow,
    closes_at,
    fill_rate,
    is_open,
    is_urgent,
    next_open,
    next_window_start,
    parse_window,
    rate_cap,
    shifted,
)

H = 3600.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


# --- parsing ----------------------------------------------------------------------------------


def test_parse_reads_minutes_and_round_trips() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")
    assert w == FillWindow(120, 840, "Europe/Paris")
    assert w.spec == "02:00-14:00"
    assert not w.wraps
    wrap = parse_window(" 22:30 - 6:05 ", "America/New_York")
    assert (wrap.start_min, wrap.end_min, wrap.wraps) == (1350, 365, True)
    assert parse_window(wrap.spec, wrap.tz) == wrap


def test_end_of_day_spellings_are_the_same_window() -> None:
    assert parse_window("22:00-24:00", "UTC") == parse_window("22:00-00:00", "UTC")
    always = parse_window("00:00-24:00", "UTC")
    assert always.always_open and always.spec == "00:00-24:00"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("2-14", "expected HH:MM-HH:MM"),
        ("02:00", "expected HH:MM-HH:MM"),
        ("25:00-03:00", "start 25:00 is not a time of day"),
        ("02:60-03:00", "start 02:60 is not a time of day"),
        ("24:00-02:00", "start 24:00 is not a time of day"),
        ("02:00-24:30", "end 24:30 is not a time of day"),
        ("02:00-02:00", "start and end must differ"),
        ("00:00-00:00", "start and end must differ"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_window(text, "UTC")


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        parse_window("02:00-14:00", "Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        FillWindow(0, 60, "../etc/passwd")


def test_window_minutes_are_validated() -> None:
    with pytest.raises(ValueError, match="out of range"):
        FillWindow(1440, 60, "UTC")
    with pytest.raises(ValueError, match="start and end must differ"):
        FillWindow(60, 60, "UTC")


# --- membership across time zones -------------------------------------------------------------


def test_same_instant_differs_per_time_zone() -> None:
    now = utc(2024, 1, 15, 6, 0)  # 07:00 Paris, 01:00 New York, 15:00 Tokyo
    spec = "02:00-14:00"
    assert is_open(parse_window(spec, "Europe/Paris"), now)
    assert not is_open(parse_window(spec, "America/New_York"), now)
    assert not is_open(parse_window(spec, "Asia/Tokyo"), now)
    assert next_open(parse_window(spec, "America/New_York"), now) == utc(2024, 1, 15, 7, 0)
    assert next_open(parse_window(spec, "Asia/Tokyo"), now) == utc(2024, 1, 15, 17, 0)


def test_summer_time_moves_the_window_in_utc() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")
    assert next_open(w, utc(2024, 1, 15, 0, 0)) == utc(2024, 1, 15, 1, 0)  # CET, +1
    assert next_open(w, utc(2024, 7, 15, 0, 0)) == utc(2024, 7, 15, 0, 0)  # CEST, +2: open
    assert closes_at(w, utc(2024, 7, 15, 0, 0)) == utc(2024, 7, 15, 12, 0)
    assert closes_at(w, utc(2024, 7, 15, 12, 0)) is None


def test_spring_forward_day_opens_when_clocks_jump_and_is_an_hour_shorter() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")  # 2024-03-31: 02:00 CET -> 03:00 CEST
    opens = next_open(w, utc(2024, 3, 30, 20, 0))
    assert opens == utc(2024, 3, 31, 1, 0)  # the jump itself: local 01:59:59 -> 03:00
    assert not is_open(w, opens - 1)
    assert closes_at(w, opens) == utc(2024, 3, 31, 12, 0)  # 14:00 CEST
    assert closes_at(w, opens) - opens == 11 * H  # type: ignore[operator]


def test_window_inside_the_skipped_hour_opens_at_the_jump() -> None:
    w = parse_window("02:30-03:30", "Europe/Paris")
    opens = next_open(w, utc(2024, 3, 30, 23, 0))
    assert opens == utc(2024, 3, 31, 1, 0)  # 03:00 CEST, local 02:30 never happened
    assert closes_at(w, opens) == utc(2024, 3, 31, 1, 30)
    skipped = parse_window("02:10-02:50", "Europe/Paris")  # wholly in the gap: no window today
    assert next_open(skipped, utc(2024, 3, 30, 23, 0)) == utc(2024, 4, 1, 0, 10)


def test_fall_back_day_is_an_hour_longer_and_lives_the_repeated_hour_twice() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")  # 2024-10-27: 03:00 CEST -> 02:00 CET
    opens = next_open(w, utc(2024, 10, 26, 20, 0))
    assert opens == utc(2024, 10, 27, 0, 0)  # 02:00 CEST
    assert closes_at(w, opens) == utc(2024, 10, 27, 13, 0)  # 14:00 CET: 13 hours
    short = parse_window("02:30-02:45", "Europe/Paris")
    first = next_open(short, utc(2024, 10, 26, 22, 0))
    assert first == utc(2024, 10, 27, 0, 30)  # 02:30 CEST
    assert closes_at(short, first) == utc(2024, 10, 27, 0, 45)
    second = next_open(short, utc(2024, 10, 27, 0, 50))
    assert second == utc(2024, 10, 27, 1, 30)  # 02:30 CET, the same wall clock again
    assert closes_at(short, second) == utc(2024, 10, 27, 1, 45)


def test_wrapping_window_over_both_dst_changes() -> None:
    w = parse_window("22:00-06:00", "America/New_York")
    assert w.wraps
    # night of 9-10 March 2024: opens 22:00 EST, closes 06:00 EDT: 7 hours
    opens = next_open(w, utc(2024, 3, 9, 12, 0))
    assert opens == utc(2024, 3, 10, 3, 0)
    assert closes_at(w, opens) == utc(2024, 3, 10, 10, 0)
    assert is_open(w, utc(2024, 3, 10, 6, 59)) and is_open(w, utc(2024, 3, 10, 7, 0))
    # night of 2-3 November 2024: opens 22:00 EDT, closes 06:00 EST: 9 hours
    opens = next_open(w, utc(2024, 11, 2, 12, 0))
    assert opens == utc(2024, 11, 3, 2, 0)
    assert closes_at(w, opens) == utc(2024, 11, 3, 11, 0)
    # open across midnight, both sides
    assert is_open(w, utc(2024, 1, 10, 4, 59))  # 23:59 EST
    assert is_open(w, utc(2024, 1, 10, 5, 0))  # 00:00 EST
    assert not is_open(w, utc(2024, 1, 10, 11, 0))  # 06:00 EST: end excluded


def test_half_hour_dst_zone() -> None:
    w = parse_window("02:00-14:00", "Australia/Lord_Howe")  # +10:30 winter, +11 summer
    assert next_open(w, utc(2024, 7, 1, 4, 0)) == utc(2024, 7, 1, 15, 30)
    assert next_open(w, utc(2024, 1, 1, 4, 0)) == utc(2024, 1, 1, 15, 0)
    assert closes_at(w, utc(2024, 7, 1, 0, 0)) == utc(2024, 7, 1, 3, 30)


def test_always_open_window() -> None:
    w = parse_window("00:00-24:00", "Asia/Kolkata")
    now = utc(2024, 3, 31, 1, 30)
    assert is_open(w, now) and next_open(w, now) == now
    assert closes_at(w, now) == math.inf
    assert shifted(w, 90) == w
    assert next_window_start(w, now) == math.inf


def test_shifted_windows_wrap() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")
    assert shifted(w, 180).spec == "05:00-17:00"
    assert shifted(w, -180).spec == "23:00-11:00" and shifted(w, -180).wraps
    assert shifted(w, 1440) == w
    assert shifted(shifted(w, 600), -600) == w
    late = shifted(w, 180)
    now = utc(2024, 1, 15, 2, 0)  # 03:00 CET: open, the shifted one is not
    assert is_open(w, now) and not is_open(late, now)
    assert next_open(late, now) == utc(2024, 1, 15, 4, 0)


# --- exhaustive checks against a minute-by-minute walk ------------------------------------------

_DST_DAYS = [
    ("Europe/Paris", utc(2024, 3, 30, 12, 0)),
    ("Europe/Paris", utc(2024, 10, 26, 12, 0)),
    ("America/New_York", utc(2024, 3, 9, 12, 0)),
    ("Australia/Lord_Howe", utc(2024, 4, 6, 0, 0)),
]


@pytest.mark.parametrize(("tz", "start"), _DST_DAYS)
@pytest.mark.parametrize("spec", ["02:00-14:00", "22:00-06:00", "02:30-03:15"])
def test_next_open_and_closes_at_match_a_minute_walk(tz: str, start: float, spec: str) -> None:
    """Two days around a DST change, minute by minute: every boundary is on a whole minute."""
    w = parse_window(spec, tz)
    minutes = [start + 60.0 * i for i in range(3 * 1440)]
    state = [is_open(w, t) for t in minutes]
    flips = [minutes[i] for i in range(1, len(minutes)) if state[i] != state[i - 1]]
    opens = [t for t in flips if is_open(w, t)]
    closes = [t for t in flips if not is_open(w, t)]
    for i in range(0, 2 * 1440, 7):
        t = minutes[i] + 13.5  # between grid points too
        if is_open(w, t):
            assert next_open(w, t) == t
            assert closes_at(w, t) == min(c for c in closes if c > t)
        else:
            assert closes_at(w, t) is None
            assert next_open(w, t) == min(o for o in opens if o > t)


@settings(max_examples=150, deadline=None)
@given(
    tz=st.sampled_from(
        ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
    ),
    start=st.integers(0, 1439),
    length=st.integers(1, 1439),
    now=st.floats(utc(2024, 1, 1, 0, 0), utc(2025, 1, 1, 0, 0)),
)
def test_next_open_then_closes_at_are_consistent(
    tz: str, start: int, length: int, now: float
) -> None:
    w = FillWindow(start, (start + length) % 1440, tz)
    opens = next_open(w, now)
    assert now <= opens <= now + 49 * H
    assert is_open(w, opens)
    if opens > now:
        assert not is_open(w, now)
        assert not is_open(w, (now + opens) / 2)
        assert not is_open(w, opens - 0.01)
    close = closes_at(w, opens)
    assert close is not None and opens < close <= opens + 25 * H
    assert not is_open(w, close)
    assert is_open(w, (opens + close) / 2)
    assert is_open(w, close - 0.01)


# --- rates and urgency -------------------------------------------------------------------------


def test_rate_caps_by_class_and_override() -> None:
    assert rate_cap("storage") == APPLIANCE_CLASSES["storage"] == 1e9
    assert rate_cap("flash") == 4e9
    assert rate_cap("small") == 250e6
    assert rate_cap("storage", override_bps=300e6) == 300e6
    with pytest.raises(ValueError, match="unknown appliance class 'tape': one of flash, small"):
        rate_cap("tape")
    with pytest.raises(ValueError, match="must be positive"):
        rate_cap("storage", override_bps=0)


def test_fill_rate_in_window_outside_and_urgent() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")
    inside, outside = utc(2024, 1, 15, 3, 0), utc(2024, 1, 15, 18, 0)
    assert fill_rate(w, 1e9, inside, urgent=False) == 1e9
    assert fill_rate(w, 1e9, inside, urgent=True) == 1e9
    assert fill_rate(w, 1e9, outside, urgent=False) == 0.0
    assert fill_rate(w, 1e9, outside, urgent=True) == 1e9 * URGENT_SHARE


def test_urgent_when_the_release_comes_before_the_next_window() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")
    now = utc(2024, 1, 15, 18, 0)  # 19:00 CET, closed; next window 01:00 UTC tomorrow
    assert is_urgent(utc(2024, 1, 15, 20, 0), w, now)  # tonight at 21:00 CET
    assert not is_urgent(utc(2024, 1, 16, 3, 0), w, now)  # inside the next window: it fills
    assert not is_urgent(None, w, now)
    assert is_urgent(now - 2 * H, w, now)  # released, not filled yet: still urgent
    assert not is_urgent(now - 2 * 86400.0, w, now)  # long past: plain demand now
    assert not is_urgent(now - 2 * H, w, now, grace_s=H)


def test_urgent_while_open_means_this_window_is_the_last_chance() -> None:
    w = parse_window("02:00-14:00", "Europe/Paris")
    now = utc(2024, 1, 15, 3, 0)  # open; this window closes at 13:00 UTC, the next opens 01:00
    assert next_window_start(w, now) == utc(2024, 1, 16, 1, 0)
    assert is_urgent(utc(2024, 1, 15, 20, 0), w, now)
    assert not is_urgent(utc(2024, 1, 16, 5, 0), w, now)


def test_a_day_in_seconds_sites_in_two_zones() -> None:
    """Step a simulated UTC day every 15 minutes: each site's rate follows its own window."""
    paris = parse_window("02:00-14:00", "Europe/Paris")
    tokyo = parse_window("02:00-14:00", "Asia/Tokyo")
    day = utc(2024, 1, 15, 0, 0)
    open_hours = {"paris": 0.0, "tokyo": 0.0}
    for step in range(96):
        now = day + step * 900.0
        for name, w in (("paris", paris), ("tokyo", tokyo)):
            rate = fill_rate(w, rate_cap("storage"), now, urgent=False)
            assert rate in (0.0, 1e9)
            open_hours[name] += 0.25 if rate else 0.0
    assert open_hours == {"paris": 12.0, "tokyo": 12.0}
    assert is_open(paris, day + 1 * H) and not is_open(tokyo, day + 6 * H)
