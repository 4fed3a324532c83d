"""The appliance over real sockets: one `localcast appliance serve` subprocess for the module."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from appliance_support import (
    OTHER_TITLE,
    TITLE,
    RawClient,
    SampleStore,
    add_file,
    encode_request,
    make_store,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcast.appliance.launch import ApplianceProcess, serve_in_thread, start_appliance
from localcast.appliance.settings import ApplianceSettings
from localcast.core.tokens import signed_path

ORIGIN = "https://player.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return make_store(tmp_path_factory.mktemp("appliance"))


@pytest.fixture(scope="module")
def server(store: SampleStore) -> Iterator[ApplianceProcess]:
    base = store.root.parent
    with start_appliance(
        base / "home",
        store=store.root,
        keys=store.keys,
        workers=1,
        cors_origins=[ORIGIN],
        extra_args=[
            "--header-timeout",
            "0.5",
            "--send-timeout",
            "1",
            "--idle-timeout",
            "120",
            "--access-log",
            str(base / "access.log"),
        ],
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def conn(server: ApplianceProcess) -> Iterator[RawClient]:
    """One keep-alive connection reused by the tests that do not break connections."""
    with RawClient(server.url) as c:
        yield c


def healthy(server: ApplianceProcess) -> dict[str, object]:
    r = httpx.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 200
    doc = json.loads(r.content)
    assert isinstance(doc, dict)
    return doc


# --- whole files and ranges -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["big", "mid", "small", "playlist", "mpd", "empty"])
def test_whole_files_are_byte_exact_with_headers(
    server: ApplianceProcess, store: SampleStore, conn: RawClient, key: str
) -> None:
    r = conn.request("GET", store.path(key))
    assert r.status == 200
    assert r.body == store.content(key)
    assert r.header("etag") == f'"{store.names[key].split(".")[0]}"'
    assert r.header("accept-ranges") == "bytes"
    assert r.header("cache-control") == "public, max-age=31536000, immutable"
    assert r.header("last-modified") and r.header("date")
    expected_type = {
        "m4s": "video/mp4",
        "mp4": "video/mp4",
        "m3u8": "application/vnd.apple.mpegurl",
        "mpd": "application/dash+xml",
    }[store.names[key].split(".")[1]]
    assert r.header("content-type") == expected_type


range_values = st.one_of(
    st.tuples(st.integers(0, 4_000_000), st.integers(0, 4_000_000)).map(
        lambda t: f"bytes={min(t)}-{max(t)}"
    ),
    st.integers(0, 4_000_000).map(lambda a: f"bytes={a}-"),
    st.integers(1, 4_000_000).map(lambda n: f"bytes=-{n}"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(["big", "mid", "small"]), value=range_values)
def test_ranges_are_byte_exact(store: SampleStore, conn: RawClient, key: str, value: str) -> None:
    data = store.content(key)
    size = len(data)
    r = conn.request("GET", store.path(key), {"Range": value})
    first, _, last = value.removeprefix("bytes=").partition("-")
    if first == "":
        start = max(0, size - int(last))
        end = size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        assert r.status == 416
        assert r.header("content-range") == f"bytes */{size}"
        return
    assert r.status == 206
    assert r.header("content-range") == f"bytes {start}-{end}/{size}"
    assert r.body == data[start : end + 1]


@pytest.mark.parametrize("value", ["bytes=0-", "bytes=-1", "bytes=5-10"])
def test_any_range_of_an_empty_file_is_416(store: SampleStore, conn: RawClient, value: str) -> None:
    r = conn.request("GET", store.path("empty"), {"Range": value})
    assert r.status == 416 and r.header("content-range") == "bytes */0"


@pytest.mark.parametrize("value", ["bytes=0-1,4-5", "bytes=9-2", "pages=1-2", "bytes=x"])
def test_multi_and_malformed_ranges_get_the_whole_file(
    store: SampleStore, conn: RawClient, value: str
) -> None:
    r = conn.request("GET", store.path("small"), {"Range": value})
    assert r.status == 200 and r.body == store.content("small")


def test_head_sends_headers_and_no_body(store: SampleStore, conn: RawClient) -> None:
    r = conn.request("HEAD", store.path("big"))
    assert r.status == 200 and r.body == b""
    assert r.header("content-length") == str(len(store.content("big")))
    # The connection is still in step: no stray body bytes were sent.
    r2 = conn.request("GET", store.path("playlist"))
    assert r2.status == 200 and r2.body == store.content("playlist")


def test_if_none_match_is_304(store: SampleStore, conn: RawClient) -> None:
    etag = f'"{store.names["mid"].split(".")[0]}"'
    r = conn.request("GET", store.path("mid"), {"If-None-Match": etag})
    assert r.status == 304 and r.body == b"" and r.header("etag") == etag
    assert conn.request("GET", store.path("mid"), {"If-None-Match": '"x"'}).status == 200


def test_pipelined_requests_are_answered_in_order(
    server: ApplianceProcess, store: SampleStore
) -> None:
    keys = ["mid", "small", "playlist"]
    with RawClient(server.url) as c:
        c.send(b"".join(encode_request("GET", store.path(k)) for k in keys))
        for k in keys:
            r = c.read_response()
            assert r.status == 200 and r.body == store.content(k)
        # a ranged and a HEAD request pipelined behind each other, then a 404
        c.send(
            encode_request("GET", store.path("big"), {"Range": "bytes=10-19"})
            + encode_request("HEAD", store.path("small"))
            + encode_request("GET", "/nothing")
        )
        assert c.read_response().body == store.content("big")[10:20]
        assert c.read_response(head_only=True).status == 200
        assert c.read_response().status == 404


# --- tokens ---------------------------------------------------------------------------------


def test_bad_tokens_are_403(store: SampleStore, conn: RawClient) -> None:
    name = store.names["small"]
    good = store.path("small")
    token = good.split("/")[1]
    expired = signed_path(store.keyring, f"/{TITLE}", int(time.time()) - 5) + f"/{name}"
    other = store.path("other", title=OTHER_TITLE).replace(
        f"/{OTHER_TITLE}/{store.names['other']}", f"/{TITLE}/{name}"
    )
    for target in (
        f"/{TITLE}/{name}",  # missing
        f"/{token[:-3]}AAA/{TITLE}/{name}",  # bad signature
        f"/notatoken/{TITLE}/{name}",  # malformed
        expired,
        other,  # token of another title
    ):
        assert conn.request("GET", target).status == 403, target
    assert conn.request("GET", good).status == 200


# --- hostile input --------------------------------------------------------------------------


def _bad_targets(store: SampleStore) -> list[tuple[str, int]]:
    token = store.path("small").split("/")[1]
    sym = store.names["symlink_out"]
    return [
        (f"/{token}/../{TITLE}/{store.names['small']}", 400),
        (f"/{token}/%2e%2e/{TITLE}/{store.names['small']}", 400),
        (f"/{token}/{TITLE}%2f..%2f{TITLE}/{store.names['small']}", 400),
        (f"/{token}/{TITLE}/{store.names['small']}%00", 400),
        (f"http://evil/{token}/{TITLE}/{store.names['small']}", 400),
        (f"/{token}/{TITLE}/{sym}", 404),
        (f"/{token}/{TITLE}/manifest.json", 404),
        (f"/{token}/{TITLE}/{sym[:-4]}.m4s.part", 404),
        (f"/{token}//etc/passwd", 404),
    ]


def test_traversal_and_odd_targets_are_refused(
    server: ApplianceProcess, store: SampleStore
) -> None:
    for target, status in _bad_targets(store):
        with RawClient(server.url) as c:
            c.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == status, target
            assert b"secret" not in r.body
    healthy(server)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /x HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 400),
        (b"GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ],
)
def test_malformed_requests_are_400_and_closed(
    server: ApplianceProcess, raw: bytes, status: int
) -> None:
    with RawClient(server.url) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == status
        assert c.is_closed()
    healthy(server)


def test_oversized_head_is_431_and_closed(server: ApplianceProcess) -> None:
    with RawClient(server.url) as c:
        c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        for i in range(40):
            c.send(f"X-Filler-{i}: {'a' * 1000}\r\n".encode())
        with contextlib.suppress(OSError):  # the server may have answered and closed already
            c.send(b"\r\n")
        r = c.read_response()
        assert r.status == 431
        assert c.is_closed()
    healthy(server)


def test_one_huge_header_line_is_431(server: ApplianceProcess) -> None:
    with RawClient(server.url) as c:
        with contextlib.suppress(OSError):
            c.send(b"GET /x HTTP/1.1\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n")
        assert c.read_response().status == 431
    healthy(server)


def test_slow_head_gets_408_and_close(server: ApplianceProcess, store: SampleStore) -> None:
    with RawClient(server.url) as c:
        c.send(f"GET {store.path('small')} HTTP/1.1\r\nHost: x\r\n".encode())  # never finished
        r = c.read_response()
        assert r.status == 408
        assert c.is_closed()
    healthy(server)


def test_http10_closes_unless_keep_alive(server: ApplianceProcess, store: SampleStore) -> None:
    with RawClient(server.url) as c:
        r = c.request("GET", store.path("playlist"), version="1.0")
        assert r.status == 200 and r.header("connection") == "close"
        assert c.is_closed()
    with RawClient(server.url) as c:
        r = c.request("GET", store.path("playlist"), {"Connection": "keep-alive"}, "1.0")
        assert r.header("connection") == "keep-alive"
        assert (
            c.request("GET", store.path("mpd"), {"Connection": "keep-alive"}, "1.0").status == 200
        )


def test_connection_close_is_honoured(server: ApplianceProcess, store: SampleStore) -> None:
    with RawClient(server.url) as c:
        r = c.request("GET", store.path("small"), {"Connection": "close"})
        assert r.status == 200 and r.body == store.content("small")
        assert c.is_closed()


def test_client_leaving_mid_body_costs_nothing(
    server: ApplianceProcess, store: SampleStore
) -> None:
    baseline = healthy(server)["connections"]  # includes this /healthz request's own
    assert isinstance(baseline, int)
    for _ in range(10):
        c = RawClient(server.url, rcvbuf=4096)
        c.send(encode_request("GET", store.path("big")))
        c.sock.recv(1000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # reset, mid-body
    with RawClient(server.url) as c:
        assert c.request("GET", store.path("big")).body == store.content("big")
    deadline = time.monotonic() + 10
    while healthy(server)["connections"] != baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert healthy(server)["connections"] == baseline  # every aborted connection was released


def test_blocked_reader_is_cut_off_by_the_send_timeout(
    server: ApplianceProcess, store: SampleStore
) -> None:
    with RawClient(server.url, rcvbuf=4096) as c:
        c.send(encode_request("GET", store.path("big")))
        time.sleep(3)  # read nothing; the server's send timeout is 1 s
        received = 0
        try:
            while chunk := c.sock.recv(1 << 20):
                received += len(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        assert received < len(store.content("big"))
    healthy(server)


def test_methods_other_than_get_head_options_are_405(
    server: ApplianceProcess, store: SampleStore, conn: RawClient
) -> None:
    r = conn.request("DELETE", store.path("small"))
    assert r.status == 405 and r.header("allow") == "GET, HEAD, OPTIONS"


# --- CORS -----------------------------------------------------------------------------------


def test_cors_preflight_and_response_headers(store: SampleStore, conn: RawClient) -> None:
    pre = conn.request(
        "OPTIONS",
        store.path("big"),
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert pre.status == 204
    assert pre.header("access-control-allow-origin") == ORIGIN
    assert "GET" in (pre.header("access-control-allow-methods") or "")
    assert "Range" in (pre.header("access-control-allow-headers") or "")
    r = conn.request("GET", store.path("small"), {"Origin": ORIGIN, "Range": "bytes=0-9"})
    assert r.status == 206
    assert r.header("access-control-allow-origin") == ORIGIN
    assert "Content-Range" in (r.header("access-control-expose-headers") or "")
    assert r.header("vary") == "Origin"
    other = conn.request("GET", store.path("small"), {"Origin": "https://evil.example"})
    assert other.header("access-control-allow-origin") is None


# --- the store changing underneath ----------------------------------------------------------


def test_files_added_while_running_are_served_and_removed_ones_are_not(
    server: ApplianceProcess, store: SampleStore
) -> None:
    data = b"filled later " * 1000
    name = add_file(store.root / TITLE, data, "m4s")
    store.names["late"] = name
    store.files[name] = data
    r = httpx.get(server.url + store.path("late"), timeout=5)
    assert r.status_code == 200 and r.content == data
    (store.root / TITLE / name).unlink()
    deadline = time.monotonic() + 10
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = httpx.get(server.url + store.path("late"), timeout=5).status_code
        time.sleep(0.1)
    assert status == 404


def test_health_counts_requests_and_access_log_is_written(
    server: ApplianceProcess, store: SampleStore
) -> None:
    httpx.get(server.url + store.path("playlist"), timeout=5)
    doc = healthy(server)
    requests = doc["requests"]
    assert isinstance(requests, dict) and requests.get("200", 0) >= 1
    log = store.root.parent / "access.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and store.names["playlist"] in log.read_text():
            break
        time.sleep(0.1)
    text = log.read_text()
    line = next(ln for ln in text.splitlines() if store.names["playlist"] in ln)
    assert " GET " in line and " 200 " in line
    assert store.path("playlist").split("~")[-1].split("/")[0] not in text  # no signatures


def test_server_stops_cleanly_on_sigterm(store: SampleStore, tmp_path: Path) -> None:
    proc = start_appliance(
        tmp_path / "home",
        store=store.root,
        keys=store.keys,
        workers=1,
        extra_args=["--access-log", "off"],
    )
    assert httpx.get(proc.url + "/healthz", timeout=5).status_code == 200
    assert proc.stop() == 0


def test_half_closed_client_still_gets_the_whole_answer(
    server: ApplianceProcess, store: SampleStore
) -> None:
    with RawClient(server.url) as c:
        c.send(encode_request("GET", store.path("mid")))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.status == 200 and r.body == store.content("mid")
        assert c.is_closed()


def test_upgrade_request_is_answered_then_closed(
    server: ApplianceProcess, store: SampleStore
) -> None:
    with RawClient(server.url) as c:
        r = c.request("GET", store.path("small"), {"Connection": "Upgrade", "Upgrade": "websocket"})
        assert r.status == 200 and r.body == store.content("small")
        assert c.is_closed()


def test_one_worker_in_a_thread_serves(store: SampleStore) -> None:
    settings = ApplianceSettings(
        store=store.root, keys=store.keys, port=0, access_log="off", workers=1
    )
    with serve_in_thread(settings) as appliance:
        r = httpx.get(appliance.url + store.path("mid"), headers={"Range": "bytes=5-9"})
        assert r.status_code == 206 and r.content == store.content("mid")[5:10]


def test_slow_reader_gets_every_byte_of_pipelined_answers(
    server: ApplianceProcess, store: SampleStore
) -> None:
    """Tiny receive window: every kind of body goes out in pieces and resumes on writable."""
    big = store.content("big")
    asks = [
        ("big", {"Range": "bytes=100000-165535"}, big[100000:165536]),  # mapped slice
        ("small", {}, store.content("small")),  # RAM object
        ("mid", {}, store.content("mid")),  # sendfile
        ("big", {"Range": "bytes=-70000"}, big[-70000:]),  # sendfile range
    ]
    with RawClient(server.url, rcvbuf=2048) as c:
        c.send(b"".join(encode_request("GET", store.path(k), h) for k, h, _ in asks))
        for _, _, want in asks:
            r = c.read_response()
            assert r.status in (200, 206) and r.body == want
