"""One transfer attempt: a file (or its missing tail) from one source, into its part.

``Range: bytes=<have>-`` when the part already holds bytes (from an earlier
attempt, maybe from another source): a ``206`` whose ``Content-Range`` starts
at ``have`` continues the part; a ``200`` restarts it (the source ignored the
range); anything else fails this source. Every read is counted against the
rate cap; reads are gathered up to ``WRITE_BYTES`` and written and hashed in a
worker thread (the event loop keeps reading the other downloads meanwhile). A
connection that breaks mid-body leaves the bytes received in the part for the
next source.

When the part is whole it is fsynced and its sha256 compared with the name's:
a mismatch is :attr:`Outcome.CORRUPT` (the caller throws the part away). A
local write error (ENOSPC, ...) is :attr:`Outcome.DISK`: fill must stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

from localcast.appliance.fill.ratelimit import RateLimiter
from localcast.appliance.fill.store import PartFile

_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
WRITE_BYTES = 1 << 20  # reads are buffered up to this, then written and hashed in a thread


class Outcome(StrEnum):
    DONE = "done"  # whole and verified: ready to publish
    FAILED = "failed"  # the source failed; bytes received stay in the part
    CORRUPT = "corrupt"  # bytes that are not the file: discard the part
    DISK = "disk"  # a local write failed: stop filling


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    received: int  # bytes this attempt added to the part (after a restart: since it)
    reason: str = ""
    restarted: bool = False  # the part was emptied first (a 200 to a range request)


def disk_reason(exc: OSError) -> str:
    what = "disk full" if exc.errno in DISK_ERRNOS else "disk error"
    return f"{what}: {exc.strerror or exc} ({exc.filename or 'fill part'})"


def _range_ok(value: str | None, start: int, size: int) -> bool:
    m = _CONTENT_RANGE_RE.match(value or "")
    if m is None:
        return False
    total = m.group(3)
    return int(m.group(1)) == start and int(m.group(2)) == size - 1 and total in (str(size), "*")


async def attempt(
    http: httpx.AsyncClient,
    url: str,
    part: PartFile,
    size: int,
    sha256: str,
    limiter: RateLimiter,
    on_written: Callable[[int], None] = lambda n: None,
) -> AttemptResult:
    """Bring ``part`` to ``size`` bytes from ``url`` and verify it against ``sha256``."""
    received = 0
    restarted = False
    buf: list[bytes] = []
    pending = 0  # bytes in ``buf``

    async def flush() -> str | None:
        """Write (and hash) what is buffered, in a thread; a disk error's reason, or None."""
        nonlocal pending, received
        if not buf:
            return None
        data = b"".join(buf)
        buf.clear()
        pending = 0
        write = asyncio.ensure_future(asyncio.to_thread(part.write, data))
        try:
            await asyncio.shield(write)
        except OSError as exc:
            return disk_reason(exc)
        except asyncio.CancelledError:  # let the write land and count it, then stop
            with contextlib.suppress(Exception):
                await write
                received += len(data)
                on_written(len(data))
            raise
        received += len(data)
        on_written(len(data))
        return None

    if part.have < size:
        start = part.have
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            async with http.stream("GET", url, headers=headers) as resp:
                if start and resp.status_code == 206:
                    if not _range_ok(resp.headers.get("content-range"), start, size):
                        got = resp.headers.get("content-range")
                        return AttemptResult(Outcome.FAILED, 0, f"unexpected Content-Range {got}")
                elif resp.status_code == 200:
                    length = resp.headers.get("content-length")
                    if length is not None and length != str(size):
                        return AttemptResult(
                            Outcome.FAILED, 0, f"Content-Length {length}, expected {size}"
                        )
                    if start:
                        part.restart()
                        on_written(-start)
                        restarted = True
                else:
                    return AttemptResult(Outcome.FAILED, 0, f"HTTP {resp.status_code}")
                async for chunk in resp.aiter_raw():
                    if part.have + pending + len(chunk) > size:
                        trouble = await flush()
                        reason = trouble or "more bytes than the file has"
                        return AttemptResult(
                            Outcome.DISK if trouble else Outcome.CORRUPT,
                            received,
                            reason,
                            restarted,
                        )
                    buf.append(chunk)
                    pending += len(chunk)
                    if pending >= WRITE_BYTES:
                        trouble = await flush()
                        if trouble:
                            return AttemptResult(Outcome.DISK, received, trouble, restarted)
                    await limiter.take(len(chunk))
                trouble = await flush()
                if trouble:
                    return AttemptResult(Outcome.DISK, received, trouble, restarted)
        except asyncio.CancelledError:  # stopped (the window closed): keep what arrived
            with contextlib.suppress(Exception):
                await flush()
            raise
        except httpx.HTTPError as exc:
            trouble = await flush()  # what arrived before the break is kept for a resume
            if trouble:
                return AttemptResult(Outcome.DISK, received, trouble, restarted)
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return AttemptResult(Outcome.FAILED, received, reason, restarted)
        if part.have < size:
            return AttemptResult(
                Outcome.FAILED, received, f"body ended at {part.have} of {size}", restarted
            )
    try:
        digest = await asyncio.to_thread(part.sync)
    except OSError as exc:
        return AttemptResult(Outcome.DISK, received, disk_reason(exc), restarted)
    if digest != sha256:
        return AttemptResult(Outcome.CORRUPT, received, f"sha256 {digest[:12]}... mismatch")
    return AttemptResult(Outcome.DONE, received, "", restarted)
