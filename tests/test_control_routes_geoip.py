"""``[control] geoip_database``: a MaxMind-format file places clients for steering.

The database is a tiny one written by mmdb-writer: 203.0.113.0/24 is placed
at the IX site's coordinates (Frankfurt), 198.51.100.0/24 in Boston.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from control_fixtures import (
    FakeClock,
    bring_up,
    client_for,
    make_plane,
    provision,
    synthetic_title,
)
from pydantic import ValidationError

from localcast.control.service import ControlPlane
from localcast.control.settings import ControlSettings

ALL = ("a1", "a2", "b1", "ix1", "o1")
FRANKFURT = (50.11, 8.68)


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    netaddr = pytest.importorskip("netaddr")
    mmdb_writer = pytest.importorskip("mmdb_writer")
    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    lat, lon = FRANKFURT
    writer.insert_network(
        netaddr.IPSet(["203.0.113.0/24"]), {"location": {"latitude": lat, "longitude": lon}}
    )
    writer.insert_network(
        netaddr.IPSet(["198.51.100.0/24"]), {"location": {"latitude": 42.36, "longitude": -71.06}}
    )
    db = tmp_path / "city.mmdb"
    writer.to_db_file(str(db))
    return db


@pytest.fixture
def plane(tmp_path: Path, city_db: Path) -> Iterator[ControlPlane]:
    p = make_plane(tmp_path, FakeClock(), geoip_database=str(city_db))
    yield p
    p.close()


def test_explain_and_playback_use_the_configured_database(plane: ControlPlane) -> None:
    title = synthetic_title("t1")
    creds = provision(plane, title)
    client = client_for(plane, "203.0.113.7")
    bring_up(client, creds, {a: [title] for a in ALL})
    d = client.get("/v1/steering/explain", params={"ip": "203.0.113.7", "title": "t1"}).json()
    assert d["geoip"] is True
    where = d["client_location"]
    assert (where["lat"], where["lon"]) == FRANKFURT and where["source"] == "geoip city.mmdb"
    sites = {s["site_id"]: s for s in d["sites"]}
    assert sites["ix-fra"]["distance_km"] == 0.0
    assert sites["origin"]["distance_km"] > 9000
    # an address the database does not know: placed by its best route (none here: unknown)
    d = client.get("/v1/steering/explain", params={"ip": "192.0.2.9", "title": "t1"}).json()
    assert d["client_location"] is None
    # playback and the session's steering manifest run with the locator too
    r = client.post("/v1/playback", json={"title_id": "t1", "profile_id": "p1"})
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    r = client.get(f"/v1/sessions/{sid}/steering")
    assert r.status_code == 200 and r.json()["PATHWAY-PRIORITY"][0] == "ix1"
    assert client.get(f"/v1/sessions/{sid}").status_code == 200


def test_locator_is_what_steering_is_given(plane: ControlPlane) -> None:
    assert plane.locate is not None
    found = plane.locate("198.51.100.1")
    assert found is not None and (found.lat, found.lon) == (42.36, -71.06)


def test_setting_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="geoip_database"):
        ControlSettings(geoip_database=str(tmp_path / "missing.mmdb"))
    assert ControlSettings().geoip_database is None
