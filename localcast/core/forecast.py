"""Popularity forecast: expected sessions per day, per region and title.

Inputs are data only: the observed demand (one :class:`DemandRecord` per day,
region and title), the scheduled :class:`Release`\\ s, the regions to forecast
and ``now``. The rules, in the order they apply:

1. **Days**: day numbers are UTC days, ``int(unix // 86400)``. Only days
   strictly before ``now``'s day count (today is partial and would read as a
   drop), and at most ``lookback_days`` of them: ``today - lookback_days <= day
   < today``. Records of the same (day, region, title) add up. Records of a
   region not listed are ignored. ``bytes`` is carried for reports; the
   forecast is in sessions.
2. **Smoothing**: exponential, by age: yesterday weighs 1, a day ``k`` days
   older weighs ``0.5 ** (k / half_life_days)``. A title's observed demand in a
   region is the weighted mean of its daily sessions over the region's
   *observed span*: from the region's first day with any record in the
   lookback window to yesterday (a day without a record for that title counts
   0; a region with a short history is not diluted by days it did not exist).
3. **Releases**: a release counts from ``release_lead_days`` before
   ``release_at`` (so it is placed before it happens). From then until
   ``release_at`` the title's demand is ``max(observed, expected_sessions)``;
   over the ``release_boost_days`` after ``release_at`` the expected figure
   fades linearly to the observed one (never below the observed one); after
   that only observed demand counts. ``regions=None`` means every region
   forecast; several releases of one title: the largest figure wins.
4. **Output**: region -> title -> expected sessions per day, read-only, one
   entry per region asked for (possibly empty), titles with a positive figure
   only.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

DAY_S = 86400.0

Forecast = Mapping[str, Mapping[str, float]]  # region -> title_id -> expected sessions/day


@dataclass(frozen=True)
class DemandRecord:
    """One day of observed demand for a title in a region."""

    day: int
    region: str
    title_id: str
    sessions: float
    bytes: float = 0.0


@dataclass(frozen=True)
class Release:
    """A scheduled release: placed before it happens.

    ``expected_sessions`` is per day, in each region listed (``None``: every region).
    """

    title_id: str
    release_at: float
    expected_sessions: float
    regions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ForecastParams:
    half_life_days: float = 3.0  # exponential smoothing over past days
    lookback_days: int = 28
    release_lead_days: float = 2.0  # a release counts from this long before release_at
    release_boost_days: float = 7.0  # expected_sessions fades to observed demand over this

    def __post_init__(self) -> None:
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be positive, not {self.half_life_days}")
        if self.lookback_days < 0:
            raise ValueError(f"lookback_days must be >= 0, not {self.lookback_days}")
        if self.release_lead_days < 0 or self.release_boost_days < 0:
            raise ValueError("release_lead_days and release_boost_days must be >= 0")


def day_of(unix: float) -> int:
    """The UTC day number of a unix time."""
    return int(unix // DAY_S)


def release_boost(release: Release, now: float, observed: float, params: ForecastParams) -> float:
    """Demand for ``release``'s title at ``now`` given its ``observed`` demand (rule 3)."""
    start = release.release_at - params.release_lead_days * DAY_S
    if now < start:
        return observed
    expected = max(release.expected_sessions, 0.0)
    if now < release.release_at:
        return max(observed, expected)
    boost_s = params.release_boost_days * DAY_S
    if boost_s <= 0 or now >= release.release_at + boost_s:
        return observed
    faded = (now - release.release_at) / boost_s
    return max(observed, (1.0 - faded) * expected + faded * observed)


def smoothed(
    history: Iterable[DemandRecord], regions: Iterable[str], now: float, params: ForecastParams
) -> dict[str, dict[str, float]]:
    """Observed demand per region and title (rules 1 and 2), plain dicts."""
    wanted = {r: True for r in regions}
    today = day_of(now)
    first = today - params.lookback_days
    weights = [0.5 ** (k / params.half_life_days) for k in range(params.lookback_days)]
    sums: dict[str, dict[str, float]] = {r: defaultdict(float) for r in wanted}
    span_start: dict[str, int] = {}
    for rec in history:
        d = rec.day
        if d < first or d >= today or rec.region not in wanted:
            continue
        sums[rec.region][rec.title_id] += weights[today - 1 - d] * rec.sessions
        if span_start.get(rec.region, today) > d:
            span_start[rec.region] = d
    out: dict[str, dict[str, float]] = {}
    for region in wanted:
        start = span_start.get(region)
        if start is None:
            out[region] = {}
            continue
        norm = sum(weights[: today - start])
        out[region] = {t: s / norm for t, s in sums[region].items() if s > 0}
    return out


def forecast(
    history: Iterable[DemandRecord],
    releases: Iterable[Release],
    regions: Iterable[str],
    now: float,
    params: ForecastParams = ForecastParams(),
) -> Forecast:
    """Expected sessions per day, per region and title, at ``now`` (see the module rules)."""
    region_list = list(dict.fromkeys(regions))
    demand = smoothed(history, region_list, now, params)
    boosted: dict[str, dict[str, float]] = {r: {} for r in region_list}
    for rel in releases:
        targets = region_list if rel.regions is None else [r for r in rel.regions if r in demand]
        for region in targets:
            observed = demand[region].get(rel.title_id, 0.0)
            value = release_boost(rel, now, observed, params)
            if value > boosted[region].get(rel.title_id, observed):
                boosted[region][rel.title_id] = value
    for region, titles in boosted.items():
        demand[region].update(titles)
    return MappingProxyType(
        {r: MappingProxyType({t: v for t, v in demand[r].items() if v > 0}) for r in region_list}
    )
