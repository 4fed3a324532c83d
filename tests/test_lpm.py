"""The longest-prefix-match index: examples, edge cases, and agreement with brute force."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcast.core.lpm import LpmIndex

Net = ipaddress.IPv4Network | ipaddress.IPv6Network

PREFIXES = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.1.2.130/31",
    "192.0.2.7/32",
    "::/0",
    "2001:db8::/32",
    "2001:db8:0:1::/64",
    "2001:db8:0:1::80/121",
    "2001:db8:0:1::81/128",
]


def text_of(index: LpmIndex, entry: int) -> str | None:
    if entry == 0:
        return None
    version, network, length = index.prefix_of(entry)
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return str(cls((network, length)))


@pytest.fixture(scope="module")
def index() -> LpmIndex:
    return LpmIndex.from_prefixes(PREFIXES)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.1.2.131", "10.1.2.130/31"),
        ("10.1.2.129", "10.1.2.128/25"),
        ("10.1.2.127", "10.1.2.0/24"),
        ("10.1.3.0", "10.1.0.0/16"),
        ("10.255.255.255", "10.0.0.0/8"),
        ("11.0.0.0", "0.0.0.0/0"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("192.0.2.8", "0.0.0.0/0"),
        ("2001:db8:0:1::81", "2001:db8:0:1::81/128"),
        ("2001:db8:0:1::ff", "2001:db8:0:1::80/121"),
        ("2001:db8:0:1::7f", "2001:db8:0:1::/64"),
        ("2001:db8:0:2::", "2001:db8::/32"),
        ("2001:db9::", "::/0"),
    ],
)
def test_lookup_finds_the_longest_covering_prefix(index: LpmIndex, ip: str, expected: str) -> None:
    assert text_of(index, index.lookup(ip)) == expected


def test_entries_are_numbered_ipv4_first_in_input_order(index: LpmIndex) -> None:
    assert [text_of(index, e) for e in range(1, index.size + 1)] == PREFIXES
    assert (index.n4, index.n6) == (7, 5)


def test_chain_walks_every_covering_prefix_longest_first(index: LpmIndex) -> None:
    chain = [text_of(index, e) for e in index.chain(index.lookup("10.1.2.131"))]
    assert chain == [
        "10.1.2.130/31",
        "10.1.2.128/25",
        "10.1.2.0/24",
        "10.1.0.0/16",
        "10.0.0.0/8",
        "0.0.0.0/0",
    ]
    v6 = [text_of(index, e) for e in index.chain(index.lookup("2001:db8:0:1::81"))]
    assert v6 == [
        "2001:db8:0:1::81/128",
        "2001:db8:0:1::80/121",
        "2001:db8:0:1::/64",
        "2001:db8::/32",
        "::/0",
    ]


def test_no_match_is_entry_zero() -> None:
    index = LpmIndex.from_prefixes(["10.0.0.0/8", "2001:db8::/32"])
    assert index.lookup("11.0.0.1") == 0
    assert index.lookup("2001:db9::1") == 0
    assert index.chain(0) == []


def test_find_is_exact(index: LpmIndex) -> None:
    net = int(ipaddress.IPv4Address("10.1.0.0"))
    assert text_of(index, index.find(4, net, 16)) == "10.1.0.0/16"
    assert index.find(4, net, 17) == 0
    v6 = int(ipaddress.IPv6Address("2001:db8:0:1::80"))
    assert text_of(index, index.find(6, v6, 121)) == "2001:db8:0:1::80/121"
    assert index.find(6, v6, 122) == 0


def test_key_of_packs_network_and_length(index: LpmIndex) -> None:
    e = index.lookup("10.1.2.3")
    assert index.key_of(e) == (int(ipaddress.IPv4Address("10.1.2.0")) << 8) | 24
    e6 = index.lookup("2001:db8:0:1::1")
    assert index.key_of(e6) == (int(ipaddress.IPv6Address("2001:db8:0:1::")) << 8) | 64


def test_batches_agree_with_single_lookups(index: LpmIndex) -> None:
    v4 = ["10.1.2.131", "10.1.2.1", "11.1.1.1", "192.0.2.7", "0.0.0.0", "255.255.255.255"]
    arr = np.array([int(ipaddress.IPv4Address(a)) for a in v4], dtype=np.uint32)
    assert index.lookup_v4_batch(arr).tolist() == [index.lookup(a) for a in v4]
    v6 = ["2001:db8:0:1::81", "2001:db8:0:1::ff", "2001:db8::1", "2001:db9::", "::"]
    ints = [int(ipaddress.IPv6Address(a)) for a in v6]
    hi = np.array([i >> 64 for i in ints], dtype=np.uint64)
    lo = np.array([i & (2**64 - 1) for i in ints], dtype=np.uint64)
    assert index.lookup_v6_batch(hi, lo).tolist() == [index.lookup(a) for a in v6]


def test_empty_index_matches_nothing() -> None:
    index = LpmIndex.build()
    assert index.size == 0
    assert index.lookup("10.0.0.1") == 0 and index.lookup("::1") == 0
    assert index.lookup_v4_batch(np.array([1, 2], dtype=np.uint32)).tolist() == [0, 0]


def test_prefixes_given_twice_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        LpmIndex.from_prefixes(["10.0.0.0/8", "10.0.0.0/8"])
    with pytest.raises(ValueError, match="twice"):
        LpmIndex.from_prefixes(["::/0", "2001:db8::/32", "::/0"])


def test_host_bits_and_bad_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="host bits"):
        LpmIndex.build([int(ipaddress.IPv4Address("10.0.0.1"))], [8])
    with pytest.raises(ValueError, match="host bits"):
        LpmIndex.build(v6_hi=[0x20010DB8 << 32], v6_lo=[1], v6_len=[64])
    with pytest.raises(ValueError, match="above 32"):
        LpmIndex.build([0], [33])


# --- agreement with a brute-force reference ----------------------------------------------------


def brute_force(nets: list[Net], ip: str) -> list[str]:
    """Every prefix covering ``ip``, longest first (the reference)."""
    addr = ipaddress.ip_address(ip)
    covering = [n for n in nets if n.version == addr.version and addr in n]
    return [str(n) for n in sorted(covering, key=lambda n: -n.prefixlen)]


def _network(version: int, value: int, length: int) -> Net:
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return cls((value, length), strict=False)


@st.composite
def prefix_sets(draw: st.DrawFn, version: int) -> list[Net]:
    bits = 32 if version == 4 else 128
    # cluster prefixes under a few roots so they nest, plus some anywhere
    roots = draw(st.lists(st.integers(0, 2**bits - 1), min_size=1, max_size=3))
    if version == 4:
        lengths = st.integers(0, 32)
    else:
        lengths = st.one_of(st.integers(0, 128), st.integers(56, 72), st.integers(120, 128))
    nets: set[Net] = set()
    for _ in range(draw(st.integers(0, 24))):
        root = draw(st.sampled_from(roots))
        jitter = draw(st.integers(0, 2**bits - 1)) if draw(st.booleans()) else 0
        value = root ^ (jitter >> draw(st.integers(0, bits)))
        nets.add(_network(version, value, draw(lengths)))
    return sorted(nets, key=lambda n: (int(n.network_address), n.prefixlen))


def probes(nets: list[Net], version: int, extra: list[int]) -> list[str]:
    bits = 32 if version == 4 else 128
    values = set(extra)
    for n in nets:
        first, last = int(n.network_address), int(n.broadcast_address)
        values.update({first, last, max(first - 1, 0), min(last + 1, 2**bits - 1)})
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [str(cls(v)) for v in sorted(values)]


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    prefix_sets(4),
    prefix_sets(6),
    st.lists(st.integers(0, 2**32 - 1), max_size=8),
    st.lists(st.integers(0, 2**128 - 1), max_size=8),
)
def test_lookup_and_chain_agree_with_brute_force(
    v4: list[Net], v6: list[Net], extra4: list[int], extra6: list[int]
) -> None:
    index = LpmIndex.from_prefixes([str(n) for n in v4 + v6])
    for version, nets, extra in ((4, v4, extra4), (6, v6, extra6)):
        ips = probes(nets, version, extra)
        for ip in ips:
            expected = brute_force(nets, ip)
            got = [text_of(index, e) for e in index.chain(index.lookup(ip))]
            assert got == expected, ip
        ints = [int(ipaddress.ip_address(ip)) for ip in ips]
        singles = [index.lookup(ip) for ip in ips]
        if version == 4:
            batch = index.lookup_v4_batch(np.array(ints, dtype=np.uint32))
        else:
            hi = np.array([i >> 64 for i in ints], dtype=np.uint64)
            lo = np.array([i & (2**64 - 1) for i in ints], dtype=np.uint64)
            batch = index.lookup_v6_batch(hi, lo)
        assert batch.tolist() == singles
        assert [index.lookup_int(version, i) for i in ints] == singles
    for e in range(1, index.size + 1):
        version, network, length = index.prefix_of(e)
        assert index.find(version, network, length) == e
