"""Memoised token verdicts: one HMAC per (token, path, client) every few seconds, not per request.

A player reuses one token for every segment of a session, so the same
verdict is asked for again and again. Verdicts are computed by
``core.tokens.verify`` and kept for ``ttl_s`` seconds, never past the
token's own expiry, so a cached "ok" cannot outlive the token. The cache is
bounded (cleared when full). Callers pass ``now``: no clock here.

While the control plane is lost (:meth:`TokenVerifier.set_lost`, see
:mod:`localcast.appliance.admission`), a valid viewer token of a session
issued after the loss is refused with :data:`~localcast.appliance.admission.NO_NEW_SESSIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from localcast.appliance.admission import NO_NEW_SESSIONS, in_flight
from localcast.core import tokens
from localcast.core.tokens import Keyring, TokenCheck

DEFAULT_SESSION_TTL_S = 6 * 3600.0  # the control plane's default [control] session_ttl_s

_Key = tuple[str, tuple[str, ...], str | None]


class TokenVerifier:
    """A ``plan.VerifyFn`` over ``keyring`` and its fill keys, with a small time-bounded memo."""

    def __init__(
        self,
        keyring: Keyring,
        ttl_s: float = 5.0,
        max_entries: int = 16384,
        session_ttl_s: float = DEFAULT_SESSION_TTL_S,
    ) -> None:
        self.keyring = tokens.with_fill_keys(keyring)
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.session_ttl_s = session_ttl_s
        self.lost_at: float | None = None  # when the control plane was declared lost
        self._memo: dict[_Key, tuple[float, TokenCheck]] = {}

    def set_lost(self, lost_at: float | None) -> bool:
        """Enter (a time) or leave (None) the lost-control-plane mode; True if it changed."""
        if lost_at == self.lost_at:
            return False
        self.lost_at = lost_at
        self._memo.clear()  # verdicts depend on the mode
        return True

    def __call__(
        self, token: str, path: Sequence[str], now: float, client_ip: str | None
    ) -> TokenCheck:
        key = (token, tuple(path), client_ip)
        hit = self._memo.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        check = tokens.verify(self.keyring, token, path, now, client_ip)
        lost_at = self.lost_at
        if (
            lost_at is not None
            and check.ok
            and not tokens.is_fill_kid(_kid(token))
            and not in_flight(_expiry(token), lost_at, self.session_ttl_s)
        ):
            check = TokenCheck(False, NO_NEW_SESSIONS)
        if self.ttl_s > 0:
            valid_until = now + self.ttl_s
            if check.ok:
                # verify() accepts while now <= expiry: never reuse an "ok" past it.
                valid_until = min(valid_until, _expiry(token))
            if len(self._memo) >= self.max_entries:
                self._memo.clear()
            self._memo[key] = (valid_until, check)
        return check


def _kid(token: str) -> str:
    fields = token.split(tokens.SEPARATOR)
    return fields[1] if len(fields) > 1 else ""


def _expiry(token: str) -> float:
    fields = token.split(tokens.SEPARATOR)
    return float(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0.0
