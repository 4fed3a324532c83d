"""Signed URL tokens: HMAC-SHA256 over a path prefix, an expiry and a client network.

A token sits in the URL path *ahead of* the prefix it covers::

    /lc1~k1~1767225600~1~-~<sig>/<title_id>/<file_id>.m4s
     '----------- token ----------'

so that every relative URL inside a playlist served under it inherits the
token, and any standard HLS or DASH player works unchanged.

Fields, separated by ``~`` (an unreserved URL character):
``lc1`` version, key id, expiry (unix seconds), depth (how many path
components after the token are covered: 1 = a whole title directory, 2 = one
file), client network (``-`` for any, else ``10.0.0.0_8`` / ``2001:db8::_32``)
and the signature, base64url without padding.

Pure code: no clock, no files. ``now`` is a parameter; key files are read by
``localcast.keyfile``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VERSION = "lc1"
SEPARATOR = "~"
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class TokenError(ValueError):
    """A token could not be made (bad key id, prefix or network)."""


@dataclass(frozen=True)
class Keyring:
    """Shared secrets by key id; ``current`` signs, every key verifies (rotation)."""

    current: str
    secrets: Mapping[str, bytes]

    def __post_init__(self) -> None:
        for kid, secret in self.secrets.items():
            if not _KID_RE.match(kid):
                raise TokenError(f"key id {kid!r} must be 1-32 of [A-Za-z0-9_-]")
            if len(secret) < 16:
                raise TokenError(f"key {kid!r} is shorter than 16 bytes")
        if self.current not in self.secrets:
            raise TokenError(f"current key {self.current!r} is not in the keyring")


@dataclass(frozen=True)
class TokenCheck:
    """The verdict on a request path's token. ``reason`` is empty when ``ok``."""

    ok: bool
    reason: str = ""
    covered_depth: int = 0


def _split_prefix(prefix: str) -> list[str]:
    parts = [p for p in prefix.split("/") if p]
    if not parts:
        raise TokenError("a token must cover at least one path component")
    for p in parts:
        if p in (".", "..") or "\x00" in p or SEPARATOR in p:
            raise TokenError(f"path component {p!r} cannot be signed")
    return parts


def _net_field(client_net: str | None) -> str:
    if client_net is None:
        return "-"
    try:
        net = ipaddress.ip_network(client_net, strict=False)
    except ValueError as exc:
        raise TokenError(f"bad client network {client_net!r}: {exc}") from exc
    return f"{net.network_address}_{net.prefixlen}"


def _mac(secret: bytes, kid: str, expires_at: int, net: str, covered: Sequence[str]) -> str:
    msg = "\n".join([VERSION, kid, str(expires_at), net, "/" + "/".join(covered)]).encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(
    keyring: Keyring,
    prefix: str,
    expires_at: int,
    client_net: str | None = None,
    kid: str | None = None,
) -> str:
    """Make a token covering ``prefix`` (``/title`` or ``/title/file.m4s``) until ``expires_at``."""
    kid = kid or keyring.current
    if kid not in keyring.secrets:
        raise TokenError(f"unknown key id {kid!r}")
    covered = _split_prefix(prefix)
    net = _net_field(client_net)
    sig = _mac(keyring.secrets[kid], kid, int(expires_at), net, covered)
    return SEPARATOR.join([VERSION, kid, str(int(expires_at)), str(len(covered)), net, sig])


def signed_path(
    keyring: Keyring, prefix: str, expires_at: int, client_net: str | None = None
) -> str:
    """``/<token>/<prefix>``: the path to put behind an appliance's base URL."""
    token = sign(keyring, prefix, expires_at, client_net)
    return "/" + token + "/" + "/".join(_split_prefix(prefix))


FILL_PREFIX = "fill-"
_FILL_LABEL = b"localcast fill"


def fill_keyring(keyring: Keyring) -> Keyring:
    """The fill credential: one key per playback key, derived from it, key ids ``fill-<kid>``.

    Appliances fetch from one another and from the origin with URLs signed by
    these keys; a key id tells a fill request from a viewer's (logs, limits),
    and a viewer's token never passes for a fill one or back.
    """
    derived = {
        FILL_PREFIX + kid: hmac.new(secret, _FILL_LABEL, hashlib.sha256).digest()
        for kid, secret in keyring.secrets.items()
        if not is_fill_kid(kid)
    }
    return Keyring(current=FILL_PREFIX + keyring.current, secrets=derived)


def with_fill_keys(keyring: Keyring) -> Keyring:
    """``keyring`` plus its fill keys: what an appliance verifies request tokens with."""
    if any(is_fill_kid(k) for k in keyring.secrets):
        return keyring
    return Keyring(keyring.current, {**keyring.secrets, **fill_keyring(keyring).secrets})


def is_fill_kid(kid: str) -> bool:
    return kid.startswith(FILL_PREFIX)


def looks_like_token(component: str) -> bool:
    return component.startswith(VERSION + SEPARATOR)


def verify(
    keyring: Keyring,
    token: str,
    path: Sequence[str],
    now: float,
    client_ip: str | None = None,
) -> TokenCheck:
    """Check ``token`` for a request of the path components ``path`` (after the token)."""
    fields = token.split(SEPARATOR)
    if len(fields) != 6 or fields[0] != VERSION:
        return TokenCheck(False, "malformed token")
    _, kid, exp_s, depth_s, net, sig = fields
    secret = keyring.secrets.get(kid)
    if secret is None:
        return TokenCheck(False, f"unknown key id {kid!r}")
    if not (exp_s.isdigit() and depth_s.isdigit()):
        return TokenCheck(False, "malformed token")
    depth = int(depth_s)
    if depth < 1 or depth > len(path):
        return TokenCheck(False, "token does not cover this path")
    expected = _mac(secret, kid, int(exp_s), net, path[:depth])
    if not hmac.compare_digest(expected, sig):
        return TokenCheck(False, "bad signature")
    if int(exp_s) < now:
        return TokenCheck(False, "token expired")
    if net != "-":
        if client_ip is None:
            return TokenCheck(False, "token is bound to a client network")
        try:
            addr_s, _, plen = net.partition("_")
            network = ipaddress.ip_network(f"{addr_s}/{plen}")
            if ipaddress.ip_address(client_ip) not in network:
                return TokenCheck(False, "client address outside the token's network")
        except ValueError:
            return TokenCheck(False, "malformed token")
    return TokenCheck(True, covered_depth=depth)
