"""Pure pieces of the control plane: client address, sessions, inventory, topology, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from control_fixtures import TOPOLOGY, synthetic_title

from localcast.config import ConfigError, load_config
from localcast.control.settings import load_settings
from localcast.control.topology import (
    TopologyError,
    desired_state,
    load_topology,
    parse_topology,
    plan,
)
from localcast.core.clientip import client_address, parse_trusted
from localcast.core.inventory import apply_delta, complete_titles, diff, freeze, required_files
from localcast.core.sessions import Session, SessionError, decode_session, encode_session
from localcast.core.tokens import Keyring

TRUSTED = parse_trusted(["127.0.0.1", "10.255.0.0/16"])

# --- the client address ------------------------------------------------------------------------


def test_socket_peer_without_forwarded_header() -> None:
    assert client_address("192.0.2.7", None, TRUSTED).ip == "192.0.2.7"


def test_forwarded_header_from_untrusted_peer_is_ignored() -> None:
    got = client_address("192.0.2.7", "10.1.2.3", TRUSTED)
    assert got.ip == "192.0.2.7"
    assert "ignored" in got.reason


def test_forwarded_header_from_trusted_proxy_is_believed() -> None:
    assert client_address("127.0.0.1", "10.1.2.3", TRUSTED).ip == "10.1.2.3"


def test_forwarded_chain_is_read_right_to_left_skipping_trusted_proxies() -> None:
    # a client may put anything first; only what trusted proxies appended counts
    got = client_address("127.0.0.1", "6.6.6.6, 10.1.2.3, 10.255.0.9", TRUSTED)
    assert got.ip == "10.1.2.3"


def test_malformed_forwarded_entry_stops_at_the_last_trusted_hop() -> None:
    assert client_address("127.0.0.1", "10.1.2.3, garbage", TRUSTED).ip == "127.0.0.1"


def test_ipv4_mapped_peer_is_unwrapped() -> None:
    assert client_address("::ffff:127.0.0.1", "10.1.2.3", TRUSTED).ip == "10.1.2.3"


def test_bad_trusted_proxy_entry_names_its_index() -> None:
    with pytest.raises(ValueError, match=r"trusted_proxies\[1\]"):
        parse_trusted(["127.0.0.1", "nope"])


# --- signed sessions ---------------------------------------------------------------------------

RING = Keyring("k1", {"k1": b"k" * 32, "k0": b"0" * 32})


def a_session(expires_at: int = 2000) -> Session:
    return Session(
        title_id="t1",
        profile_id="p1",
        client_ip="10.1.2.3",
        pathways=("a1", "ix1", "o1"),
        resume_offset_s=8.0,
        issued_at=1000,
        expires_at=expires_at,
        nonce="abc",
        max_height=720,
        codecs=("avc1", "mp4a"),
        platform="web",
    )


def test_session_id_round_trips_through_any_instance_with_the_keyring() -> None:
    sid = encode_session(RING, a_session())
    assert decode_session(Keyring("k1", dict(RING.secrets)), sid, 1500) == a_session()


def test_session_id_is_url_safe() -> None:
    sid = encode_session(RING, a_session())
    assert all(c.isalnum() or c in "-_." for c in sid)


def test_tampered_expired_and_foreign_sessions_are_refused() -> None:
    sid = encode_session(RING, a_session())
    version, kid, _payload, sig = sid.split(".")
    forged = encode_session(RING, a_session(expires_at=9999)).split(".")[2]
    with pytest.raises(SessionError, match="bad session signature"):
        decode_session(RING, ".".join([version, kid, forged, sig]), 1500)
    with pytest.raises(SessionError, match="expired"):
        decode_session(RING, sid, 2001)
    with pytest.raises(SessionError, match="unknown key"):
        decode_session(Keyring("k9", {"k9": b"9" * 32}), sid, 1500)
    with pytest.raises(SessionError, match="malformed"):
        decode_session(RING, "nonsense", 1500)


# --- inventory ---------------------------------------------------------------------------------


def test_title_is_complete_only_with_every_rendition_file() -> None:
    title = synthetic_title("t1")
    required = {"t1": required_files(title.manifest)}
    names = set(title.files)
    names.discard(f"{title.manifest.multivariant.name}")  # not needed: rendered per session
    names.discard(f"{title.manifest.mpd.name}")
    assert complete_titles(freeze({"t1": names}), required) == {"t1"}
    one_segment = title.manifest.renditions[0].segments[2].file.name
    assert complete_titles(freeze({"t1": names - {one_segment}}), required) == frozenset()
    assert complete_titles(freeze({"unknown": names}), required) == frozenset()


def test_delta_round_trip() -> None:
    old = freeze({"t1": {"a", "b"}, "t2": {"c"}})
    new = freeze({"t1": {"b", "d"}, "t3": {"e"}})
    delta = diff(old, new)
    assert dict(delta.added) == {"t1": {"d"}, "t3": {"e"}}
    assert dict(delta.removed) == {"t1": {"a"}, "t2": {"c"}}
    assert apply_delta(old, delta) == new
    assert diff(new, new).empty


# --- topology files ----------------------------------------------------------------------------


def test_topology_plan_is_idempotent() -> None:
    spec = parse_topology(TOPOLOGY)
    desired = desired_state(spec)
    first = plan(desired_state(parse_topology({})), desired)
    assert [a.id for a in first.appliances.create] == ["a1", "a2", "b1", "ix1", "o1"]
    assert plan(desired, desired).empty


def test_topology_plan_updates_and_removes() -> None:
    current = desired_state(parse_topology(TOPOLOGY))
    doc = {**TOPOLOGY, "appliances": [dict(TOPOLOGY["appliances"][0], gbps=20)]}
    p = plan(current, desired_state(parse_topology(doc)))
    assert [a.id for a in p.appliances.update] == ["a1"]
    assert p.appliances.remove == ("a2", "b1", "ix1", "o1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("sites", 0, "tz", "Europe/Pariss"),
            "sites[0].tz: unknown IANA time zone 'Europe/Pariss'",
        ),
        (("sites", 1, "kind", "ixp"), "sites[1].kind: Input should be"),
        (("sites", 0, "prefixes", ["10.1.0.1/16"]), "sites[0].prefixes: [0] '10.1.0.1/16'"),
        (("sites", 0, "lat", 123.0), "sites[0].lat: Input should be less than or equal to 90"),
        (("sites", 0, "partner", "isp-z"), "sites[0].partner: unknown partner 'isp-z'"),
        (("appliances", 2, "site", "nowhere"), "appliances[2].site: unknown site 'nowhere'"),
        (("appliances", 0, "url", "ftp://x"), "appliances[0].url: 'ftp://x' must be http(s)"),
        (("appliances", 0, "gbps", 0), "appliances[0].gbps: Input should be greater than 0"),
        (("appliances", 1, "id", "a1"), "appliances[1].id: duplicate 'a1'"),
        (
            ("appliances", 0, "colour", "red"),
            "appliances[0].colour: Extra inputs are not permitted",
        ),
        (("partners", 0, "asns", [0]), "partners[0].asns[0]: Input should be greater than"),
    ],
)
def test_bad_topology_names_the_field(change: tuple[Any, ...], message: str) -> None:
    section, index, key, value = change
    doc = {k: [dict(x) for x in v] for k, v in TOPOLOGY.items()}
    doc[section][index][key] = value
    with pytest.raises(TopologyError) as err:
        parse_topology(doc)
    assert message in str(err.value)


def test_embedded_site_needs_partner_and_prefixes() -> None:
    doc = {k: [dict(x) for x in v] for k, v in TOPOLOGY.items()}
    del doc["sites"][0]["partner"]
    doc["sites"][0]["prefixes"] = []
    with pytest.raises(TopologyError) as err:
        parse_topology(doc)
    assert "sites[0].partner: a embedded site needs its ISP partner" in str(err.value)
    assert "sites[0].prefixes: a embedded site serves only its prefixes" in str(err.value)


def test_topology_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text("[[sites]\nid = 1")
    with pytest.raises(TopologyError, match=str(bad)):
        load_topology(bad)
    with pytest.raises(TopologyError, match="no such file"):
        load_topology(tmp_path / "missing.toml")


def test_example_topology_is_valid() -> None:
    spec = load_topology(Path(__file__).resolve().parent.parent / "examples" / "topology.toml")
    assert {s.kind.value for s in spec.sites} == {"embedded", "pni", "ix", "origin"}


# --- settings ------------------------------------------------------------------------------------


def test_control_settings_errors_name_the_field(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[control]\nport = 99999\ntrusted_proxies = ["x"]\n')
    with pytest.raises(ConfigError) as err:
        load_settings(load_config(home))
    text = str(err.value)
    assert "[control].port: Input should be less than or equal to 65535" in text
    assert "[control].trusted_proxies: trusted_proxies[0]: 'x' is not an address" in text


def test_control_settings_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "home")
    s = load_settings(cfg, port=9001, listen=None)
    assert (s.listen, s.port) == ("127.0.0.1", 9001)
