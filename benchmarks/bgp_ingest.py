"""Full-table BGP ingestion from a real BIRD 2: our codec + speaker, ExaBGP, and BIRD's floor.

BIRD (Debian ``bird2``) gets a generated static table (fixed seed) and
announces it over one eBGP session on loopback to, in turn:

- a discard sink (handshake, then read bytes until End-of-RIB): BIRD's own
  export time, the floor for any receiver;
- our :class:`~localcast.bgp.speaker.Speaker` (in a child process, so its
  memory is its own): decode, import policy, Adj-RIB-In, route deltas;
- ExaBGP (if ``--exabgp PATH`` or ``$LOCALCAST_EXABGP`` names its executable)
  with a JSON API reader process that counts the prefixes.

Two table shapes: ``packed`` (one attribute set, BIRD fills each UPDATE with
256 prefixes, its maximum) and ``diverse`` (a distinct AS path per ~4
prefixes, spread over the table like a real one; BIRD then sends one prefix
per UPDATE, the worst case for a receiver). Time runs from the
session going up until 99% of the prefixes are held ("99%", the receiver's
throughput) and until all are ("all": BIRD holds its last partial UPDATE
and End-of-RIB back for ~3 s after streaming the rest). Then a robustness table: malformed
messages sent to each receiver, the NOTIFICATION it answered, and for
ExaBGP whether the broken route still reached its API.

    python benchmarks/bgp_ingest.py [--prefixes 900000] [--exabgp-prefixes 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _bgp_table import generate  # noqa: E402  (benchmarks/ is on sys.path)

from localcast.bgp import prefix as pfx  # noqa: E402
from localcast.bgp.adjrib import AdjRibIn  # noqa: E402
from localcast.bgp.codec import MARKER, Decoder, encode  # noqa: E402
from localcast.bgp.fsm import FsmConfig, our_open  # noqa: E402
from localcast.bgp.messages import (  # noqa: E402
    AsPathSegment,
    FourOctetAs,
    Keepalive,
    Multiprotocol,
    Notification,
    Open,
    Origin,
    PathAttributes,
    SegmentType,
    Update,
)
from localcast.bgp.policy import ImportPolicy  # noqa: E402
from localcast.bgp.prefix import Afi  # noqa: E402

BIRD = shutil.which("bird") or "/usr/sbin/bird"
EOR_V4 = MARKER + b"\x00\x17\x02\x00\x00\x00\x00"
LOCAL_AS, BIRD_AS, RAW_AS = 65001, 65002, 65003


# --- the table ------------------------------------------------------------------------------


def path_of(i: int, n: int) -> tuple[int, int]:
    k = (i * 2654435761) % max(n // 4, 1)
    return 64512 + k % 400, 65536 + k  # never our AS 65001 (that would be a loop)


def static_config(table: list[tuple[int, int]], shape: str) -> str:
    lines = ["protocol static s4 {", "  ipv4;"]
    n = len(table)
    for i, (net, length) in enumerate(table):
        text = pfx.to_text(Afi.IPV4, pfx.make(net, length))
        if shape == "diverse":
            a, b = path_of(i, n)
            lines.append(
                f"  route {text} blackhole {{ bgp_path.prepend({a}); bgp_path.prepend({b}); }};"
            )
        else:
            lines.append(f"  route {text} blackhole;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def bird_config(static: str, port: int, bird_port: int) -> str:
    return (
        "router id 192.0.2.254;\nprotocol device {}\n" + static + "protocol bgp feed {\n"
        f"  local 127.0.0.2 port {bird_port} as {BIRD_AS};\n"
        f"  neighbor 127.0.0.1 port {port} as {LOCAL_AS};\n"
        "  multihop;\n  connect retry time 1;\n"
        "  ipv4 { import none; export all; next hop address 192.0.2.1; };\n}\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BirdProcess:
    def __init__(self, workdir: Path, config: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bird-", dir="/tmp"))
        conf = workdir / "bird.conf"
        conf.write_text(config)
        self.proc = subprocess.Popen(
            [BIRD, "-f", "-c", str(conf), "-s", str(self.dir / "ctl"), "-P", str(self.dir / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- receivers ------------------------------------------------------------------------------


def run_sink(static: str, workdir: Path) -> float:
    """BIRD's export time: handshake, then discard bytes until End-of-RIB."""
    port = free_port()
    srv = socket.create_server(("127.0.0.1", port))
    bird = BirdProcess(workdir, bird_config(static, port, free_port()))
    try:
        srv.settimeout(60)
        conn, _ = srv.accept()
        cfg = FsmConfig(LOCAL_AS, "10.0.0.1", BIRD_AS, 90, families=frozenset({(1, 1)}))
        conn.sendall(encode(our_open(cfg)) + encode(Keepalive()))
        dec = Decoder()
        got_open = False
        while not got_open:
            dec.feed(conn.recv(65536))
            got_open = any(isinstance(m, Open) for m in dec.messages())
        # BIRD streams the table, then holds its last partial UPDATE and End-of-RIB back
        # for ~3 s: its export time is up to the last chunk before that pause.
        started = time.monotonic()
        times: list[float] = []
        while True:
            data = conn.recv(1 << 20)
            if not data:
                raise RuntimeError("BIRD closed the session")
            times.append(time.monotonic())
            if EOR_V4 in data[-64:]:
                gaps = [i for i in range(1, len(times)) if times[i] - times[i - 1] > 0.5]
                end = times[gaps[-1] - 1] if gaps else times[-1]
                return end - started
    finally:
        bird.stop()
        srv.close()


