"""Prometheus /metrics on the appliance: real data planes, real requests, exact counts.

Each test starts ``localcast appliance serve`` (the supervisor and its
workers) in its own home, sends requests whose statuses, kinds (viewer /
fill / other) and body bytes it tallies itself, then reads ``GET /metrics``
with ``prometheus_client``'s parser and compares exactly. Scrapes go over one
keep-alive connection (one worker, which reports itself from memory); the
other workers' numbers come from their snapshot files, at most a tick old, so
comparisons poll briefly. Also: the allow list, files of dead processes
(gauges dropped, counters kept, never twice), a worker killed and replaced,
and the BGP speaker's families with BIRD announcing to ``localcast bgp run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance_support import TITLE, RawClient, SampleStore, add_file, make_store
from bgp_support import Bird, bird_bgp, bird_header, bird_static, free_port
from prometheus_client.parser import text_string_to_metric_families

from localcast.appliance.launch import ApplianceProcess, start_appliance
from localcast.appliance.settings import settings_from_config
from localcast.config import ConfigError, load_config
from localcast.core.tokens import Keyring, fill_keyring, sign, signed_path
from localcast.devstack.procs import child_pids
from localcast.metrics import MetricsWriter, Snapshot, merge
from localcast.metrics.collect import RETIRED_NAME, Retired

Labels = tuple[tuple[str, str], ...]
A = "localcast_appliance_"
TRUNC_TITLE = "title-3"


# --- helpers --------------------------------------------------------------------------------


def families(text: str) -> dict[str, dict[str, dict[Labels, float]]]:
    """family -> sample name -> sorted label items -> value."""
    out: dict[str, dict[str, dict[Labels, float]]] = {}
    for fam in text_string_to_metric_families(text):
        per = out.setdefault(fam.name, {})
        for s in fam.samples:
            per.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def eventually(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Poll ``check`` until it passes; fail with its last complaint after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except (AssertionError, KeyError) as exc:  # KeyError: a family not there yet
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {exc}") from exc
            time.sleep(0.1)


class Node:
    """An appliance under test and the tally of what a test sent it."""

    def __init__(self, app: ApplianceProcess, home: Path, store: SampleStore) -> None:
        self.app = app
        self.home = home
        self.store = store
        self.requests: Counter[tuple[str, str]] = Counter()  # (kind, status) -> responses
        self.bytes: Counter[tuple[str, str]] = Counter()  # (kind, status) -> body bytes
        self.refusals: Counter[tuple[str, str]] = Counter()  # (kind, reason)
        self.connections = 0
        self.scraper = RawClient(app.url)  # one keep-alive connection: one worker
        self.connections += 1
        self.scrapes: list[int] = []  # body lengths of the /metrics answers so far

    @property
    def metrics_dir(self) -> Path:
        return self.home / "run" / "metrics"

    def send(
        self,
        target: str,
        kind: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        refusal: str | None = None,
    ) -> int:
        """One request on a fresh connection (the kernel spreads them over the workers)."""
        with RawClient(self.app.url) as c:
            r = c.request(method, target, headers)
        self.connections += 1
        self.requests[(kind, str(r.status))] += 1
        self.bytes[(kind, str(r.status))] += len(r.body)
        if refusal is not None:
            assert r.status == 403, r
            self.refusals[(kind, refusal)] += 1
        return r.status

    def scrape(self) -> dict[str, dict[str, dict[Labels, float]]]:
        """GET /metrics on the keep-alive connection; this answer is counted from the next."""
        r = self.scraper.request("GET", "/metrics")
        assert r.status == 200, r
        assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
        fams = families(r.body.decode())
        # (Counter's "+" would drop zeros: a 304 or HEAD has 0 body bytes, still a sample)
        expected_requests, expected_bytes = Counter(self.requests), Counter(self.bytes)
        if self.scrapes:
            expected_requests[("other", "200")] += len(self.scrapes)
            expected_bytes[("other", "200")] += sum(self.scrapes)
        self.scrapes.append(len(r.body))
        self._expected = (expected_requests, expected_bytes)
        return fams

    def assert_traffic(self, fams: dict[str, dict[str, dict[Labels, float]]]) -> None:
        """Requests, bytes, refusals and accepted connections exactly as tallied."""
        requests, body = self._expected
        got_requests = fams.get(A + "requests", {}).get(A + "requests_total", {})
        assert got_requests == by_kind_status(requests)
        got_bytes = fams.get(A + "response_bytes", {}).get(A + "response_bytes_total", {})
        assert got_bytes == by_kind_status(body)
        refusals = {(("kind", k), ("reason", r)): float(n) for (k, r), n in self.refusals.items()}
        got = fams.get(A + "token_refusals", {}).get(A + "token_refusals_total", {})
        assert got == refusals
        accepted = fams[A + "connections_accepted"][A + "connections_accepted_total"]
        assert accepted == {(): float(self.connections)}

    def wait_exact(self, extra: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            fams = self.scrape()
            self.assert_traffic(fams)
            if extra is not None:
                extra(fams)
            return fams

        return eventually(check, "the scrape to match the tally")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.scraper.close()
        self.app.stop()


def by_kind_status(c: Counter[tuple[str, str]]) -> dict[Labels, float]:
    return {(("kind", k), ("status", s)): float(n) for (k, s), n in c.items()}


def gauge(fams: dict[str, Any], name: str, labels: Labels = ()) -> float:
    value: float = fams[name][name][labels]
    return value


def start_node(tmp_path: Path, workers: int, config: str = "") -> Node:
    store = make_store(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    if config:
        (home / "config.toml").write_text(config)
    app = start_appliance(
        home, store=store.root, keys=store.keys, workers=workers, extra_args=["--access-log", "off"]
    )
    return Node(app, home, store)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Node]:
    # A file the index holds at 512 KiB, truncated on disk before it is asked for.
    (tmp_path / "store" / TRUNC_TITLE).mkdir(parents=True)
    data = os.urandom(512 * 1024)
    name = add_file(tmp_path / "store" / TRUNC_TITLE, data, "m4s")
    node = start_node(tmp_path, workers=2)
    node.store.names["trunc"] = name
    node.store.files[name] = data
    yield node
    node.close()


# --- the data plane -------------------------------------------------------------------------


def test_data_plane_counts_are_exact_and_summed_over_workers(two_workers: Node) -> None:
    node, st = two_workers, two_workers.store
    kr = st.keyring
    exp = int(time.time()) + 3600
    fill = fill_keyring(kr)
    fill_path = signed_path(fill, f"/{TITLE}", exp)
    name = st.names

    # viewers: whole files (RAM, sendfile and mmap paths), a range, HEAD, 304, a 404
    for _ in range(3):
        for key in ("small", "mid", "big", "playlist", "empty"):
            assert node.send(st.path(key), "viewer") == 200
    assert node.send(st.path("big"), "viewer", headers={"Range": "bytes=100-1099"}) == 206
    assert node.send(st.path("mid"), "viewer", method="HEAD") == 200
    etag = f'"{name["small"].split(".")[0]}"'
    assert node.send(st.path("small"), "viewer", headers={"If-None-Match": etag}) == 304
    missing = "0" * 64 + ".m4s"
    assert node.send(signed_path(kr, f"/{TITLE}", exp) + "/" + missing, "viewer") == 404
    # fills: the fill credential's tokens
    for key in ("big", "small", "mpd"):
        assert node.send(f"{fill_path}/{name[key]}", "fill") == 200
    assert node.send(f"{fill_path}/{name['big']}", "fill", headers={"Range": "bytes=-10"}) == 206
    # refused tokens, one of each reason
    small = name["small"]
    node.send(f"/{TITLE}/{small}", "other", refusal="missing")
    node.send(f"/lc1~nonsense/{TITLE}/{small}", "viewer", refusal="malformed")
    other_kr = Keyring("k9", {"k9": b"x" * 32})
    node.send(
        signed_path(other_kr, f"/{TITLE}", exp) + f"/{small}", "viewer", refusal="unknown_key"
    )
    node.send(signed_path(kr, f"/{TITLE}", 1000) + f"/{small}", "viewer", refusal="expired")
    token = sign(kr, f"/{TITLE}", exp)
    bad = token[:-1] + ("A" if token[-1] != "A" else "B")
    node.send(f"/{bad}/{TITLE}/{small}", "viewer", refusal="bad_signature")
    deep = sign(kr, f"/{TITLE}/a/b", exp)
    node.send(f"/{deep}/{TITLE}/{small}", "viewer", refusal="not_covered")
    netbound = signed_path(kr, f"/{TITLE}", exp, client_net="10.0.0.0/8")
    node.send(f"{netbound}/{small}", "viewer", refusal="client_network")
    node.send(signed_path(fill, f"/{TITLE}", 1000) + f"/{small}", "fill", refusal="expired")
    # not content at all
    assert node.send("/healthz", "other") == 200
    assert node.send("/nothing-here", "other") == 404

    # A file that shrank under the index: sendfile comes up short, the response is cut.
    trunc = st.root / TRUNC_TITLE / name["trunc"]
    os.truncate(trunc, 100_000)
    trunc_path = signed_path(kr, f"/{TRUNC_TITLE}", exp) + "/" + name["trunc"]
    with RawClient(node.app.url) as c:
        c.send(f"GET {trunc_path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert c.is_closed()
    node.connections += 1
    node.requests[("viewer", "200")] += 1
    node.bytes[("viewer", "200")] += 100_000  # what went out before the file ran out

    servable = {n: d for n, d in st.files.items() if n != name["symlink_out"]}

    def rest(fams: dict[str, Any]) -> None:
        errors = fams[A + "sendfile_errors"][A + "sendfile_errors_total"]
        assert errors == {(("error", "short_file"),): 1.0}
        assert gauge(fams, A + "store_files") == len(servable)
        assert gauge(fams, A + "store_bytes") == sum(len(d) for d in servable.values())
        assert gauge(fams, A + "store_titles") == 3
        assert gauge(fams, A + "workers") == 2
        assert fams[A + "worker_restarts"][A + "worker_restarts_total"] == {(): 0.0}
        publishers = fams["localcast_metrics_publishers"]["localcast_metrics_publishers"]
        assert publishers == {
            (("component", "dataplane"),): 2.0,
            (("component", "supervisor"),): 1.0,
        }

    fams = node.wait_exact(rest)
    vfs = os.statvfs(st.root)
    assert gauge(fams, A + "disk_size_bytes") == vfs.f_blocks * vfs.f_frsize
    used, free = gauge(fams, A + "disk_used_bytes"), gauge(fams, A + "disk_free_bytes")
    assert free > 0 and 0 < used <= vfs.f_blocks * vfs.f_frsize

    # Both workers served some of it, and the totals are the sum of their snapshot files.
    def files_sum() -> None:
        files = sorted(node.metrics_dir.glob("dataplane-*.json"))
        assert {int(f.stem.split("-")[1]) for f in files} == child_pids(node.app.pid)
        snaps = [Snapshot.from_json(json.loads(f.read_bytes())) for f in files]
        per_worker = [s.families[A + "requests"].samples for s in snaps]
        assert all(sum(v for k, v in samples.items() if k[0] == "viewer") for samples in per_worker)
        summed = merge(snaps)[A + "requests"].samples
        # (the scraping worker's file may lack the latest scrapes: kind "other")
        assert {k: v for k, v in summed.items() if k[0] != "other"} == {
            (kind, status): n for (kind, status), n in node.requests.items() if kind != "other"
        }

    eventually(files_sum, "the workers' files to hold every viewer and fill request")

    # Open connections, summed over workers: the scraper plus three idle ones.
    idle = [RawClient(node.app.url) for _ in range(3)]
    node.connections += 3
    try:
        node.wait_exact(lambda fams: assert_eq(gauge(fams, A + "connections"), 4))
    finally:
        for c in idle:
            c.close()
    node.wait_exact(lambda fams: assert_eq(gauge(fams, A + "connections"), 1))


def assert_eq(a: object, b: object) -> None:
    assert a == b


def test_metrics_only_for_the_allow_list(tmp_path: Path) -> None:
    node = start_node(
        tmp_path, workers=1, config='[appliance]\nmetrics_allow = ["127.0.0.2/32", "::1/128"]\n'
    )
    try:
        refused = node.send("/metrics", "other")
        assert refused == 403
        assert node.send("/metrics?x=1", "other", method="HEAD") == 403
        allowed = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with allowed:
            r = allowed.get(node.app.url + "/metrics")
            assert r.status_code == 200
            fams = families(r.text)
            # the refusals are plain 403s of kind "other", not token refusals
            assert fams[A + "requests"][A + "requests_total"] == {
                (("kind", "other"), ("status", "403")): 2.0
            }
            assert A + "token_refusals" not in fams
            h = allowed.head(node.app.url + "/metrics")
            assert h.status_code == 200 and h.content == b""
            assert int(h.headers["content-length"]) > 0
    finally:
        node.app.stop()


def test_metrics_allow_must_be_networks(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[appliance]\nmetrics_allow = ["not-a-net"]\n')
    with pytest.raises(ConfigError, match="metrics_allow"):
        settings_from_config(load_config(tmp_path))
    (tmp_path / "config.toml").write_text("")
    settings = settings_from_config(load_config(tmp_path))
    assert settings.metrics_allow == ("127.0.0.0/8", "::1/128")
    assert settings.metrics_dir == tmp_path.resolve() / "run" / "metrics"


# --- other processes' files -----------------------------------------------------------------

PUBLISHER = """
import sys
from localcast.metrics import MetricsWriter
w = MetricsWriter("fill", sys.argv[1])
w.gauge("localcast_test_queue_files", None, 5, help="queued")
w.counter("localcast_test_fetched", {"source": "peer"}, 3, help="fetched")
w.flush()
print("ready", flush=True)
sys.stdin.read()
"""


def publisher(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_dead_processes_files_are_dropped_but_their_counters_kept(tmp_path: Path) -> None:
    node = start_node(tmp_path, workers=1)
    directory = node.metrics_dir
    fetched = ("localcast_test_fetched", "localcast_test_fetched_total")
    peer = (("source", "peer"),)
    try:
        first = publisher(directory)

        def live(fams: dict[str, Any]) -> None:
            assert gauge(fams, "localcast_test_queue_files") == 5
            assert fams[fetched[0]][fetched[1]] == {peer: 3.0}
            pubs = fams["localcast_metrics_publishers"]["localcast_metrics_publishers"]
            assert pubs[(("component", "fill"),)] == 1.0

        node.wait_exact(live)
        assert (directory / f"fill-{first.pid}.json").exists()

        # The process ends: its gauge goes, its file goes, its counter stays (once).
        assert first.stdin is not None
        first.stdin.close()
        first.wait(10)

        def gone(fams: dict[str, Any]) -> None:
            assert "localcast_test_queue_files" not in fams
            assert fams[fetched[0]][fetched[1]] == {peer: 3.0}
            pubs = fams["localcast_metrics_publishers"]["localcast_metrics_publishers"]
            assert (("component", "fill"),) not in pubs

        node.wait_exact(gone)
        assert not (directory / f"fill-{first.pid}.json").exists()
        node.wait_exact(gone)  # scraped again: not folded twice
        retired = Retired.load(directory / RETIRED_NAME)
        assert retired.families["localcast_test_fetched"].samples == {("peer",): 3}

        # A second process adds to it while alive, and after.
        second = publisher(directory)
        node.wait_exact(lambda f: assert_eq(f[fetched[0]][fetched[1]], {peer: 6.0}))
        assert second.stdin is not None
        second.stdin.close()
        second.wait(10)
        node.wait_exact(lambda f: gone_but(f, 6.0))

        # A file naming a live pid that another process wrote (a reused pid): dead too.
        w = MetricsWriter("reporter", directory)
        w.gauge("localcast_test_reused", None, 1)
        w.counter("localcast_test_fetched", {"source": "peer"}, 4)
        snap = w.snapshot()
        snap.identity = "some-other-boot:12345"
        (directory / f"reporter-{snap.pid}.json").write_text(json.dumps(snap.to_json()))
        node.wait_exact(
            lambda f: (gone_but(f, 10.0), assert_eq("localcast_test_reused" in f, False))
        )
        assert not (directory / f"reporter-{snap.pid}.json").exists()
        # and a half-written temp file of a dead writer is cleaned away
        tmp = directory / f".fill-{first.pid}.json.tmp"
        tmp.write_text("{")
        node.scrape()
        assert not tmp.exists()
    finally:
        node.close()


def gone_but(fams: dict[str, Any], fetched: float) -> None:
    assert "localcast_test_queue_files" not in fams
    assert fams["localcast_test_fetched"]["localcast_test_fetched_total"] == {
        (("source", "peer"),): fetched
    }


def test_killed_worker_counts_survive_and_the_restart_is_counted(tmp_path: Path) -> None:
    node = start_node(tmp_path, workers=2)
    try:
        st = node.store
        for _ in range(20):
            node.send(st.path("small"), "viewer")
            node.send(st.path("mid"), "viewer")
        node.wait_exact()
        # the scraper's worker survives: kill the other one
        health = node.scraper.request("GET", "/healthz")
        node.requests[("other", "200")] += 1
        node.bytes[("other", "200")] += len(health.body)
        victim = (child_pids(node.app.pid) - {int(json.loads(health.body)["pid"])}).pop()
        os.kill(victim, signal.SIGKILL)

        def replaced(fams: dict[str, Any]) -> None:
            assert fams[A + "worker_restarts"][A + "worker_restarts_total"] == {(): 1.0}
            assert gauge(fams, A + "workers") == 2
            pubs = fams["localcast_metrics_publishers"]["localcast_metrics_publishers"]
            assert pubs[(("component", "dataplane"),)] == 2.0
            assert len(child_pids(node.app.pid) - {victim}) == 2

        # the killed worker's counts are kept: the totals never go back
        node.wait_exact(replaced)
        assert not (node.metrics_dir / f"dataplane-{victim}.json").exists()
        node.send(st.path("small"), "viewer")
        node.wait_exact()
    finally:
        node.close()


# --- the BGP speaker ------------------------------------------------------------------------


@pytest.mark.slow
def test_bgp_speaker_publishes_sessions_and_routes(tmp_path: Path) -> None:
    bgp_port = free_port()
    config = (
        "[appliance.bgp]\n"
        'local_as = 65001\nrouter_id = "10.0.0.1"\nlisten = "127.0.0.1"\n'
        f"port = {bgp_port}\n\n"
        "[[appliance.bgp.neighbors]]\n"
        'address = "127.0.0.2"\nremote_as = 65002\npassive = true\nhold_time = 6\n'
        'families = ["ipv4"]\n\n'
        "[[appliance.bgp.neighbors]]\n"  # configured, never connects
        'address = "127.0.0.3"\nremote_as = 65003\npassive = true\n'
    )
    node = start_node(tmp_path, workers=1, config=config)
    cmd = [sys.executable, "-m", "localcast", "--home", str(node.home), "bgp", "run"]
    speaker = subprocess.Popen(
        [*cmd, "--status-every", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(speaker.stdout or ()), daemon=True).start()
    routes = [
        "11.1.0.0/16 blackhole",
        "11.2.0.0/24 blackhole",
        "11.3.0.0/25 blackhole",  # longer than /24: too_specific
        "10.0.0.0/8 blackhole",  # private: bogon
    ]
    conf = (
        bird_header(log=tmp_path / "bird.log")
        + bird_static("s4", "ipv4", routes)
        + bird_bgp(
            "isp4",
            local="127.0.0.2",
            local_as=65002,
            neighbor="127.0.0.1",
            neighbor_port=bgp_port,
            neighbor_as=65001,
            family="ipv4",
            export_from="s4",
            next_hop="192.0.2.1",
        )
    )
    bird = Bird(tmp_path, conf).start()
    b = "localcast_bgp_"
    n2, n3 = ("neighbor", "127.0.0.2"), ("neighbor", "127.0.0.3")
    try:

        def up(fams: dict[str, Any]) -> None:
            states = fams[b + "session_state"][b + "session_state"]
            assert states[(n2, ("state", "established"))] == 1.0
            assert sum(v for k, v in states.items() if k[0] == n2) == 1.0
            assert states[(n3, ("state", "established"))] == 0.0
            assert sum(v for k, v in states.items() if k[0] == n3) == 1.0
            assert gauge(fams, b + "routes_received", (n2,)) == 4
            assert gauge(fams, b + "routes_accepted", (n2,)) == 2
            filtered = {
                k[1][1]: v
                for k, v in fams[b + "routes_filtered"][b + "routes_filtered"].items()
                if k[0] == n2 and v
            }
            assert filtered == {"too_specific": 1.0, "bogon": 1.0}
            rejected = fams[b + "routes_rejected"][b + "routes_rejected_total"]
            assert rejected[(n2, ("reason", "bogon"))] == 1.0
            assert fams[b + "session_established"][b + "session_established_total"] == {
                (n2,): 1.0,
                (n3,): 0.0,
            }
            assert gauge(fams, b + "session_uptime_seconds", (n2,)) > 0
            assert gauge(fams, b + "session_uptime_seconds", (n3,)) == 0
            pubs = fams["localcast_metrics_publishers"]["localcast_metrics_publishers"]
            assert pubs[(("component", "bgp"),)] == 1.0

        node.wait_exact(up)
        # BIRD goes away: the session state follows, the counters stay
        bird.stop()

        def down(fams: dict[str, Any]) -> None:
            states = fams[b + "session_state"][b + "session_state"]
            assert states[(n2, ("state", "established"))] == 0.0
            assert gauge(fams, b + "routes_received", (n2,)) == 0
            assert fams[b + "session_established"][b + "session_established_total"][(n2,)] == 1

        node.wait_exact(down)
        speaker.send_signal(signal.SIGTERM)
        assert speaker.wait(15) == 0, "".join(lines)
    finally:
        bird.stop()
        if speaker.poll() is None:
            speaker.kill()
            speaker.wait()
        node.close()


# --- the merge rules, without processes -----------------------------------------------------


def test_merge_adds_counters_and_combines_gauges_by_their_rule(tmp_path: Path) -> None:
    def snap(component: str, conns: int, free: int, events: int) -> Snapshot:
        w = MetricsWriter(component, None)
        w.gauge("localcast_x_connections", None, conns)  # merge "sum"
        w.gauge("localcast_x_free_bytes", None, free, merge="max")
        w.gauge("localcast_x_low", None, free, merge="min")
        w.counter("localcast_x_events_total", {"kind": "a"}, events)
        w.add("localcast_x_events", {"kind": "b"})
        w.add("localcast_x_events", {"kind": "b"}, 2)
        return w.snapshot()

    merged = merge([snap("one", 2, 100, 5), snap("two", 3, 90, 7)])
    assert merged["localcast_x_connections"].samples == {(): 5}
    assert merged["localcast_x_free_bytes"].samples == {(): 100}
    assert merged["localcast_x_low"].samples == {(): 90}
    assert merged["localcast_x_events"].samples == {("a",): 12, ("b",): 6}
    # one name defined two ways: the later copy is left out, not mixed in
    odd = MetricsWriter("odd", None)
    odd.gauge("localcast_x_events", {"other": "label"}, 1)
    assert merge([snap("one", 0, 0, 1), odd.snapshot()])["localcast_x_events"].samples == {
        ("a",): 1,
        ("b",): 3,
    }
    # a writer refuses what Prometheus would
    w = MetricsWriter("ok", tmp_path)
    with pytest.raises(ValueError):
        w.gauge("bad-name", None, 1)
    with pytest.raises(ValueError):
        w.gauge("localcast_x", {"bad-label": "v"}, 1)
    w.gauge("localcast_x", {"a": "1"}, 1)
    with pytest.raises(ValueError):
        w.gauge("localcast_x", {"b": "1"}, 1)  # the label names are fixed at first use
    with pytest.raises(ValueError):
        w.counter("localcast_x", {"a": "1"}, 1)  # a gauge stays a gauge
    with pytest.raises(ValueError):
        MetricsWriter("Bad Component", tmp_path)
    # the file is the snapshot, whole
    assert w.flush() and w.path is not None
    assert Snapshot.from_json(json.loads(w.path.read_bytes())).families["localcast_x"].samples == {
        ("1",): 1
    }
    assert [p.name for p in tmp_path.iterdir()] == [w.path.name]  # no temp file left
