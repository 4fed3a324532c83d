"""Test helpers for the appliance: a content-addressed test store and a raw HTTP/1.1 client.

The raw client speaks bytes over one socket so tests can pipeline, send
malformed input, stall, and see exactly when the server closes.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from localcast.core.tokens import Keyring, signed_path
from localcast.keyfile import create_keyring

TITLE = "title-1"
OTHER_TITLE = "title-2"


@dataclass
class SampleStore:
    """A store with a few files under TITLE (and one under OTHER_TITLE), and a keyring."""

    root: Path
    keys: Path
    keyring: Keyring
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content
    names: dict[str, str] = field(default_factory=dict)  # key -> name

    def path(self, key: str, title: str = TITLE, ttl: int = 3600) -> str:
        """A signed path for file ``key`` (token covering the title)."""
        token_path = signed_path(self.keyring, f"/{title}", int(time.time()) + ttl)
        return f"{token_path}/{self.names[key]}"

    def content(self, key: str) -> bytes:
        return self.files[self.names[key]]


def add_file(dir_: Path, data: bytes, ext: str) -> str:
    name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    (dir_ / name).write_bytes(data)
    return name


def make_store(base: Path) -> SampleStore:
    root = base / "store"
    (root / TITLE).mkdir(parents=True)
    (root / OTHER_TITLE).mkdir(parents=True)
    keys = base / "keys.json"
    ts = SampleStore(root=root, keys=keys, keyring=create_keyring(keys))
    rnd = os.urandom
    specs = {
        "big": (rnd(3 * 1024 * 1024 + 123), "m4s"),  # sendfile path
        "mid": (rnd(200 * 1024 + 7), "mp4"),  # sendfile path
        "small": (rnd(16 * 1024), "m4s"),  # RAM path
        "playlist": (b"#EXTM3U\n#EXT-X-VERSION:7\n", "m3u8"),
        "mpd": (b"<?xml version='1.0'?><MPD/>", "mpd"),
        "empty": (b"", "m4s"),
    }
    for key, (data, ext) in specs.items():
        name = add_file(root / TITLE, data, ext)
        ts.files[name] = data
        ts.names[key] = name
    ts.names["other"] = add_file(root / OTHER_TITLE, b"other title", "m4s")
    ts.files[ts.names["other"]] = b"other title"
    # Things that must never be served:
    (root / TITLE / "manifest.json").write_text("{}")
    partial = hashlib.sha256(b"partial").hexdigest() + ".m4s.part"
    (root / TITLE / partial).write_bytes(b"partial")
    outside = base / "secret.txt"
    outside.write_text("secret outside the store\n")
    link = hashlib.sha256(b"link").hexdigest() + ".m4s"
    (root / TITLE / link).symlink_to(outside)
    ts.names["symlink_out"] = link
    return ts


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class RawClient:
    """One TCP connection; write bytes, read HTTP/1.1 responses one at a time."""

    def __init__(self, url: str, timeout: float = 10.0, rcvbuf: int | None = None) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, int(port)))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, version: str = "1.1"
    ) -> Response:
        self.send(encode_request(method, target, headers, version))
        return self.read_response(head_only=method == "HEAD")

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_response(self, head_only: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a full head: {self.buf[:200]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = ([*lines[0].split(" ", 2), ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        code = int(status)
        length = 0
        if not head_only and code not in (204, 304):
            length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(code, reason, headers, body, head + b"\r\n\r\n")

    def is_closed(self, wait: float = 5.0) -> bool:
        """True if the server closed the connection (EOF or reset) within ``wait`` seconds."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_request(
    method: str, target: str, headers: dict[str, str] | None = None, version: str = "1.1"
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
