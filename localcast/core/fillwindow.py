"""Fill windows: when a site fills, and how fast each appliance may pull.

Rules of this module:

- A site fills in its own off-peak **window**, written ``HH:MM-HH:MM`` in
  site-local wall-clock time of its IANA time zone (default ``02:00-14:00``).
  The window is open from its start minute (included) to its end minute
  (excluded). A window whose end is before its start wraps over midnight
  (``22:00-06:00``). ``00:00-24:00`` is open all day; a window with equal start
  and end is refused. Every appliance of a site reads the same window and the
  same ``now``, so they all start together.
- Membership is by local wall clock, so DST is honoured: on the spring-forward
  day a ``02:00-14:00`` window in Europe/Paris opens when the clocks jump to
  03:00 (the skipped hour never happens) and lasts 11 hours; on the fall-back
  day it lasts 13 hours (02:00-03:00 is lived twice and open both times).
  :func:`next_open` and :func:`closes_at` return the exact instants (unix
  seconds), found by walking the time zone's constant-offset segments.
- :func:`shifted` moves a window by whole minutes (wrapping), for sites that
  share a zone but peak at different times.
- Each appliance **class** has a fill rate cap in bits/s
  (:data:`APPLIANCE_CLASSES`); an appliance may override it (``fill_mbps``).
  Inside the window an appliance fills at its cap; outside only **urgent**
  titles fill, at :data:`URGENT_SHARE` of the cap; otherwise the rate is 0.
- A title is **urgent** when it has a scheduled release that comes before the
  site's next full window (the window after the current one when the window is
  open now, else the next one to open), and the release is not more than
  ``grace_s`` (default a day) in the past.

Pure: no I/O and no clock reads (``now`` is a parameter); the time zone rules
come from :mod:`zoneinfo`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Fill rate cap per appliance class, bits/s.
APPLIANCE_CLASSES: Final = MappingProxyType(
    {
        "storage": 1e9,  # spinning-disk storage appliance: large, fill-bound by its disks
        "flash": 4e9,  # all-flash offload appliance: small, fast
        "small": 250e6,  # small embedded appliance on a thin uplink
    }
)
DEFAULT_CLASS: Final = "storage"

#: Urgent fills outside the window run at this share of the cap.
URGENT_SHARE: Final = 0.1

#: A release stays urgent this long after its release time.
RELEASE_GRACE_S: Final = 86400.0

DEFAULT_WINDOW: Final = "02:00-14:00"

DAY_MIN: Final = 1440
_DAY_S: Final = 86400.0
_STEP_S: Final = 3600.0  # offset probe step: zones change offset at most every few weeks
_HORIZON_S: Final = 48 * 3600.0  # how far one segment search looks ahead
_MAX_SEGMENTS: Final = 64

_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {tz!r}: use an IANA name such as Europe/Paris"
        ) from exc


@dataclass(frozen=True)
class FillWindow:
    """Minutes after local midnight, ``[start_min, end_min)``; wraps when end < start.

    ``(0, 1440)`` is the all-day window; otherwise both are in ``0..1439``
    (an end of 1440 is stored as 0) and differ.
    """

    start_min: int
    end_min: int
    tz: str

    def __post_init__(self) -> None:
        if not 0 <= self.start_min < DAY_MIN or not 0 <= self.end_min <= DAY_MIN:
            raise ValueError(
                f"fill window minutes out of range: {self.start_min}-{self.end_min} "
                f"(0 <= start < 1440, 0 <= end <= 1440)"
            )
        if self.end_min == DAY_MIN and self.start_min != 0:
            object.__setattr__(self, "end_min", 0)  # "22:00-24:00" is "22:00-00:00"
        if self.start_min == self.end_min:
            raise ValueError(
                f"empty fill window {self.spec}: start and end must differ "
                f"(00:00-24:00 is open all day)"
            )
        _zone(self.tz)

    @property
    def always_open(self) -> bool:
        return self.start_min == 0 and self.end_min == DAY_MIN

    @property
    def wraps(self) -> bool:
        return self.end_min < self.start_min

    @property
    def spec(self) -> str:
        """The window as text, ``HH:MM-HH:MM`` (what :func:`parse_window` reads)."""
        return f"{_hhmm(self.start_min)}-{_hhmm(self.end_min)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(text: str, tz: str) -> FillWindow:
    """``"02:00-14:00"`` in time zone ``tz`` -> a window; ValueError saying what is wrong."""
    m = _WINDOW_RE.match(text)
    if m is None:
        raise ValueError(
            f"bad fill window {text!r}: expected HH:MM-HH:MM in site-local time, e.g. 02:00-14:00"
        )
    sh, sm, eh, em = (int(g) for g in m.groups())
    for h, mi, which in ((sh, sm, "start"), (eh, em, "end")):
        if mi > 59 or h > 24 or (h == 24 and (mi != 0 or which == "start")):
            raise ValueError(
                f"bad fill window {text!r}: {which} {h:02d}:{mi:02d} is not a time of day "
                f"(00:00-23:59; 24:00 only as an end)"
            )
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end or (start == 0 and end == 0):
        raise ValueError(
            f"bad fill window {text!r}: start and end must differ (00:00-24:00 is open all day)"
        )
    return FillWindow(start, end, tz)


def shifted(w: FillWindow, minutes: int) -> FillWindow:
    """``w`` moved later by ``minutes`` (earlier when negative), wrapping over midnight."""
    if w.always_open:
        return w
    return FillWindow((w.start_min + minutes) % DAY_MIN, (w.end_min + minutes) % DAY_MIN, w.tz)


# --- time zone arithmetic -------------------------------------------------------------------


def _offset_s(zone: ZoneInfo, t: float) -> float:
    off = datetime.fromtimestamp(t, zone).utcoffset()
    return 0.0 if off is None else off.total_seconds()


def _local_min(t: float, off: float) -> float:
    """Minutes after local midnight at ``t`` given the offset in force."""
    return ((t + off) % _DAY_S) / 60.0


def _inside(w: FillWindow, minute: float) -> bool:
    if w.always_open:
        return True
    if w.wraps:
        return minute >= w.start_min or minute < w.end_min
    return w.start_min <= minute < w.end_min


def _segment_end(zone: ZoneInfo, t: float, off: float) -> float:
    """The first instant after ``t`` with another UTC offset (``t + horizon`` if none soon)."""
    lo = t
    k = 1
    while k * _STEP_S <= _HORIZON_S:
        hi = t + k * _STEP_S
        if _offset_s(zone, hi) != off:
            while hi - lo > 1e-3:
                mid = (lo + hi) / 2
                if _offset_s(zone, mid) == off:
                    lo = mid
                else:
                    hi = mid
            exact = float(round(hi))  # transitions fall on whole seconds
            if exact > t and _offset_s(zone, exact) != off and _offset_s(zone, exact - 1) == off:
                return exact
            return hi
        lo = hi
        k += 1
    return t + _HORIZON_S


def _next_local(minute_target: int, t: float, off: float) -> float:
    """The next instant at or after ``t`` whose local time is ``minute_target`` (fixed offset)."""
    return t + (minute_target * 60.0 - (t + off)) % _DAY_S


def is_open(w: FillWindow, now: float) -> bool:
    zone = _zone(w.tz)
    return _inside(w, _local_min(now, _offset_s(zone, now)))


def next_open(w: FillWindow, now: float) -> float:
    """When the window is next open: ``now`` if it is open now."""
    zone = _zone(w.tz)
    t = now
    for _ in range(_MAX_SEGMENTS):
        off = _offset_s(zone, t)
        if _inside(w, _local_min(t, off)):
            return t
        end = _segment_end(zone, t, off)
        candidate = _next_local(w.start_min, t, off)
        if candidate < end:
            return candidate
        t = end  # the offset changes first: maybe the jump lands inside the window
    raise ValueError(f"fill window {w.spec} in {w.tz} never opens")  # pragma: no cover


def closes_at(w: FillWindow, now: float) -> float | None:
    """When the open window closes; None when it is closed now, ``inf`` when always open."""
    zone = _zone(w.tz)
    if not is_open(w, now):
        return None
    if w.always_open:
        return math.inf
    t = now
    for _ in range(_MAX_SEGMENTS):
        off = _offset_s(zone, t)
        if not _inside(w, _local_min(t, off)):
            return t
        end = _segment_end(zone, t, off)
        candidate = _next_local(w.end_min, t, off)
        if candidate < end:
            return candidate
        t = end
    raise ValueError(f"fill window {w.spec} in {w.tz} never closes")  # pragma: no cover


def next_window_start(w: FillWindow, now: float) -> float:
    """The start of the next *full* window: after the current one when open now, else the next.

    ``inf`` for an always-open window (no later window ever starts).
    """
    close = closes_at(w, now)
    if close is None:
        return next_open(w, now)
    if math.isinf(close):
        return math.inf
    return next_open(w, close)


# --- rates ----------------------------------------------------------------------------------


def rate_cap(appliance_class: str, override_bps: float | None = None) -> float:
    """The fill rate cap of an appliance, bits/s: its override, else its class's cap."""
    if override_bps is not None:
        if not override_bps > 0 or math.isinf(override_bps):
            raise ValueError(f"bad fill rate override {override_bps!r}: must be positive bits/s")
        return float(override_bps)
    try:
        return APPLIANCE_CLASSES[appliance_class]
    except KeyError:
        raise ValueError(
            f"unknown appliance class {appliance_class!r}: one of "
            + ", ".join(sorted(APPLIANCE_CLASSES))
        ) from None


def fill_rate(w: FillWindow, cap_bps: float, now: float, urgent: bool) -> float:
    """The rate to fill at now: the cap in the window, a share of it for urgent fills, else 0."""
    if is_open(w, now):
        return cap_bps
    if urgent:
        return cap_bps * URGENT_SHARE
    return 0.0


def is_urgent(
    release_at: float | None, w: FillWindow, now: float, grace_s: float = RELEASE_GRACE_S
) -> bool:
    """A release due before the site's next full window, and not over ``grace_s`` ago."""
    if release_at is None or now >= release_at + grace_s:
        return False
    return release_at < next_window_start(w, now)
