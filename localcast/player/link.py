"""The player's access link: downloads over keep-alive HTTP, throttled and accounted.

One :class:`Link` per session wraps the shared ``httpx.AsyncClient``. It
streams each response through the emulated link (a shared token bucket from
:mod:`localcast.core.tokenbucket`, when ``--bandwidth`` is set), counts every
body byte received per host (``host:port``), and turns every failure (HTTP
status >= 400, refused, reset, timed out, truncated) into a :class:`FetchError`
so that the caller can fail over. Timeouts are per network operation
(connect, each read), not for the whole transfer, so a throttled download
is never mistaken for a dead server.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from localcast.core.tokenbucket import TokenBucket, new_bucket, take
from localcast.player.clock import Clock
from localcast.player.errors import FetchError


@dataclass(frozen=True)
class Transfer:
    """One successful download; times on the player's clock."""

    url: str
    host: str
    size_bytes: int
    started_s: float
    finished_s: float
    body: bytes | None = None


def host_of(url: str) -> str:
    u = httpx.URL(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.host}:{port}"


class Link:
    def __init__(self, client: httpx.AsyncClient, clock: Clock, rate_bps: float | None) -> None:
        self._client = client
        self._clock = clock
        self._bucket: TokenBucket | None = (
            new_bucket(rate_bps, clock.now()) if rate_bps is not None else None
        )
        self.bytes_by_host: dict[str, int] = {}
        self.bytes_total = 0

    async def _throttle(self, nbytes: int) -> None:
        if self._bucket is None:
            return
        self._bucket, wait_s = take(self._bucket, nbytes, self._clock.now())
        if wait_s > 0:
            await self._clock.sleep(wait_s)

    async def get(self, url: str, timeout_wall_s: float, keep_body: bool = False) -> Transfer:
        """Download ``url`` whole; raise :class:`FetchError` on any failure."""
        host = host_of(url)
        started = self._clock.now()
        size = 0
        chunks: list[bytes] = []
        try:
            async with self._client.stream("GET", url, timeout=timeout_wall_s) as resp:
                if resp.status_code >= 400:
                    raise FetchError(url, f"HTTP {resp.status_code}")
                expected = resp.headers.get("content-length")
                async for chunk in resp.aiter_raw():  # as received: nothing held back
                    size += len(chunk)
                    self.bytes_total += len(chunk)
                    self.bytes_by_host[host] = self.bytes_by_host.get(host, 0) + len(chunk)
                    if keep_body:
                        chunks.append(chunk)
                    await self._throttle(len(chunk))
                if expected is not None and expected.isdigit() and int(expected) != size:
                    raise FetchError(url, f"truncated: {size} of {expected} bytes")
        except httpx.TimeoutException as exc:
            raise FetchError(url, f"timeout ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, f"{type(exc).__name__}: {exc}") from exc
        return Transfer(
            url=url,
            host=host,
            size_bytes=size,
            started_s=started,
            finished_s=self._clock.now(),
            body=b"".join(chunks) if keep_body else None,
        )
