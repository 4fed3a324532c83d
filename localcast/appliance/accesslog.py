"""The access log (one line per request, buffered) and the worker's counters.

Lines are appended to a buffer and written with one ``write`` when it holds
``flush_bytes`` or when the worker's periodic tick calls :meth:`AccessLog.flush`
(about once a second), so logging costs a string format per request, not a
syscall. The file is opened ``O_APPEND``: workers share it and each write
holds whole lines. ``sample`` = N logs one request in N. A rotated file
(renamed or removed) is noticed within a few seconds and a new one started.

Tokens are secrets that grant access for hours: the logged path keeps the
token's key id and expiry but not its signature.

Text line: ``ts client method path status bytes duration_ms``; JSON (``--log-json``):
``{"ts", "client", "method", "path", "status", "bytes", "ms"}``.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

from localcast.core.tokens import FILL_PREFIX, SEPARATOR, VERSION

_TOKEN_PREFIX = "/" + VERSION + SEPARATOR
_FILL_TOKEN_BYTES = (_TOKEN_PREFIX + FILL_PREFIX).encode()
_SEP_AT = len(_TOKEN_PREFIX) - 1  # "/lc1~": where a token's first separator sits
_SEP = ord(SEPARATOR)
_FILL_AT = len(_TOKEN_PREFIX)  # the first byte of the key id
_F = ord(FILL_PREFIX[0])

# Request kinds, by the target's first path component: a fill credential's token (key id
# ``fill-...``, ``core.tokens.is_fill_kid``), another token, or none at all (/healthz,
# /metrics, probes). Token-shaped is ``/xxx~`` (``lc1~`` and the like): what the plan
# would check as a token, a malformed one included. Decided with byte compares, not
# ``startswith``: measured (callgrind) the same instructions as counting by status alone.
VIEWER, FILL, OTHER = "viewer", "fill", "other"
KINDS = (VIEWER, FILL, OTHER)


def request_kind(target: bytes) -> str:
    """The kind of a request, from its raw target (see above)."""
    if len(target) <= _SEP_AT or target[_SEP_AT] != _SEP:
        return OTHER
    return FILL if target.startswith(_FILL_TOKEN_BYTES) else VIEWER


class Counters:
    """This process's counts: plain numbers, updated on the hot path with no I/O.

    ``viewer``, ``fill``, ``other``: status -> [requests, body bytes] of each
    request kind; ``refusals``: (reason code, kind) -> token refusals;
    ``sendfile_errors``: errno name -> count; ``connections``: accepted.
    """

    def __init__(self) -> None:
        self.viewer: dict[int, list[int]] = {}
        self.fill: dict[int, list[int]] = {}
        self.other: dict[int, list[int]] = {}
        self.refusals: dict[tuple[str, str], int] = {}
        self.sendfile_errors: dict[str, int] = {}
        self.connections = 0

    def add(self, status: int, body_bytes: int, target: bytes = b"") -> None:
        """One response; its kind read off ``target`` as :func:`request_kind` does (inline)."""
        d = self.other
        try:
            if target[_SEP_AT] == _SEP:
                d = self.viewer
                if target[_FILL_AT] == _F and target.startswith(_FILL_TOKEN_BYTES):
                    d = self.fill
        except IndexError:
            pass
        try:
            c = d[status]
            c[0] += 1
            c[1] += body_bytes
        except KeyError:
            d[status] = [1, body_bytes]

    @property
    def responses(self) -> dict[tuple[int, str], list[int]]:
        """(status, kind) -> [requests, body bytes]."""
        out: dict[tuple[int, str], list[int]] = {}
        for kind, d in ((VIEWER, self.viewer), (FILL, self.fill), (OTHER, self.other)):
            for status, c in d.items():
                out[(status, kind)] = c
        return out

    def refused(self, reason: str, kind: str) -> None:
        key = (reason, kind)
        self.refusals[key] = self.refusals.get(key, 0) + 1

    def sendfile_error(self, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno, "other") if exc.errno else "short_file"
        self.sendfile_errors[name] = self.sendfile_errors.get(name, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Requests and body bytes per status (every kind), as /healthz shows them."""
        requests: dict[int, int] = {}
        body: dict[int, int] = {}
        for (status, _), (n, b) in self.responses.items():
            requests[status] = requests.get(status, 0) + n
            body[status] = body.get(status, 0) + b
        return {
            "requests": {str(k): v for k, v in sorted(requests.items())},
            "bytes": {str(k): v for k, v in sorted(body.items())},
        }


_memo: dict[bytes, str] = {}


def loggable_path(target: bytes) -> str:
    """The request target for a log line: signature cut from the token, oddities escaped."""
    text = _memo.get(target)
    if text is None:
        text = _loggable_path(target)
        if len(target) <= 512:
            if len(_memo) >= 4096:
                _memo.clear()
            _memo[target] = text
    return text


def _loggable_path(target: bytes) -> str:
    text = target[:1024].decode("latin-1")
    if text.startswith(_TOKEN_PREFIX):
        slash = text.find("/", 1)
        token = text[1:slash] if slash > 0 else text[1:]
        cut = token.rfind(SEPARATOR)
        text = "/" + token[:cut] + SEPARATOR + "-" + (text[slash:] if slash > 0 else "")
    if not (text.isascii() and text.isprintable()) or " " in text:
        text = repr(text)[1:-1].replace(" ", "%20")
    return text


class AccessLog:
    """A buffered, optionally sampled access log on a file descriptor."""

    def __init__(
        self,
        fd: int,
        json_lines: bool = False,
        sample: int = 1,
        flush_bytes: int = 64 * 1024,
        path: Path | None = None,
    ) -> None:
        self.fd = fd
        self.path = path
        self.json_lines = json_lines
        self.sample = max(1, sample)
        self.flush_bytes = flush_bytes
        self._lines: list[str] = []
        self._size = 0
        self._seen = 0
        self._ts_sec = -1
        self._ts = ""

    @classmethod
    def open(cls, path: Path, json_lines: bool = False, sample: int = 1) -> AccessLog:
        return cls(_open_append(path), json_lines, sample, path=path)

    def reopen_if_moved(self) -> None:
        """After log rotation (file renamed or removed), start a new file at ``path``."""
        if self.path is None or self.fd < 0:
            return
        try:
            st = os.stat(self.path)
            mine = os.fstat(self.fd)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        self.flush()
        try:
            fd = _open_append(self.path)
        except OSError:
            return
        os.close(self.fd)
        self.fd = fd

    def record(
        self,
        now: float,
        client: str,
        method: str,
        target: bytes,
        status: int,
        body_bytes: int,
        duration_s: float,
    ) -> None:
        self._seen += 1
        if self.sample > 1 and self._seen % self.sample:
            return
        sec = int(now)
        if sec != self._ts_sec:
            self._ts_sec = sec
            self._ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))
        path = loggable_path(target)
        ms = duration_s * 1000.0
        if self.json_lines:
            line = (
                f'{{"ts": "{self._ts}", "client": "{client}", "method": {json.dumps(method)}, '
                f'"path": {json.dumps(path)}, "status": {status}, "bytes": {body_bytes}, '
                f'"ms": {ms:.3f}}}\n'
            )
        else:
            line = f"{self._ts} {client} {method} {path} {status} {body_bytes} {ms:.3f}\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "backslashreplace")
        self._lines.clear()
        self._size = 0
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError:
            pass  # a full disk must not take the data plane down

    def close(self) -> None:
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
            self.fd = -1


def _open_append(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
