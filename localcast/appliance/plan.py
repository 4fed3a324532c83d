"""The data plane's one decision: a parsed request -> a :class:`ResponsePlan`. Pure.

Everything that decides *what* to answer lives here; *how* bytes move
(sockets, sendfile, RAM cache, timeouts) lives in ``http``. Inputs are the
request's method, target and the few headers that matter, a read-only view
of the store index, a token verifier, the CORS policy, ``now`` and the client
address. No clock, no sockets, no file reads here: the store view, verifier
and health body are injected (tests pass dicts and lambdas; the real index
may ``stat`` on a miss, which is its business). Some helpers memoise results
of pure functions (targets, dates, token verdicts) for speed.

Order of checks, and what each answers:

1. target syntax (``target.split_target``): 400 for traversal tricks and
   non-origin-form targets, 404 for empty components;
2. a request body (we never read one): 400 (or 405) and close;
3. ``OPTIONS``: CORS preflight, 204, no token needed (browsers send none);
   other methods than GET/HEAD: 405;
4. ``/healthz``: 200 JSON; ``/metrics``: the Prometheus text exposition to
   clients in the allow list, 403 to others (no token involved);
5. three components ``/<token>/<title_id>/<file>``, else 404 (403 if it is
   a ``<title_id>/<sha256>.<ext>`` path without a token);
6. token (``core.tokens.verify`` over ``[title_id, file]``): 403, as a
   :class:`Refusal` naming why (a short code from :data:`REFUSALS`, counted);
   503 for a new session while the control plane is lost
   (:mod:`localcast.appliance.admission`);
7. store lookup: 404; the index only ever holds ``<sha256>.<ext>`` files of
   ``TITLE_ID_RE`` directories, so every other name is a 404 here;
8. ``If-None-Match`` -> 304; ``Range`` (unless ``If-Range`` differs) -> 206
   or 416; else 200.

400, 431 and 408 close the connection; everything else keeps it alive when
the client asked for that (HTTP/1.1 unless ``Connection: close``; HTTP/1.0
only with ``Connection: keep-alive``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from localcast.appliance.entry import FILE_NAME_RE, TITLE_ID_RE, FileEntry
from localcast.appliance.headers import (
    ALLOWED_METHODS,
    REASONS,
    SERVER,
    STATUS_LINES,
    CorsPolicy,
    date_line,
    parse_head,
)
from localcast.appliance.ranges import ByteRange, parse_range
from localcast.appliance.target import split_target
from localcast.core import tokens
from localcast.core.tokens import Keyring, TokenCheck


class StoreView(Protocol):
    """Read access to the store index: the entry for a title's file, if servable."""

    def get(self, title_id: str, name: str) -> FileEntry | None: ...


VerifyFn = Callable[[str, Sequence[str], float, "str | None"], TokenCheck]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def keyring_verifier(keyring: Keyring) -> VerifyFn:
    """A verifier that calls ``core.tokens.verify`` every time (see ``tokencache`` for memoised)."""

    def verify(token: str, path: Sequence[str], now: float, client_ip: str | None) -> TokenCheck:
        return tokens.verify(keyring, token, path, now, client_ip)

    return verify


@dataclass(frozen=True)
class PlanContext:
    """The read-only world a plan is made in."""

    store: StoreView
    verify: VerifyFn
    cors: CorsPolicy
    health: Callable[[], bytes]  # the /healthz JSON body
    metrics: Callable[[], bytes] | None = None  # the /metrics body; None: no /metrics
    metrics_allow: tuple[Network, ...] = ()  # clients that may read /metrics


@dataclass(slots=True)
class Request:
    """A parsed request, reduced to what the decision needs. Header values are latin-1 text."""

    method: str
    target: bytes
    version: str = "1.1"
    range: str | None = None
    if_none_match: str | None = None
    if_range: str | None = None
    origin: str | None = None
    connection: str | None = None
    has_body: bool = False


@dataclass(slots=True)
class FileSlice:
    """``length`` bytes of ``entry``'s file from ``offset``: the body to send."""

    entry: FileEntry
    offset: int
    length: int


