"""Password hashing: argon2id through argon2-cffi, never our own crypto."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; this bounds the work one request can ask for

_HASHER = PasswordHasher()  # argon2id, the library's current defaults


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    """A password we accept: 12 to 1024 characters (length is what counts, NIST 800-63B)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


# verified against when the email is unknown, so a login takes as long either way
DUMMY_HASH = _HASHER.hash("not-a-real-password-just-for-timing")
