"""Peering locations: the PeeringDB export loader (every accepted shape, every bad file) and the
portal page ``/portal/peering`` (exchanges, ports, facilities; no file; a bad file; scope).

The sample export (``tests/data/peeringdb_sample.json``, also ``examples/peeringdb.json``) is a
dump keyed by object type: the operator AS64496 at four exchanges (five ports) and three
facilities, plus another network (AS64511) that shares an exchange and a facility.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal_support import ALICE, BOB, OPERATOR, Portal, login, portal_plane

from localcast.portal import peeringdb
from localcast.portal.peeringdb import PeeringdbError, load, load_cached, parse, speed_text

SAMPLE = Path(__file__).parent / "data" / "peeringdb_sample.json"
EXAMPLE = Path(__file__).parent.parent / "examples" / "peeringdb.json"
ASN = 64496


def sample() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SAMPLE.read_text())
    return doc


# --- the loader ----------------------------------------------------------------------------------


def test_a_dump_keyed_by_object_type() -> None:
    found = load(SAMPLE, ASN)
    assert (found.asn, found.name, found.irr_as_set, found.policy_general) == (
        ASN,
        "Localcast",
        "AS-LOCALCAST",
        "Open",
    )
    assert found.policy_url == "https://www.localcast.example/peering"
    assert [(x.name, x.city, x.country) for x in found.exchanges] == [
        ("MainX Frankfurt", "Frankfurt", "DE"),
        ("Rhone-IX Lyon", "Lyon", "FR"),
        ("Seine-IX", "Paris", "FR"),
        ("Thames Peering", "London", "GB"),
    ]
    mainx, rhone, seine, thames = found.exchanges
    assert [(p.speed_mbps, p.ipaddr4, p.ipaddr6, p.lan_name) for p in mainx.ports] == [
        (100000, "192.0.2.70", "2001:db8:102::6:4496:1", "Peering LAN"),
        (100000, "192.0.2.71", "2001:db8:102::6:4496:2", "Peering LAN"),
    ]
    assert mainx.speed_mbps == 200000 and mainx.rs_peer
    assert seine.ports[0].ipaddr4 == "192.0.2.10"  # not AS64511's 192.0.2.11 at the same IX
    assert not thames.rs_peer
    assert rhone.ports[0].ipaddr6 is None and not rhone.ports[0].operational
    assert (found.port_count, found.speed_mbps, found.countries) == (5, 350000, ("DE", "FR", "GB"))
    assert [(f.name, f.city, f.country, f.local_asn) for f in found.facilities] == [
        ("Mainhattan Colocation FRA1", "Frankfurt am Main", "DE", ASN),
        ("Aubervilliers DataPark PAR2", "Aubervilliers", "FR", ASN),
        ("Docklands Carrier House", "London", "GB", ASN),
    ]
    fra = found.facilities[0]
    assert (fra.latitude, fra.longitude, fra.clli, fra.address) == (
        50.1109,
        8.732,
        "FRNKDE02",
        "Beispielstrasse 5",
    )
    assert EXAMPLE.read_text() == SAMPLE.read_text()  # the demo ships the same export


def test_one_api_answer_of_the_network_at_depth_2() -> None:
    """``GET /api/net?asn=64496&depth=2``: the network with its ports and facilities nested."""
    doc = sample()
    net = dict(doc["net"]["data"][0])
    net["netixlan_set"] = [
        {k: v for k, v in r.items() if k != "net_id"}
        for r in doc["netixlan"]["data"]
        if r["asn"] == ASN
    ]
    net["netfac_set"] = [
        {k: v for k, v in r.items() if k != "net_id"}
        for r in doc["netfac"]["data"]
        if r["local_asn"] == ASN
    ]
    found = parse({"data": [net], "meta": {}}, source="net.json")  # one network: no ASN needed
    assert found.asn == ASN and found.name == "Localcast"
    # exchange names from the ports ("IX: LAN" -> "IX"); cities unknown without ix objects
    assert [(x.name, x.city) for x in found.exchanges] == [
        ("MainX Frankfurt", ""),
        ("Rhone-IX Lyon", ""),
        ("Seine-IX", ""),
        ("Thames Peering", ""),
    ]
    assert found.port_count == 5
    # facilities from the netfac's own name, city and country
    assert {(f.name, f.country) for f in found.facilities} == {
        ("Mainhattan Colocation FRA1", "DE"),
        ("Aubervilliers DataPark PAR2", "FR"),
        ("Docklands Carrier House", "GB"),
    }


def test_a_directory_of_api_answers_and_plain_lists(tmp_path: Path) -> None:
    doc = sample()
    for kind, answer in doc.items():
        (tmp_path / f"{kind}.json").write_text(json.dumps(answer))
    from_dir = load(tmp_path, ASN)
    assert from_dir.exchanges == load(SAMPLE, ASN).exchanges
    assert from_dir.source == str(tmp_path)
    plain = parse({k: v["data"] for k, v in doc.items()}, ASN)  # lists instead of answers
    assert plain.facilities == from_dir.facilities


def test_deleted_objects_and_the_other_network() -> None:
    doc = sample()
    for r in doc["netixlan"]["data"]:
        if r["ipaddr4"] == "192.0.2.130":
            r["status"] = "deleted"
    found = parse(doc, ASN)
    assert "Thames Peering" not in [x.name for x in found.exchanges]
    other = parse(sample(), 64511)
    assert [x.name for x in other.exchanges] == ["Seine-IX"]
    assert [f.name for f in other.facilities] == ["Aubervilliers DataPark PAR2"]
    assert other.name == "Example Regional Broadband"


def test_ix_through_the_ixlan_when_the_port_has_no_ix_id() -> None:
    doc = sample()
    for r in doc["netixlan"]["data"]:
        r.pop("ix_id")
        r.pop("name")
    found = parse(doc, ASN)
    assert [x.name for x in found.exchanges] == [
        "MainX Frankfurt",
        "Rhone-IX Lyon",
        "Seine-IX",
        "Thames Peering",
    ]


def _edit(edit: Any) -> dict[str, Any]:
    doc = sample()
    edit(doc)
    return doc


def _port(doc: dict[str, Any], **fields: Any) -> None:
    doc["netixlan"]["data"][0].update(fields)


@pytest.mark.parametrize(
    ("doc", "asn", "message"),
    [
        ([1, 2], ASN, "expected a JSON object"),
        ({"foo": {"data": []}}, ASN, "no PeeringDB object types found"),
        ({"net": "x"}, ASN, "net: expected a list of objects, got a string"),
        ({"net": {"results": []}}, ASN, 'net: expected an API answer with a "data" list'),
        ({"net": {"data": [1]}}, ASN, "net[0]: expected an object, got a number"),
        (sample(), None, "2 networks in the export: set operator_asn"),
        (sample(), 64510, "no network with ASN 64510 (operator_asn)"),
        ({"netixlan": {"data": []}}, None, "no net object and no operator_asn setting"),
        (_edit(lambda d: _port(d, ipaddr4="192.0.2.300")), ASN, "netixlan 501: ipaddr4"),
        (_edit(lambda d: _port(d, ipaddr4="2001:db8::1")), ASN, "is not an IPv4 address"),
        (_edit(lambda d: _port(d, speed="fast")), ASN, "netixlan 501: speed must be a whole"),
        (_edit(lambda d: _port(d, speed=-1)), ASN, "speed must not be negative"),
        (_edit(lambda d: _port(d, is_rs_peer="yes")), ASN, "is_rs_peer must be true or false"),
        (_edit(lambda d: _port(d, ix_id=None, ixlan_id=999)), ASN, "neither ix_id nor a known"),
        (_edit(lambda d: d["ix"]["data"][0].pop("id")), ASN, "ix: id is missing"),
        (_edit(lambda d: d["ix"]["data"][0].update(city=7)), ASN, "ix 101: city must be text"),
        (
            _edit(lambda d: d["fac"]["data"][0].update(latitude="north")),
            ASN,
            "fac 301: latitude must be a number",
        ),
        ({"data": [{"id": 1, "name": "x"}]}, ASN, "one API answer must hold net objects"),
        (
            {"data": [{"id": 1, "asn": ASN, "name": "x", "netixlan_set": [5, 6]}]},
            ASN,
            "holds ids, not objects: fetch the network with depth=2",
        ),
    ],
)
def test_a_bad_export_says_what_is_wrong(doc: Any, asn: int | None, message: str) -> None:
    with pytest.raises(PeeringdbError) as caught:
        parse(doc, asn, source="export.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("export.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"{not json", "not JSON (Expecting property name enclosed in double quotes at line 1"),
        (b'{"net": "\xff"}', "not UTF-8 text"),
    ],
)
def test_a_bad_file_says_what_is_wrong(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "pdb.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PeeringdbError, match=re.escape(message)) as caught:
        load(path, ASN)
    assert str(caught.value).startswith(str(path))
    with pytest.raises(PeeringdbError):
        load_cached(path, ASN)


def test_an_empty_directory_and_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PeeringdbError, match=re.escape("a directory without any of net.json")):
        load(tmp_path, ASN)
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # root reads anything: nothing to test
            return
        with pytest.raises(PeeringdbError, match="cannot be read"):
            load(locked, ASN)
    finally:
        locked.chmod(0o600)


def test_the_cache_reloads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "pdb.json"
    path.write_text(SAMPLE.read_text())
    first = load_cached(path, ASN)
    assert load_cached(path, ASN) is first
    doc = sample()
    doc["net"]["data"][0]["name"] = "Localcast Renamed Networks"
    path.write_text(json.dumps(doc))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_cached(path, ASN).name == "Localcast Renamed Networks"
    peeringdb._cache.clear()


def test_speed_text() -> None:
    assert [speed_text(m) for m in (0, 500, 1000, 2500, 10000, 400000, 1_600_000)] == [
        "0M",
        "500M",
        "1G",
        "2.5G",
        "10G",
        "400G",
        "1.6T",
    ]


# --- the page ------------------------------------------------------------------------------------


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    p = portal_plane(tmp_path)
    yield p
    p.plane.close()


def configure(portal: Portal, **settings: Any) -> None:
    """Settings the page reads (``peeringdb_file``, ``operator_asn``), whether or not
    ControlSettings declares them yet."""
    portal.plane.settings = portal.plane.settings.model_copy(update=settings)


def client_as(portal: Portal, email: str) -> TestClient:
    c = portal.client()
    login(c, email)
    return c


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def table_rows(page: str, caption: str) -> list[list[str]]:
    start = page.index(caption)
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return [
        [text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_a_partner_sees_where_the_operator_peers(portal: Portal) -> None:
    configure(portal, peeringdb_file=str(SAMPLE), operator_asn=ASN)
    r = client_as(portal, ALICE).get("/portal/peering")
    assert r.status_code == 200, r.text
    page = r.text
    text = text_of(page)
    assert "Localcast" in text and "AS64496" in text and "AS-LOCALCAST" in text
    assert "4, 5 port(s), 350G in all" in text
    ix = table_rows(page, "Exchanges where AS64496 peers")
    assert ix[0] == [
        "MainX Frankfurt Main Internet Exchange Frankfurt",
        "Frankfurt",
        "DE",
        "100G",
        "192.0.2.70",
        "2001:db8:102::6:4496:1",
        "Yes",
        "Operational",
    ]
    assert ix[1][3:5] == ["100G", "192.0.2.71"]  # the second port at the same exchange
    assert ix[2][:6] == [
        "Rhone-IX Lyon Rhone Internet Exchange",
        "Lyon",
        "FR",
        "10G",
        "192.0.2.200",
        "—",
    ]
    assert ix[2][7] == "Not yet operational"
    assert ix[4][6] == "No"  # Thames: no route server
    assert "192.0.2.11" not in page and "Example Regional Broadband" not in page
    facilities = table_rows(page, "Facilities where AS64496 is present")
    assert facilities[1] == [
        "Aubervilliers DataPark PAR2 AUBRFR01",
        "Aubervilliers",
        "FR",
        "12 rue de l'Exemple",
        "a-par 8 km",
    ]
    assert "with the nearest site of isp-a" in page
    assert 'href="/portal/requests"' in page


def test_the_operator_sees_it_with_or_without_a_partner(portal: Portal) -> None:
    configure(portal, peeringdb_file=str(SAMPLE), operator_asn=ASN)
    c = client_as(portal, OPERATOR)
    page = c.get("/portal/peering").text
    assert "MainX Frankfurt" in page
    assert table_rows(page, "Facilities where AS64496 is present")[1][-1] == "a-par 8 km"
    other = c.get("/portal/peering", params={"partner": "isp-b"}).text
    assert table_rows(other, "Facilities where AS64496 is present")[1][-1] == "b-lys 396 km"


def test_no_export_configured(portal: Portal) -> None:
    partner = client_as(portal, BOB).get("/portal/peering")
    assert partner.status_code == 200
    assert "has not published its peering locations here yet" in partner.text
    operator = client_as(portal, OPERATOR).get("/portal/peering")
    assert "Set <code>peeringdb_file</code>" in operator.text


def test_a_bad_export_is_a_message_not_a_crash(portal: Portal, tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"net": {"data": [}')
    configure(portal, peeringdb_file=str(bad), operator_asn=ASN)
    partner = client_as(portal, ALICE).get("/portal/peering")
    assert partner.status_code == 200
    assert "peering locations are unavailable right now" in partner.text
    assert str(bad) not in partner.text  # the server's paths are the operator's business
    operator = client_as(portal, OPERATOR).get("/portal/peering")
    assert operator.status_code == 200
    assert f"The PeeringDB export cannot be used: {bad}: not JSON" in html.unescape(operator.text)
    configure(portal, peeringdb_file=str(SAMPLE), operator_asn=None)  # two networks, no ASN
    again = client_as(portal, OPERATOR).get("/portal/peering")
    assert "2 networks in the export: set operator_asn" in again.text


def test_scope_and_login(portal: Portal) -> None:
    configure(portal, peeringdb_file=str(SAMPLE), operator_asn=ASN)
    r = client_as(portal, ALICE).get("/portal/peering", params={"partner": "isp-b"})
    assert r.status_code == 404
    anonymous = portal.client()
    r = anonymous.get("/portal/peering", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")
