"""Benchmark: the appliance's data plane against nginx, same files, same machine, same run.

Builds a temporary store (a 2 MiB segment, a 16 KiB object, a 16 MiB file,
content-addressed under one title), starts Debian's nginx (``sendfile on``,
``tcp_nopush on``, buffered access log, as many workers as the appliance, a
location that strips the token component) and ``localcast appliance serve``
(access log on, buffered), then drives each with ``wrk -t2 -c64`` over
signed URLs, alternating between the two servers for several short rounds so
that changing load on the machine hits both alike:

* a 2 MiB segment, whole;
* a 16 KiB object, whole;
* 64 KiB ranges at varied offsets of a 16 MiB file (a Lua script sets Range).

Prints req/s, Gbit/s of body, non-2xx and socket errors, the servers' CPU
per request, and the appliance/nginx ratio against the targets (1.0x, 0.6x,
0.8x). Targets are reported, not enforced: the exit status is non-zero only
if something failed to run or answered with errors. About 90 s.

    .venv/bin/python benchmarks/appliance_vs_nginx.py [--rounds 4] [--duration 3]
        [--workers N] [--only "16 KiB"]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from localcast.appliance.launch import start_appliance
from localcast.core.tokens import signed_path
from localcast.devstack.procs import child_pids
from localcast.keyfile import create_keyring

NGINX = "/usr/sbin/nginx"
TITLE = "bench-title"
CONNECTIONS = 64
THREADS = 2


@dataclass(frozen=True)
class Scenario:
    name: str
    file_key: str
    target_ratio: float
    range_chunk: int = 0  # >0: Range requests of this size at varied offsets


SCENARIOS = (
    Scenario("2 MiB segment", "seg2m", 1.0),
    Scenario("16 KiB object", "obj16k", 0.6),
    Scenario("64 KiB range of 16 MiB", "file16m", 0.8, range_chunk=64 * 1024),
)
SIZES = {"seg2m": (2 << 20, "m4s"), "obj16k": (16 << 10, "m4s"), "file16m": (16 << 20, "mp4")}


@dataclass(frozen=True)
class Result:
    requests: int
    body_bytes: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    server_cpu_s: float = 0.0  # user+system CPU of the server's processes during the run

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def gbps(self) -> float:
        return self.body_bytes * 8 / self.duration_s / 1e9 if self.duration_s else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s * 1e6 / self.requests if self.requests else 0.0

    def __add__(self, other: Result) -> Result:
        return Result(
            self.requests + other.requests,
            self.body_bytes + other.body_bytes,
            self.duration_s + other.duration_s,
            self.non_2xx + other.non_2xx,
            self.socket_errors + other.socket_errors,
            self.server_cpu_s + other.server_cpu_s,
        )


EMPTY = Result(0, 0, 0.0, 0, 0)
_TICK = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and its children (the master/supervisor and its workers)."""
    return [root, *sorted(child_pids(root))]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def make_store(root: Path) -> dict[str, tuple[str, int]]:
    """Write the test files; {key: (file name, size)}."""
    title_dir = root / TITLE
    title_dir.mkdir(parents=True)
    out: dict[str, tuple[str, int]] = {}
    for key, (size, ext) in SIZES.items():
        data = os.urandom(size)
        name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
        (title_dir / name).write_bytes(data)
        (title_dir / name).chmod(0o644)
        out[key] = (name, size)
    for p in (root, title_dir):
        p.chmod(0o755)
    return out


def nginx_conf(tmp: Path, store: Path, port: int, workers: int) -> str:
    return f"""
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{
        video/mp4 mp4 m4s;
        application/vnd.apple.mpegurl m3u8;
        application/dash+xml mpd;
    }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    access_log {tmp}/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location ~ "^/[^/]+/([A-Za-z0-9][A-Za-z0-9_.-]*/[0-9a-f]{{64}}\\.(mp4|m4s|m3u8|mpd))$" {{
            alias {store}/$1;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location / {{ return 404; }}
    }}
}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(tmp: Path, store: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, store, port, workers))
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"nginx exited: {err}")
        try:
            httpx.get(url + "/", timeout=0.5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start")


def wrk_script(tmp: Path, scenario: Scenario, size: int) -> Path:
    lines = []
    if scenario.range_chunk:
        chunk = scenario.range_chunk
        lines.append(
            f"""
local chunks = {size // chunk}
local chunk = {chunk}
local n = 0
request = function()
  n = n + 1
  local off = ((n * 7919) % chunks) * chunk
  return wrk.format(nil, nil, {{["Range"] = "bytes=" .. off .. "-" .. (off + chunk - 1)}})
end
"""
        )
    lines.append(
        """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %d, \\"bytes\\": %d, \\"duration_us\\": %d, \\"status\\": %d, "
    .. "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d}\\n",
    summary.requests, summary.bytes, summary.duration, e.status,
    e.connect, e.read, e.write, e.timeout))
