"""Our speaker against a real BIRD 2 on loopback: routes, attributes, withdrawals, timers, filters.

Each test starts its own BIRD (config, control socket and pid file in a temp
dir; ``multihop`` because loopback peers are not directly connected; custom
ports; stopped by pid) and our speaker in a thread. Waits poll with a
timeout that only turns a hang into a failure; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from bgp_support import (
    Bird,
    RawPeer,
    SpeakerThread,
    bird_bgp,
    bird_header,
    bird_static,
    free_port,
    wait_for,
)

from localcast.bgp.events import MaxPrefixAlarm, RouteDelta, SessionChanged
from localcast.bgp.messages import Notification, Origin

pytestmark = pytest.mark.slow

V4, V6 = "127.0.0.2", "::1"
NH4, NH6 = "192.0.2.1", "2001:db8::1"
ROUTES_V4 = [
    "11.1.0.0/16 blackhole { bgp_path.prepend(65010); bgp_community.add((65002, 100));"
    " bgp_large_community.add((65002, 1, 2)); }",
    "11.2.0.0/24 blackhole { bgp_path.prepend(65002); bgp_path.prepend(65002); }",
    "45.0.0.0/22 blackhole { bgp_origin = ORIGIN_INCOMPLETE; }",
]
ROUTES_V6 = [
    "2a00:1::/32 blackhole { bgp_local_pref = 200; bgp_med = 5; }",
    "2a00:2::/48 blackhole",
]
MED_FILTER = (
    'filter { if proto != "s4" then reject; if net ~ [ 11.1.0.0/16 ] then bgp_med = 10; accept; }'
)


def speaker_config(port: int, **v4_options: object) -> dict[str, object]:
    return {
        "local_as": 65001,
        "router_id": "10.0.0.1",
        "listen": ["127.0.0.1", "::1"],
        "port": port,
        "neighbors": [
            {"address": V4, "remote_as": 65002, "passive": True, "hold_time": 6, **v4_options},
            {"address": V6, "remote_as": 65001, "passive": True, "hold_time": 6},  # iBGP
        ],
    }


def bird_config(
    tmp_path: Path,
    port: int,
    v4: list[str],
    v6: list[str],
    hold: int = 6,
    v4_export: str | None = MED_FILTER,
) -> str:
    return (
        bird_header(log=tmp_path / "bird.log")
        + bird_static("s4", "ipv4", v4)
        + bird_static("s6", "ipv6", v6)
        + bird_bgp(
            "isp4",
            local=V4,
            local_as=65002,
            neighbor="127.0.0.1",
            neighbor_port=port,
            neighbor_as=65001,
            family="ipv4",
            export_from="s4",
            export=v4_export,
            next_hop=NH4,
            local_port=BIRD_PORTS[0],
            hold=hold,
        )
        + bird_bgp(
            "isp6",
            local=V6,
            local_as=65001,
            neighbor=V6,
            neighbor_port=port,
            neighbor_as=65001,
            family="ipv6",
            export_from="s6",
            next_hop=NH6,
            local_port=BIRD_PORTS[1],
            hold=hold,
        )
    )


BIRD_PORTS = (free_port(), free_port("::1"))


def test_routes_arrive_with_attributes_then_withdraw_refresh_and_stop(tmp_path: Path) -> None:
    port = free_port()
    with SpeakerThread(speaker_config(port)) as st:
        bird = Bird(tmp_path, bird_config(tmp_path, port, ROUTES_V4, ROUTES_V6)).start()
        try:
            st.wait_state(V4, "established")
            st.wait_state(V6, "established")
            wait_for(lambda: len(st.routes(V4)) == 3 and len(st.routes(V6)) == 2, what="routes")
            v4, v6 = st.routes(V4), st.routes(V6)
            assert set(v4) == {"11.1.0.0/16", "11.2.0.0/24", "45.0.0.0/22"}
            a = v4["11.1.0.0/16"]
            assert a.flat_as_path() == (65002, 65010) and a.origin_as(65002) == 65010
            assert a.med == 10 and a.local_pref is None  # eBGP: no LOCAL_PREF
            assert a.communities == (65002 << 16 | 100,) and a.large_communities == ((65002, 1, 2),)
            assert a.next_hop == NH4 and a.origin == Origin.IGP
            assert v4["11.2.0.0/24"].flat_as_path() == (65002, 65002, 65002)  # prepended
            assert v4["45.0.0.0/22"].origin == Origin.INCOMPLETE and v4["45.0.0.0/22"].med is None
            assert set(v6) == {"2a00:1::/32", "2a00:2::/48"}
            b = v6["2a00:1::/32"]
            assert b.local_pref == 200 and b.med == 5 and b.as_path == () and b.next_hop == NH6
            assert v6["2a00:2::/48"].local_pref == 100  # iBGP: BIRD's default
            s4 = st.status(V4)
            assert s4.families == ("ipv4",) and s4.hold_time_s == 6 and s4.accepted == 3
            assert s4.peer_router_id == "192.0.2.254" and s4.uptime_s is not None

            # BIRD withdraws a prefix when reconfigured without it
            events_before = len(st.events)
            bird.reconfigure(bird_config(tmp_path, port, ROUTES_V4[:1] + ROUTES_V4[2:], ROUTES_V6))
            wait_for(lambda: "11.2.0.0/24" not in st.routes(V4), what="the withdrawal")
            assert set(st.routes(V4)) == {"11.1.0.0/16", "45.0.0.0/22"}
            withdrawn = [
                e
                for e in st.events[events_before:]
                if isinstance(e, RouteDelta) and e.neighbor == V4 and e.delta.withdrawn
            ]
            assert withdrawn and withdrawn[-1].delta.withdrawn == 1

            # route refresh: BIRD sends its routes again, nothing changes
            before = st.status(V4).updates_received
            st.call(lambda: st.speaker.refresh(V4))
            wait_for(lambda: st.status(V4).updates_received > before, what="the refresh")
            assert set(st.routes(V4)) == {"11.1.0.0/16", "45.0.0.0/22"}
            assert st.status(V4).established_count == 1

            # BIRD stops: it sends a Cease, we drop everything it gave us
            bird.stop()
            wait_for(lambda: not st.routes(V4) and not st.routes(V6), what="the flush")
            s4 = st.status(V4)
            assert s4.state != "established" and "CEASE" in (s4.last_error or "")
            downs = [
                e for e in st.events if isinstance(e, SessionChanged) and e.old == "established"
            ]
            assert {e.neighbor for e in downs} == {V4, V6}
        finally:
            bird.stop()


def test_silent_router_is_dropped_when_the_hold_timer_expires(tmp_path: Path) -> None:
    port = free_port()
    config = speaker_config(port)
    for n in config["neighbors"]:  # type: ignore[attr-defined]
        n["hold_time"] = 3
    with SpeakerThread(config) as st:
        bird = Bird(tmp_path, bird_config(tmp_path, port, ROUTES_V4, ROUTES_V6, hold=3)).start()
        try:
            wait_for(lambda: len(st.routes(V4)) == 3 and len(st.routes(V6)) == 2, what="routes")
            assert st.status(V4).hold_time_s == 3
            bird.pause()  # SIGSTOP: the TCP session stays open, nothing is sent
            wait_for(lambda: not st.routes(V4) and not st.routes(V6), 12, "the hold timer")
            for n in (V4, V6):
                s = st.status(n)
                assert s.state != "established" and s.last_error == "hold timer expired"
            bird.resume()  # BIRD reconnects and the routes come back
            wait_for(lambda: len(st.routes(V4)) == 3, 20, "the session to come back")
            assert st.status(V4).established_count == 2
        finally:
            bird.stop()


def test_filtered_routes_are_refused_and_counted(tmp_path: Path) -> None:
    vrps = tmp_path / "vrps.json"
    vrps.write_text(
        json.dumps(
            {
                "roas": [
                    {"asn": "AS65010", "prefix": "11.6.0.0/16", "maxLength": 16, "ta": "t"},
                    {"asn": "AS65011", "prefix": "11.5.0.0/16", "maxLength": 24, "ta": "t"},
                ]
            }
        )
    )
    fillers = [f"46.0.{i}.0/24 blackhole" for i in range(15)]
    v4 = [
        "11.6.0.0/16 blackhole { bgp_path.prepend(65010); }",  # RPKI valid
        "11.7.0.0/16 blackhole",  # RPKI not found
        "0.0.0.0/0 blackhole",
        "10.1.0.0/16 blackhole",
        "100.64.0.0/16 blackhole",
        "192.0.2.0/24 blackhole",  # (BIRD itself will not hold 127/8: see test_bgp_policy)
        "11.3.3.0/25 blackhole",
        "11.4.0.0/16 blackhole { bgp_path.prepend(64999); }",  # origin not registered
        "11.5.0.0/16 blackhole { bgp_path.prepend(65010); }",  # RPKI invalid
        *fillers,
    ]
    v6 = [
        "fd00:1::/48 blackhole",
        "2001:db8:1::/48 blackhole",
        "2a00:5:1::/64 blackhole",
        "2a00:6::/32 blackhole",
    ]
    port = free_port()
    options = {
        "allowed_origins": [65002, 65010],
        "max_prefixes": 12,
        "rpki_file": str(vrps),
    }
    with SpeakerThread(speaker_config(port, **options)) as st:
        bird = Bird(tmp_path, bird_config(tmp_path, port, v4, v6, v4_export=None)).start()
        try:
            wait_for(lambda: st.status(V4).received == len(v4), what="every IPv4 route")
            wait_for(lambda: st.status(V6).received == len(v6), what="every IPv6 route")
            s4 = st.status(V4)
            assert s4.accepted == 12 and s4.max_prefix_alarm
            assert s4.filtered == {
                "default_route": 1,
                "bogon": 3,
                "too_specific": 1,
                "origin_not_allowed": 1,
                "rpki_invalid": 1,
                "max_prefixes": 5,  # 17 acceptable, 12 allowed
            }
            assert "11.5.0.0/16" not in st.routes(V4) and "11.4.0.0/16" not in st.routes(V4)
            assert any(isinstance(e, MaxPrefixAlarm) and e.limit == 12 for e in st.events)
            s6 = st.status(V6)
            assert s6.filtered == {"bogon": 2, "too_specific": 1}
            assert set(st.routes(V6)) == {"2a00:6::/32"}
        finally:
            bird.stop()


def test_unknown_peer_and_wrong_as_are_refused(tmp_path: Path) -> None:
    port = free_port()
    config = speaker_config(port)
    config["neighbors"].append({"address": "127.0.0.4", "remote_as": 65004, "passive": True})  # type: ignore[attr-defined]
    # BIRD runs one protocol at a time per neighbor address: we listen on more addresses.
    config["listen"] = ["127.0.0.1", "::1", "127.0.0.10", "127.0.0.11"]
    with SpeakerThread(config) as st:
        bird_conf = bird_config(tmp_path, port, ROUTES_V4, ROUTES_V6) + "".join(
            bird_bgp(
                name,
                local=local,
                local_as=asn,
                neighbor=ours,
                neighbor_port=port,
                neighbor_as=65001,
                family="ipv4",
                export_from="s4",
                next_hop=NH4,
                local_port=free_port(),
            )
            for name, local, ours, asn in (
                ("stranger", "127.0.0.9", "127.0.0.10", 65009),
                ("wrongas", "127.0.0.4", "127.0.0.11", 65099),
            )
        )
        bird = Bird(tmp_path, bird_conf).start()
        try:
            wait_for(lambda: len(st.routes(V4)) == 3, what="the good session's routes")
            wait_for(lambda: st.call(lambda: st.speaker.refused["127.0.0.9"]) > 0, what="refusal")
            wait_for(
                lambda: "Bad peer AS" in bird.birdc("show", "protocols", "all", "wrongas"),
                what="BIRD to report our Bad Peer AS",
            )
            wait_for(
                lambda: "Connection rejected" in bird.birdc("show", "protocols", "all", "stranger"),
                what="BIRD to report our Cease (connection rejected)",
            )
            assert st.status("127.0.0.4").state != "established"
            assert st.status(V4).established_count == 1  # the good session never noticed
        finally:
            bird.stop()
        raw = RawPeer("127.0.0.9", port)
        got = raw.receive()
        assert got == [Notification(6, 5, b"not a configured neighbor")] and raw.closed
        raw.close()


def test_cli_runs_the_speaker_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        "[appliance.bgp]\n"
        'local_as = 65001\nrouter_id = "10.0.0.1"\nlisten = "127.0.0.1"\n'
        f"port = {port}\n\n"
        "[[appliance.bgp.neighbors]]\n"
        'address = "127.0.0.2"\nremote_as = 65002\npassive = true\nhold_time = 6\n'
    )
    cmd = [sys.executable, "-m", "localcast", "--home", str(home), "bgp", "run"]
    proc = subprocess.Popen(
        [*cmd, "--status-every", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    bird = Bird(tmp_path, bird_config(tmp_path, port, ROUTES_V4, ROUTES_V6)).start()
    try:
        wait_for(lambda: any("-> established" in line for line in lines), what="established")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        reader.join(5)
        text = "".join(lines)
        assert "127.0.0.2: open_confirm -> established" in text
        assert "appliance shutting down" in text  # the final table: we sent a Cease
    finally:
        bird.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_active_session_dials_a_passive_router(tmp_path: Path) -> None:
    bird_port = free_port()
    config = {
        "local_as": 65001,
        "router_id": "10.0.0.1",
        "listen": "127.0.0.1",
        "port": free_port(),
        "neighbors": [
            {
                "address": V4,
                "remote_as": 65002,
                "port": bird_port,
                "local_address": "127.0.0.1",
                "hold_time": 6,
                "connect_retry_time": 1,
                "families": ["ipv4"],
            }
        ],
    }
    with SpeakerThread(config) as st:
        assert st.status(V4).state in ("connect", "active")  # dialling, BIRD not there yet
        conf = (
            bird_header(log=tmp_path / "bird.log")
            + bird_static("s4", "ipv4", ROUTES_V4)
            + bird_bgp(
                "isp4",
                local=V4,
                local_as=65002,
                neighbor="127.0.0.1",
                neighbor_port=free_port(),
                neighbor_as=65001,
                family="ipv4",
                export_from="s4",
                next_hop=NH4,
                local_port=bird_port,
                passive=True,
            )
        )
        bird = Bird(tmp_path, conf).start()
        try:
            wait_for(lambda: len(st.routes(V4)) == 3, what="routes over our connection")
            assert st.status(V4).families == ("ipv4",)
        finally:
            bird.stop()
        wait_for(lambda: st.status(V4).state != "established", what="the session to end")
