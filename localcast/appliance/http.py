"""The event-loop shell: an asyncio protocol that parses requests and executes response plans.

One :class:`HttpConnection` per TCP connection. Bytes in go to httptools;
each complete request is queued (pipelining: answered strictly in order) and
handed to :func:`localcast.appliance.plan.plan`; the resulting plan is
executed here and nothing is decided here beyond *how* to move bytes:

* writes bypass the transport, on a ``dup`` of the socket: one ``sendmsg`` of
  head + body for bodies up to ``small_object_bytes`` (whole small files from
  the RAM cache, small ranges of big files from a memory map: ``mapcache``),
  else the head then zero-copy ``os.sendfile``; when the socket is full, ``loop.add_writer`` on that
  dup wakes us (uvloop refuses add_writer on a transport's own fd, and has no
  ``loop.sendfile``);
* parse errors -> 400, oversized head -> 431, slow head -> 408, all closing;
  an idle keep-alive connection is closed quietly; a write that makes no
  progress for ``send_timeout_s`` is aborted; a client that goes away
  mid-body just ends the connection (file closed, counted, logged);
* a connection that must close is shut down for writing and drained for a
  moment (lingering close) so the client reads the answer instead of a reset.

Deadlines are plain numbers checked by :meth:`localcast.appliance.state.ServerState.tick`
(driven by the worker about every 0.25 s), so no timer objects are made per request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from localcast.appliance.entry import FileEntry
from localcast.appliance.plan import Refusal, Request, ResponsePlan, error_plan, plan
from localcast.appliance.state import ServerState

log = logging.getLogger("localcast.appliance")

_MSG_MORE = getattr(socket, "MSG_MORE", 0)
_LINGER_S = 2.0
_MAX_QUEUED = 32  # pipelined requests parsed ahead before reading pauses

# Deadline kinds
_IDLE, _HEADERS, _WRITE, _LINGER = 0, 1, 2, 3

_WANTED_HEADERS = {
    b"range": "range",
    b"if-none-match": "if_none_match",
    b"if-range": "if_range",
    b"origin": "origin",
    b"connection": "connection",
    b"content-length": "content_length",
    b"transfer-encoding": "transfer_encoding",
}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE")}


class HttpConnection(asyncio.Protocol):
    """One client connection: httptools in, plans executed out. See the module docstring."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.settings = server.settings
        self._header_timeout = server.settings.header_timeout_s
        self._idle_timeout = server.settings.idle_timeout_s
        self._small_max = server.small.max_object_bytes
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.out: socket.socket | None = None
        self.out_fd = -1
        self.client = "-"
        self.parser = HttpRequestParser(self)
        self.deadline = float("inf")
        self.deadline_kind = _IDLE
        # request being parsed
        self._url = b""
        self._h: dict[str, str] = {}
        self._in_headers = False
        self._msg_start = 0.0
        self._idle_base = 0.0
        self._msg_seq = 0
        self._head_cb = 0
        self._head_raw = 0
        self._enqueued = False
        # queue: (request or ready plan, method, target, start time)
        self._queue: collections.deque[tuple[Request | ResponsePlan, str, bytes, float]] = (
            collections.deque()
        )
        self._parsing = True  # False after a parse error, a body or an upgrade
        self._paused = False
        # response being written
        self._busy = False
        self._bufs: list[bytes | memoryview] = []
        self._file_fd = -1
        self._file_path = ""
        self._file_off = 0
        self._file_left = 0
        self._writer = False
        # (status, method, target, start, head length, keep-alive) of the response in flight
        self._cur: tuple[int, str, bytes, float, int, bool] = (0, "-", b"", 0.0, 0, True)
        self._cur_sent = 0
        # closing
        self._close_after = False
        self._lingering = False
        self._peer_eof = False
        self._closed = False

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client = str(peer[0])
        try:
            self.out = socket.socket(sock.family, sock.type, 0, os.dup(sock.fileno()))
            self.out.setblocking(False)
        except OSError:
            self.transport.abort()
            return
        self.out_fd = self.out.fileno()
        self.server.connections.add(self)
        self.server.counters.connections += 1
        self._set_deadline(_IDLE, time.monotonic() + self.settings.idle_timeout_s)

    def data_received(self, data: bytes) -> None:
        if not self._parsing or self._closed:
            return  # draining before close, or after a parse error
        try:
            self._received(data)
        except Exception:  # a bug must cost one connection, not the worker's log
            log.exception("internal error; dropping the connection")
            self._abort()

    def _received(self, data: bytes) -> None:
        seq = self._msg_seq
        was_in_headers = self._in_headers
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._stop_parsing()
        except HttpParserError as exc:
            self._stop_parsing()
            self._enqueue_error(400, _reason(exc))
        if self._parsing and self._in_headers:
            # Bytes of a head still incomplete: what callbacks saw in the chunk it began in,
            # then every later chunk whole (llhttp buffers partial lines where we cannot see).
            if was_in_headers and seq == self._msg_seq:
                self._head_raw += len(data)
            else:
                self._head_raw = self._head_cb
            if self._head_raw > self.settings.max_header_bytes:
                self._stop_parsing()
                self._enqueue_error(431, "request head too large")
        if len(self._queue) >= _MAX_QUEUED and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._pump()

    def eof_received(self) -> bool:
        self._parsing = False
        self._peer_eof = True
        if self._busy or self._queue:
            self._close_after = True
            return True  # keep the transport; we close after answering
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._busy:
            self._finish_response(aborted=True)
        self._closed = True
        self._queue.clear()
        self._release()
        self.server.connections.discard(self)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._parsing:
            return  # pipelined after an error: never answered
        self._url = b""
        self._h = {}
        self._in_headers = True
        self._head_cb = 0
        self._head_raw = 0
        self._enqueued = False
        self._msg_seq += 1
        self._msg_start = self._idle_base = start = time.monotonic()
        if not self._busy and not self._queue:
            self.deadline_kind = _HEADERS
            self.deadline = start + self._header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_cb += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_cb += len(name) + len(value) + 4
        key = _WANTED_HEADERS.get(name.lower())
        if key is not None:
            if key in self._h and key in ("content_length", "transfer_encoding"):
                self._h[key] = "x"  # repeated: treat as a body we will not read
            else:
                self._h[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if not self._parsing:
            return
        self._in_headers = False
        if self._head_cb > self.settings.max_header_bytes:
            self._stop_parsing()
            self._enqueue_error(431, "request head too large")
            return
        h = self._h
        cl = h.get("content_length")
        if "transfer_encoding" in h or (cl is not None and cl.strip() != "0"):
            # We never read bodies: answer now and close.
            self._enqueue_request(has_body=True)
            self._stop_parsing()

    def on_message_complete(self) -> None:
        if not self._enqueued and self._parsing:
            self._enqueue_request(has_body=False)

    # --- queueing --------------------------------------------------------------------------

    def _enqueue_request(self, has_body: bool) -> None:
        self._enqueued = True
        h = self._h
        raw_method = self.parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        req = Request(
            method,
            self._url,
            self.parser.get_http_version(),
            h.get("range"),
            h.get("if_none_match"),
            h.get("if_range"),
            h.get("origin"),
            h.get("connection"),
            has_body,
        )
        self._queue.append((req, method, self._url, self._msg_start))

    def _enqueue_error(self, status: int, detail: str) -> None:
        origin = self._h.get("origin")
        cors = self.server.cors.response_block(origin) if self._h else b""
        p = error_plan(status, time.time(), cors=cors, detail=detail)
        start = self._msg_start or time.monotonic()
        self._queue.append((p, "-", self._url, start))

    def _stop_parsing(self) -> None:
        self._parsing = False
        self._in_headers = False

    # --- executing plans ---------------------------------------------------------------------

    def _pump(self) -> None:
        """Answer queued requests in order until one blocks on a full socket."""
        queue = self._queue
        while queue and not self._busy and not self._closed:
            item, method, target, start = queue.popleft()
            now = time.time()
            p = plan(item, self.server.ctx, now, self.client) if isinstance(item, Request) else item
            self._start_response(p, item, method, target, start, now)
        if self._closed or self._busy:
            return  # blocked: _on_writable resumes
        if self._paused and self._parsing and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if self._close_after or not self._parsing:
            self._close_gracefully()
        elif self._in_headers:
            self.deadline_kind = _HEADERS
            self.deadline = self._msg_start + self._header_timeout
        else:
            # From the request's start (no clock read), or from the end of a long answer.
            self.deadline_kind = _IDLE
            self.deadline = self._idle_base + self._idle_timeout

    def _start_response(
        self,
        p: ResponsePlan,
        item: Request | ResponsePlan,
        method: str,
        target: bytes,
        start: float,
        now: float,
    ) -> None:
        head = p.head
        f = p.file
        if p.status == 403 and isinstance(p, Refusal):
            self.server.refused(target, p.reason)
        if f is None:
            body: bytes | memoryview = p.body
        elif f.entry.size <= self._small_max:
            data = self.server.small.get(f.entry)
            if data is None:
                self._replan_missing(f.entry, item, method, target, start, now)
                return
            body = (
                data if f.length == len(data) else memoryview(data)[f.offset : f.offset + f.length]
            )
            f = None
        elif f.length <= self._small_max:
            # A small slice of a big file (a player's range request): from a memory map
            # (mapcache: measured better than sendfile and pread here), else pread.
            view = self.server.maps.slice(f.entry, f.offset, f.length)
            body = view if view is not None else self._pread(f.entry.path, f.offset, f.length)
            if len(body) != f.length:
                self._replan_missing(f.entry, item, method, target, start, now)
                return
            f = None
        else:
            try:
                self._file_fd = self.server.fds.acquire(f.entry.path)
            except OSError:
                self._replan_missing(f.entry, item, method, target, start, now)
                return
            self._file_path = f.entry.path
            self._file_off = f.offset
            self._file_left = f.length
            body = b""
        self._cur = (p.status, method, target, start, len(head), p.keep_alive)
        if f is None:
            # Head and body in one sendmsg; the usual case ends right here.
            total = len(head) + len(body)
            try:
                sent = self.out.sendmsg([head, body] if body else [head])  # type: ignore[union-attr]
            except BlockingIOError:
                sent = 0
            except (OSError, AttributeError):
                self._cur_sent = 0
                self._busy = True
                self._abort()
                return
            if sent == total:
                self.server.record(self.client, method, target, p.status, len(body), start, now)
                if not p.keep_alive:
                    self._end_after_response()
                return
            self._cur_sent = sent
            self._bufs = _rest([head, body], sent)
        else:
            self._cur_sent = 0
            self._bufs = [head]
        self._busy = True
        if self._flush():
            self._finish_response()

    def _pread(self, path: str, offset: int, length: int) -> bytes:
        fds = self.server.fds
        try:
            fd = fds.acquire(path)
        except OSError:
            return b""
        try:
            return os.pread(fd, length, offset)
        except OSError:
            return b""
        finally:
            fds.release(path, fd)

    def _replan_missing(
        self,
        entry: FileEntry,
        item: Request | ResponsePlan,
        method: str,
        target: bytes,
        start: float,
        now: float,
    ) -> None:
        """The index named a file that is gone or unreadable: forget it and decide again."""
        self.server.forget(entry)
        p: ResponsePlan
        if isinstance(item, Request):
            p = plan(item, self.server.ctx, now, self.client)
            if p.file is not None:  # still there, but unreadable
                p = error_plan(500, now, keep_alive=p.keep_alive)
        else:
            p = error_plan(500, now)
        self._start_response(p, p, method, target, start, now)

    def _flush(self) -> bool:
        """Send what is pending; True when the response is complete."""
        out = self.out
        assert out is not None
        try:
            bufs = self._bufs
            while bufs:
                n = out.sendmsg(bufs, (), _MSG_MORE if self._file_left else 0)
                self._cur_sent += n
                while n:
                    size = len(bufs[0])
                    if n >= size:
                        n -= size
                        del bufs[0]
                    else:
                        bufs[0] = memoryview(bufs[0])[n:]
                        n = 0
            while self._file_left:
                try:
                    n = os.sendfile(self.out_fd, self._file_fd, self._file_off, self._file_left)
                except BlockingIOError:
                    raise
                except OSError as exc:
                    self.server.counters.sendfile_error(exc)
                    raise
                if n == 0:
                    short = OSError("file shorter than indexed")
                    self.server.counters.sendfile_error(short)
                    raise short
                self._file_off += n
                self._file_left -= n
                self._cur_sent += n
        except BlockingIOError:
            if not self._writer:
                self._writer = True
                self.loop.add_writer(self.out_fd, self._on_writable)
            self.deadline_kind = _WRITE
            self.deadline = time.monotonic() + self.settings.send_timeout_s
            return False
        except OSError:
            self._abort()
            return False
        return True

    def _on_writable(self) -> None:
        if not self._busy:
            self._remove_writer()
            return
        self.deadline = time.monotonic() + self.settings.send_timeout_s
        try:
            if self._flush():
                self._remove_writer()
                self._finish_response()
                self._idle_base = time.monotonic()  # the request may have started long ago
                self._pump()
        except Exception:
            log.exception("internal error; dropping the connection")
            self._abort()

    def _finish_response(self, aborted: bool = False) -> None:
        self._busy = False
        self._release_file()
        self._file_left = 0
        self._bufs = []
        status, method, target, start, head_len, keep = self._cur
        body = max(0, self._cur_sent - head_len)
        self.server.record(self.client, method, target, status, body, start, time.time())
        if not keep and not aborted:
            self._end_after_response()

    def _end_after_response(self) -> None:
        """The response said ``Connection: close``: answer nothing more, then close."""
        self._close_after = True
        self._parsing = False
        self._queue.clear()

    # --- deadlines and closing ------------------------------------------------------------------

    def _set_deadline(self, kind: int, at: float) -> None:  # off the hot path
        self.deadline_kind = kind
        self.deadline = at

    def on_deadline(self) -> None:
        """Called by the worker's tick when ``deadline`` has passed."""
        kind = self.deadline_kind
        self.deadline = float("inf")
        if kind == _HEADERS and not self._busy and self._parsing:
            self._stop_parsing()
            self._enqueue_error(408, "request head not received in time")
            self._pump()
        elif kind == _WRITE and self._busy:
            self._abort()
        else:
            self._close_now()

    def _close_gracefully(self) -> None:
        """Half-close, then drain what the client still sends for a moment (lingering close)."""
        if self._lingering or self._closed:
            return
        if self._peer_eof:  # the client sends nothing more: nothing to drain
            self._close_now()
            return
        self._lingering = True
        self._parsing = False
        if self.out is not None:
            try:
                self.out.shutdown(socket.SHUT_WR)
            except OSError:
                self._close_now()
                return
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._set_deadline(_LINGER, time.monotonic() + _LINGER_S)

    def _close_now(self) -> None:
        if self.transport is not None and not self._closed:
            self._release()
            self.transport.close()

    def _abort(self) -> None:
        """The client is gone or stuck: end the response and the connection, quietly."""
        if self._busy:
            self._finish_response(aborted=True)
        self._queue.clear()
        self._parsing = False
        self._release()
        if self.transport is not None:
            self.transport.abort()

    def _remove_writer(self) -> None:
        if self._writer:
            self._writer = False
            self.loop.remove_writer(self.out_fd)

    def _release_file(self) -> None:
        if self._file_fd >= 0:
            self.server.fds.release(self._file_path, self._file_fd)
            self._file_fd = -1

    def _release(self) -> None:
        self._remove_writer()
        self._release_file()
        if self.out is not None:
            self.out.close()
            self.out = None
        self.deadline = float("inf")

    def abort(self) -> None:
        """Server shutdown after the grace period: drop the connection."""
        self._abort()

    def close_if_idle(self) -> None:
        """Server shutdown: close now unless a response is in flight."""
        if not self._busy and not self._queue:
            self._close_now()


def _rest(bufs: list[bytes | memoryview], sent: int) -> list[bytes | memoryview]:
    """What of ``bufs`` is left after ``sent`` bytes went out."""
    out: list[bytes | memoryview] = []
    for b in bufs:
        if sent >= len(b):
            sent -= len(b)
        else:
            out.append(memoryview(b)[sent:] if sent else b)
            sent = 0
    return out


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\r", " ").replace("\n", " ")[:200]
