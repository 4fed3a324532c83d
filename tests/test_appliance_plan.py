"""The appliance's pure core without sockets: plan, ranges, targets, tokens memo, store index."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.appliance.entry import FileEntry, make_entry
from localcast.appliance.fdcache import FdCache
from localcast.appliance.headers import CorsPolicy
from localcast.appliance.mapcache import MapCache
from localcast.appliance.plan import (
    PlanContext,
    Request,
    ResponsePlan,
    keyring_verifier,
    plan,
    wants_keep_alive,
)
from localcast.appliance.ranges import UNSATISFIABLE, ByteRange, parse_range
from localcast.appliance.store import StoreIndex
from localcast.appliance.target import split_target
from localcast.appliance.tokencache import TokenVerifier
from localcast.core.tokens import Keyring, sign, signed_path

NOW = 1_800_000_000.0
RING = Keyring(current="k1", secrets={"k1": b"0123456789abcdef0123456789abcdef"})
FILE_ID = hashlib.sha256(b"x").hexdigest()
NAME = f"{FILE_ID}.m4s"
SIZE = 1000
ENTRY = make_entry(f"/store/t1/{NAME}", NAME, SIZE, NOW - 100)
assert ENTRY is not None


class DictStore:
    def __init__(self, entries: dict[tuple[str, str], FileEntry]) -> None:
        self.entries = entries

    def get(self, title_id: str, name: str) -> FileEntry | None:
        return self.entries.get((title_id, name))


def ctx(cors: tuple[str, ...] = ()) -> PlanContext:
    assert ENTRY is not None
    return PlanContext(
        store=DictStore({("t1", NAME): ENTRY}),
        verify=keyring_verifier(RING),
        cors=CorsPolicy.of(cors),
        health=lambda: b'{"status":"ok"}',
    )


def path(title: str = "t1", name: str = NAME, ttl: int = 3600, net: str | None = None) -> bytes:
    token_path = signed_path(RING, f"/{title}", int(NOW) + ttl, net)
    return f"{token_path}/{name}".encode()


def run(
    target: bytes, method: str = "GET", cors: tuple[str, ...] = (), **kw: object
) -> ResponsePlan:
    req = Request(method, target, **kw)  # type: ignore[arg-type]
    return plan(req, ctx(cors), NOW, "10.1.2.3")


# --- whole files, ranges, conditionals ------------------------------------------------------


def test_get_whole_file_is_200_with_file_headers_and_sendfile_slice() -> None:
    p = run(path())
    assert p.status == 200
    assert p.file is not None and (p.file.offset, p.file.length) == (0, SIZE)
    assert p.header("content-length") == str(SIZE)
    assert p.header("etag") == f'"{FILE_ID}"'
    assert p.header("content-type") == "video/mp4"
    assert p.header("cache-control") == "public, max-age=31536000, immutable"
    assert p.header("accept-ranges") == "bytes"
    assert p.header("last-modified") and p.header("date")
    assert p.keep_alive


def test_head_has_the_same_headers_and_no_body() -> None:
    get, head = run(path()), run(path(), "HEAD")
    assert head.status == 200 and head.file is None and head.body == b""
    assert head.header("content-length") == get.header("content-length")


@pytest.mark.parametrize(
    ("value", "start", "length"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=10-19", 10, 10),
        ("bytes=990-", 990, 10),
        ("bytes=-10", 990, 10),
        ("bytes=-5000", 0, SIZE),
        ("bytes=500-99999", 500, 500),
        ("BYTES = 1 - 2", 1, 2),
    ],
)
def test_single_ranges_are_206_with_content_range(value: str, start: int, length: int) -> None:
    p = run(path(), range=value)
    assert p.status == 206
    assert p.file is not None and (p.file.offset, p.file.length) == (start, length)
    assert p.header("content-range") == f"bytes {start}-{start + length - 1}/{SIZE}"
    assert p.header("content-length") == str(length)


@pytest.mark.parametrize("value", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_ranges_are_416_with_the_size(value: str) -> None:
    p = run(path(), range=value)
    assert p.status == 416
    assert p.header("content-range") == f"bytes */{SIZE}"
    assert p.file is None and p.keep_alive


@pytest.mark.parametrize(
    "value", ["bytes=0-1,5-6", "bytes=5-1", "bytes=", "items=0-1", "bytes=a-b", "bytes=--1"]
)
def test_multi_or_malformed_ranges_are_ignored_whole_file(value: str) -> None:
    p = run(path(), range=value)
    assert p.status == 200 and p.file is not None and p.file.length == SIZE


def test_if_range_that_differs_serves_the_whole_file() -> None:
    assert run(path(), range="bytes=0-1", if_range='"other"').status == 200
    assert run(path(), range="bytes=0-1", if_range=f'"{FILE_ID}"').status == 206


@pytest.mark.parametrize("inm", [f'"{FILE_ID}"', "*", f'"a", W/"{FILE_ID}"'])
def test_if_none_match_hit_is_304_without_body(inm: str) -> None:
    p = run(path(), if_none_match=inm, range="bytes=0-1")
    assert p.status == 304 and p.file is None and p.body == b""
    assert p.header("etag") == f'"{FILE_ID}"'


def test_if_none_match_miss_serves() -> None:
    assert run(path(), if_none_match='"nope"').status == 200


@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(0, 3000))
def test_parse_range_stays_inside_the_file(size: int, a: int, b: int) -> None:
    for value in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        r = parse_range(value, size)
        if isinstance(r, ByteRange):
            assert r.start >= 0 and r.length >= 1 and r.start + r.length <= size
        else:
            assert r is None or r is UNSATISFIABLE


# --- tokens ---------------------------------------------------------------------------------


def test_missing_token_is_403() -> None:
    p = run(f"/t1/{NAME}".encode())
    assert p.status == 403 and b"missing token" in p.body


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (f"/lc1~k1~9~1~-~AAAA/t1/{NAME}".encode(), b"bad signature"),
        (f"/garbage/t1/{NAME}".encode(), b"malformed token"),
        (path(ttl=-10), b"expired"),
        (path(title="t2").replace(b"/t2/", b"/t1/"), b"bad signature"),
        (path(net="192.168.0.0/16"), b"outside"),
    ],
)
def test_bad_tokens_are_403_with_the_reason(target: bytes, reason: bytes) -> None:
    p = run(target)
    assert p.status == 403 and reason in p.body


def test_token_for_one_file_does_not_open_another() -> None:
    token = sign(RING, f"/t1/{NAME}", int(NOW) + 60)
    other = hashlib.sha256(b"y").hexdigest() + ".m4s"
    assert run(f"/{token}/t1/{NAME}".encode()).status == 200
    assert run(f"/{token}/t1/{other}".encode()).status == 403


def test_verifier_memo_never_outlives_the_token() -> None:
    verifier = TokenVerifier(RING, ttl_s=60)
    exp = int(NOW) + 2
    token = sign(RING, "/t1", exp)
    assert verifier(token, ("t1", NAME), NOW, None).ok
    assert verifier(token, ("t1", NAME), NOW + 1, None).ok  # memo hit
    assert not verifier(token, ("t1", NAME), exp + 1, None).ok


# --- targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/a/b/c", ("a", "b", "c")),
        (b"/a/b?x=1", ("a", "b")),
        (b"/a%41/b", ("aA", "b")),
        (b"/../etc/passwd", 400),
        (b"/a/./b", 400),
        (b"/a/%2e%2e/b", 400),
        (b"/a/%2E%2e/b", 400),
        (b"/a%2fb", 400),
        (b"/a%5cb", 400),
        (b"/a\\b", 400),
        (b"/a%00b", 400),
        (b"/a%0ab", 400),
        (b"/a%zz", 400),
        (b"/a%2", 400),
        (b"/a%252e%252e", 400),
        (b"/a/\xc3\xa9", 400),
        (b"http://host/a/b", 400),
        (b"*", 400),
        (b"//a/b", 404),
        (b"/", 404),
    ],
)
def test_split_target(raw: bytes, expected: tuple[str, ...] | int) -> None:
    assert split_target(raw) == expected


@pytest.mark.parametrize(
    "target",
    [b"/tok/../t1/x", b"/%2e%2e/t1/" + NAME.encode(), b"/a%00/t1/" + NAME.encode(), b"http://h/x"],
)
def test_traversal_targets_are_400_and_close(target: bytes) -> None:
    p = run(target)
    assert p.status == 400 and not p.keep_alive


@pytest.mark.parametrize(
    "name", ["manifest.json", f"{FILE_ID}.m4s.part", f"{FILE_ID.upper()}.m4s", f"{FILE_ID}.txt"]
)
def test_names_outside_the_pattern_are_404(name: str) -> None:
    assert run(path(name=name)).status == 404


def test_unknown_file_with_valid_token_is_404() -> None:
    assert run(path(name=hashlib.sha256(b"z").hexdigest() + ".mp4")).status == 404


# --- methods, keep-alive, bodies, health ----------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        ("1.1", None, True),
        ("1.1", "close", False),
        ("1.1", "Keep-Alive, Close", False),
        ("1.0", None, False),
        ("1.0", "keep-alive", True),
    ],
)
def test_keep_alive_rules(version: str, connection: str | None, keep: bool) -> None:
    assert wants_keep_alive(version, connection) is keep
    p = run(path(), version=version, connection=connection)
    assert p.keep_alive is keep
    assert (p.header("connection") == "close") is (not keep)


def test_post_is_405_with_allow() -> None:
    p = run(path(), "POST")
    assert p.status == 405 and p.header("allow") == "GET, HEAD, OPTIONS"


def test_request_body_is_refused_and_closes() -> None:
    p = run(path(), has_body=True)
    assert p.status == 400 and not p.keep_alive


def test_healthz_is_json() -> None:
    p = run(b"/healthz")
    assert p.status == 200 and p.body == b'{"status":"ok"}'
    assert p.header("content-type") == "application/json"


# --- CORS -----------------------------------------------------------------------------------


def test_cors_allowed_origin_gets_allow_and_expose() -> None:
    p = run(path(), cors=("https://player.example",), origin="https://player.example")
    assert p.header("access-control-allow-origin") == "https://player.example"
    expose = p.header("access-control-expose-headers") or ""
    for h in ("Content-Length", "Content-Range", "Accept-Ranges", "ETag"):
        assert h in expose
    assert p.header("vary") == "Origin"


def test_cors_other_origin_gets_nothing_but_vary() -> None:
    p = run(path(), cors=("https://player.example",), origin="https://evil.example")
    assert p.header("access-control-allow-origin") is None
    assert p.header("vary") == "Origin"


def test_cors_star_and_off() -> None:
    assert run(path(), cors=("*",), origin="https://a").header("access-control-allow-origin") == "*"
    p = run(path(), origin="https://a")
    assert p.header("access-control-allow-origin") is None and p.header("vary") is None


def test_preflight_is_204_without_token() -> None:
    p = run(b"/whatever/t1/x", "OPTIONS", cors=("*",), origin="https://a")
    assert p.status == 204 and p.keep_alive
    assert p.header("access-control-allow-methods") == "GET, HEAD, OPTIONS"
    assert "Range" in (p.header("access-control-allow-headers") or "")
    assert p.header("access-control-max-age")


# --- store index ----------------------------------------------------------------------------


def _put(root: Path, title: str, data: bytes, ext: str = "m4s") -> str:
    (root / title).mkdir(parents=True, exist_ok=True)
    name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    (root / title / name).write_bytes(data)
    return name


def test_index_sees_new_files_on_a_miss_and_drops_deleted_ones(tmp_path: Path) -> None:
    root = tmp_path / "store"
    a = _put(root, "t1", b"a")
    index = StoreIndex(root)
    index.scan()
    assert index.get("t1", a) is not None
    b = _put(root, "t1", b"bb")  # a fill adds a file while running
    entry = index.get("t1", b)
    assert entry is not None and entry.size == 2
    (root / "t1" / a).unlink()
    os.utime(root / "t1", (time.time() + 5, time.time() + 5))  # make the mtime change visible
    gone = index.refresh()
    assert [e.path for e in gone] == [str((root / "t1" / a).resolve())]
    assert index.get("t1", a) is None


def test_index_ignores_symlinks_out_of_the_store_and_odd_names(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _put(root, "t1", b"a")
    secret = tmp_path / "secret"
    secret.write_text("x")
    out_name = hashlib.sha256(b"out").hexdigest() + ".m4s"
    (root / "t1" / out_name).symlink_to(secret)
    inside = _put(root, "t2", b"inside")
    in_name = hashlib.sha256(b"in").hexdigest() + ".m4s"
    (root / "t1" / in_name).symlink_to(root / "t2" / inside)
    (root / "t1" / "manifest.json").write_text("{}")
    (tmp_path / "elsewhere").mkdir()
    (root / "t3").symlink_to(tmp_path / "elsewhere")
    _put(tmp_path / "elsewhere", ".", b"zz")
    index = StoreIndex(root)
    index.scan()
    assert index.get("t1", out_name) is None
    assert index.get("t1", in_name) is not None  # a symlink that stays inside is fine
    assert index.get("t1", "manifest.json") is None
    assert index.get("t3", hashlib.sha256(b"zz").hexdigest() + ".m4s") is None


def test_fd_cache_shares_and_closes_dropped_files_after_last_use(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"data")
    cache = FdCache(max_open=1)
    fd1 = cache.acquire(str(f))
    fd2 = cache.acquire(str(f))
    assert fd1 == fd2
    cache.drop(str(f))
    cache.release(str(f), fd1)
    assert os.pread(fd2, 4, 0) == b"data"  # still open for the second user
    cache.release(str(f), fd2)
    with pytest.raises(OSError):
        os.fstat(fd2)


def test_map_cache_slices_and_survives_drop_while_in_use(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    name = f"{hashlib.sha256(data).hexdigest()}.mp4"
    (tmp_path / name).write_bytes(data)
    entry = make_entry(str(tmp_path / name), name, len(data), 0.0)
    assert entry is not None
    maps = MapCache(max_files=1)
    view = maps.slice(entry, 1000, 5000)
    assert view is not None and bytes(view) == data[1000:6000]
    assert maps.slice(entry, 199_000, 5000) is None  # past the end: caller falls back
    maps.drop(entry.path)
    (tmp_path / name).unlink()  # eviction: the slice in flight stays readable
    assert bytes(view) == data[1000:6000]
    del view
    stale = make_entry(str(tmp_path / name), name, len(data) + 1, 0.0)
    assert stale is not None and maps.slice(stale, 0, 10) is None  # no file, no map
