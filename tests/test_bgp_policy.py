"""Import policy, RPKI origin validation, the Adj-RIB-In and the [appliance.bgp] config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcast.bgp import prefix
from localcast.bgp.adjrib import AdjRibIn
from localcast.bgp.config import bgp_config, import_policy, parse_bgp_config
from localcast.bgp.messages import (
    AsPathSegment,
    MpReach,
    MpUnreach,
    Notification,
    Origin,
    PathAttributes,
    SegmentType,
    Update,
)
from localcast.bgp.policy import ImportPolicy, Reason
from localcast.bgp.prefix import Afi
from localcast.bgp.rpki import RpkiFileError, RpkiState, VrpTable, load_vrps, parse_vrps
from localcast.config import ConfigError, load_config


def path(*asns: int) -> PathAttributes:
    return PathAttributes(
        origin=Origin.IGP,
        as_path=(AsPathSegment(SegmentType.AS_SEQUENCE, asns),),
        next_hop="192.0.2.1",
    )


def p(text: str) -> int:
    return prefix.parse(text)[1]


def verdicts(policy: ImportPolicy, texts: list[str], attrs: PathAttributes) -> dict[str, str]:
    afi = prefix.parse(texts[0])[0]
    accepted, rejected = policy.classify(afi, tuple(p(t) for t in texts), attrs)
    out = {prefix.to_text(afi, x): "accepted" for x in accepted}
    out.update({prefix.to_text(afi, x): str(r) for x, r in rejected})
    return out


POLICY = ImportPolicy(local_as=65001, peer_as=65002)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0.0.0/0", Reason.DEFAULT_ROUTE),
        ("10.1.0.0/16", Reason.BOGON),  # private
        ("172.20.0.0/16", Reason.BOGON),
        ("192.168.7.0/24", Reason.BOGON),
        ("100.64.1.0/24", Reason.BOGON),  # shared (CGN)
        ("192.0.2.0/24", Reason.BOGON),  # documentation
        ("198.51.100.0/24", Reason.BOGON),
        ("203.0.113.0/24", Reason.BOGON),
        ("224.1.0.0/16", Reason.BOGON),  # multicast
        ("240.0.0.0/8", Reason.BOGON),  # class E
        ("169.254.0.0/16", Reason.BOGON),  # link local
        ("127.0.0.0/8", Reason.BOGON),  # loopback, not allowed by default
        ("11.3.3.0/25", Reason.TOO_SPECIFIC),
        ("11.3.0.0/16", None),
        ("45.0.0.0/24", None),
    ],
)
def test_ipv4_filters(text: str, reason: Reason | None) -> None:
    assert verdicts(POLICY, [text], path(65002))[text] == (reason or "accepted")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("::/0", Reason.DEFAULT_ROUTE),
        ("::1/128", Reason.BOGON),
        ("fd00:1::/48", Reason.BOGON),  # ULA fc00::/7
        ("2001:db8:5::/48", Reason.BOGON),  # documentation
        ("fe80::/64", Reason.BOGON),
        ("ff02::/16", Reason.BOGON),
        ("2002:100::/24", Reason.BOGON),  # 6to4
        ("2a00:1:2::/56", Reason.TOO_SPECIFIC),
        ("2a00:1::/32", None),
    ],
)
def test_ipv6_filters(text: str, reason: Reason | None) -> None:
    assert verdicts(POLICY, [text], path(65002))[text] == (reason or "accepted")


def test_loopback_only_when_allowed() -> None:
    allowing = ImportPolicy(local_as=65001, peer_as=65002, allow_loopback=True)
    got = verdicts(allowing, ["127.0.0.0/8", "127.0.1.0/24", "10.0.0.0/8"], path(65002))
    assert got == {"127.0.0.0/8": "accepted", "127.0.1.0/24": "accepted", "10.0.0.0/8": "bogon"}
    assert verdicts(allowing, ["::1/128"], path(65002)) == {"::1/128": "too_specific"}
    loose = ImportPolicy(local_as=65001, peer_as=65002, allow_loopback=True, max_length_v6=128)
    assert verdicts(loose, ["::1/128"], path(65002)) == {"::1/128": "accepted"}
    assert not allowing.is_bogon(Afi.IPV4, p("127.0.0.1/32"))
    assert POLICY.is_bogon(Afi.IPV4, p("127.0.0.1/32"))


def test_longer_prefixes_when_configured() -> None:
    relaxed = ImportPolicy(local_as=65001, peer_as=65002, max_length_v4=28, max_length_v6=64)
    assert verdicts(relaxed, ["11.3.3.16/28"], path(65002)) == {"11.3.3.16/28": "accepted"}
    assert verdicts(relaxed, ["11.3.3.16/29"], path(65002)) == {"11.3.3.16/29": "too_specific"}
    assert verdicts(relaxed, ["2a00:1:2:3::/64"], path(65002))["2a00:1:2:3::/64"] == "accepted"


def test_origin_must_be_registered_to_the_partner() -> None:
    partner = ImportPolicy(local_as=65001, peer_as=65002, allowed_origins=frozenset({65002, 65010}))
    assert verdicts(partner, ["11.0.0.0/16"], path(65002, 65010))["11.0.0.0/16"] == "accepted"
    assert verdicts(partner, ["11.0.0.0/16"], path(65002, 64999)) == {
        "11.0.0.0/16": "origin_not_allowed"
    }
    as_set = PathAttributes(
        origin=Origin.IGP,
        as_path=(
            AsPathSegment(SegmentType.AS_SEQUENCE, (65002,)),
            AsPathSegment(SegmentType.AS_SET, (65010,)),
        ),
    )
    assert verdicts(partner, ["11.0.0.0/16"], as_set) == {"11.0.0.0/16": "origin_not_allowed"}
    empty = PathAttributes(origin=Origin.IGP, as_path=())  # iBGP: originated by the peer's AS
    assert verdicts(partner, ["11.0.0.0/16"], empty)["11.0.0.0/16"] == "accepted"


def test_our_own_as_in_the_path_is_a_loop() -> None:
    assert verdicts(POLICY, ["11.0.0.0/16"], path(65002, 65001, 65010)) == {
        "11.0.0.0/16": "as_path_loop"
    }


# --- RPKI -----------------------------------------------------------------------------------

VRPS = {
    "metadata": {"generated": 1700000000},
    "roas": [
        {"asn": "AS65010", "prefix": "11.5.0.0/16", "maxLength": 20, "ta": "test"},
        {"asn": 65011, "prefix": "11.5.128.0/17", "maxLength": 17, "ta": "test"},
        {"asn": "AS65010", "prefix": "2a00:5::/32", "maxLength": 48, "ta": "test"},
        {"asn": 0, "prefix": "11.9.0.0/16", "maxLength": 24, "ta": "test"},  # AS0: never valid
    ],
}


def test_rpki_origin_validation() -> None:
    table = parse_vrps(VRPS)
    assert len(table) == 4
    v4 = Afi.IPV4
    assert table.validate(v4, p("11.5.0.0/16"), 65010) == RpkiState.VALID
    assert table.validate(v4, p("11.5.16.0/20"), 65010) == RpkiState.VALID
    assert table.validate(v4, p("11.5.16.0/21"), 65010) == RpkiState.INVALID  # too long
    assert table.validate(v4, p("11.5.0.0/16"), 65099) == RpkiState.INVALID  # wrong origin
    assert table.validate(v4, p("11.5.128.0/17"), 65011) == RpkiState.VALID
    assert table.validate(v4, p("11.5.128.0/17"), 65010) == RpkiState.VALID  # by the /16
    assert table.validate(v4, p("11.5.128.0/17"), 65099) == RpkiState.INVALID
    assert table.validate(v4, p("11.5.0.0/16"), None) == RpkiState.INVALID  # AS_SET origin
    assert table.validate(v4, p("11.6.0.0/16"), 65010) == RpkiState.NOT_FOUND
    assert table.validate(v4, p("11.9.1.0/24"), 0) == RpkiState.INVALID
    assert table.validate(Afi.IPV6, p("2a00:5:1::/48"), 65010) == RpkiState.VALID
    assert table.validate(Afi.IPV6, p("2a00:6::/32"), 65010) == RpkiState.NOT_FOUND


def test_rpki_invalid_routes_are_filtered_and_valid_or_unknown_kept() -> None:
    policy = ImportPolicy(local_as=65001, peer_as=65002, rpki=parse_vrps(VRPS))
    got = verdicts(policy, ["11.5.0.0/16", "11.5.0.0/22", "11.6.0.0/16"], path(65002, 65010))
    assert got == {
        "11.5.0.0/16": "accepted",
        "11.5.0.0/22": "rpki_invalid",
        "11.6.0.0/16": "accepted",
    }


@pytest.mark.parametrize(
    "doc",
    [
        {"roas": [{"asn": 1, "prefix": "11.0.0.0/33", "maxLength": 24}]},
        {"roas": [{"asn": 1, "prefix": "11.0.0.0/16", "maxLength": 12}]},
        {"roas": [{"asn": "ASX", "prefix": "11.0.0.0/16"}]},
        {"roas": [{"prefix": "11.0.0.0/16"}]},
        {"vrps": []},
    ],
)
def test_bad_vrp_files_are_refused_with_the_entry(doc: object, tmp_path: Path) -> None:
    f = tmp_path / "vrps.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(RpkiFileError, match=r"vrps\.json"):
        load_vrps(f)
    f.write_text("{not json")
    with pytest.raises(RpkiFileError, match="not JSON"):
        load_vrps(f)


# --- Adj-RIB-In -----------------------------------------------------------------------------


def announce(attrs: PathAttributes, *texts: str) -> Update:
    return Update(attributes=attrs, nlri=tuple(p(t) for t in texts))


def test_adjrib_announce_withdraw_and_deltas() -> None:
    rib = AdjRibIn(POLICY)
    attrs = path(65002, 65010)
    delta = rib.apply(announce(attrs, "11.1.0.0/16", "11.2.0.0/24", "10.0.0.0/8"))
    assert delta.announced == 2 and delta.announce[0].attributes is attrs
    assert rib.accepted == 2 and rib.received == 3 and rib.filtered_by_reason == {"bogon": 1}
    assert rib.lookup("11.1.0.0/16") is attrs and rib.reason("10.0.0.0/8") == "bogon"
    delta = rib.apply(Update(withdrawn=(p("11.2.0.0/24"), p("10.0.0.0/8"), p("45.0.0.0/8"))))
    assert delta.withdrawn == 1 and rib.accepted == 1 and rib.received == 1
    assert rib.filtered_by_reason["bogon"] == 0 and rib.counters.rejected_total["bogon"] == 1


def test_adjrib_reannounce_with_a_filtered_path_withdraws_the_old_route() -> None:
    partner = ImportPolicy(local_as=65001, peer_as=65002, allowed_origins=frozenset({65002}))
    rib = AdjRibIn(partner)
    rib.apply(announce(path(65002), "11.1.0.0/16"))
    delta = rib.apply(announce(path(65002, 64999), "11.1.0.0/16"))
    assert delta.withdrawn == 1 and delta.announced == 0
    assert rib.reason("11.1.0.0/16") == "origin_not_allowed"
    delta = rib.apply(announce(path(65002), "11.1.0.0/16"))  # fixed again
    assert delta.announced == 1 and rib.reason("11.1.0.0/16") is None


def test_adjrib_ipv6_takes_the_mp_next_hop() -> None:
    rib = AdjRibIn(POLICY)
    mp = MpReach(2, 1, "2001:db8::1", (p("2a00:1::/32"),))
    rib.apply(Update(attributes=path(65002), mp_reach=mp))
    attrs = rib.lookup("2a00:1::/32")
    assert attrs is not None and attrs.next_hop == "2001:db8::1"
    delta = rib.apply(Update(mp_unreach=MpUnreach(2, 1, (p("2a00:1::/32"),))))
    assert delta.withdrawn == 1 and rib.accepted == 0


def test_max_prefixes_raises_the_alarm_and_refuses_more() -> None:
    rib = AdjRibIn(ImportPolicy(local_as=65001, peer_as=65002, max_prefixes=3))
    rib.apply(announce(path(65002), "11.1.0.0/16", "11.2.0.0/16"))
    assert not rib.max_prefix_alarm
    delta = rib.apply(announce(path(65002), "11.3.0.0/16", "11.4.0.0/16", "11.5.0.0/16"))
    assert delta.announced == 1 and rib.accepted == 3
    assert rib.max_prefix_alarm and rib.filtered_by_reason["max_prefixes"] == 2
    rib.apply(announce(path(65002, 65010), "11.1.0.0/16"))  # replacing a held route is fine
    assert rib.accepted == 3
    assert rib.clear().withdrawn == 3 and not rib.max_prefix_alarm and rib.received == 0


def test_treat_as_withdraw_removes_and_counts() -> None:
    rib = AdjRibIn(POLICY)
    rib.apply(announce(path(65002), "11.1.0.0/16"))
    broken = Update(
        attributes=path(65002), nlri=(p("11.1.0.0/16"),), attribute_error=Notification(3, 11)
    )
    delta = rib.apply(broken)
    assert delta.withdrawn == 1 and rib.accepted == 0 and rib.counters.treat_as_withdraw == 1


def test_snapshot_groups_prefixes_by_shared_attributes() -> None:
    rib = AdjRibIn(POLICY)
    a, b = path(65002), path(65002, 65010)
    rib.apply(announce(a, "11.1.0.0/16", "11.2.0.0/16"))
    rib.apply(announce(b, "11.3.0.0/16"))
    groups = {g.attributes.flat_as_path(): len(g.prefixes) for g in rib.snapshot()}
    assert groups == {(65002,): 2, (65002, 65010): 1}


# --- config ---------------------------------------------------------------------------------

GOOD = {
    "local_as": 65001,
    "router_id": "192.0.2.10",
    "listen": "127.0.0.1",
    "port": 1179,
    "neighbors": [
        {
            "address": "127.0.0.2",
            "remote_as": "AS65002",
            "allowed_origins": [65002, "AS65010"],
            "max_prefixes": 1000,
            "rpki_file": "vrps.json",
        }
    ],
}


def test_config_parses_and_builds_the_policy(tmp_path: Path) -> None:
    (tmp_path / "vrps.json").write_text(json.dumps(VRPS))
    cfg = parse_bgp_config(GOOD, tmp_path)
    n = cfg.neighbors[0]
    assert cfg.listen == ("127.0.0.1",) and n.remote_as == 65002
    assert n.rpki_file == tmp_path / "vrps.json" and cfg.hold_time_of(n) == 90
    policy = import_policy(cfg, n)
    assert policy.allowed_origins == {65002, 65010} and policy.max_prefixes == 1000
    assert isinstance(policy.rpki, VrpTable) and len(policy.rpki) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"local_as": 0}, "appliance.bgp.local_as"),
        ({"router_id": "0.0.0.0"}, "router_id must not be 0.0.0.0"),
        ({"router_id": "2001:db8::1"}, "appliance.bgp.router_id"),
        ({"hold_time": 2}, "hold time must be 0 or at least 3"),
        ({"colour": "blue"}, "appliance.bgp.colour"),
        ({"neighbors": [{"address": "not-an-ip", "remote_as": 1}]}, "neighbors[0].address"),
        ({"neighbors": [{"address": "127.0.0.2"}]}, "neighbors[0].remote_as"),
        ({"neighbors": [{"address": "127.0.0.2", "remote_as": 1, "max_length_v4": 33}]}, "v4"),
        (
            {"neighbors": [{"address": "127.0.0.2", "remote_as": 1}] * 2},
            "neighbor 127.0.0.2 is configured twice",
        ),
    ],
)
def test_config_errors_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_bgp_config({**GOOD, **change})


def test_config_from_a_node_home(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[appliance]\nport = 8080\n\n[appliance.bgp]\nlocal_as = 65001\nrouter_id = "10.0.0.1"\n'
        '[[appliance.bgp.neighbors]]\naddress = "::1"\nremote_as = 65001\npassive = true\n'
    )
    cfg = bgp_config(load_config(tmp_path))
    assert cfg is not None and cfg.neighbor("0:0::1") is not None
    assert bgp_config(load_config(tmp_path / "none")) is None


def test_missing_rpki_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = parse_bgp_config(GOOD, tmp_path)
    with pytest.raises(ConfigError, match="rpki_file"):
        import_policy(cfg, cfg.neighbors[0])
