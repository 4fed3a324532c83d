"""The access log: line format, token signatures kept out, JSON lines, sampling, rotation."""

from __future__ import annotations

import json
from pathlib import Path

from localcast.appliance.accesslog import AccessLog, Counters, loggable_path


def test_signature_is_cut_from_logged_paths() -> None:
    target = b"/lc1~k1~1800000000~1~-~SECRETSIG/title/abc.m4s"
    assert loggable_path(target) == "/lc1~k1~1800000000~1~-~-/title/abc.m4s"
    assert loggable_path(b"/healthz") == "/healthz"
    assert loggable_path(b"/a b\x00") == "/a%20b\\x00"


def test_text_and_json_lines(tmp_path: Path) -> None:
    text = AccessLog.open(tmp_path / "a.log")
    text.record(1_800_000_000.0, "10.0.0.1", "GET", b"/x", 206, 65536, 0.0012)
    text.close()
    line = (tmp_path / "a.log").read_text()
    assert line == "2027-01-15T08:00:00Z 10.0.0.1 GET /x 206 65536 1.200\n"
    js = AccessLog.open(tmp_path / "b.log", json_lines=True)
    js.record(1_800_000_000.0, "::1", "HEAD", b'/"q"', 200, 0, 0.0)
    js.close()
    doc = json.loads((tmp_path / "b.log").read_text())
    assert doc["path"] == '/"q"' and doc["status"] == 200 and doc["client"] == "::1"


def test_sampling_logs_one_in_n(tmp_path: Path) -> None:
    log = AccessLog.open(tmp_path / "s.log", sample=10)
    for _ in range(100):
        log.record(1_800_000_000.0, "c", "GET", b"/x", 200, 1, 0.0)
    log.close()
    assert len((tmp_path / "s.log").read_text().splitlines()) == 10


def test_rotated_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    log = AccessLog.open(path)
    log.record(1_800_000_000.0, "c", "GET", b"/one", 200, 1, 0.0)
    log.flush()
    path.rename(tmp_path / "r.log.1")
    log.record(1_800_000_000.0, "c", "GET", b"/two", 200, 1, 0.0)
    log.reopen_if_moved()
    log.record(1_800_000_000.0, "c", "GET", b"/three", 200, 1, 0.0)
    log.close()
    assert "/one" in (tmp_path / "r.log.1").read_text()
    assert "/two" in (tmp_path / "r.log.1").read_text()  # buffered before the rotation
    assert "/three" in path.read_text()


def test_counters_by_status() -> None:
    c = Counters()
    c.add(200, 10)
    c.add(200, 5)
    c.add(404, 14)
    assert c.snapshot() == {"requests": {"200": 2, "404": 1}, "bytes": {"200": 15, "404": 14}}
