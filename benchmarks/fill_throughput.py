"""Benchmark: one fill agent filling from a real appliance, against its rate cap.

A real data plane (``localcast appliance serve``, one worker, a subprocess)
serves a store of random 8 MB files; an in-process fake control plane
(``http.server`` on 127.0.0.1) answers the agent's two fill endpoints with a
manifest whose ``rate_bps`` is the cap under test and whose source URLs are
signed with the fill keyring. For each cap the agent
(``localcast.appliance.fill.FillAgent``, the code ``localcast appliance fill``
runs) fills an empty store with about ``--seconds`` (5) worth of bytes at that
cap: one manifest fetch, the downloads (4 at a time, sha256-verified, fsynced,
renamed in), the report. Printed per cap: bytes, seconds, achieved rate and
achieved/cap. Target: within 10% of the cap up to 1 Gbit/s (reported, not
enforced; the exit status is non-zero only if a fill failed). A last run with
a 20 Gbit/s cap shows the agent's own ceiling on this machine.

    .venv/bin/python benchmarks/fill_throughput.py [--caps 100M,500M,1G] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from localcast.appliance.fill import AgentSettings, FillAgent, FillState
from localcast.appliance.launch import start_appliance
from localcast.core.tokenbucket import parse_rate
from localcast.core.tokens import Keyring, fill_keyring, signed_path
from localcast.keyfile import create_keyring

FILE_BYTES = 8 << 20
APPLIANCE = "bench-a1"
CREDENTIAL = "lca_bench"
CEILING_BPS = 20e9


class FakeControl:
    """``GET /v1/appliances/<id>/fill`` -> ``self.body``; reports are counted."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.reports: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(outer.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.reports.append(json.loads(self.rfile.read(length)))
                self._answer(b'{"ok": true}')

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_catalog(store: Path, files: int) -> dict[str, list[tuple[str, int]]]:
    """One title per 8 files of random bytes; title -> [(name, size)]."""
    catalog: dict[str, list[tuple[str, int]]] = {}
    for i in range(files):
        title = f"bench-{i // 8:03d}"
        data = os.urandom(FILE_BYTES)
        name = f"{hashlib.sha256(data).hexdigest()}.m4s"
        (store / title).mkdir(parents=True, exist_ok=True)
        (store / title / name).write_bytes(data)
        catalog.setdefault(title, []).append((name, len(data)))
    return catalog


def manifest(
    catalog: dict[str, list[tuple[str, int]]],
    files: int,
    rate_bps: float,
    source_url: str,
    keyring: Keyring,
) -> dict[str, Any]:
    fill_keys = fill_keyring(keyring)
    expires = int(time.time()) + 3600
    titles = []
    left = files
    for title_id, entries in catalog.items():
        if left <= 0:
            break
        take = entries[:left]
        left -= len(take)
        base = source_url + signed_path(fill_keys, f"/{title_id}", expires) + "/"
        titles.append(
            {
                "title_id": title_id,
                "urgent": False,
                "files": [{"name": n, "size": s} for n, s in take],
                "sources": [
                    {
                        "appliance_id": "origin-1",
                        "site_id": "origin",
                        "kind": "origin",
                        "holding": "complete",
                        "hop": 0,
                        "base_url": base,
                    }
                ],
            }
        )
    return {
        "appliance_id": APPLIANCE,
        "version": 1,
        "day": int(time.time() // 86400),
        "generated_at": time.time(),
        "window": {"spec": "00:00-00:00", "tz": "UTC", "open": True},
        "rate_bps": rate_bps,
        "cap_bps": rate_bps,
        "capacity_bytes": 0,
        "escalation": {"wait_s": 600.0, "max_tier_sites": 2},
        "titles": titles,
    }


async def fill_once(control_url: str, store: Path, concurrency: int) -> tuple[float, int, str]:
    settings = AgentSettings(refresh_s=600, concurrency=concurrency, reserve_bytes=0)
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        agent = FillAgent(http, control_url, APPLIANCE, CREDENTIAL, store, settings)
        started = time.monotonic()
        result, _ = await agent.step()
        elapsed = time.monotonic() - started
    if result is None or result.state is not FillState.IDLE:
        raise RuntimeError(f"fill did not complete: {result}")
    return elapsed, result.bytes, result.state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--caps", default="100M,500M,1G", help="rate caps (bits/s), comma separated")
    ap.add_argument("--seconds", type=float, default=5.0, help="bytes per run: this long at cap")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    caps = [float(parse_rate(c)) for c in args.caps.split(",")]
    runs = [*caps, CEILING_BPS]

    def files_for(cap: float) -> int:
        seconds = args.seconds if cap != CEILING_BPS else 1.0
        wanted = cap / 8 * seconds if cap != CEILING_BPS else 1e9 * seconds
        return max(2, round(wanted / FILE_BYTES))

    most = max(files_for(c) for c in runs)
    work = Path(tempfile.mkdtemp(prefix="fill-bench-"))
    control = FakeControl()
    failed = False
    try:
        keyring = create_keyring(work / "keys.json")
        t0 = time.monotonic()
        catalog = write_catalog(work / "origin", most)
        os.sync()  # the source's dirty pages would slow the agent's writes down
        print(
            f"source store: {most} files of {FILE_BYTES >> 20} MiB in {len(catalog)} titles "
            f"({time.monotonic() - t0:.1f} s to write); agent concurrency {args.concurrency}, "
            f"{'uvloop' if args.uvloop else 'asyncio'}"
        )
        extra = ["--access-log", "off"]
        with start_appliance(
            work / "home", store=work / "origin", keys=work / "keys.json", extra_args=extra
        ) as origin:
            print(f"{'cap':>12} {'bytes':>12} {'seconds':>8} {'achieved':>14} {'ratio':>6}  target")
            for cap in runs:
                files = files_for(cap)
                doc = manifest(catalog, files, cap, origin.url, keyring)
                control.body = json.dumps(doc).encode()
                store = work / "agent"
                shutil.rmtree(store, ignore_errors=True)
                store.mkdir()
                coro = fill_once(control.url, store, args.concurrency)
                if args.uvloop:
                    import uvloop

                    elapsed, nbytes, _ = uvloop.run(coro)
                else:
                    elapsed, nbytes, _ = asyncio.run(coro)
                achieved = nbytes * 8 / elapsed
                if cap == CEILING_BPS:
                    label, ratio, verdict = "none", "-", "(the agent's ceiling here)"
                else:
                    ok = abs(achieved / cap - 1) <= 0.10
                    label, ratio = f"{cap / 1e6:,.0f} Mbit/s", f"{achieved / cap:.3f}"
                    verdict = "ok (within 10%)" if ok else "MISSED (>10% off)"
                print(
                    f"{label:>12} {nbytes:>12,} {elapsed:>8.2f} "
                    f"{achieved / 1e6:>9,.0f} Mbit/s {ratio:>6}  {verdict}",
                    flush=True,
                )
                shutil.rmtree(store, ignore_errors=True)
    except Exception as exc:
        print(f"fill benchmark failed: {exc!r}", file=sys.stderr)
        failed = True
    finally:
        control.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