@dataclass(slots=True)
class ResponsePlan:
    """What to send: an encoded head, then ``body`` or ``file`` (never both), then keep or close."""

    status: int
    head: bytes
    body: bytes = b""
    file: FileSlice | None = None
    keep_alive: bool = True

    @property
    def body_length(self) -> int:
        return self.file.length if self.file is not None else len(self.body)

    def headers(self) -> list[tuple[str, str]]:
        return parse_head(self.head)[1]

    def header(self, name: str) -> str | None:
        """The (first) value of header ``name``, case-insensitively."""
        lname = name.lower()
        for k, v in self.headers():
            if k.lower() == lname:
                return v
        return None


@dataclass(slots=True)
class Refusal(ResponsePlan):
    """A 403 for a request's token (missing or not valid); ``reason`` a :data:`REFUSALS` code.

    A subclass, so that the plans of every other answer carry nothing more.
    """

    reason: str = "other"


_200 = STATUS_LINES[200]
_206 = STATUS_LINES[206]
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE_10 = b"Connection: keep-alive\r\n"
_TEXT = b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"
_JSON = b"Content-Type: application/json\r\nCache-Control: no-store\r\n"
_ALLOW = f"Allow: {ALLOWED_METHODS}\r\n".encode()
_METRICS_TYPE = (
    b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nCache-Control: no-store\r\n"
)

#: Why a token was refused: ``core.tokens`` reasons (by their start) -> a short, bounded code.
REFUSALS = {
    "missing token": "missing",
    "malformed token": "malformed",
    "unknown key id": "unknown_key",
    "token does not cover this path": "not_covered",
    "bad signature": "bad_signature",
    "token expired": "expired",
    "token is bound to a client network": "client_network",
    "client address outside the token's network": "client_network",
    "no new sessions": "no_new_sessions",
}


def refusal_code(reason: str) -> str:
    """The :data:`REFUSALS` code of a token refusal reason (``other`` if unknown)."""
    for start, code in REFUSALS.items():
        if reason.startswith(start):
            return code
    return "other"


def metrics_allowed(client_ip: str | None, allow: Sequence[Network]) -> bool:
    """Whether ``client_ip`` lies in one of the ``allow`` networks (IPv4-mapped too)."""
    if not client_ip or not allow:
        return False
    try:
        addr = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
    return any(addr in net or (mapped is not None and mapped in net) for net in allow)


def wants_keep_alive(version: str, connection: str | None) -> bool:
    """HTTP/1.1 keeps alive unless ``Connection: close``; HTTP/1.0 only with ``keep-alive``."""
    tokens_ = {t.strip().lower() for t in connection.split(",")} if connection else set()
    if version == "1.1":
        return "close" not in tokens_
    if version == "1.0":
        return "keep-alive" in tokens_ and "close" not in tokens_
    return False


def plan(req: Request, ctx: PlanContext, now: float, client_ip: str | None) -> ResponsePlan:
    """Decide the response to ``req``. See the module docstring for the order of checks."""
    version = req.version
    # No Connection header is the common case: keep it cheap.
    conn_header = req.connection
    keep = version == "1.1" if conn_header is None else wants_keep_alive(version, conn_header)
    conn = b"" if keep and version == "1.1" else _connection_line(keep, version)
    method = req.method
    head_only = method == "HEAD"
    cors = ctx.cors.response_block(req.origin)

    parts = split_target(req.target)
    if isinstance(parts, int):
        return error_plan(parts, now, keep, version, head_only, cors)
    if req.has_body:
        status = 400 if method in ("GET", "HEAD", "OPTIONS") else 405
        return error_plan(status, now, keep_alive=False, cors=cors, detail="no request body")
    if method != "GET" and not head_only:
        if method == "OPTIONS":
            extra = ctx.cors.preflight_block(req.origin) + _ALLOW
            return ResponsePlan(204, _head(204, now, extra, conn), keep_alive=keep)
        return error_plan(405, now, keep_alive=keep, version=version, cors=cors + _ALLOW)

    if len(parts) != 3:
        if parts == ("healthz",):
            body = ctx.health()
            length = f"Content-Length: {len(body)}\r\n".encode()
            head = _head(200, now, _JSON + cors + length, conn)
            return ResponsePlan(200, head, b"" if head_only else body, keep_alive=keep)
        if parts == ("metrics",) and ctx.metrics is not None:
            if not metrics_allowed(client_ip, ctx.metrics_allow):
                return error_plan(403, now, keep, version, head_only, cors, "not a metrics client")
            body = ctx.metrics()
            length = f"Content-Length: {len(body)}\r\n".encode()
            head = _head(200, now, _METRICS_TYPE + length, conn)
            return ResponsePlan(200, head, b"" if head_only else body, keep_alive=keep)
        if len(parts) == 2 and TITLE_ID_RE.match(parts[0]) and FILE_NAME_RE.match(parts[1]):
            p = error_plan(403, now, keep, version, head_only, cors, "missing token")
            return Refusal(403, p.head, p.body, keep_alive=p.keep_alive, reason="missing")
        return error_plan(404, now, keep, version, head_only, cors)
    token, title_id, name = parts
    check = ctx.verify(token, (title_id, name), now, client_ip)
    if not check.ok:
        code = refusal_code(check.reason)
        status = 503 if code == "no_new_sessions" else 403  # the player tries its next pathway
        p = error_plan(status, now, keep, version, head_only, cors, check.reason)
        return Refusal(status, p.head, p.body, keep_alive=p.keep_alive, reason=code)
    # The index holds only <title_id>/<sha256>.<ext> names (store.StoreIndex): all else misses.
    entry = ctx.store.get(title_id, name)
    if entry is None:
        return error_plan(404, now, keep, version, head_only, cors)
    return file_plan(req, entry, now, keep, conn, cors)


