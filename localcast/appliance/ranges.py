"""The ``Range`` request header (RFC 9110 14.2) against a file size: pure.

Only single byte ranges are honoured: ``bytes=a-b``, ``bytes=a-``,
``bytes=-n``. A header with several ranges, another unit, or bad syntax is
ignored and the whole file is served with 200 (RFC 9110 allows a server to
ignore Range); players ask for one range at a time, and multipart/byteranges
responses would cost a copy for no user.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

_RANGE_RE = re.compile(
    r"^[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$", re.IGNORECASE
)
_MAX_LEN = 200  # longer headers are ignored (and int() stays cheap)


class ByteRange(NamedTuple):
    start: int
    length: int

    @property
    def end(self) -> int:
        """Last byte position, inclusive (as in Content-Range)."""
        return self.start + self.length - 1


class _Unsatisfiable:
    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE: Final = _Unsatisfiable()


def parse_range(value: str, size: int) -> ByteRange | _Unsatisfiable | None:
    """The byte range to serve, ``UNSATISFIABLE`` (416), or None (ignore: serve 200 whole)."""
    if "," in value or len(value) > _MAX_LEN:
        return None  # several ranges (ignored by choice), or absurd numbers
    if value.startswith("bytes=") and value.isascii():  # fast path: what players send
        first, dash, last = value[6:].partition("-")
        if dash and (first.isdigit() or not first) and (last.isdigit() or not last):
            return _resolve(first, last, size)
    m = _RANGE_RE.match(value)
    if m is None:
        return None
    return _resolve(m.group(1), m.group(2), size)


def _resolve(first: str, last: str, size: int) -> ByteRange | _Unsatisfiable | None:
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        suffix = min(suffix, size)
        return ByteRange(size - suffix, suffix)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid range-spec: ignore the header
    if start >= size:
        return UNSATISFIABLE
    end = min(end, size - 1)
    return ByteRange(start, end - start + 1)
