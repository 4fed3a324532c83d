"""Reading and creating the keyring file shared by the control plane and its appliances.

Format (JSON)::

    {"current": "k1", "keys": {"k1": "<hex secret>", "k0": "<hex secret>"}}

Rotation: add a key, make it current, keep the old one until every token it
signed has expired.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from localcast.core.tokens import Keyring, TokenError


class KeyfileError(ValueError):
    """The keyring file is missing, unreadable or malformed."""


def load_keyring(path: Path) -> Keyring:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise KeyfileError(f"{path}: no keyring (run `localcast keys init`)") from exc
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeyfileError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), dict):
        raise KeyfileError(f'{path}: expected {{"current": ..., "keys": {{id: hex}}}}')
    try:
        secrets_by_id = {str(k): bytes.fromhex(str(v)) for k, v in raw["keys"].items()}
        return Keyring(current=str(raw.get("current", "")), secrets=secrets_by_id)
    except (ValueError, TokenError) as exc:
        raise KeyfileError(f"{path}: {exc}") from exc


def create_keyring(path: Path, kid: str = "k1") -> Keyring:
    """Write a fresh keyring with one random 32-byte key (mode 0600); keep an existing one."""
    if path.exists():
        return load_keyring(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"current": kid, "keys": {kid: secret.hex()}}, fh)
    os.replace(tmp, path)
    return Keyring(current=kid, secrets={kid: secret})
