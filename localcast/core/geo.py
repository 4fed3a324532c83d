"""Where a client is, and how far a site is from it.

What lives here: the :class:`Location` value, great-circle distance
(haversine), and the :data:`Locate` interface steering calls to place a
client address. A GeoIP database reader (``localcast.control.geoip``, which
reads MaxMind-format files) is one implementation; tests pass a plain
function. When nothing locates the client, steering falls back to the
coordinates of the site whose route matched it best (see
:mod:`localcast.core.decision`).

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    source: str = ""  # what placed it: "geoip", "site a", ...


#: Client address (canonical text) -> its location, or None when unknown.
Locate = Callable[[str], Location | None]


def haversine_km(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    dp, dl = p2 - p1, math.radians(b_lon - a_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def distance_km(a: Location, lat: float, lon: float) -> float:
    return haversine_km(a.lat, a.lon, lat, lon)
