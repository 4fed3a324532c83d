"""Client location from a MaxMind-format GeoIP database (GeoLite2/GeoIP2 City, DB-IP, ...).

The shell side of :data:`localcast.core.geo.Locate`: :class:`GeoIpLocator`
opens the ``.mmdb`` file once (memory-mapped by the ``maxminddb`` reader) and
answers ``locator(ip) -> Location | None`` from the record's
``location.latitude`` / ``location.longitude``. Steering stays pure: it gets
the locator as a function, and tests pass their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import maxminddb

from localcast.core.geo import Location


class GeoIpLocator:
    """A ``Locate`` function over one MaxMind-format database file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader = maxminddb.open_database(str(self.path))

    def __call__(self, ip: str) -> Location | None:
        try:
            record: Any = self._reader.get(ip)
        except ValueError:  # not an address
            return None
        if not isinstance(record, dict):
            return None
        where = record.get("location")
        if not isinstance(where, dict):
            return None
        lat, lon = where.get("latitude"), where.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            return None
        return Location(float(lat), float(lon), f"geoip {self.path.name}")

    def close(self) -> None:
        self._reader.close()
