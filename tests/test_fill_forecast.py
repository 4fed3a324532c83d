"""Popularity forecast: smoothing by hand, the window of days, releases, properties."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.forecast import (
    DAY_S,
    DemandRecord,
    ForecastParams,
    Release,
    day_of,
    forecast,
)

TODAY = 20_000
NOW = TODAY * DAY_S + 5 * 3600.0  # 05:00 UTC on day TODAY
P1 = ForecastParams(half_life_days=1.0, lookback_days=7, pool_strength=0.0)  # rule 2 alone


def rec(days_ago: int, title: str, sessions: float, region: str = "r") -> DemandRecord:
    return DemandRecord(TODAY - days_ago, region, title, sessions)


def test_day_of() -> None:
    assert day_of(NOW) == TODAY
    assert day_of(TODAY * DAY_S) == TODAY
    assert day_of(TODAY * DAY_S - 0.001) == TODAY - 1


def test_smoothing_by_hand() -> None:
    """Half-life 1 day: yesterday weighs 1, the day before 0.5.
    a: 10 yesterday, 20 before -> (10 + 10) / 1.5; b: only 20 before -> 10 / 1.5."""
    fc = forecast([rec(1, "a", 10), rec(2, "a", 20), rec(2, "b", 20)], [], ["r"], NOW, P1)
    assert fc["r"]["a"] == pytest.approx(20 / 1.5)
    assert fc["r"]["b"] == pytest.approx(10 / 1.5)


def test_short_history_is_not_diluted() -> None:
    """One day of history: the forecast is that day, not a seventh of it."""
    fc = forecast([rec(1, "a", 30)], [], ["r"], NOW, P1)
    assert fc["r"]["a"] == pytest.approx(30.0)


def test_days_outside_the_window_do_not_count() -> None:
    """Today (partial), the future and days older than the lookback are left out;
    records of one (day, region, title) add up."""
    history = [
        rec(0, "a", 1000),  # today: partial
        rec(-1, "a", 1000),  # tomorrow?
        rec(8, "a", 1000),  # beyond a 7-day lookback
        rec(1, "a", 4),
        rec(1, "a", 6),
    ]
    fc = forecast(history, [], ["r"], NOW, P1)
    assert fc["r"]["a"] == pytest.approx(10.0)
    # the oldest day inside the window counts (and opens the observed span)
    fc = forecast([rec(7, "a", 64), rec(1, "b", 1)], [], ["r"], NOW, P1)
    norm = sum(0.5**k for k in range(7))
    assert fc["r"]["a"] == pytest.approx(64 * 0.5**6 / norm)
    assert fc["r"]["b"] == pytest.approx(1 / norm)


def test_regions_are_separate_and_listed() -> None:
    history = [rec(1, "a", 10, "x"), rec(1, "b", 5, "y"), rec(1, "c", 7, "unlisted")]
    fc = forecast(history, [], ["x", "y", "empty"], NOW, P1)
    assert set(fc) == {"x", "y", "empty"}
    assert dict(fc["x"]) == {"a": pytest.approx(10.0)}
    assert dict(fc["y"]) == {"b": pytest.approx(5.0)}
    assert dict(fc["empty"]) == {}


def test_one_region_is_not_pooled() -> None:
    """Pooling over one region is its own figure (rule 3 is the identity there)."""
    history = [rec(1, "a", 10), rec(2, "a", 20), rec(2, "b", 1), rec(5, "c", 3)]
    pooled = forecast(history, [], ["r", "empty"], NOW, replace(P1, pool_strength=4.0))
    assert dict(pooled["r"]) == pytest.approx(dict(forecast(history, [], ["r"], NOW, P1)["r"]))


def test_pooling_by_hand() -> None:
    """Yesterday: region "big" 90 x a, 10 x b; region "small" 1 x b. Pooled shares 90/101 and
    11/101; two titles seen, so 4 x 2 = 8 sessions are spread by them in each region. "small"
    (1 session): a (0 + 8 x 90/101) / 9, b (1 + 8 x 11/101) / 9: one session is not evidence
    enough to put b ahead of a. "big" (100 sessions): its own counts decide, about 90 and 10.
    Each region's total per day is kept."""
    history = [rec(1, "a", 90, "big"), rec(1, "b", 10, "big"), rec(1, "b", 1, "small")]
    fc = forecast(history, [], ["big", "small"], NOW, replace(P1, pool_strength=4.0))
    a0, b0 = 8 * 90 / 101, 8 * 11 / 101
    assert fc["small"]["a"] == pytest.approx(a0 / 9)
    assert fc["small"]["b"] == pytest.approx((1 + b0) / 9)
    assert fc["small"]["a"] > fc["small"]["b"]
    assert fc["big"]["a"] == pytest.approx((90 + a0) * 100 / 108)
    assert fc["big"]["b"] == pytest.approx((10 + b0) * 100 / 108)
    assert fc["big"]["a"] == pytest.approx(90, rel=0.001)
    for region, total in (("big", 100), ("small", 1)):
        assert sum(fc[region].values()) == pytest.approx(total)
    alone = forecast(history, [], ["big", "small"], NOW, P1)
    assert dict(alone["small"]) == {"b": 1.0}


