"""Signed URL tokens: what they cover, when they expire, who may use them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.core.tokens import Keyring, TokenError, sign, signed_path, verify

RING = Keyring(current="k2", secrets={"k1": b"a" * 32, "k2": b"b" * 32})
NOW = 1_800_000_000


def _verify_path(path: str, now: float = NOW, ip: str | None = None, ring: Keyring = RING):
    parts = path.strip("/").split("/")
    return verify(ring, parts[0], parts[1:], now, ip)


def test_title_token_covers_every_file_of_the_title() -> None:
    path = signed_path(RING, "/t1", NOW + 60)
    token = path.split("/")[1]
    assert _verify_path(f"/{token}/t1/abc.m4s").ok
    assert _verify_path(f"/{token}/t1/x.m3u8").ok


def test_title_token_does_not_cover_another_title() -> None:
    token = sign(RING, "/t1", NOW + 60)
    check = _verify_path(f"/{token}/t2/abc.m4s")
    assert not check.ok and check.reason == "bad signature"


def test_file_token_covers_only_that_file() -> None:
    token = sign(RING, "/t1/a.m4s", NOW + 60)
    assert _verify_path(f"/{token}/t1/a.m4s").ok
    assert not _verify_path(f"/{token}/t1/b.m4s").ok
    assert _verify_path(f"/{token}/t1").reason == "token does not cover this path"


def test_expired_token_is_refused() -> None:
    token = sign(RING, "/t1", NOW - 1)
    assert _verify_path(f"/{token}/t1/a.m4s").reason == "token expired"


def test_rotated_key_still_verifies_and_unknown_key_does_not() -> None:
    old = Keyring(current="k1", secrets={"k1": b"a" * 32})
    token = sign(old, "/t1", NOW + 60)
    assert _verify_path(f"/{token}/t1/a").ok
    newer = Keyring(current="k3", secrets={"k3": b"c" * 32})
    assert "unknown key id" in _verify_path(f"/{token}/t1/a", ring=newer).reason


def test_client_network_binding() -> None:
    token = sign(RING, "/t1", NOW + 60, client_net="10.1.0.0/16")
    assert _verify_path(f"/{token}/t1/a", ip="10.1.2.3").ok
    assert not _verify_path(f"/{token}/t1/a", ip="10.2.0.1").ok
    assert not _verify_path(f"/{token}/t1/a", ip=None).ok
    token6 = sign(RING, "/t1", NOW + 60, client_net="2001:db8::/32")
    assert _verify_path(f"/{token6}/t1/a", ip="2001:db8::5").ok


@pytest.mark.parametrize("prefix", ["/", "", "/../x", "/a/./b"])
def test_unsignable_prefixes_raise(prefix: str) -> None:
    with pytest.raises(TokenError):
        sign(RING, prefix, NOW)


def test_tampered_fields_fail() -> None:
    token = sign(RING, "/t1", NOW + 60)
    fields = token.split("~")
    later = "~".join([*fields[:2], str(NOW + 10_000), *fields[3:]])
    assert _verify_path(f"/{later}/t1/a").reason == "bad signature"


@given(st.text(max_size=80))
def test_arbitrary_token_text_never_raises(garbage: str) -> None:
    check = verify(RING, garbage, ["t1", "a.m4s"], NOW)
    assert not check.ok


def test_fill_keys_are_derived_and_apart_from_playback_keys() -> None:
    from localcast.core.tokens import fill_keyring, is_fill_kid, with_fill_keys

    ring = Keyring("k1", {"k1": b"a" * 32, "k0": b"b" * 32})
    fill = fill_keyring(ring)
    assert fill.current == "fill-k1" and set(fill.secrets) == {"fill-k1", "fill-k0"}
    assert all(is_fill_kid(k) for k in fill.secrets) and not is_fill_kid("k1")
    assert fill.secrets["fill-k1"] not in ring.secrets.values()
    token = sign(fill, "/t1", 2_000)
    assert token.split("~")[1] == "fill-k1"
    # a fill token verifies only where fill keys are known; a viewer's keyring refuses it
    assert verify(with_fill_keys(ring), token, ["t1", "x.m4s"], 1_000).ok
    assert not verify(ring, token, ["t1", "x.m4s"], 1_000).ok
    # and a fill keyring cannot mint viewer tokens
    viewer = sign(ring, "/t1", 2_000)
    assert not verify(fill, viewer, ["t1", "x.m4s"], 1_000).ok
    assert with_fill_keys(with_fill_keys(ring)) == with_fill_keys(ring)
