"""Response header fragments, pre-encoded: status lines, dates, content types, CORS.

Everything here is pure and cheap to call per request: fragments are built
once (per file, per CORS origin, per second for ``Date``) and joined as bytes.
No sockets, no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate

SERVER = b"Server: localcast\r\n"

REASONS: dict[int, str] = {
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {reason}\r\n".encode() for code, reason in REASONS.items()
}

# m4s is served as video/mp4 rather than video/iso.segment: every MSE player
# ignores the type, and Apple's native HLS stack and some middleboxes only know
# video/mp4 for fMP4 media.
CONTENT_TYPES: dict[str, str] = {
    "mp4": "video/mp4",
    "m4s": "video/mp4",
    "m3u8": "application/vnd.apple.mpegurl",
    "mpd": "application/dash+xml",
}

# Content-addressed files never change under their name.
CACHE_CONTROL = "public, max-age=31536000, immutable"

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
CORS_ALLOW_HEADERS = "Range, If-None-Match, If-Range, Origin, Accept, Accept-Encoding"
CORS_EXPOSE_HEADERS = "Content-Length, Content-Range, Accept-Ranges, ETag"
CORS_MAX_AGE_S = 86400

_date_cache: dict[int, bytes] = {}
_last_date: tuple[int, bytes] = (-1, b"")


def http_date(ts: float) -> str:
    """IMF-fixdate (RFC 9110 5.6.7) for a unix time."""
    return formatdate(int(ts), usegmt=True)


def date_line(now: float) -> bytes:
    """``Date: ...\\r\\n`` for ``now``, memoised per second (a pure function of ``int(now)``)."""
    global _last_date
    sec = int(now)
    last = _last_date
    if last[0] == sec:
        return last[1]
    line = _date_cache.get(sec)
    if line is None:
        if len(_date_cache) > 8:
            _date_cache.clear()
        line = f"Date: {http_date(sec)}\r\n".encode()
        _date_cache[sec] = line
    _last_date = (sec, line)
    return line


def file_header_block(file_id: str, ext: str, mtime: float) -> bytes:
    """The header lines that depend only on the file: computed once per indexed file."""
    return (
        f"Content-Type: {CONTENT_TYPES[ext]}\r\n"
        f'ETag: "{file_id}"\r\n'
        f"Last-Modified: {http_date(mtime)}\r\n"
        f"Cache-Control: {CACHE_CONTROL}\r\n"
        "Accept-Ranges: bytes\r\n"
    ).encode()


@dataclass(frozen=True)
class CorsPolicy:
    """Which browser origins may read responses; ``"*"`` allows any origin.

    Header blocks are built once per allowed origin, at construction.
    """

    origins: frozenset[str] = frozenset()
    _blocks: dict[str, bytes] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        blocks = {
            allowed: (
                f"Access-Control-Allow-Origin: {allowed}\r\n"
                f"Access-Control-Expose-Headers: {CORS_EXPOSE_HEADERS}\r\n"
                "Vary: Origin\r\n"
            ).encode()
            for allowed in self.origins
        }
        object.__setattr__(self, "_blocks", blocks)

    @classmethod
    def of(cls, origins: tuple[str, ...] | list[str]) -> CorsPolicy:
        """From configured origins; a trailing slash is dropped (``Origin`` never has one)."""
        return cls(frozenset(o if o == "*" else o.rstrip("/") for o in origins))

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allow_origin_value(self, origin: str | None) -> str | None:
        """What to put in Access-Control-Allow-Origin for this request's Origin, if anything."""
        if not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        if origin is not None and origin in self.origins:
            return origin
        return None

    def response_block(self, origin: str | None) -> bytes:
        """Header lines to add to every response (empty when CORS is off)."""
        if not self.origins:
            return b""
        allowed = self.allow_origin_value(origin)
        return b"Vary: Origin\r\n" if allowed is None else self._blocks[allowed]

    def preflight_block(self, origin: str | None) -> bytes:
        """Header lines answering an OPTIONS preflight (no CORS lines for other origins)."""
        allowed = self.allow_origin_value(origin)
        if allowed is None:
            return b"Vary: Origin\r\n" if self.origins else b""
        return (
            f"Access-Control-Allow-Origin: {allowed}\r\n"
            f"Access-Control-Allow-Methods: {ALLOWED_METHODS}\r\n"
            f"Access-Control-Allow-Headers: {CORS_ALLOW_HEADERS}\r\n"
            f"Access-Control-Max-Age: {CORS_MAX_AGE_S}\r\n"
            "Vary: Origin\r\n"
        ).encode()


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """Split an encoded response head into (status, [(name, value), ...]); for tests and logs."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    out: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            out.append((name, value.strip()))
    return status, out