def test_a_title_watched_in_one_region_keeps_its_rank_there() -> None:
    """Region x: 30 x z (a local title), 10 x a; region y: 1000 x a. Pooled, z is 3% of the
    sessions, but x's own counts still rank z first."""
    history = [rec(1, "z", 30, "x"), rec(1, "a", 10, "x"), rec(1, "a", 1000, "y")]
    fc = forecast(history, [], ["x", "y"], NOW, replace(P1, pool_strength=4.0))
    assert fc["x"]["z"] > fc["x"]["a"] > 10
    assert fc["y"]["a"] > 990 and 0 < fc["y"]["z"] < 1


def test_output_is_read_only() -> None:
    fc = forecast([rec(1, "a", 10)], [], ["r"], NOW, P1)
    with pytest.raises(TypeError):
        fc["r"]["a"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        fc["s"] = {}  # type: ignore[index]


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="half_life_days"):
        ForecastParams(half_life_days=0)
    with pytest.raises(ValueError, match="lookback_days"):
        ForecastParams(lookback_days=-1)
    with pytest.raises(ValueError, match="pool_strength"):
        ForecastParams(pool_strength=-1)


# --- releases ------------------------------------------------------------------------------

P = ForecastParams()  # lead 2 days, boost 7 days


def release_demand(now: float) -> float:
    """The forecast for a title released 3 days after NOW, expecting 700 a day, no history."""
    rel = Release("new", NOW + 3 * DAY_S, 700.0)
    return forecast([], [rel], ["r"], now, P)["r"].get("new", 0.0)


def test_release_counts_from_its_lead() -> None:
    release_at = NOW + 3 * DAY_S
    assert release_demand(NOW) == 0.0  # 3 days ahead, lead is 2
    assert release_demand(release_at - 2 * DAY_S - 1) == 0.0
    assert release_demand(release_at - 2 * DAY_S) == pytest.approx(700.0)
    assert release_demand(release_at - 1) == pytest.approx(700.0)


def test_release_fades_to_observed_demand() -> None:
    release_at = NOW + 3 * DAY_S
    # no observed demand: halfway through the fade, half the figure
    assert release_demand(release_at + 3.5 * DAY_S) == pytest.approx(350.0)
    assert release_demand(release_at + 7 * DAY_S) == 0.0
    # observed above the expected figure: observed wins
    rel = Release("new", NOW + DAY_S, 700.0)
    fc = forecast([rec(1, "new", 900.0)], [rel], ["r"], NOW, P)
    assert fc["r"]["new"] == pytest.approx(900.0)


def test_release_fades_toward_observed_by_hand() -> None:
    release_at = NOW - 3.5 * DAY_S  # halfway through the 7-day fade at NOW
    history = [rec(k, "new", 100.0) for k in (1, 2, 3)]
    rel = Release("new", release_at, 700.0)
    fc = forecast(history, [rel], ["r"], NOW, P)
    assert fc["r"]["new"] == pytest.approx(0.5 * 700 + 0.5 * 100)


def test_release_regions_and_the_largest_figure() -> None:
    release_at = NOW + DAY_S
    releases = [
        Release("t", release_at, 100.0, regions=("x",)),
        Release("t", release_at, 300.0, regions=("x", "nowhere")),
        Release("u", release_at, 50.0),  # every region
    ]
    fc = forecast([], releases, ["x", "y"], NOW, P)
    assert dict(fc["x"]) == {"t": 300.0, "u": 50.0}
    assert dict(fc["y"]) == {"u": 50.0}


# --- properties ----------------------------------------------------------------------------

records = st.lists(
    st.builds(
        DemandRecord,
        day=st.integers(TODAY - 10, TODAY),
        region=st.sampled_from(["x", "y"]),
        title_id=st.sampled_from(["a", "b", "c"]),
        sessions=st.integers(0, 10**6).map(float),  # counts: no subnormal rounding
    ),
    max_size=40,
)


@settings(deadline=None)
@given(records, st.floats(0.01, 10))
def test_forecast_is_within_the_daily_figures(history: list[DemandRecord], k: float) -> None:
    """Without pooling: between 0 and the largest day's sessions; scales with the sessions."""
    params = ForecastParams(half_life_days=2.0, lookback_days=7, pool_strength=0.0)
    fc = forecast(history, [], ["x", "y"], NOW, params)
    daily: dict[tuple[str, str, int], float] = {}
    for r in history:
        key = (r.region, r.title_id, r.day)
        daily[key] = daily.get(key, 0.0) + r.sessions
    for region, titles in fc.items():
        for title, value in titles.items():
            top = max(v for (g, t, d), v in daily.items() if g == region and t == title)
            assert 0 < value <= top * (1 + 1e-9)
    scaled = [DemandRecord(r.day, r.region, r.title_id, r.sessions * k) for r in history]
    fk = forecast(scaled, [], ["x", "y"], NOW, params)
    for region, titles in fc.items():
        for title, value in titles.items():
            assert fk[region].get(title, 0.0) == pytest.approx(value * k, rel=1e-6)


@settings(deadline=None)
@given(records, st.integers(0, 39), st.floats(1, 1e6))
def test_more_sessions_never_lower_the_forecast(
    history: list[DemandRecord], which: int, more: float
) -> None:
    if not history:
        return
    r = history[which % len(history)]
    bumped = [*history, DemandRecord(r.day, r.region, r.title_id, more)]
    before = forecast(history, [], ["x", "y"], NOW)
    after = forecast(bumped, [], ["x", "y"], NOW)
    assert after[r.region].get(r.title_id, 0.0) >= before[r.region].get(r.title_id, 0.0)
