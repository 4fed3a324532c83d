"""The request target -> path components, refusing anything that could leave the store: pure.

Only origin-form targets (``/a/b/c``, RFC 9112 3.2.1) are accepted; the query
is dropped (players add cache busters). Each component is percent-decoded
exactly once and refused (400) if it then holds anything but visible ASCII
other than ``/``, ``\\``, ``%``, or is ``.``/``..``: so ``%2e%2e``, ``%2f``,
``%00`` and double encoding never reach the file system. What passes is
still matched against the strict title and file name patterns by ``plan``.
"""

from __future__ import annotations

from typing import Final

BAD_REQUEST: Final = 400
NOT_FOUND: Final = 404

_HEX = frozenset(b"0123456789abcdefABCDEF")
_FORBIDDEN_DECODED = frozenset("/\\%")


_MEMO_MAX = 4096
_MEMO_KEY_MAX = 512
_memo: dict[bytes, tuple[str, ...] | int] = {}


def split_target(raw: bytes) -> tuple[str, ...] | int:
    """Decoded path components of ``raw``, or the status to answer (400 or 404).

    Memoised (bounded) on the raw target: players ask for the same URLs again.
    """
    hit = _memo.get(raw)
    if hit is not None:
        return hit
    result = _split_target(raw)
    if len(raw) <= _MEMO_KEY_MAX:
        if len(_memo) >= _MEMO_MAX:
            _memo.clear()
        _memo[raw] = result
    return result


def _split_target(raw: bytes) -> tuple[str, ...] | int:
    if not raw.startswith(b"/"):
        return BAD_REQUEST  # absolute-form, authority-form, asterisk-form
    for sep in (b"?", b"#"):
        cut = raw.find(sep)
        if cut >= 0:
            raw = raw[:cut]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return BAD_REQUEST
    if not text.isprintable() or " " in text or "\\" in text:
        return BAD_REQUEST
    parts = text[1:].split("/")
    out: list[str] = []
    for part in parts:
        if "%" in part:
            decoded = _percent_decode(part)
            if decoded is None:
                return BAD_REQUEST
            part = decoded
        if part in (".", ".."):
            return BAD_REQUEST
        if not part:
            return NOT_FOUND  # "//", trailing "/" or "/" alone: no such file
        out.append(part)
    return tuple(out)


def _percent_decode(part: str) -> str | None:
    """Decode ``%XX`` once; None if malformed or if the result is not plain visible ASCII."""
    raw = part.encode("ascii")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # "%"
            h1, h2 = raw[i + 1 : i + 2], raw[i + 2 : i + 3]
            if not h1 or not h2 or h1[0] not in _HEX or h2[0] not in _HEX:
                return None
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    try:
        text = out.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or " " in text or _FORBIDDEN_DECODED.intersection(text):
        return None
    return text