def child_ours(port: int, expect: int) -> None:
    """Runs in a child process: the speaker, until it holds ``expect`` prefixes."""
    import asyncio
    import logging

    logging.basicConfig(level=logging.ERROR)

    from localcast.bgp.config import parse_bgp_config
    from localcast.bgp.events import RouteDelta, SessionChanged
    from localcast.bgp.fsm import State
    from localcast.bgp.speaker import Speaker

    cfg = parse_bgp_config(
        {
            "local_as": LOCAL_AS,
            "router_id": "10.0.0.1",
            "listen": "127.0.0.1",
            "port": port,
            "neighbors": [
                {"address": "127.0.0.2", "remote_as": BIRD_AS, "passive": True},
                {
                    "address": "127.0.0.3",
                    "remote_as": RAW_AS,
                    "passive": True,
                    "error_handling": "strict",
                    "idle_hold_time": 0,
                },
                {
                    "address": "127.0.0.4",
                    "remote_as": RAW_AS,
                    "passive": True,
                    "idle_hold_time": 0,
                },
            ],
        }
    )

    async def main() -> None:
        done = asyncio.Event()
        marks: dict[str, float] = {}

        def on_event(ev: object) -> None:
            if isinstance(ev, SessionChanged) and ev.new == State.ESTABLISHED:
                marks.setdefault("up", time.monotonic())
            if isinstance(ev, RouteDelta):
                held = speaker.rib("127.0.0.2").accepted
                if held >= expect * 0.99:
                    marks.setdefault("p99", time.monotonic())
                if held >= expect:
                    marks.setdefault("full", time.monotonic())
                    done.set()

        base = rss_mib()
        speaker = Speaker(cfg, on_event=on_event)
        await speaker.start()
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 600)
        rib = speaker.rib("127.0.0.2")
        result = {
            "p99": marks["p99"] - marks["up"],
            "seconds": marks["full"] - marks["up"],
            "accepted": rib.accepted,
            "rss_mib": rss_mib(),
            "rib_mib": rss_mib() - base,
        }
        print(json.dumps(result), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until told
        await speaker.stop()

    asyncio.run(main())


def run_ours(static: str, workdir: Path, expect: int) -> tuple[dict[str, float], int, object]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", str(port), str(expect)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    bird = BirdProcess(workdir, bird_config(static, port, free_port()))
    try:
        result = json.loads(child.stdout.readline())
    finally:
        bird.stop()
    return result, port, child


EXA_READER = """
import json, sys, time
n, out, expect, p99 = 0, open(sys.argv[1], "w"), int(sys.argv[2]), False
for line in sys.stdin:
    if '"state"' in line and '"up"' in line:
        out.write(f"up {time.monotonic()}\\n"); out.flush()
    if '"update"' not in line and '"eor"' not in line:
        continue
    neighbor = json.loads(line)["neighbor"]
    msg = neighbor["message"]
    if neighbor["address"]["peer"] == "127.0.0.3":
        out.write(f"raw {json.dumps(msg.get('update', msg))}\\n"); out.flush()
        continue
    if "eor" in msg:
        out.write(f"eor {time.monotonic()} {n}\\n"); out.flush()
        continue
    for nexthops in msg.get("update", {}).get("announce", {}).values():
        for nlri in nexthops.values():
            n += len(nlri)
    if n >= expect * 0.99 and not p99:
        p99 = True
        out.write(f"p99 {time.monotonic()} {n}\\n"); out.flush()
    if n >= expect:
        out.write(f"full {time.monotonic()} {n}\\n"); out.flush()
        expect = 1 << 62
"""


def exabgp_config(reader: Path, result: Path, expect: int) -> str:
    neighbors = ""
    for addr, asn in (("127.0.0.2", BIRD_AS), ("127.0.0.3", RAW_AS)):
        neighbors += f"""
neighbor {addr} {{
    router-id 10.0.0.1;
    local-address 127.0.0.1;
    local-as {LOCAL_AS};
    peer-as {asn};
    hold-time 90;
    passive;
    family {{ ipv4 unicast; }}
    capability {{ graceful-restart 0; route-refresh; }}
    api {{ processes [ reader ]; receive {{ parsed; update; }} neighbor-changes; }}
}}
"""
    run = f"{sys.executable} {reader} {result} {expect}"
    return f"process reader {{\n    run {run};\n    encoder json;\n}}\n" + neighbors


def run_exabgp(
    exabgp: str, static: str, workdir: Path, expect: int
) -> tuple[dict[str, float], int, object]:
    port = free_port()
    reader, result, conf = workdir / "reader.py", workdir / "exa-result.txt", workdir / "exa.conf"
    reader.write_text(EXA_READER)
    result.unlink(missing_ok=True)
    conf.write_text(exabgp_config(reader, result, expect))
    env = dict(
        os.environ,
        exabgp_daemon_drop="false",
        exabgp_cli_enable="false",
        exabgp_api_cli="false",
        exabgp_tcp_bind="127.0.0.1",
        exabgp_tcp_port=str(port),
        exabgp_log_enable="false",
    )
    proc = subprocess.Popen(
        [exabgp, "server", str(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(
                ("127.0.0.1", port), timeout=1, source_address=("127.0.0.9", 0)
            ).close()
            break
        except OSError:
            time.sleep(0.1)
    bird = BirdProcess(workdir, bird_config(static, port, free_port()))
    try:
        deadline = time.monotonic() + 900
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = result.read_text().splitlines() if result.exists() else []
            if any(line.startswith("full") for line in lines):
                break
            time.sleep(0.1)
        up = float(next(x for x in lines if x.startswith("up")).split()[1])
        _, full_at, count = next(x for x in lines if x.startswith("full")).split()
        p99_at = float(next(x for x in lines if x.startswith("p99")).split()[1])
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        rss = rss_mib(proc.pid) + sum(rss_mib(c) for c in children)
        out = {
            "p99": p99_at - up,
            "seconds": float(full_at) - up,
            "accepted": int(count),
            "rss_mib": rss,
        }
    finally:
        bird.stop()
    return out, port, proc


# --- robustness -----------------------------------------------------------------------------


def _attr(flags: int, atype: int, value: bytes) -> bytes:
    return struct.pack("!BBB", flags, atype, len(value)) + value


def _update(attrs: bytes, nlri: bytes = bytes([24, 11, 0, 1])) -> bytes:
    body = b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + nlri
    return MARKER + struct.pack("!HB", 19 + len(body), 2) + body


ORIGIN = _attr(0x40, 1, b"\x00")
PATH = _attr(0x40, 2, struct.pack("!BBI", 2, 1, RAW_AS))
NH = _attr(0x40, 3, bytes([192, 0, 2, 1]))
CASES = [
    ("bad marker", b"\x00" * 16 + b"\x00\x13\x04", "1/1"),
    ("length 5000", MARKER + b"\x13\x88\x04", "1/2"),
    ("type 9", MARKER + b"\x00\x13\x09", "1/3"),
    ("KEEPALIVE of 20 bytes", MARKER + b"\x00\x14\x04\x00", "1/2"),
    ("truncated attribute", _update(ORIGIN + PATH + bytes([0x40, 3, 9, 192, 0, 2, 1])), "3/1"),
    ("ORIGIN flagged optional", _update(_attr(0xC0, 1, b"\x00") + PATH + NH), "3/4"),
    ("ORIGIN value 7", _update(_attr(0x40, 1, b"\x07") + PATH + NH), "3/6"),
    ("AS_PATH overrun", _update(ORIGIN + _attr(0x40, 2, b"\x02\x09\x00\x00\xfd\xeb") + NH), "3/11"),
    ("missing NEXT_HOP", _update(ORIGIN + PATH), "3/3"),
    ("NEXT_HOP 0.0.0.0", _update(ORIGIN + PATH + _attr(0x40, 3, bytes(4))), "3/8"),
    ("prefix length 33", _update(ORIGIN + PATH + NH, bytes([33, 1, 2, 3, 4, 5])), "3/10"),
    ("unknown well-known attr", _update(ORIGIN + PATH + NH + _attr(0x40, 99, b"x")), "3/2"),
]


def probe(port: int, payload: bytes, source: str = "127.0.0.3") -> str:
    """Establish from ``source``, send ``payload``, report the answer."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    except OSError as exc:
        return f"connect failed: {exc}"
    dec, got = Decoder(), []
    try:
        caps = (Multiprotocol(1, 1), FourOctetAs(RAW_AS))
        s.sendall(encode(Open(RAW_AS, 90, "192.0.2.3", caps)))
        s.settimeout(5)
        while not (any(isinstance(m, Open) for m in got) and Keepalive() in got):
            data = s.recv(65536)
            if not data:
                return "refused"
            dec.feed(data)
            got += dec.messages()
        s.sendall(encode(Keepalive()))
        time.sleep(0.3)
        s.sendall(payload)
        s.settimeout(3)
        got = []
        while True:
            try:
                data = s.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            dec.feed(data)
            got += dec.messages()
        notes = [m for m in got if isinstance(m, Notification)]
        if notes:
            return f"{notes[0].code}/{notes[0].subcode}"
        return "kept session (no NOTIFICATION)"
    except (OSError, ValueError) as exc:
        return f"error: {exc!r}"
    finally:
        s.close()


def exabgp_probe(port: int, payload: bytes, result: Path) -> str:
    """``probe``, plus what ExaBGP's API reader was told about the broken route."""
    before = len(result.read_text().splitlines())
    answer = probe(port, payload)
    time.sleep(0.3)
    raw = [x for x in result.read_text().splitlines()[before:] if x.startswith("raw ")]
    if any('"announce"' in x for x in raw):
        answer += ", route sent to API"
    elif any('"withdraw"' in x for x in raw):
        answer += ", withdrawn"
    return answer


def stop_child(handle: object) -> None:
    proc = handle
    assert isinstance(proc, subprocess.Popen)
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_exabgp(handle: object) -> None:
    proc = handle
    assert isinstance(proc, subprocess.Popen)
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: exabgp and its reader
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- codec only -----------------------------------------------------------------------------


def codec_only(table: list[tuple[int, int]], shape: str) -> tuple[float, float]:
    """(decode prefixes/s, decode + policy + Adj-RIB-In prefixes/s) on in-memory UPDATEs."""
    n = len(table)
    group = 256 if shape == "packed" else 1  # what BIRD sends
    wire = bytearray()
    for start in range(0, n, group):
        a, b = path_of(start, n) if shape == "diverse" else (BIRD_AS, BIRD_AS)
        attrs = PathAttributes(
            origin=Origin.IGP,
            as_path=(AsPathSegment(SegmentType.AS_SEQUENCE, (BIRD_AS, b, a)),),
            next_hop="192.0.2.1",
        )
        nlri = tuple(pfx.make(net, ln) for net, ln in table[start : start + group])
        wire += encode(Update(attributes=attrs, nlri=nlri))
    data = bytes(wire)
    t0 = time.perf_counter()
    dec = Decoder()
    dec.feed(data)
    msgs = dec.messages()
    t1 = time.perf_counter()
    rib = AdjRibIn(ImportPolicy(local_as=LOCAL_AS, peer_as=BIRD_AS))
    for m in msgs:
        assert isinstance(m, Update)
        rib.apply(m)
    t2 = time.perf_counter()
    assert rib.accepted == n
    return n / (t1 - t0), n / (t2 - t0)


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=900_000)
    ap.add_argument("--exabgp-prefixes", type=int, default=200_000)
    ap.add_argument("--shapes", default="packed,diverse")
    ap.add_argument(
        "--exabgp", default=os.environ.get("LOCALCAST_EXABGP") or shutil.which("exabgp")
    )
    ap.add_argument("--child", nargs=2, metavar=("PORT", "EXPECT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_ours(int(args.child[0]), int(args.child[1]))
        return 0
    if not os.path.exists(BIRD):
        print("bird2 is not installed (make deps)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bgp-bench-"))
    rows: list[str] = []

    def emit(line: str) -> None:
        rows.append(line)
        print(line, flush=True)

    robust: dict[str, list[str]] = {}
    try:
        full = generate(max(args.prefixes, args.exabgp_prefixes))
        for shape in args.shapes.split(","):
            table = full[: args.prefixes]
            static = static_config(table, shape)
            dec_rate, rib_rate = codec_only(table, shape)
            emit(
                f"{'codec only':12} {shape:8} {len(table):>9,} decode {dec_rate / 1e3:7.0f} k/s"
                f"  decode+policy+rib {rib_rate / 1e3:6.0f} k/s"
            )
            sink_s = run_sink(static, workdir)
            emit(
                f"{'BIRD->sink':12} {shape:8} {len(table):>9,} 99% {sink_s:6.2f} s"
                f" {len(table) / sink_s / 1e3:6.0f} k/s (BIRD's export time: the floor)"
            )
            ours, port, child = run_ours(static, workdir, len(table))
            rate = 0.99 * ours["accepted"] / ours["p99"]
            emit(
                f"{'localcast':12} {shape:8} {ours['accepted']:>9,} 99% {ours['p99']:6.2f} s"
                f" {rate / 1e3:6.0f} k/s  all {ours['seconds']:5.2f} s"
                f"  RSS {ours['rss_mib']:.0f} MiB (Adj-RIB-In {ours['rib_mib']:.0f} MiB)"
            )
            if shape == args.shapes.split(",")[0]:
                robust["localcast strict"] = [probe(port, p) for _, p, _ in CASES]
                robust["localcast RFC 7606 (default)"] = [
                    probe(port, p, "127.0.0.4") for _, p, _ in CASES
                ]
            stop_child(child)
            if args.exabgp:
                small = full[: args.exabgp_prefixes]
                exa, eport, proc = run_exabgp(
                    args.exabgp, static_config(small, shape), workdir, len(small)
                )
                rate = 0.99 * exa["accepted"] / exa["p99"]
                emit(
                    f"{'ExaBGP+JSON':12} {shape:8} {exa['accepted']:>9,} 99% {exa['p99']:6.2f} s"
                    f" {rate / 1e3:6.0f} k/s  all {exa['seconds']:5.2f} s  RSS {exa['rss_mib']:.0f}"
                    f" MiB  (-> ~{args.prefixes / rate:.0f} s for {args.prefixes:,})"
                )
                if "ExaBGP" not in robust:
                    robust["ExaBGP"] = [
                        exabgp_probe(eport, p, workdir / "exa-result.txt") for _, p, _ in CASES
                    ]
                stop_exabgp(proc)
        print("\nmalformed input -> NOTIFICATION (expected per RFC 4271 §6)")
        names = list(robust)
        print(f"  {'case':24} {'RFC 4271':8} " + " ".join(f"{n:30}" for n in names))
        for i, (case, _, expected) in enumerate(CASES):
            answers = " ".join(f"{robust[n][i]:30}" for n in names)
            print(f"  {case:24} {expected:8} {answers}")
        if not args.exabgp:
            print("\n(ExaBGP not measured: pass --exabgp PATH or set LOCALCAST_EXABGP)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
