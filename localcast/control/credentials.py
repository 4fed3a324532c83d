"""Appliance credentials: random bearer secrets, stored hashed, handed out once.

A credential is issued when an appliance first appears in an applied
topology (and again on ``localcast control credential ID --rotate``). The
database keeps only its SHA-256 (the secret is 256 random bits, so a fast
hash is enough); the secret itself is printed and written to
``<home>/credentials/<appliance>.secret`` (mode 0600) for the operator to
hand to the appliance.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

PREFIX = "lca_"
_SCHEME = "sha256$"


def issue() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _SCHEME + hashlib.sha256(secret.encode()).hexdigest()


def verify(secret: str, stored_hash: str | None) -> bool:
    if not stored_hash or not stored_hash.startswith(_SCHEME):
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def bearer(authorization: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class CredentialStore:
    """Secrets on disk, one file per appliance, readable by the owner only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, appliance_id: str) -> Path:
        return self.directory / f"{appliance_id}.secret"

    def write(self, appliance_id: str, secret: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(appliance_id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        os.replace(tmp, path)
        return path

    def read(self, appliance_id: str) -> str | None:
        try:
            return self.path(appliance_id).read_text().strip() or None
        except FileNotFoundError:
            return None

    def remove(self, appliance_id: str) -> None:
        self.path(appliance_id).unlink(missing_ok=True)