end
"""
    )
    path = tmp / f"wrk-{scenario.file_key}.lua"
    path.write_text("\n".join(lines))
    return path


def run_wrk(
    url: str, script: Path, duration_s: float, head_bytes: int, server_root: int = 0
) -> Result:
    cmd = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    pids = process_tree(server_root) if server_root else []
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pids) - cpu_before
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    doc = json.loads(line[len("WRKJSON ") :])
    requests = int(doc["requests"])
    sock_errors = sum(int(doc[k]) for k in ("connect", "read", "write", "timeout"))
    return Result(
        requests=requests,
        body_bytes=max(0, int(doc["bytes"]) - requests * head_bytes),
        duration_s=int(doc["duration_us"]) / 1e6,
        non_2xx=int(doc["status"]),
        socket_errors=sock_errors,
        server_cpu_s=cpu,
    )


def check_once(url: str, scenario: Scenario, expected: bytes) -> int:
    """One request through httpx: the right status and bytes; returns the head size."""
    headers = {}
    want = expected
    if scenario.range_chunk:
        headers["Range"] = f"bytes=65536-{65536 + scenario.range_chunk - 1}"
        want = expected[65536 : 65536 + scenario.range_chunk]
    r = httpx.get(url, headers=headers, timeout=10)
    if r.status_code not in (200, 206) or r.content != want:
        raise RuntimeError(f"{url}: status {r.status_code}, {len(r.content)} bytes")
    head = f"HTTP/1.1 {r.status_code} {r.reason_phrase}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in r.headers.items()) + "\r\n"
    return len(head)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=4, help="alternating runs per server")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default="", help="run scenarios whose name contains this")
    args = ap.parse_args()
    for tool in (NGINX, "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: run `make deps`", file=sys.stderr)
            return 2

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="lc-bench-"))
    tmp.chmod(0o755)
    nginx: subprocess.Popen[bytes] | None = None
    try:
        store = tmp / "store"
        files = make_store(store)
        keyring = create_keyring(tmp / "keys.json")
        expires = int(time.time()) + 3600
        token_path = signed_path(keyring, f"/{TITLE}", expires)
        nginx, nginx_url = start_nginx(tmp, store, args.workers)
        appliance = start_appliance(
            tmp / "home",
            store=store,
            keys=tmp / "keys.json",
            workers=args.workers,
            log_level="warning",
            extra_args=["--access-log", str(tmp / "appliance-access.log")],
        )
        rows: list[tuple[Scenario, Result, Result]] = []
        with appliance:
            for sc in SCENARIOS:
                if args.only not in sc.name:
                    continue
                name, size = files[sc.file_key]
                data = (store / TITLE / name).read_bytes()
                script = wrk_script(tmp, sc, size)
                servers = {
                    "nginx": (nginx_url, nginx.pid),
                    "appliance": (appliance.url, appliance.pid),
                }
                heads = {}
                totals = {"nginx": EMPTY, "appliance": EMPTY}
                for label, (base, _) in servers.items():
                    heads[label] = check_once(f"{base}{token_path}/{name}", sc, data)
                    if args.warmup > 0:
                        run_wrk(f"{base}{token_path}/{name}", script, args.warmup, 0)
                # Alternate who goes first, so drift in machine load hits both alike.
                for r in range(args.rounds):
                    order = ["nginx", "appliance"] if r % 2 == 0 else ["appliance", "nginx"]
                    for label in order:
                        base, root = servers[label]
                        url = f"{base}{token_path}/{name}"
                        totals[label] += run_wrk(url, script, args.duration, heads[label], root)
                rows.append((sc, totals["nginx"], totals["appliance"]))
        print_table(rows, args, f"{load_before} / {load_average()}")
        bad = any(r.non_2xx or r.socket_errors for _, a, b in rows for r in (a, b))
        return 1 if bad else 0
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(
    rows: list[tuple[Scenario, Result, Result]], args: argparse.Namespace, load: str
) -> None:
    print(
        f"\nappliance vs nginx: wrk -t{THREADS} -c{CONNECTIONS}, {args.rounds} x "
        f"{args.duration:g}s per server and scenario (alternating), {args.workers} workers "
        f"each, loopback, access logs on (buffered); load average before/after: {load}\n"
    )
    hdr = (
        f"{'scenario':<26}{'server':<11}{'req/s':>10}{'Gbit/s':>9}{'non-2xx':>9}{'sockerr':>9}"
        f"{'cpu us/req':>11}{'ratio':>8}  target"
    )
    print(hdr)
    print("-" * (len(hdr) + 14))
    for sc, ng, ap in rows:
        ratio = ap.rps / ng.rps if ng.rps else 0.0
        met = ratio >= sc.target_ratio and not (ap.non_2xx or ap.socket_errors)
        for label, r in (("nginx", ng), ("appliance", ap)):
            line = (
                f"{sc.name if label == 'nginx' else '':<26}{label:<11}{r.rps:>10.0f}"
                f"{r.gbps:>9.2f}{r.non_2xx:>9}{r.socket_errors:>9}{r.cpu_us_per_request:>11.1f}"
            )
            if label == "appliance":
                verdict = "met" if met else "NOT met"
                line += f"{ratio:>7.2f}x  >= {sc.target_ratio:.1f}x {verdict}"
            print(line)
    print(
        "ratio = appliance req/s / nginx req/s; cpu us/req = server processes' user+system CPU\n"
        "per request (less sensitive to other load on the machine than req/s)."
    )
    print()


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
