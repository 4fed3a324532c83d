"""Playback sessions as signed, self-describing ids.

A session id *is* the session: ``s1.<kid>.<payload>.<sig>`` where the
payload is base64url JSON (title, profile, client address, the session's
pathway ids, resume offset, device limits, issue and expiry times, a nonce)
and the signature is an HMAC-SHA256 with a key of the URL-signing keyring
(domain-separated from URL tokens). Any control plane instance holding the
keyring can serve a session's playlists and steering manifests, including
one restarted mid-playback; nothing about a session is stored.

Pure: ``now`` is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from localcast.core.tokens import Keyring

VERSION = "s1"
_DOMAIN = b"localcast-session\n"


class SessionError(ValueError):
    """A session id is malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class Session:
    title_id: str
    profile_id: str
    client_ip: str
    pathways: tuple[str, ...]  # appliance ids, initial rank order
    resume_offset_s: float
    issued_at: int
    expires_at: int
    nonce: str
    max_height: int | None = None
    codecs: tuple[str, ...] | None = None
    platform: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, kid: str, payload: str) -> str:
    msg = _DOMAIN + kid.encode() + b"\n" + payload.encode()
    return _b64(hmac.new(secret, msg, hashlib.sha256).digest())


def encode_session(keyring: Keyring, session: Session) -> str:
    body: dict[str, Any] = {
        "t": session.title_id,
        "p": session.profile_id,
        "ip": session.client_ip,
        "pw": list(session.pathways),
        "o": session.resume_offset_s,
        "i": session.issued_at,
        "e": session.expires_at,
        "n": session.nonce,
    }
    if session.max_height is not None:
        body["h"] = session.max_height
    if session.codecs is not None:
        body["c"] = list(session.codecs)
    if session.platform is not None:
        body["pf"] = session.platform
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    kid = keyring.current
    return ".".join([VERSION, kid, payload, _mac(keyring.secrets[kid], kid, payload)])


def decode_session(keyring: Keyring, session_id: str, now: float) -> Session:
    """The session ``session_id`` stands for; :class:`SessionError` if it is not valid now."""
    parts = session_id.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        raise SessionError("malformed session id")
    _, kid, payload, sig = parts
    secret = keyring.secrets.get(kid)
    if secret is None:
        raise SessionError(f"session signed with unknown key {kid!r}")
    if not hmac.compare_digest(_mac(secret, kid, payload), sig):
        raise SessionError("bad session signature")
    try:
        body = json.loads(_unb64(payload))
        session = Session(
            title_id=str(body["t"]),
            profile_id=str(body["p"]),
            client_ip=str(body["ip"]),
            pathways=tuple(str(p) for p in body["pw"]),
            resume_offset_s=float(body["o"]),
            issued_at=int(body["i"]),
            expires_at=int(body["e"]),
            nonce=str(body["n"]),
            max_height=int(body["h"]) if "h" in body else None,
            codecs=tuple(str(c) for c in body["c"]) if "c" in body else None,
            platform=str(body["pf"]) if "pf" in body else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SessionError("malformed session payload") from exc
    if session.expires_at < now:
        raise SessionError("session expired")
    return session