def file_plan(
    req: Request, entry: FileEntry, now: float, keep: bool, conn: bytes, cors: bytes
) -> ResponsePlan:
    """200, 206, 304 or 416 for an existing, authorised file."""
    if req.if_none_match is not None and etag_matches(req.if_none_match, entry.etag):
        return ResponsePlan(304, _head(304, now, entry.header_block + cors, conn), keep_alive=keep)
    size = entry.size
    if req.range is not None and (req.if_range is None or req.if_range.strip() == entry.etag):
        rng = parse_range(req.range, size)
        if isinstance(rng, ByteRange):
            extra = (
                f"Content-Range: bytes {rng.start}-{rng.end}/{size}\r\n"
                f"Content-Length: {rng.length}\r\n"
            ).encode()
            head = b"".join(
                (_206, date_line(now), SERVER, entry.header_block, cors, extra, conn, b"\r\n")
            )
            body = None if req.method == "HEAD" else FileSlice(entry, rng.start, rng.length)
            return ResponsePlan(206, head, b"", body, keep)
        if rng is not None:
            extra = f"Content-Range: bytes */{size}\r\nContent-Length: 0\r\n".encode()
            head = _head(416, now, entry.header_block + cors + extra, conn)
            return ResponsePlan(416, head, keep_alive=keep)
    head = b"".join((_200, date_line(now), SERVER, entry.full_block, cors, conn, b"\r\n"))
    body = None if req.method == "HEAD" or size == 0 else FileSlice(entry, 0, size)
    return ResponsePlan(200, head, b"", body, keep)


def error_plan(
    status: int,
    now: float,
    keep_alive: bool = False,
    version: str = "1.1",
    head_only: bool = False,
    cors: bytes = b"",
    detail: str = "",
) -> ResponsePlan:
    """A short text/plain answer. 400, 408 and 431 always close the connection."""
    if status in (400, 408, 431):
        keep_alive = False
    text = f"{status} {REASONS.get(status, '')}" + (f": {detail}" if detail else "") + "\n"
    body = text.encode()
    extra = _TEXT + cors + f"Content-Length: {len(body)}\r\n".encode()
    head = _head(status, now, extra, _connection_line(keep_alive, version))
    return ResponsePlan(status, head, b"" if head_only else body, keep_alive=keep_alive)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): ``*`` or any listed tag equal, ``W/`` ignored."""
    value = if_none_match.strip()
    if value == "*":
        return True
    for candidate in value.split(","):
        c = candidate.strip()
        if c.startswith("W/"):
            c = c[2:]
        if c == etag:
            return True
    return False


def _connection_line(keep: bool, version: str) -> bytes:
    if not keep:
        return _CLOSE
    return _KEEP_ALIVE_10 if version == "1.0" else b""


def _head(status: int, now: float, fields: bytes, conn: bytes) -> bytes:
    return b"".join((STATUS_LINES[status], date_line(now), SERVER, fields, conn, b"\r\n"))
